/**
 * Issue 11: how many state operations the chaincode asks of its peer per batch. The Node shim sends a
 * transaction's state requests one at a time, so each call counted here is a round trip to the peer on
 * every endorser: these counts are the chaincode's share of ingest and of the read path's audit writes.
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { RecordContract } from './record-contract';
import { FakeLedger, FakeTx } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, registerDid } from './test-support/registry';

const records = new RecordContract();
const audit = new AuditContract();

/** The stub calls that reach the peer (setEvent does not: it rides on the proposal response). */
const COUNTED = [
  'getState',
  'putState',
  'deleteState',
  'getStateByPartialCompositeKey',
  'getStateByRange',
  'getStateByPartialCompositeKeyWithPagination',
  'getStateByRangeWithPagination',
] as const;
type Counts = Record<(typeof COUNTED)[number], number>;

/** Runs `fn` with every counted FakeTx method counted (all transactions it runs), then restores them. */
async function counting(fn: () => Promise<unknown>): Promise<Counts> {
  const proto = FakeTx.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counts = Object.fromEntries(COUNTED.map((name) => [name, 0])) as Counts;
  const originals = COUNTED.map((name) => [name, proto[name]] as const);
  for (const [name, original] of originals) {
    proto[name] = function (this: unknown, ...args: unknown[]): unknown {
      counts[name] += 1;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [name, original] of originals) proto[name] = original as (...args: unknown[]) => unknown;
  }
  return counts;
}

const commitmentOf = (n: number) => {
  const value = Buffer.alloc(32);
  value.writeUInt32BE(n, 0);
  return { alg: 'HMAC-SHA-256', value: value.toString('base64url') };
};

describe('state operations per batch (issue 11)', () => {
  let ledger: FakeLedger;
  let patients: TestKey[];
  let doctors: TestKey[];

  const anchors = (from: number, count: number, patient: string) =>
    Array.from({ length: count }, (_, i) => ({
      resourceType: 'Observation',
      id: `obs-${from + i}`,
      versionId: '1',
      patient,
      lastUpdated: '2026-12-07T12:00:00.000Z',
      dataMonth: '2026-11',
      commitment: commitmentOf(from + i),
    }));

  beforeEach(async () => {
    ledger = new FakeLedger();
    patients = [await registerDid(ledger, 'patient'), await registerDid(ledger, 'patient')];
    doctors = [await registerDid(ledger, 'practitioner'), await registerDid(ledger, 'practitioner')];
  });

  it('AnchorBatch of 500 anchors of one patient: 1 GET and 1 PUT per anchor, and one locator row', async () => {
    const batch = JSON.stringify(anchors(0, 500, patients[0]?.did ?? ''));
    const counts = await counting(() => ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, batch)));
    // The anchors and ONE locator row listing them (before packing, 1000 PUT: a locator key per anchor).
    expect(counts).to.deep.include({ getState: 500, putState: 501, deleteState: 0, getStateByPartialCompositeKey: 0, getStateByRange: 0 });
    // A resend of the same batch reads and writes nothing but the 500 existence checks.
    const again = await counting(() => ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, batch)));
    expect(again).to.deep.include({ getState: 500, putState: 0, deleteState: 0 });
  });

  it('ErasePatient of those 500: the anchors read and tombstoned, the locator row read once and deleted', async () => {
    const patient = patients[0]?.did ?? '';
    await ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, JSON.stringify(anchors(0, 500, patient))));
    const counts = await counting(() => ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, patient)));
    // Scans: the patient's rows and its linked pseudonyms (hdx.link~did).
    expect(counts).to.deep.include({ getState: 501, putState: 500, deleteState: 1, getStateByPartialCompositeKey: 2 });
  });

  it('RecordAccessBatch of 200 entries (2 patients, 2 actors, distinct resources): entry, client id and one row per index value', async () => {
    for (const [i, patient] of patients.entries()) {
      const own = JSON.stringify(anchors(i * 100, 100, patient.did));
      await ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, own));
    }
    const entries = Array.from({ length: 200 }, (_, i) => ({
      actor: doctors[i % 2]?.did,
      actorOrganization: 'Hospital1MSP',
      actorAuth: 'idp',
      patient: patients[Math.floor(i / 100)]?.did,
      resources: [`Observation/obs-${i}/_history/1`],
      action: 'R',
      subtype: 'read',
      purpose: 'TREAT',
      decision: 'permit',
      consents: [],
      reason: 'custodian-treatment',
      breakGlass: false,
      custodian: 'Hospital1MSP',
      entryId: `outbox-${i}`,
    }));
    const json = JSON.stringify(entries);
    const counts = await counting(() => ledger.invoke(H1_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, json)));
    // Per entry: its client-id check and its anchor (GET), the entry and its client id (PUT). Per
    // transaction: one index row for each patient (2), actor (2), resource (200) and the time index (1).
    // Before packing, 1200 PUT: a key per entry in each index (patient, actor, resource, time).
    expect(counts).to.deep.include({ getState: 400, putState: 605, deleteState: 0, getStateByPartialCompositeKey: 0, getStateByRange: 0 });
    const again = await counting(() => ledger.invoke(H1_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, json)));
    // A resend: each entry found by its client id (2 GET: the id, then the entry), nothing written.
    expect(again).to.deep.include({ getState: 400, putState: 0, deleteState: 0 });
  });
});
