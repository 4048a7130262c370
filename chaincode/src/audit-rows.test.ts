/**
 * The access history's packed index rows (issue 11): one row `hdx.audit~<index>~<value>~<timeKey>~<txId>`
 * per index value and transaction, listing the event numbers of its entries. QueryAccess pages by
 * entries across rows, transactions and keys written before packing, in time order.
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { INDEX_MARKER } from './ledger';
import { FakeLedger, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, H2_GATEWAY, REG_AUDITOR, registerDid, anchorObservation } from './test-support/registry';

const audit = new AuditContract();

interface Entry {
  eventId: string;
  recordedAt: string;
  patient: string;
  actor: string;
  resources: string[];
  txId: string;
}

describe('hdx.audit: packed index rows', () => {
  let ledger: FakeLedger;
  let patients: TestKey[];
  let doctors: TestKey[];
  let n = 0;
  /** A requester-side entry of Hospital2 (its own doctor's access): nothing to anchor first. */
  const entry = (patient: TestKey, doctor: TestKey, overrides: Record<string, unknown> = {}) => ({
    actor: doctor.did,
    actorOrganization: 'Hospital2MSP',
    actorAuth: 'idp',
    patient: patient.did,
    resources: [`Observation/r${++n}`],
    action: 'R',
    purpose: 'TREAT',
    decision: 'permit',
    consents: [],
    breakGlass: false,
    ...overrides,
  });
  const recordBatch = async (entries: unknown[]): Promise<Entry[]> =>
    JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, JSON.stringify(entries)))) as Entry[];
  const query = async (q: Record<string, unknown>) =>
    JSON.parse(await ledger.evaluate(REG_AUDITOR, (ctx) => audit.QueryAccess(ctx, JSON.stringify(q)))) as { entries: Entry[]; bookmark: string; fetchedRecordsCount: number };
  /** Every page of a query: the event ids in page order and the size of each page. */
  const pages = async (q: Record<string, unknown>, pageSize: number) => {
    const ids: string[] = [];
    const sizes: number[] = [];
    let bookmark = '';
    for (let guard = 0; guard < 500; guard++) {
      const page = await query({ ...q, pageSize, ...(bookmark ? { bookmark } : {}) });
      ids.push(...page.entries.map((e) => e.eventId));
      sizes.push(page.fetchedRecordsCount);
      if (page.bookmark === '') return { ids, sizes };
      bookmark = page.bookmark;
    }
    throw new Error('paging does not end');
  };
  const indexKeys = (prefix: string) => ledger.keys().filter((key) => key.startsWith(prefix));
  /** Rewrites every packed audit row as the chaincode wrote it before packing: a key per entry. */
  const unpack = (): number => {
    let rows = 0;
    for (const key of indexKeys('hdx.audit~')) {
      const value = ledger.state.get(key) as Uint8Array;
      if (value[0] !== 0x5b) continue;
      ledger.state.delete(key);
      rows += 1;
      for (const number of JSON.parse(Buffer.from(value).toString('utf8')) as number[]) ledger.state.set(`${key}.${number}`, INDEX_MARKER);
    }
    return rows;
  };

  beforeEach(async () => {
    ledger = new FakeLedger();
    patients = [await registerDid(ledger, 'patient'), await registerDid(ledger, 'patient')];
    doctors = [await registerDid(ledger, 'practitioner', H2_GATEWAY), await registerDid(ledger, 'practitioner', H2_GATEWAY)];
  });

  it('files a transaction in one row per patient, actor, resource and the time index; break-glass keeps a key per entry', async () => {
    const [a, b] = patients as [TestKey, TestKey];
    const [x, y] = doctors as [TestKey, TestKey];
    const stored = await recordBatch([
      entry(a, x, { resources: ['Observation/o1', 'Observation/o2/_history/3'] }),
      entry(a, y, { resources: ['Observation/o1/_history/1'] }),
      entry(b, x, { resources: [], purpose: 'ETREAT', breakGlass: true }),
    ]);
    const txId = stored[0]?.txId ?? '';
    const writes = [...(ledger.lastTx?.writes.keys() ?? [])].filter((key) => key.startsWith('hdx.audit~'));
    expect(writes).to.have.length(2 + 2 + 2 + 1 + 1);
    const row = (prefix: string) => ledger.json(indexKeys(prefix).find((key) => key.endsWith(`~${txId}`)) ?? '');
    expect(row(`hdx.audit~patient~${a.did}~`)).to.deep.equal([0, 1]);
    expect(row(`hdx.audit~patient~${b.did}~`)).to.deep.equal([2]);
    expect(row(`hdx.audit~actor~${x.did}~`)).to.deep.equal([0, 2]);
    expect(row('hdx.audit~resource~Observation/o1~')).to.deep.equal([0, 1]);
    expect(row('hdx.audit~resource~Observation/o2~')).to.deep.equal([0]);
    expect(row('hdx.audit~time~')).to.deep.equal([0, 1, 2]);
    expect(indexKeys('hdx.audit~breakglass~').map((key) => key.slice(key.lastIndexOf('~') + 1))).to.deep.equal([`${txId}.2`]);
  });

  it('a resend of the same entries (entryIds) adds nothing', async () => {
    const [a] = patients as [TestKey];
    const [x] = doctors as [TestKey];
    const batch = [entry(a, x, { entryId: 'e1' }), entry(a, x, { entryId: 'e2' })];
    const first = await recordBatch(batch);
    const before = new Map(ledger.state);
    expect(await recordBatch(batch)).to.deep.equal(first);
    expect(ledger.lastTx?.writes.size).to.equal(0);
    expect(new Map(ledger.state)).to.deep.equal(before);
    expect((await pages({ patient: a.did }, 1)).ids).to.deep.equal(first.map((e) => e.eventId));
  });

  describe('QueryAccess by entries', () => {
    /** Five transactions (the first two unpacked, as before packing) of entries of both patients and doctors. */
    let all: Entry[];
    beforeEach(async () => {
      const [a, b] = patients as [TestKey, TestKey];
      const [x, y] = doctors as [TestKey, TestKey];
      all = [];
      const shared = 'Observation/shared';
      all.push(...(await recordBatch([entry(a, x), entry(b, x), entry(a, y, { resources: [shared] })])));
      all.push(...(await recordBatch([entry(a, x, { resources: [shared] })])));
      expect(unpack()).to.be.greaterThan(0);
      all.push(...(await recordBatch(Array.from({ length: 7 }, (_, i) => entry(i % 3 === 2 ? b : a, i % 2 === 0 ? x : y, i === 4 ? { resources: [shared] } : {})))));
      all.push(...(await recordBatch([entry(b, y)])));
      all.push(...(await recordBatch(Array.from({ length: 4 }, () => entry(a, x)))));
    });

    const selectors = (): Array<[string, Record<string, unknown>, (e: Entry) => boolean]> => [
      ['patient', { patient: patients[0]?.did }, (e) => e.patient === patients[0]?.did],
      ['actor', { actor: doctors[1]?.did }, (e) => e.actor === doctors[1]?.did],
      ['resource', { resource: 'Observation/shared' }, (e) => e.resources.includes('Observation/shared')],
      ['time', {}, () => true],
    ];

    it('pages of any size, smaller or larger than a row, list each entry once in time order (rows before packing mixed in)', async () => {
      for (const [name, q, picks] of selectors()) {
        // Oldest first; one transaction's entries in event order (the fake ledger's txIds grow with time).
        const expected = all.filter(picks).map((e) => e.eventId);
        expect(expected.length, name).to.be.greaterThan(2);
        for (const size of [1, 2, 3, 4, 5, 7, 8, 16, 200]) {
          const { ids, sizes } = await pages(q, size);
          expect(ids, `${name} pageSize ${size}`).to.deep.equal(expected);
          expect(
            sizes.slice(0, -1).every((s) => s === size),
            `${name} pageSize ${size}`,
          ).to.equal(true);
        }
      }
    });

    it('a time window [from, to) holds whole transactions, paged by entries', async () => {
      const times = [...new Set(all.map((e) => e.recordedAt))];
      expect(times).to.have.length(5);
      const from = times[1] as string;
      const to = times[4] as string;
      const expected = all.filter((e) => e.recordedAt >= from && e.recordedAt < to && e.patient === patients[0]?.did).map((e) => e.eventId);
      for (const size of [1, 2, 3, 50]) {
        expect((await pages({ patient: patients[0]?.did, from, to }, size)).ids, `pageSize ${size}`).to.deep.equal(expected);
      }
    });

    it("refuses a bookmark from another query's range, with or without an offset", async () => {
      const [a, b] = patients as [TestKey, TestKey];
      const theirs = await query({ patient: b.did, pageSize: 1 });
      const time = await query({ pageSize: 5 });
      expect(time.bookmark).to.match(/^[0-9]+:hdx\.audit~time~/);
      for (const bookmark of [theirs.bookmark, `1:hdx.audit~patient~${b.did}~`, time.bookmark, time.bookmark.replace(/^[0-9]+:/, ''), `3:hdx.audit~patient~${a.did}`]) {
        await rejectsWith(query({ patient: a.did, pageSize: 1, bookmark }), 'INVALID');
      }
      // A window's bookmark stays inside the window.
      const times = [...new Set(all.map((e) => e.recordedAt))];
      const late = await query({ patient: a.did, from: times[3], pageSize: 1 });
      await rejectsWith(query({ patient: a.did, to: times[3], bookmark: late.bookmark }), 'INVALID');
    });
  });

  it('AuthorizeAndRecordBatch files its decisions in packed rows too', async () => {
    const [a] = patients as [TestKey];
    const h1Doctor = await registerDid(ledger, 'practitioner');
    await anchorObservation(ledger, a.did);
    const request = (i: number) => ({
      actor: h1Doctor.did,
      actorOrganization: 'Hospital1MSP',
      actorAuth: 'idp',
      purpose: 'TREAT',
      resource: 'Observation/o1/_history/1',
      entryId: `r${i}`,
    });
    const decided = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.AuthorizeAndRecordBatch(ctx, JSON.stringify([0, 1, 2, 3].map(request))))) as Array<{
      eventId: string;
    }>;
    const writes = [...(ledger.lastTx?.writes.keys() ?? [])].filter((key) => key.startsWith('hdx.audit~') && !key.startsWith('hdx.audit~entry'));
    // patient, actor, resource, time: one row each for the four decisions.
    expect(writes).to.have.length(4);
    expect((await pages({ resource: 'Observation/o1' }, 3)).ids).to.deep.equal(decided.map((d) => d.eventId));
  });
});
