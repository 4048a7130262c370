/**
 * What every ResourceStore must do, as mocha tests: run by sqlite-store.test.ts and pg-store.test.ts on
 * their own store, so the two implementations keep one behaviour. `open` gives a store on the same
 * data each time it is called (a second call is a restart); `fresh` starts the data over.
 */
import { expect } from 'chai';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../errors';
import { indexEntriesOf } from '../store/search-index';
import type { NewVersion, PendingWrite, ResourceStore } from '../store/store';

export interface StoreUnderTest {
  /** A store on the current data (a second open while the first is closed is a restart). */
  open(): ResourceStore;
  /** Starts over on empty data (before each test). */
  fresh(): Promise<void>;
}

const DID_OLD = `did:hdx:${'o'.repeat(43)}`;
const DID_NEW = `did:hdx:${'n'.repeat(43)}`;

function version(resourceType: string, id: string, versionId: number, patientId: string): NewVersion {
  const content = JSON.stringify({ resourceType, id, meta: { versionId: String(versionId) } });
  return { resourceType, id, versionId, lastUpdated: '2026-12-01T00:00:00.000Z', patientId, deleted: false, content, date: null, codes: [] };
}

/** Ids of the current Observations coded `http://example.org/codes|<code>`, as search finds them. */
async function observationsCoded(s: ResourceStore, code: string): Promise<string[]> {
  const found = await s.search({
    resourceType: 'Observation',
    criteria: [{ kind: 'token', param: 'code', not: false, values: [{ system: 'http://example.org/codes', code }] }],
    limit: 10,
  });
  return found.map((x) => x.id);
}

function change(entryId: string, action: 'C' | 'U'): AccessEntryInput {
  return {
    entryId,
    actor: `did:hdx:${'a'.repeat(43)}`,
    actorOrganization: 'Hospital1MSP',
    patient: `pseudonym:${'1'.repeat(64)}`,
    resources: [],
    action,
    purpose: 'TREAT',
    decision: 'permit',
    breakGlass: false,
  };
}

const observation = (id: string, patientId: string | null, month: string, labels: string[] = [], extra: Record<string, unknown> = {}): NewVersion => {
  const content = {
    resourceType: 'Observation',
    id,
    status: 'final',
    ...(labels.length > 0 ? { meta: { security: labels.map((code) => ({ code })) } } : {}),
    code: { text: 'x' },
    effectiveDateTime: `${month}-15`,
    ...extra,
  };
  return {
    resourceType: 'Observation',
    id,
    versionId: 1,
    lastUpdated: `2026-01-01T00:00:0${id.length}.000Z`,
    patientId,
    deleted: false,
    content: JSON.stringify(content),
    date: null,
    codes: [],
  };
};

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

