/**
 * What the async audit outbox must do on every queue (OutboxQueue), as mocha tests: run by
 * audit/outbox.test.ts on SQLite files and by audit/outbox-pg.test.ts on PostgreSQL schemas, so the two
 * queues keep one behaviour. `place` makes an empty queue location (a file, a schema); `at` gives outbox
 * options on it, a new connection each call (as a restarted or another process would have).
 */
import { expect } from 'chai';
import client from 'prom-client';
import { AuditOutbox, type ChangeFeed, type OutboxAdmin, type OutboxOptions } from '../audit/outbox';
import { registerOutboxMetrics } from '../audit/outbox-metrics';
import { OperationOutcomeError } from '../errors';
import type { AccessEntryInput, AuditEntry, LedgerClient } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import { FakeLedger } from './fake-ledger';

export interface QueueUnderTest {
  /** A new, empty location for a queue (an SQLite file, a PostgreSQL schema). */
  place(): Promise<string>;
  /** Outbox options on the queue at `place` (a new connection each call). */
  at(place: string): Pick<OutboxOptions, 'file' | 'queue'>;
  /** SQL on the queue's tables behind the outbox's back (`?` placeholders; COUNT(*) AS n as a number). */
  sql(place: string, sql: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>>;
  /** The operator's view (the hdx CLI) of the queue at `place`. */
  admin(place: string): OutboxAdmin;
  /** Closes what the test opened (after each test). */
  cleanup(): Promise<void>;
}

const log = newLogger('silent');
export const DR = `did:hdx:${'a'.repeat(43)}`;
export const PATIENT = `pseudonym:${'1'.repeat(64)}`;

export function entry(n: number, overrides: Partial<AccessEntryInput> = {}): AccessEntryInput {
  return {
    actor: DR,
    actorOrganization: 'Hospital1MSP',
    patient: PATIENT,
    resources: [`Observation/o${n}/_history/1`],
    action: 'R',
    subtype: 'read',
    purpose: 'TREAT',
    decision: 'permit',
    consents: [],
    breakGlass: false,
    custodian: 'Hospital1MSP',
    ...overrides,
  };
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A ledger whose recordAccess is replaced (the fake keeps the state and the entryId idempotency). */
function ledgerWith(_fake: FakeLedger, recordAccess: (entries: AccessEntryInput[]) => Promise<AuditEntry[]>): Pick<LedgerClient, 'recordAccess'> {
  return { recordAccess };
}

async function refusedWith(p: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(OperationOutcomeError);
    expect((err as Error).message).to.match(message);
    return;
  }
  expect.fail('expected a refusal');
}

export function outboxContract(name: string, sut: () => QueueUnderTest): void {
  describe(`${name}: the audit outbox contract`, () => {
    const opened: AuditOutbox[] = [];
    let qt: QueueUnderTest;
    const open = (options: Partial<OutboxOptions> & Pick<OutboxOptions, 'ledger'>): AuditOutbox => {
      const o = new AuditOutbox({ log, flushMs: 60_000, ...options });
      opened.push(o);
      return o;
    };
    const fresh = async (): Promise<Pick<OutboxOptions, 'file' | 'queue'>> => qt.at(await qt.place());
    const countIn = async (place: string, table: string): Promise<number> => Number((await qt.sql(place, `SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);
    beforeEach(() => {
      qt = sut();
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((o) => o.close(false)));
      await qt.cleanup();
    });

    it('flush delivers in batches of batchSize and deletes each batch only after the ledger committed it', async () => {
      const place = await qt.place();
      const fake = new FakeLedger();
      const seen: Array<{ size: number; pendingOnDisk: number }> = [];
      const outbox = open({
        ...qt.at(place),
        batchSize: 2,
        inFlight: 1,
        ledger: ledgerWith(fake, async (entries) => {
          seen.push({ size: entries.length, pendingOnDisk: await countIn(place, 'outbox_entry') });
          return fake.recordAccess(entries);
        }),
      });
      const recorded = await outbox.enqueue([1, 2, 3, 4, 5].map((n) => entry(n)));
      expect((await outbox.stats()).pending).to.equal(5);
      expect(await outbox.flush()).to.equal(true);
      expect(seen).to.deep.equal([
        { size: 2, pendingOnDisk: 5 },
        { size: 2, pendingOnDisk: 3 },
        { size: 1, pendingOnDisk: 1 },
      ]);
      expect(fake.audit.map((e) => e.entryId)).to.deep.equal(recorded.map((r) => r.entryId));
      expect(fake.audit.map((e) => e.resources[0])).to.deep.equal([1, 2, 3, 4, 5].map((n) => `Observation/o${n}/_history/1`));
      expect(await outbox.stats()).to.include({ pending: 0, delivered: 5, failures: 0 });
    });

    it('a backlog goes out as up to inFlight transactions at once, each entry once; a batch that fails stays for the next round', async () => {
      const fake = new FakeLedger();
      let inFlight = 0;
      let most = 0;
      let calls = 0;
      const outbox = open({
        ...(await fresh()),
        batchSize: 2,
        inFlight: 3,
        ledger: ledgerWith(fake, async (entries) => {
          const call = ++calls;
          inFlight++;
          most = Math.max(most, inFlight);
          try {
            await new Promise((resolve) => setTimeout(resolve, 20));
            // The second transaction of the first round does not get through (a timeout): it is sent again later.
            if (call === 2) throw new OperationOutcomeError('TIMEOUT', 'recording the access: the commit was not seen in time');
            return await fake.recordAccess(entries);
          } finally {
            inFlight--;
          }
        }),
      });
      const recorded = await outbox.enqueue([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((n) => entry(n)));
      expect(await outbox.flush()).to.equal(false);
      expect(most).to.equal(3);
      // The two batches that went through are off the outbox; the failed one is still there.
      expect((await outbox.stats()).pending).to.equal(7);
      expect(await outbox.flush()).to.equal(true);
      expect(most).to.equal(3);
      expect(await outbox.stats()).to.include({ pending: 0, delivered: 11 });
      expect(fake.audit.map((e) => e.entryId).sort()).to.deep.equal(recorded.map((r) => r.entryId).sort());
    });

    it('while a caller waits on a ledger write (busy), the backlog goes out one transaction at a time', async () => {
      const fake = new FakeLedger();
      let inFlight = 0;
      let most = 0;
      let busy = true;
      const outbox = open({
        ...(await fresh()),
        batchSize: 2,
        inFlight: 4,
        busy: () => busy,
        ledger: ledgerWith(fake, async (entries) => {
          inFlight++;
          most = Math.max(most, inFlight);
          try {
            await new Promise((resolve) => setTimeout(resolve, 5));
            return await fake.recordAccess(entries);
          } finally {
            inFlight--;
          }
        }),
      });
      await outbox.enqueue([1, 2, 3, 4, 5, 6].map((n) => entry(n)));
      expect(await outbox.flush()).to.equal(true);
      expect(most).to.equal(1);
      busy = false;
      await outbox.enqueue([7, 8, 9, 10, 11, 12].map((n) => entry(n)));
      expect(await outbox.flush()).to.equal(true);
      expect(most).to.equal(3);
      expect(fake.audit).to.have.length(12);
    });

    it('ledger down: the entries stay and are retried with backoff until the ledger takes them', async () => {
      const fake = new FakeLedger();
      fake.failWith = new OperationOutcomeError('UNAVAILABLE', 'recording the access: the ledger is unavailable');
      const outbox = open({ ...(await fresh()), ledger: fake, flushMs: 10, minBackoffMs: 10, maxBackoffMs: 40 });
      outbox.start();
      await outbox.enqueue([entry(1), entry(2), entry(3)]);
      await waitFor('three failed attempts', async () => (await outbox.stats()).failures >= 3);
      expect(await outbox.stats()).to.include({ pending: 3, delivered: 0, lastError: 'UNAVAILABLE' });
      expect(fake.audit).to.have.length(0);
      expect(await outbox.health()).to.deep.equal({ ok: true, pending: 3 });

      fake.failWith = undefined;
      await waitFor('delivery', async () => (await outbox.stats()).pending === 0);
      expect(fake.audit).to.have.length(3);
      expect(await outbox.stats()).to.include({ delivered: 3, consecutiveFailures: 0 });
    });

    it('a crash after the ledger commit but before the delete: the next process resends, and the ledger keeps each entry once', async () => {
      const place = await qt.place();
      const fake = new FakeLedger();
      // The first process gets its batch committed, then dies before it hears back (never answers).
      const first = open({ ...qt.at(place), ledger: ledgerWith(fake, async (entries) => (await fake.recordAccess(entries), new Promise<AuditEntry[]>(() => {}))) });
      const ids = (await first.enqueue([entry(1), entry(2), entry(3)])).map((r) => r.entryId);
      void first.flush();
      await waitFor('the first commit', () => fake.audit.length === 3);
      await first.close(false); // the process is gone (on a shared queue its lease is no longer renewed)

      const second = open({ ...qt.at(place), ledger: fake, flushMs: 10 });
      expect((await second.stats()).pending).to.equal(3);
      second.start();
      await waitFor('the resend', async () => (await second.stats()).pending === 0);
      expect((await second.stats()).delivered).to.equal(3);
      expect(fake.audit.map((e) => e.entryId)).to.deep.equal(ids);
    });

    it('a commit the gateway did not hear about (timeout): retried, still once on the ledger', async () => {
      const fake = new FakeLedger();
      let timeouts = 1;
      const outbox = open({
        ...(await fresh()),
        ledger: ledgerWith(fake, async (entries) => {
          const stored = await fake.recordAccess(entries);
          if (timeouts-- > 0) throw new OperationOutcomeError('TIMEOUT', 'recording the access: the ledger did not answer in time');
          return stored;
        }),
      });
      await outbox.enqueue([entry(1), entry(2)]);
      expect(await outbox.flush()).to.equal(false);
      expect(await outbox.stats()).to.include({ pending: 2, failures: 1, lastError: 'TIMEOUT' });
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit).to.have.length(2);
      expect(await outbox.stats()).to.include({ pending: 0, delivered: 2 });
    });

    it('an entry the ledger refuses as INVALID is isolated and dead-lettered (maxAttempts 1); the rest of its batch is delivered', async () => {
      const place = await qt.place();
      const fake = new FakeLedger();
      const calls: number[] = [];
      const outbox = open({
        ...qt.at(place),
        maxAttempts: 1,
        ledger: ledgerWith(fake, async (entries) => {
          calls.push(entries.length);
          if (entries.some((e) => e.subtype === 'refused')) throw new OperationOutcomeError('INVALID', 'entries[0].subtype must be a short code');
          return fake.recordAccess(entries);
        }),
      });
      const ids = (await outbox.enqueue([entry(1), entry(2), entry(3, { subtype: 'refused' }), entry(4), entry(5)])).map((r) => r.entryId);
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit.map((e) => e.entryId)).to.have.members([ids[0], ids[1], ids[3], ids[4]]);
      expect(await outbox.stats()).to.include({ pending: 0, delivered: 4, deadLetters: 1 });
      expect(calls.length).to.be.lessThan(8);
      const q = await qt.sql(place, 'SELECT entry_id, error, attempts FROM outbox_quarantine');
      expect(q).to.deep.equal([{ entry_id: ids[2], error: 'INVALID: entries[0].subtype must be a short code', attempts: 1 }]);
    });

    it('head of line: an entry the ledger keeps refusing (FORBIDDEN) does not stop the ones after it; it waits for its next attempt', async () => {
      const fake = new FakeLedger();
      let refusals = 0;
      const outbox = open({
        ...(await fresh()),
        refusedRetryMs: 3_600_000,
        ledger: ledgerWith(fake, async (entries) => {
          if (entries.some((e) => e.subtype === 'refused')) {
            refusals++;
            throw new OperationOutcomeError('FORBIDDEN', 'the recording organization cannot stand behind this entry');
          }
          return fake.recordAccess(entries);
        }),
      });
      const ids = (await outbox.enqueue([entry(1, { subtype: 'refused' }), entry(2), entry(3)])).map((r) => r.entryId);
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit.map((e) => e.entryId)).to.have.members([ids[1], ids[2]]);
      await outbox.enqueue([entry(4)]);
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit).to.have.length(3);
      expect(refusals).to.be.at.most(3); // isolated once, then left alone until its next attempt
      expect(await outbox.stats()).to.include({ pending: 1, retrying: 1, deadLetters: 0, consecutiveFailures: 0 });
      // Waiting after a refusal is not a stuck ledger: /healthz stays green.
      expect(await outbox.health()).to.deep.equal({ ok: true, pending: 1 });
    });

    it('dead letters: refused maxAttempts times → kept aside, counted, listed (no content) and re-delivered by OutboxAdmin (the hdx CLI)', async () => {
      const place = await qt.place();
      const fake = new FakeLedger();
      let refuse = true;
      const outbox = open({
        ...qt.at(place),
        maxAttempts: 3,
        refusedRetryMs: 0,
        ledger: ledgerWith(fake, async (entries) => {
          if (refuse && entries.some((e) => e.subtype === 'refused')) throw new OperationOutcomeError('CONFLICT', 'refused');
          return fake.recordAccess(entries);
        }),
      });
      const ids = (await outbox.enqueue([entry(1), entry(2, { subtype: 'refused' }), entry(3)])).map((r) => r.entryId);
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit.map((e) => e.entryId)).to.have.members([ids[0], ids[2]]);
      expect(await outbox.stats()).to.include({ pending: 0, deadLetters: 1, retrying: 0 });
      expect(await outbox.health()).to.deep.equal({ ok: true, pending: 0, deadLetters: 1 });

      const admin = qt.admin(place); // beside the running outbox, as the CLI would be
      try {
        const dead = await admin.deadLetters();
        expect(dead.map((d) => [d.entryId, d.attempts, d.error])).to.deep.equal([[ids[1], 3, 'CONFLICT: refused']]);
        expect(JSON.stringify(dead)).to.not.include(PATIENT);
        expect(await admin.redeliver('no-such-entry')).to.deep.equal([]);
        refuse = false;
        expect(await admin.redeliver(ids[1])).to.deep.equal([ids[1]]);
        expect(await admin.deadLetters()).to.deep.equal([]);
      } finally {
        await admin.close();
      }
      expect(await outbox.stats()).to.include({ pending: 1, deadLetters: 0 });
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit.map((e) => e.entryId)).to.include(ids[1]);
      expect(await outbox.stats()).to.include({ pending: 0, deadLetters: 0 });
    });

    it('/metrics: dead letters and entries waiting after a refusal are gauges', async () => {
      const fake = new FakeLedger();
      const outbox = open({
        ...(await fresh()),
        maxAttempts: 2,
        refusedRetryMs: 3_600_000,
        ledger: ledgerWith(fake, async (entries) => {
          if (entries.some((e) => e.subtype === 'refused')) throw new OperationOutcomeError('INVALID', 'no');
          return fake.recordAccess(entries);
        }),
      });
      const registry = new client.Registry();
      registerOutboxMetrics(registry, outbox);
      await outbox.enqueue([entry(1, { subtype: 'refused' }), entry(2)]);
      await outbox.flush();
      const text = await registry.metrics();
      expect(text).to.match(/^hdx_audit_outbox_retrying 1$/m);
      expect(text).to.match(/^hdx_audit_outbox_dead_letters 0$/m);
      expect(text).to.match(/^hdx_audit_outbox_delivered_total 1$/m);
    });

    it('takes the change entries of anchored writes from the store (ChangeFeed); one the ledger could never take is a dead letter at once', async () => {
      const fake = new FakeLedger();
      const held = [
        { entryId: 'c1', entry: entry(1, { action: 'C', subtype: 'create', entryId: 'c1' }), readyAt: Date.now() - 1000 },
        { entryId: 'c2', entry: entry(2, { action: 'U', subtype: 'update', patient: 'not-a-reference', entryId: 'c2' }), readyAt: Date.now() },
        { entryId: 'c3', entry: entry(3, { action: 'D', subtype: 'delete', entryId: 'c3' }), readyAt: Date.now() },
      ];
      const dropped: string[] = [];
      const feed: ChangeFeed = {
        readyChanges: async (limit) => held.filter((h) => !dropped.includes(h.entryId)).slice(0, limit),
        dropChanges: async (ids) => {
          dropped.push(...ids);
        },
        readyChangeStats: async () => ({ count: held.length - dropped.length, oldestReadyAt: held.find((h) => !dropped.includes(h.entryId))?.readyAt }),
      };
      const outbox = open({ ...(await fresh()), ledger: fake, changes: feed });
      expect((await outbox.stats()).pending).to.equal(3); // still in the store, but committed locally
      expect((await outbox.stats()).oldestPendingMs).to.be.at.least(1000);
      expect(await outbox.flush()).to.equal(true);
      expect(dropped).to.deep.equal(['c1', 'c2', 'c3']);
      expect(fake.audit.map((e) => [e.entryId, e.action])).to.deep.equal([
        ['c1', 'C'],
        ['c3', 'D'],
      ]);
      expect(await outbox.stats()).to.include({ pending: 0, deadLetters: 1 });
    });

    it('refuses, before anything is released, an entry the ledger could never take', async () => {
      const outbox = open({ ...(await fresh()), ledger: new FakeLedger() });
      await refusedWith(outbox.enqueue([entry(1), entry(2, { patient: '' })]), /patient reference/);
      await refusedWith(outbox.enqueue([entry(1, { entryId: 'has space' })]), /entryId/);
      const many = Array.from({ length: 101 }, (_, i) => `Observation/o${i}/_history/1`);
      await refusedWith(outbox.enqueue([entry(1, { resources: many })]), /more than 100 resources/);
      await refusedWith(outbox.enqueue([entry(1, { decidedAt: { height: 0 } })]), /decidedAt/);
      expect((await outbox.stats()).pending).to.equal(0);
      await outbox.enqueue([entry(2, { decidedAt: { height: 7 } })]);
      expect((await outbox.stats()).pending).to.equal(1);
    });

    it('group commit: concurrent records share one transaction, each answered once on disk; a bad entry fails its caller alone', async () => {
      const place = await qt.place();
      const outbox = open({ ...qt.at(place), ledger: new FakeLedger() });
      const answers = await Promise.allSettled([
        outbox.record([entry(1)]),
        outbox.record([entry(2), entry(3)]),
        outbox.record([entry(4, { patient: '' })]),
        outbox.record([entry(5)]),
      ]);
      expect(answers.map((a) => a.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      expect(outbox.commits).to.deep.equal({ transactions: 1, records: 3 });
      // Committed when answered: another connection to the queue sees all four entries of the three callers.
      expect(await countIn(place, 'outbox_entry')).to.equal(4);
      // A record in a later turn of the event loop is a transaction of its own.
      await outbox.record([entry(6)]);
      expect(outbox.commits).to.deep.equal({ transactions: 2, records: 4 });
    });

    it('an entryId enqueued twice is kept once', async () => {
      const outbox = open({ ...(await fresh()), ledger: new FakeLedger() });
      await outbox.enqueue([entry(1, { entryId: 'same' })]);
      await outbox.enqueue([entry(1, { entryId: 'same' })]);
      expect((await outbox.stats()).pending).to.equal(1);
    });

    it('a full batch is sent without waiting for the timer', async () => {
      const fake = new FakeLedger();
      const outbox = open({ ...(await fresh()), ledger: fake, batchSize: 3, flushMs: 3_600_000 });
      outbox.start();
      await new Promise((r) => setTimeout(r, 5));
      await outbox.flush(); // the start-up delivery (nothing left from before), joined
      await outbox.enqueue([entry(1), entry(2)]);
      await new Promise((r) => setTimeout(r, 50));
      expect(fake.audit).to.have.length(0);
      await outbox.enqueue([entry(3)]);
      await waitFor('the full batch', () => fake.audit.length === 3);
    });

    it('close drains what the ledger takes; with the ledger down the entries stay for the next start', async () => {
      const fake = new FakeLedger();
      const place = await qt.place();
      const a = open({ ...qt.at(place), ledger: fake });
      await a.enqueue([entry(1), entry(2)]);
      await a.close();
      expect(fake.audit).to.have.length(2);
      await refusedWith(a.enqueue([entry(3)]), /closed/);

      fake.failWith = new OperationOutcomeError('UNAVAILABLE', 'down');
      const b = open({ ...qt.at(place), ledger: fake });
      await b.enqueue([entry(4)]);
      await b.close();
      fake.failWith = undefined;
      const c = open({ ...qt.at(place), ledger: fake, flushMs: 10 });
      expect((await c.stats()).pending).to.equal(1);
      c.start();
      await waitFor('delivery at start', () => fake.audit.length === 3);
    });

    it('health: unhealthy when the oldest entry has waited longer than staleMs', async () => {
      const fake = new FakeLedger();
      fake.failWith = new OperationOutcomeError('UNAVAILABLE', 'down');
      const outbox = open({ ...(await fresh()), ledger: fake, staleMs: 300 });
      await outbox.enqueue([entry(1)]);
      expect(await outbox.health()).to.deep.equal({ ok: true, pending: 1 });
      await new Promise((r) => setTimeout(r, 350));
      expect(await outbox.health()).to.include({ ok: false, pending: 1 });
    });
  });
}
