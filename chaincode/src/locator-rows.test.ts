/**
 * The record locator's packed rows (issue 11): one `hdx.anchor~patient` row [patient, custodian, txId]
 * per anchoring transaction, listing its LocatorEntries. LocateRecords pages by entries across rows,
 * prefixes and rows written before packing; erasure removes a version from its rows.
 */
import { expect } from 'chai';
import { marshal } from './ledger';
import { RecordContract } from './record-contract';
import { LocatorEntry } from './record-model';
import { FakeIdentity, FakeLedger, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, H2_GATEWAY, registerDid } from './test-support/registry';

const records = new RecordContract();
const INDEX = 'hdx.anchor~patient';
const PSEUDO = `pseudonym:${'7'.repeat(64)}`;
const commitment = (n: number) => ({ alg: 'HMAC-SHA-256', value: Buffer.alloc(32, n % 256).toString('base64url') });

describe('hdx.record: packed locator rows', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let other: TestKey;
  const input = (id: string, overrides: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    id,
    versionId: '1',
    patient: patient.did,
    lastUpdated: '2026-05-01T10:00:00Z',
    commitment: commitment(1),
    ...overrides,
  });
  const batch = (items: unknown[], who: FakeIdentity = H1_GATEWAY) => ledger.invoke(who, (ctx) => records.AnchorBatch(ctx, JSON.stringify(items)));
  const ids = (prefix: string, from: number, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${from + i}`);
  /** The patient reading their own records: every entry is permitted, so a page lists all it read. */
  const locate = async (request: Record<string, unknown> = {}, of: TestKey = patient) =>
    JSON.parse(
      await ledger.invoke(H2_GATEWAY, (ctx) =>
        records.LocateRecords(ctx, JSON.stringify({ patient: of.did, actor: of.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT', ...request })),
      ),
    ) as { custodians: Array<{ custodian: string; resources: Array<{ id: string; versionId: string }> }>; bookmark: string; fetchedRecordsCount: number; withheld: number };
  const refsOf = (page: Awaited<ReturnType<typeof locate>>) => page.custodians.flatMap((c) => c.resources.map((r) => `${c.custodian}:${r.id}/${r.versionId}`));
  /** Every page of a query: the refs in page order and the size of each page. */
  const pages = async (pageSize: number, request: Record<string, unknown> = {}, of: TestKey = patient) => {
    const refs: string[] = [];
    const sizes: number[] = [];
    let bookmark = '';
    for (let guard = 0; guard < 500; guard++) {
      const page = await locate({ ...request, pageSize, ...(bookmark ? { bookmark } : {}) }, of);
      expect(page.fetchedRecordsCount).to.equal(refsOf(page).length + page.withheld);
      refs.push(...refsOf(page));
      sizes.push(page.fetchedRecordsCount);
      if (page.bookmark === '') return { refs, sizes };
      bookmark = page.bookmark;
    }
    throw new Error('paging does not end');
  };
  /** Rewrites every packed locator row as the chaincode wrote it before packing: one key per entry. */
  const unpack = (): number => {
    let rows = 0;
    for (const key of ledger.keys(INDEX)) {
      const [rowPatient, custodian] = key.split('\u0000').slice(2, 4) as [string, string];
      const value = ledger.state.get(key) as Uint8Array;
      if (value[0] !== 0x5b) continue;
      ledger.state.delete(key);
      rows += 1;
      for (const entry of JSON.parse(Buffer.from(value).toString('utf8')) as LocatorEntry[]) {
        ledger.state.set(`\u0000${INDEX}\u0000${[rowPatient, custodian, entry.resourceType, entry.id, entry.versionId].join('\u0000')}\u0000`, marshal(entry));
      }
    }
    return rows;
  };
  const rowsOf = (who: TestKey | string) => ledger.keys(INDEX).filter((key) => key.startsWith(`\u0000${INDEX}\u0000${typeof who === 'string' ? who : who.did}\u0000`));

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    other = await registerDid(ledger, 'patient');
  });

  it('files a batch in one row per patient, its entries in resource order, and a co-patient in a row of its own', async () => {
    await batch([input('b'), input('a'), input('c', { coPatients: [other.did] })]);
    expect(rowsOf(patient)).to.have.length(1);
    expect((ledger.json(rowsOf(patient)[0]!) as LocatorEntry[]).map((e) => e.id)).to.deep.equal(['a', 'b', 'c']);
    expect(ledger.json(rowsOf(other)[0]!)).to.deep.equal([
      { resourceType: 'Observation', id: 'c', versionId: '1', custodian: 'Hospital1MSP', lastUpdated: '2026-05-01T10:00:00Z', governedWith: [patient.did] },
    ]);
    const [, , rowPatient, custodian, txId] = rowsOf(patient)[0]!.split('\u0000');
    expect([rowPatient, custodian, txId]).to.deep.equal([patient.did, 'Hospital1MSP', ledger.lastTx?.txId]);
  });

  it('a resend of the same batch adds nothing; a batch with some versions already anchored files only the new ones', async () => {
    const items = ids('o', 0, 5).map((id) => input(id));
    await batch(items);
    const before = new Map(ledger.state);
    await batch(items);
    expect(ledger.lastTx?.writes.size).to.equal(0);
    expect(new Map(ledger.state)).to.deep.equal(before);
    await batch([...items, input('o9')]);
    expect(rowsOf(patient)).to.have.length(2);
    expect((await pages(50)).refs).to.have.length(6);
  });

  it('pages by entries: any page size, smaller or larger than a row, across rows of several transactions and rows written before packing', async () => {
    await batch(ids('a', 0, 7).map((id) => input(id)));
    await batch(ids('b', 0, 3).map((id) => input(id)));
    expect(unpack()).to.equal(2);
    await batch(ids('c', 0, 5).map((id) => input(id)));
    await batch([input('d0')]);
    await batch(
      ids('e', 0, 4).map((id) => input(id)),
      H2_GATEWAY,
    );
    const everything = (await pages(200)).refs;
    expect(everything).to.have.length(20);
    expect(new Set(everything).size).to.equal(20);
    for (const size of [1, 2, 3, 4, 5, 6, 7, 8, 11, 19, 20, 21]) {
      const { refs, sizes } = await pages(size);
      expect(refs, `pageSize ${size}`).to.deep.equal(everything);
      expect(
        sizes.slice(0, -1).every((n) => n === size),
        `pageSize ${size}`,
      ).to.equal(true);
    }
    // The custodian filter reads one custodian's rows only.
    expect((await pages(3, { custodian: 'Hospital2MSP' })).refs).to.deep.equal(ids('e', 0, 4).map((id) => `Hospital2MSP:${id}/1`));
  });

  it('pages across prefixes: the DID, then the pseudonyms linked to it, entry by entry', async () => {
    await ledger.invoke(H1_GATEWAY, (ctx) => records.LinkPatient(ctx, PSEUDO, patient.did));
    await batch(ids('p', 0, 5).map((id) => input(id, { patient: PSEUDO })));
    await batch(ids('d', 0, 3).map((id) => input(id)));
    await batch(ids('q', 0, 2).map((id) => input(id, { patient: PSEUDO })));
    unpack();
    await batch(ids('r', 0, 4).map((id) => input(id, { patient: PSEUDO })));
    const everything = (await pages(200)).refs;
    expect(everything).to.have.length(14);
    expect(everything.slice(0, 3)).to.deep.equal(ids('d', 0, 3).map((id) => `Hospital1MSP:${id}/1`));
    for (const size of [1, 2, 3, 4, 5, 13, 14]) {
      expect((await pages(size)).refs, `pageSize ${size}`).to.deep.equal(everything);
    }
    // A page that ends with the DID's rows bookmarks the pseudonym's prefix.
    expect((await locate({ pageSize: 3 })).bookmark).to.equal(`\u0000${INDEX}\u0000${PSEUDO}\u0000Hospital1MSP\u0000`);
  });

  it("refuses a bookmark from another patient's range, with or without an offset, and one from no range", async () => {
    await batch(ids('a', 0, 3).map((id) => input(id)));
    await batch(ids('x', 0, 3).map((id) => input(id, { patient: other.did })));
    const mine = await locate({ pageSize: 2 });
    expect(mine.bookmark.startsWith(`2:\u0000${INDEX}\u0000${patient.did}\u0000`)).to.equal(true);
    const theirs = await locate({ pageSize: 2 }, other);
    for (const bookmark of [theirs.bookmark, theirs.bookmark.replace(/^2:/, ''), `1:\u0000${INDEX}\u0000${other.did}\u0000`, `\u0000${INDEX}\u0000`, '5:']) {
      await rejectsWith(locate({ pageSize: 2, bookmark }), 'INVALID');
    }
    expect(refsOf(await locate({ pageSize: 2, bookmark: mine.bookmark }))).to.deep.equal(['Hospital1MSP:a2/1']);
  });

  describe('erasure', () => {
    it('EraseResource removes the version from its packed row (the rest stay listed), and deletes a row it empties', async () => {
      await batch([input('a'), input('b'), input('b', { versionId: '2', commitment: commitment(2) }), input('c')]);
      const [row] = rowsOf(patient);
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'b'));
      expect([...(ledger.lastTx?.writes.keys() ?? [])].filter((key) => key.startsWith(`\u0000${INDEX}\u0000`))).to.deep.equal([row]);
      expect((ledger.json(row!) as LocatorEntry[]).map((e) => `${e.id}/${e.versionId}`)).to.deep.equal(['a/1', 'c/1']);
      expect((await pages(1)).refs).to.deep.equal(['Hospital1MSP:a/1', 'Hospital1MSP:c/1']);
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'a'));
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'c'));
      expect(rowsOf(patient)).to.deep.equal([]);
    });

    it("EraseResource removes a co-patient version from every patient's row, and a version filed before packing from its key", async () => {
      await batch([input('shared', { coPatients: [other.did] }), input('own')]);
      await batch([input('old')]);
      unpack();
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'shared'));
      expect(rowsOf(other)).to.deep.equal([]);
      expect((await pages(5)).refs).to.have.members(['Hospital1MSP:old/1', 'Hospital1MSP:own/1']);
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'old'));
      expect((await pages(5)).refs).to.deep.equal(['Hospital1MSP:own/1']);
      expect(rowsOf(patient)).to.have.length(1);
    });

    it("ErasePatient erases the caller's packed rows, rows before packing and linked pseudonyms' rows; other custodians' stay", async () => {
      await ledger.invoke(H1_GATEWAY, (ctx) => records.LinkPatient(ctx, PSEUDO, patient.did));
      await batch(ids('a', 0, 4).map((id) => input(id)));
      await batch(ids('p', 0, 2).map((id) => input(id, { patient: PSEUDO })));
      unpack();
      await batch(ids('b', 0, 3).map((id) => input(id)));
      await batch([input('shared', { patient: PSEUDO, coPatients: [patient.did] })]);
      await batch(
        ids('h', 0, 2).map((id) => input(id)),
        H2_GATEWAY,
      );
      const result = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, patient.did)));
      expect(result.erased).to.have.length(10);
      expect(new Set(result.erased).size).to.equal(10);
      expect([...rowsOf(patient), ...rowsOf(PSEUDO)].filter((key) => key.includes('Hospital1MSP'))).to.deep.equal([]);
      expect((await pages(10)).refs).to.deep.equal(['Hospital2MSP:h0/1', 'Hospital2MSP:h1/1']);
    });
  });
});