export function storeContract(name: string, sut: () => StoreUnderTest): void {
  describe(`${name}: the ResourceStore contract`, () => {
    const opened: ResourceStore[] = [];
    const open = (): ResourceStore => {
      const store = sut().open();
      opened.push(store);
      return store;
    };
    beforeEach(async () => sut().fresh());
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it('a write and its change entries survive a restart; marking it anchored makes the entries ready in the same transaction', async () => {
      const a = open();
      await a.patientKey('p1');
      const write: PendingWrite = {
        writeId: 'w1',
        versions: [version('Patient', 'p1', 2, 'p1'), version('Observation', 'o1', 1, 'p1')],
        newPatientKeys: [],
        didLinks: [{ patientId: 'p1', did: DID_NEW, previous: undefined }],
        changeEntries: [change('e1', 'U'), change('e2', 'C')],
      };
      await a.insertPendingWrite(write);
      expect((await a.readyChangeStats()).count).to.equal(0);
      await a.close();
      const b = open(); // the restart
      const [stored, ...others] = await b.listPendingWrites();
      expect(others).to.have.length(0);
      expect(stored?.writeId).to.equal('w1');
      expect(stored?.versions.map((v) => `${v.resourceType}/${v.id}/${v.versionId}`)).to.have.members(['Patient/p1/2', 'Observation/o1/1']);
      expect(stored?.didLinks).to.deep.equal([{ patientId: 'p1', did: DID_NEW, previous: undefined }]);
      expect((await b.pendingVersions('Observation', 'o1')).map((v) => v.versionId)).to.deep.equal([1]);
      await b.markWriteAnchored(stored as NonNullable<typeof stored>);
      expect(await b.listPending()).to.have.length(0);
      expect((await b.readyChanges(10)).map((c) => [c.entryId, c.entry.action])).to.deep.equal([
        ['e1', 'U'],
        ['e2', 'C'],
      ]);
      await b.dropChanges(['e1']);
      expect((await b.readyChangeStats()).count).to.equal(1);
    });

    it('discarding a stored write after a restart undoes it whole: versions, change entries, the DID link it replaced, the key it created', async () => {
      const a = open();
      await a.patientKey('p1');
      await a.linkPatientDid('p1', DID_OLD);
      await a.insertPendingWrite({
        writeId: 'w2',
        versions: [version('Patient', 'p1', 2, 'p1'), version('Patient', 'p2', 1, 'p2')],
        newPatientKeys: [{ patientId: 'p2', key: Buffer.alloc(32, 2) }],
        didLinks: [{ patientId: 'p1', did: DID_NEW, previous: DID_OLD }],
        changeEntries: [change('e3', 'U')],
      });
      expect(await a.patientDid('p1')).to.equal(DID_NEW);
      await a.close();
      const b = open();
      const [stored] = await b.listPendingWrites();
      await b.discardPendingWrite(stored as NonNullable<typeof stored>);
      expect(await b.listPending()).to.have.length(0);
      expect(await b.patientDid('p1')).to.equal(DID_OLD);
      expect(await b.findPatientKey('p2')).to.equal(undefined);
      expect(await b.findPatientKey('p1')).to.not.equal(undefined);
      expect((await b.readyChangeStats()).count).to.equal(0);
      expect(await b.listPendingWrites()).to.deep.equal([]);
    });

    it('a write is all or nothing: a version that exists, or a DID linked to another patient, stores none of it (409)', async () => {
      const s = open();
      await s.insertPendingWrite({
        writeId: 'w1',
        versions: [version('Patient', 'p1', 1, 'p1')],
        newPatientKeys: [],
        didLinks: [{ patientId: 'p1', did: DID_OLD, previous: undefined }],
      });
      const again = s.insertPendingWrite({ writeId: 'w2', versions: [version('Patient', 'p2', 1, 'p2'), version('Patient', 'p1', 1, 'p1')], newPatientKeys: [], didLinks: [] });
      expect(await rejection(again))
        .to.be.instanceOf(OperationOutcomeError)
        .with.property('message')
        .that.matches(/already exists/);
      const linked = s.insertPendingWrite({
        writeId: 'w3',
        versions: [version('Patient', 'p3', 1, 'p3')],
        newPatientKeys: [],
        didLinks: [{ patientId: 'p3', did: DID_OLD, previous: undefined }],
      });
      expect(await rejection(linked))
        .to.be.instanceOf(OperationOutcomeError)
        .with.property('message')
        .that.matches(/already linked/);
      expect((await s.listPending()).map((v) => v.id)).to.deep.equal(['p1']);
      expect(await s.patientByDid(DID_OLD)).to.equal('p1');
    });

    it("stores every index row of a large write (more than one multi-row statement's worth, not a multiple of it) under its own version, each version under the write", async () => {
      const s = open();
      const versions = Array.from({ length: 90 }, (_, i) => {
        const v = observation(`o${String(i)}`, 'p1', '2026-03', [], { code: { coding: [{ system: 'http://example.org/codes', code: `c${String(i)}` }] } });
        return { ...v, index: indexEntriesOf(JSON.parse(v.content) as Record<string, unknown>) };
      });
      const rows = versions.reduce((n, v) => n + v.index.length, 0);
      expect(rows).to.be.greaterThan(64 * 5);
      expect(rows % 64).to.not.equal(0);
      await s.insertPendingWrite({ writeId: 'w1', versions, newPatientKeys: [], didLinks: [] });
      const [stored, ...others] = await s.listPendingWrites();
      expect(others).to.have.length(0);
      expect(stored?.versions).to.have.length(90);
      await s.markWriteAnchored(stored as NonNullable<typeof stored>);
      const byCode = (code: string): Promise<string[]> => observationsCoded(s, code);
      for (const i of [0, 1, 15, 16, 17, 42, 88, 89]) expect(await byCode(`c${String(i)}`), `c${String(i)}`).to.deep.equal([`o${String(i)}`]);
      const all = await s.search({ resourceType: 'Observation', criteria: [{ kind: 'token', param: 'status', not: false, values: [{ code: 'final' }] }], limit: 100 });
      expect(all).to.have.length(90);
    });

    it('indexVersions: a write stored without its index is indexed while pending (found only once anchored), replaced when indexed again, and a version not held gets no rows', async () => {
      const s = open();
      const coded = (id: string, code: string): NewVersion => observation(id, 'p1', '2026-03', [], { code: { coding: [{ system: 'http://example.org/codes', code }] } });
      const byCode = (code: string): Promise<string[]> => observationsCoded(s, code);
      const indexOf = (v: NewVersion): ReturnType<typeof indexEntriesOf> => indexEntriesOf(JSON.parse(v.content) as Record<string, unknown>);
      const [a, b] = [coded('o1', 'x1'), coded('o2', 'x2')];
      await s.insertPendingWrite({ writeId: 'w1', versions: [a, b], newPatientKeys: [], didLinks: [] });
      await s.indexVersions([a, b, coded('o3', 'x3')].map((v) => ({ ...v, index: indexOf(v) })));
      // Pending: never found, whatever its rows say.
      expect(await byCode('x1')).to.deep.equal([]);
      // Indexed again with other entries (a retry): the earlier rows are replaced, not added to.
      await s.indexVersions([{ ...a, index: indexOf(coded('o1', 'y1')) }]);
      const [stored] = await s.listPendingWrites();
      await s.markWriteAnchored(stored as NonNullable<typeof stored>);
      expect(await byCode('x1')).to.deep.equal([]);
      expect(await byCode('y1')).to.deep.equal(['o1']);
      expect(await byCode('x2')).to.deep.equal(['o2']);
      // o3 was never stored: no rows, so a later o3 version 1 starts clean.
      const c = coded('o3', 'x4');
      await s.insertPendingWrite({ writeId: 'w2', versions: [c], newPatientKeys: [], didLinks: [] });
      const [later] = await s.listPendingWrites();
      await s.markWriteAnchored(later as NonNullable<typeof later>);
      expect(await byCode('x3')).to.deep.equal([]);
      // A discarded write takes the rows it was indexed with.
      const d = coded('o4', 'x5');
      await s.insertPendingWrite({ writeId: 'w3', versions: [d], newPatientKeys: [], didLinks: [] });
      await s.indexVersions([{ ...d, index: indexOf(d) }]);
      await s.discardPendingWrite({ writeId: 'w3', versions: [d], newPatientKeys: [], didLinks: [] });
      await s.insertPendingWrite({ writeId: 'w4', versions: [coded('o4', 'x6')], newPatientKeys: [], didLinks: [] });
      const [again] = await s.listPendingWrites();
      await s.markWriteAnchored(again as NonNullable<typeof again>);
      expect(await byCode('x5')).to.deep.equal([]);
    });

    it('serves anchored versions only: current, by version, history newest first; erasure removes the patient whole', async () => {
      const s = open();
      for (const v of [version('Patient', 'p1', 1, 'p1'), version('Patient', 'p1', 2, 'p1'), version('Patient', 'p1', 3, 'p1')]) await s.insertPending(v);
      await s.markAnchoredAll([
        { resourceType: 'Patient', id: 'p1', versionId: 1 },
        { resourceType: 'Patient', id: 'p1', versionId: 2 },
      ]);
      expect((await s.readCurrent('Patient', 'p1'))?.versionId).to.equal(2);
      expect(await s.readVersion('Patient', 'p1', 3)).to.equal(undefined);
      expect((await s.history('Patient', 'p1')).map((v) => v.versionId)).to.deep.equal([2, 1]);
      const key = await s.patientKey('p1');
      expect((await s.patientKey('p1')).equals(key)).to.equal(true);
      await s.linkPatientDid('p1', DID_NEW);
      expect(await s.erasePatient('p1')).to.equal(3);
      expect(await s.readCurrent('Patient', 'p1')).to.equal(undefined);
      expect(await s.findPatientKey('p1')).to.equal(undefined);
      expect(await s.patientDid('p1')).to.equal(undefined);
      await s.ping();
    });

    it('takes a resource whose indexed text is longer than an index row may be, and finds it by that text', async () => {
      const s = open();
      const long = `${'Ω'.repeat(1200)} and the end`;
      const valueSet = { resourceType: 'ValueSet', id: 'vs1', status: 'active', description: long, url: 'http://example.org/vs1' };
      const v: NewVersion = {
        resourceType: 'ValueSet',
        id: 'vs1',
        versionId: 1,
        lastUpdated: '2026-12-01T00:00:00.000Z',
        patientId: null,
        deleted: false,
        content: JSON.stringify(valueSet),
        date: null,
        codes: [],
        index: indexEntriesOf(valueSet),
      };
      await s.insertPending(v);
      await s.markAnchored('ValueSet', 'vs1', 1);
      const find = async (match: 'exact' | 'start' | 'contains', value: string): Promise<string[]> =>
        (await s.search({ resourceType: 'ValueSet', criteria: [{ kind: 'string', param: 'description', match, values: [value] }], limit: 10 })).map((x) => x.id);
      expect(await find('exact', long)).to.deep.equal(['vs1']);
      // Start and contains compare the normalized text (lower case), as the search layer asks.
      expect(await find('start', 'ωωω')).to.deep.equal(['vs1']);
      expect(await find('contains', 'ω'.repeat(10))).to.deep.equal(['vs1']);
      expect(await find('exact', 'Ω')).to.deep.equal([]);
    });

    it('counts the matches by patient and access class, and pages through the classes it is given only', async () => {
      const store = open();
      const rows = [
        observation('a', 'p1', '2024-01'),
        observation('b', 'p1', '2024-01'),
        observation('c', 'p1', '2024-02'),
        observation('d', 'p1', '2024-01', ['R']),
        observation('e', 'p2', '2024-01'),
        observation('f', null, '2024-01'),
      ];
      for (const v of rows) {
        await store.insertPending(v);
        await store.markAnchored(v.resourceType, v.id, 1);
      }
      const classes = await store.searchClasses({ resourceType: 'Observation' });
      const counts = Object.fromEntries(classes.map((c) => [`${c.patientId ?? '-'} ${c.accessClass ?? ''}`, c.count]));
      expect(counts).to.deep.equal({
        [`p1 ${JSON.stringify(['2024-01', []])}`]: 2,
        [`p1 ${JSON.stringify(['2024-02', []])}`]: 1,
        [`p1 ${JSON.stringify(['2024-01', ['R']])}`]: 1,
        [`p2 ${JSON.stringify(['2024-01', []])}`]: 1,
        [`- ${JSON.stringify(['2024-01', []])}`]: 1,
      });
      // The keys name the groups: a search of the p1 January class (no labels) and p2's finds their versions only.
      const keyOf = (patientId: string | null, cls: unknown[]): string =>
        (classes.find((c) => c.patientId === patientId && c.accessClass === JSON.stringify(cls)) as { key: string }).key;
      const permitted = [keyOf('p1', ['2024-01', []]), keyOf('p2', ['2024-01', []])];
      expect((await store.search({ resourceType: 'Observation', classes: permitted, limit: 10 })).map((v) => v.id)).to.deep.equal(['a', 'b', 'e']);
      expect((await store.search({ resourceType: 'Observation', classes: permitted, offset: 1, limit: 1 })).map((v) => v.id)).to.deep.equal(['b']);
      expect(await store.search({ resourceType: 'Observation', classes: [], limit: 10 })).to.deep.equal([]);
      // Classes narrow like any other filter (here with the patient).
      expect((await store.searchClasses({ resourceType: 'Observation', patientIds: ['p2'] })).map((c) => c.count)).to.deep.equal([1]);
      expect((await store.search({ resourceType: 'Observation', limit: 10 })).find((v) => v.id === 'd')?.accessClass).to.equal(JSON.stringify(['2024-01', ['R']]));
    });

    it("keeps a version's co-patients: no access class (a class of its own), in each patient's compartment, erased with any of them", async () => {
      const store = open();
      const shared: NewVersion = { ...observation('s', 'p1', '2024-01'), coPatientIds: ['p2', 'p3'] };
      for (const v of [observation('a', 'p1', '2024-01'), shared, observation('e', 'p2', '2024-01'), observation('g', 'p4', '2024-01')]) {
        await store.insertPending(v);
        await store.markAnchored(v.resourceType, v.id, 1);
      }
      const read = await store.readCurrent('Observation', 's');
      expect(read?.coPatientIds).to.deep.equal(['p2', 'p3']);
      expect(read?.accessClass).to.equal(undefined);
      expect((await store.readCurrent('Observation', 'a'))?.coPatientIds).to.equal(undefined);
      // Decided as itself: its own group, naming the version.
      const classes = await store.searchClasses({ resourceType: 'Observation', patientIds: ['p1'] });
      expect(classes.map((c) => c.version?.id ?? c.accessClass).sort()).to.deep.equal([JSON.stringify(['2024-01', []]), 's']);
      const ids = async (patientIds: string[]): Promise<string[]> => (await store.search({ resourceType: 'Observation', patientIds, limit: 10 })).map((v) => v.id).sort();
      expect(await ids(['p2'])).to.deep.equal(['e', 's']);
      expect(await ids(['p3'])).to.deep.equal(['s']);
      expect(await ids(['p4'])).to.deep.equal(['g']);
      // A co-patient's erasure takes the version with it, and leaves the other patients' own records.
      expect(await store.erasePatient('p3')).to.equal(1);
      expect(await store.readCurrent('Observation', 's')).to.equal(undefined);
      expect(await ids(['p1'])).to.deep.equal(['a']);
      expect(await ids(['p2'])).to.deep.equal(['e']);
    });
  });
}
