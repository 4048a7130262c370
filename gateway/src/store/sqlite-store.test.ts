import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { SCHEMA_VERSION, SqliteStore } from './sqlite-store';
import type { NewVersion, PendingWrite } from './store';

const DID_OLD = `did:hdx:${'o'.repeat(43)}`;
const DID_NEW = `did:hdx:${'n'.repeat(43)}`;

function version(resourceType: string, id: string, versionId: number, patientId: string): NewVersion {
  const content = JSON.stringify({ resourceType, id, meta: { versionId: String(versionId) } });
  return { resourceType, id, versionId, lastUpdated: '2026-12-01T00:00:00.000Z', patientId, deleted: false, content, date: null, codes: [] };
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

describe('SqliteStore pending writes (stored whole, settled whole)', () => {
  function tmp(): string {
    return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
  }

  it('a write and its change entries survive a restart; marking it anchored makes the entries ready in the same transaction', () => {
    const file = tmp();
    const a = new SqliteStore(file);
    a.patientKey('p1');
    const write: PendingWrite = {
      writeId: 'w1',
      versions: [version('Patient', 'p1', 2, 'p1'), version('Observation', 'o1', 1, 'p1')],
      newPatientKeys: [],
      didLinks: [{ patientId: 'p1', did: DID_NEW, previous: undefined }],
      changeEntries: [change('e1', 'U'), change('e2', 'C')],
    };
    a.insertPendingWrite(write);
    expect(a.readyChangeStats().count).to.equal(0);
    a.close();
    const b = new SqliteStore(file); // the restart
    const [stored, ...others] = b.listPendingWrites();
    expect(others).to.have.length(0);
    expect(stored?.writeId).to.equal('w1');
    expect(stored?.versions.map((v) => `${v.resourceType}/${v.id}/${v.versionId}`)).to.have.members(['Patient/p1/2', 'Observation/o1/1']);
    expect(stored?.didLinks).to.deep.equal([{ patientId: 'p1', did: DID_NEW, previous: undefined }]);
    expect(b.pendingVersions('Observation', 'o1').map((v) => v.versionId)).to.deep.equal([1]);
    b.markWriteAnchored(stored as NonNullable<typeof stored>);
    expect(b.listPending()).to.have.length(0);
    expect(b.readyChanges(10).map((c) => [c.entryId, c.entry.action])).to.deep.equal([
      ['e1', 'U'],
      ['e2', 'C'],
    ]);
    b.dropChanges(['e1']);
    expect(b.readyChangeStats().count).to.equal(1);
    b.close();
  });

  it('discarding a stored write after a restart undoes it whole: versions, change entries, the DID link it replaced, the key it created', () => {
    const file = tmp();
    const a = new SqliteStore(file);
    a.patientKey('p1');
    a.linkPatientDid('p1', DID_OLD);
    a.insertPendingWrite({
      writeId: 'w2',
      versions: [version('Patient', 'p1', 2, 'p1'), version('Patient', 'p2', 1, 'p2')],
      newPatientKeys: [{ patientId: 'p2', key: Buffer.alloc(32, 2) }],
      didLinks: [{ patientId: 'p1', did: DID_NEW, previous: DID_OLD }],
      changeEntries: [change('e3', 'U')],
    });
    expect(a.patientDid('p1')).to.equal(DID_NEW);
    a.close();
    const b = new SqliteStore(file);
    const [stored] = b.listPendingWrites();
    b.discardPendingWrite(stored as NonNullable<typeof stored>);
    expect(b.listPending()).to.have.length(0);
    expect(b.patientDid('p1')).to.equal(DID_OLD);
    expect(b.findPatientKey('p2')).to.equal(undefined);
    expect(b.findPatientKey('p1')).to.not.equal(undefined);
    expect(b.readyChangeStats().count).to.equal(0);
    expect(b.listPendingWrites()).to.deep.equal([]);
    b.close();
  });
});

describe('SqliteStore schema', () => {
  it('upgrades a first-release store in place, backfilling the search columns, and keeps every version', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    // A store as the first release wrote it (no user_version, no search columns).
    const old = new Database(file);
    old.exec(`CREATE TABLE resource_version (resource_type TEXT NOT NULL, id TEXT NOT NULL, version_id INTEGER NOT NULL, last_updated TEXT NOT NULL,
      patient_id TEXT, deleted INTEGER NOT NULL DEFAULT 0, content TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (resource_type, id, version_id)) WITHOUT ROWID;
      CREATE TABLE patient_key (patient_id TEXT PRIMARY KEY, hmac_key BLOB NOT NULL, created TEXT NOT NULL) WITHOUT ROWID;`);
    const obs = {
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: 'Patient/p1' },
      effectiveDateTime: '2026-01-02T03:04:05+01:00',
      valueQuantity: { value: 72, system: 'http://unitsofmeasure.org', code: '/min' },
    };
    old.prepare("INSERT INTO resource_version VALUES ('Observation', 'o1', 1, '2026-01-02T00:00:00.000Z', 'p1', 0, ?, 'anchored')").run(JSON.stringify(obs));
    old.close();

    const store = new SqliteStore(file);
    const hits = store.search({ resourceType: 'Observation', codes: ['http://loinc.org|8867-4'], date: [{ op: 'eq', value: '2026-01-02' }], limit: 10 });
    expect(hits.map((h) => h.id)).to.deep.equal(['o1']);
    // The search index is backfilled too (migration 5).
    const indexed = store.search({
      resourceType: 'Observation',
      criteria: [
        { kind: 'token', param: 'code', not: false, values: [{ system: 'http://loinc.org', code: '8867-4' }] },
        { kind: 'reference', param: 'subject', values: [{ ref: 'Patient/p1' }] },
        { kind: 'date', param: 'date', op: 'eq', value: '2026-01-02' },
        // Number and quantity values too (migration 6 rebuilds the index with them).
        { kind: 'quantity', param: 'value-quantity', values: [{ op: 'gt', value: 70, lo: 69.5, hi: 70.5, system: 'http://unitsofmeasure.org', code: '/min' }] },
      ],
      limit: 10,
    });
    expect(indexed.map((h) => h.id)).to.deep.equal(['o1']);
    // The access class too (migration 7): the version is grouped with its clinical month and no labels.
    expect(store.searchClasses({ resourceType: 'Observation' })).to.deep.equal([
      { key: `p1\u001f${JSON.stringify(['2026-01', []])}`, patientId: 'p1', accessClass: JSON.stringify(['2026-01', []]), count: 1 },
    ]);
    store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).to.equal(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a store written by a newer gateway', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(file)).to.throw(/newer gateway/);
  });
});

