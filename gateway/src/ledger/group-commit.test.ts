import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import { AuthorizeGroupCommit, withGroupCommit } from './group-commit';
import type { AuthorizeRequest, AuthorizeResult } from './ledger-client';
import { FakeLedger } from '../test-support/fake-ledger';

const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const request = (i: number, overrides: Partial<AuthorizeRequest> = {}): AuthorizeRequest => ({
  actor: did('d'),
  actorOrganization: 'Hospital1MSP',
  purpose: 'TREAT',
  patient: did('a'),
  custodian: 'Hospital1MSP',
  resourceType: 'Observation',
  entryId: `e${i}`,
  ...overrides,
});

/** A ledger whose transactions commit only when the test says so (as blocks would), recording what was sent. */
function slowLedger(): {
  ledger: FakeLedger;
  sent: number[];
  commit: () => void;
} {
  const ledger = new FakeLedger();
  const sent: number[] = [];
  const pending: Array<() => void> = [];
  const single = ledger.authorizeAndRecord.bind(ledger);
  // The fake's batch records each request through authorizeAndRecord, which is held below: record directly.
  const batch = async (rs: AuthorizeRequest[]): Promise<AuthorizeResult[]> => {
    const out: AuthorizeResult[] = [];
    for (const r of rs) out.push(await single(r));
    return out;
  };
  const held = <T>(size: number, run: () => Promise<T>): Promise<T> => {
    sent.push(size);
    return new Promise<void>((resolve) => pending.push(resolve)).then(run);
  };
  ledger.authorizeAndRecord = (r) => held(1, () => single(r));
  ledger.authorizeAndRecordBatch = (rs) => held(rs.length, () => batch(rs));
  return { ledger, sent, commit: () => pending.splice(0).forEach((go) => go()) };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ledger/group-commit (sync audit mode)', () => {
  it('at low load a request goes at once, alone; beyond maxInFlight the requests that wait share the next transaction', async () => {
    const { ledger, sent, commit } = slowLedger();
    const group = new AuthorizeGroupCommit(ledger, { maxInFlight: 2 });
    const answers: Array<Promise<AuthorizeResult>> = [];
    for (let i = 0; i < 12; i++) answers.push(group.authorizeAndRecord(request(i)));
    await tick();
    // Two in flight at once: the first two went alone, the ten others wait.
    expect(sent).to.deep.equal([1, 1]);
    commit();
    await tick();
    await tick();
    // Both slots free again: the ten waiting go together, in one transaction.
    expect(sent).to.deep.equal([1, 1, 10]);
    commit();
    const results = await Promise.all(answers);
    // Each request got its own decision and entry, in its own order.
    expect(results.map((r) => r.decision)).to.deep.equal(Array(12).fill('permit'));
    expect(ledger.audit.map((e) => e.entryId)).to.deep.equal(Array.from({ length: 12 }, (_, i) => `e${i}`));
    expect(group.stats).to.deep.include({ transactions: 3, requests: 12, largestBatch: 10, splits: 0 });
  });

  it('under load a freed slot lingers for the reads arriving just after, and leaves with all of them; at low load nothing waits', async () => {
    const { ledger, sent, commit } = slowLedger();
    const group = new AuthorizeGroupCommit(ledger, { maxInFlight: 2, lingerMs: 30 });
    const answers: Array<Promise<AuthorizeResult>> = [group.authorizeAndRecord(request(0))];
    await tick();
    // Nothing in flight: the first read went at once, alone, without waiting.
    expect(sent).to.deep.equal([1]);
    // One in flight, a slot free: the next read does not take it alone...
    answers.push(group.authorizeAndRecord(request(1)));
    await tick();
    expect(sent).to.deep.equal([1]);
    // ...the reads arriving within the linger join it, and the slot leaves once with all three.
    answers.push(group.authorizeAndRecord(request(2)), group.authorizeAndRecord(request(3)));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(sent).to.deep.equal([1, 3]);
    commit();
    await Promise.all(answers);
    expect(ledger.audit.map((e) => e.entryId)).to.deep.equal(['e0', 'e1', 'e2', 'e3']);
    // Idle again: a read goes at once.
    const late = group.authorizeAndRecord(request(4));
    await tick();
    expect(sent).to.deep.equal([1, 3, 1]);
    commit();
    await late;
  });

  it('no answer before the transaction carrying it commits', async () => {
    const { ledger, commit } = slowLedger();
    const group = new AuthorizeGroupCommit(ledger, { maxInFlight: 1 });
    let answered = 0;
    const a = group.authorizeAndRecord(request(1)).then(() => answered++);
    const b = group.authorizeAndRecord(request(2)).then(() => answered++);
    await tick();
    expect(answered).to.equal(0);
    commit();
    await a;
    expect(answered).to.equal(1);
    await tick();
    expect(answered).to.equal(1);
    commit();
    await b;
    expect(answered).to.equal(2);
  });

  it('a batch refused for one request is resent one by one: only that request fails', async () => {
    const ledger = new FakeLedger();
    const single = ledger.authorizeAndRecord.bind(ledger);
    ledger.authorizeAndRecord = async (r) => {
      if (r.purpose === 'BAD') throw new OperationOutcomeError('INVALID', 'request.purpose must be an HL7 v3 PurposeOfUse code');
      return single(r);
    };
    const batch = ledger.authorizeAndRecordBatch.bind(ledger);
    ledger.authorizeAndRecordBatch = async (rs) => {
      if (rs.some((r) => r.purpose === 'BAD')) throw new OperationOutcomeError('INVALID', 'requests[1].purpose must be an HL7 v3 PurposeOfUse code');
      return batch(rs);
    };
    const group = new AuthorizeGroupCommit(ledger, { maxInFlight: 1 });
    const first = group.authorizeAndRecord(request(0));
    const settled = await Promise.allSettled([first, group.authorizeAndRecord(request(1, { purpose: 'BAD' })), group.authorizeAndRecord(request(2))]);
    expect(settled.map((s) => s.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
    expect(ledger.audit.map((e) => e.entryId)).to.deep.equal(['e0', 'e2']);
    expect(group.stats.splits).to.equal(1);
  });

  it('a ledger failure fails every request of the batch (nothing answered as recorded that was not)', async () => {
    const ledger = new FakeLedger();
    const group = new AuthorizeGroupCommit(ledger, { maxInFlight: 1 });
    const first = group.authorizeAndRecord(request(0));
    ledger.failWith = new OperationOutcomeError('UNAVAILABLE', 'the ledger did not answer');
    const settled = await Promise.allSettled([first, group.authorizeAndRecord(request(1)), group.authorizeAndRecord(request(2))]);
    expect(settled.map((s) => s.status)).to.deep.equal(['fulfilled', 'rejected', 'rejected']);
    expect(ledger.audit.map((e) => e.entryId)).to.deep.equal(['e0']);
  });

  it('withGroupCommit routes AuthorizeAndRecord through the group and leaves every other call as it was', async () => {
    const ledger = new FakeLedger();
    const group = new AuthorizeGroupCommit(ledger);
    const wrapped = withGroupCommit(ledger, group);
    await wrapped.authorizeAndRecord(request(7));
    expect(group.stats.requests).to.equal(1);
    expect(await wrapped.getAnchor('Observation', 'x', '1')).to.equal(undefined);
    expect(ledger.audit).to.have.length(1);
  });
});