describe('SqliteStore search classes (consent inside the query)', () => {
  const version = (id: string, patientId: string | null, month: string, labels: string[] = [], extra: Record<string, unknown> = {}): NewVersion => {
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

  it('counts the matches by patient and access class, and pages through the classes it is given only', () => {
    const store = new SqliteStore(':memory:');
    const rows = [
      version('a', 'p1', '2024-01'),
      version('b', 'p1', '2024-01'),
      version('c', 'p1', '2024-02'),
      version('d', 'p1', '2024-01', ['R']),
      version('e', 'p2', '2024-01'),
      version('f', null, '2024-01'),
    ];
    for (const v of rows) {
      store.insertPending(v);
      store.markAnchored(v.resourceType, v.id, 1);
    }
    const classes = store.searchClasses({ resourceType: 'Observation' });
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
    expect(store.search({ resourceType: 'Observation', classes: permitted, limit: 10 }).map((v) => v.id)).to.deep.equal(['a', 'b', 'e']);
    expect(store.search({ resourceType: 'Observation', classes: permitted, offset: 1, limit: 1 }).map((v) => v.id)).to.deep.equal(['b']);
    expect(store.search({ resourceType: 'Observation', classes: [], limit: 10 })).to.deep.equal([]);
    // Classes narrow like any other filter (here with the patient).
    expect(store.searchClasses({ resourceType: 'Observation', patientIds: ['p2'] }).map((c) => c.count)).to.deep.equal([1]);
    expect(store.search({ resourceType: 'Observation', limit: 10 }).find((v) => v.id === 'd')?.accessClass).to.equal(JSON.stringify(['2024-01', ['R']]));
    store.close();
  });
});
