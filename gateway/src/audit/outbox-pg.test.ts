import { expect } from 'chai';
import { runAsync } from '../cli';
import { OperationOutcomeError } from '../errors';
import type { AccessEntryInput, AuditEntry } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import { PgStore } from '../store/pg-store';
import { FakeLedger } from '../test-support/fake-ledger';
import { entry, outboxContract, PATIENT, waitFor } from '../test-support/outbox-contract';
import { sqlInSchema, testPgSchema, testPostgresUrl } from '../test-support/postgres';
import { AuditOutbox, OutboxAdmin } from './outbox';
import { PgOutboxQueue } from './outbox-pg';

const log = newLogger('silent');
let url = '';
/** Every PgStore a test opened (one per "process"), closed after it. */
const stores: PgStore[] = [];

function storeAt(schema: string, poolSize = 4): PgStore {
  const s = new PgStore({ url, schema, poolSize });
  stores.push(s);
  return s;
}

function sqlAt(schema: string, sql: string, params: readonly unknown[] = []): Promise<Array<Record<string, unknown>>> {
  return sqlInSchema(url, schema, sql, params);
}

async function closeStores(): Promise<void> {
  await Promise.all(stores.splice(0).map((s) => s.close()));
}

before(async function () {
  this.timeout(120_000);
  url = await testPostgresUrl();
});

// The same behaviour as on SQLite (outbox.test.ts), each outbox on a PgStore of its own, as a process
// would have; a short lease, so a "restarted process" finds the entries of the one it replaced.
outboxContract('PgOutboxQueue', () => ({
  place: async () => {
    const schema = testPgSchema();
    await storeAt(schema, 1).ping(); // migrated before the test looks
    return schema;
  },
  at: (schema) => ({ queue: new PgOutboxQueue(storeAt(schema), { leaseMs: 300 }) }),
  sql: sqlAt,
  admin: (schema) => new OutboxAdmin(new PgOutboxQueue(storeAt(schema, 1))),
  cleanup: closeStores,
}));

describe('AuditOutbox on PostgreSQL: several gateway processes on one queue', () => {
  const outboxes: AuditOutbox[] = [];
  afterEach(async () => {
    await Promise.all(outboxes.splice(0).map((o) => o.close(false)));
    await closeStores();
  });

  /** A ledger that counts recordAccess per entryId (across both processes), before the fake records it once. */
  function countingLedger(fake: FakeLedger, sent: Map<string, number>, delay = 2): (entries: AccessEntryInput[]) => Promise<AuditEntry[]> {
    return async (entries) => {
      for (const e of entries) sent.set(e.entryId as string, (sent.get(e.entryId as string) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, delay));
      return fake.recordAccess(entries);
    };
  }

  it('two processes deliver 1,000 entries: each entry sent by exactly one of them, none missing', async function () {
    this.timeout(60_000);
    const schema = testPgSchema();
    const fake = new FakeLedger();
    const sent = new Map<string, number>();
    const byProcess = [0, 0];
    const outboxOf = (i: number): AuditOutbox => {
      const send = countingLedger(fake, sent);
      const o = new AuditOutbox({
        queue: new PgOutboxQueue(storeAt(schema), { leaseMs: 30_000 }),
        log,
        flushMs: 5,
        batchSize: 20,
        inFlight: 3,
        ledger: {
          recordAccess: async (entries) => {
            byProcess[i] = (byProcess[i] ?? 0) + entries.length;
            return send(entries);
          },
        },
      });
      outboxes.push(o);
      return o;
    };
    const [a, b] = [outboxOf(0), outboxOf(1)];
    // Both record (as two replicas behind one URL would) while both deliver.
    a.start();
    b.start();
    const ids: string[] = [];
    for (let i = 0; i < 1000; i += 50) {
      const batch = Array.from({ length: 50 }, (_, k) => entry(i + k));
      const recorded = await (i % 100 === 0 ? a : b).enqueue(batch);
      ids.push(...recorded.map((r) => r.entryId));
    }
    await waitFor('every entry on the ledger', () => fake.audit.length === 1000, 30_000);
    expect([...sent.keys()].sort()).to.deep.equal([...ids].sort());
    expect([...sent.values()].filter((n) => n !== 1)).to.deep.equal([]);
    expect(new Set(fake.audit.map((e) => e.entryId)).size).to.equal(1000);
    // Both processes delivered a share.
    expect(byProcess[0]).to.be.greaterThan(0);
    expect(byProcess[1]).to.be.greaterThan(0);
    await waitFor('an empty queue', async () => (await a.stats()).pending === 0);
    expect(await sqlAt(schema, 'SELECT COUNT(*) AS n FROM outbox_entry')).to.deep.equal([{ n: 0 }]);
  });

  it('a process that dies mid-delivery (its ledger call never returns): its entries wait for the lease, then the other delivers them', async function () {
    this.timeout(30_000);
    const schema = testPgSchema();
    const fake = new FakeLedger();
    const leaseMs = 1500;
    let taken: string[] = [];
    let takenAt = 0;
    const dying = new AuditOutbox({
      queue: new PgOutboxQueue(storeAt(schema), { leaseMs }),
      log,
      flushMs: 3_600_000,
      batchSize: 50,
      inFlight: 2,
      // It sends, and never hears back: as a process killed while waiting for its block.
      ledger: {
        recordAccess: (entries) => {
          taken.push(...entries.map((e) => e.entryId as string));
          takenAt ||= Date.now();
          return new Promise<AuditEntry[]>(() => undefined);
        },
      },
    });
    outboxes.push(dying);
    const ids = (await dying.enqueue(Array.from({ length: 300 }, (_, i) => entry(i)))).map((r) => r.entryId);
    void dying.flush();
    await waitFor('the dying process took its batches', () => taken.length === 100);
    taken = [...taken];
    await dying.close(false);

    const sent = new Map<string, number>();
    const sentAt = new Map<string, number>();
    const live = new AuditOutbox({
      queue: new PgOutboxQueue(storeAt(schema), { leaseMs }),
      log,
      flushMs: 20,
      batchSize: 50,
      ledger: {
        recordAccess: async (entries) => {
          for (const e of entries) if (!sentAt.has(e.entryId as string)) sentAt.set(e.entryId as string, Date.now());
          return countingLedger(fake, sent)(entries);
        },
      },
    });
    outboxes.push(live);
    live.start();
    await waitFor('every entry on the ledger', () => fake.audit.length === 300, 20_000);
    expect(new Set(fake.audit.map((e) => e.entryId))).to.deep.equal(new Set(ids));
    expect([...sent.values()].filter((n) => n !== 1)).to.deep.equal([]);
    // The 200 entries nobody held went at once; the 100 the dead process held only once its lease had run out.
    for (const id of taken) expect(sentAt.get(id) ?? 0).to.be.at.least(takenAt + leaseMs - 50);
    const free = ids.filter((id) => !taken.includes(id));
    expect(Math.max(...free.map((id) => sentAt.get(id) ?? Infinity))).to.be.lessThan(takenAt + leaseMs);
    await waitFor('an empty queue', async () => (await live.stats()).pending === 0);
  });

  it('a live process whose ledger call outlasts the lease keeps its entries (the lease is renewed): the other process does not send them', async function () {
    this.timeout(30_000);
    const schema = testPgSchema();
    const fake = new FakeLedger();
    const sent = new Map<string, number>();
    const leaseMs = 300;
    let release: () => void = () => undefined;
    const slowCall = new Promise<void>((resolve) => (release = resolve));
    let slowTaken = 0;
    const slow = new AuditOutbox({
      queue: new PgOutboxQueue(storeAt(schema), { leaseMs }),
      log,
      flushMs: 3_600_000,
      batchSize: 50,
      inFlight: 1,
      ledger: {
        recordAccess: async (entries) => {
          slowTaken += entries.length;
          await slowCall; // a block that takes long to come
          return countingLedger(fake, sent, 0)(entries);
        },
      },
    });
    const other = new AuditOutbox({ queue: new PgOutboxQueue(storeAt(schema), { leaseMs }), log, flushMs: 10, ledger: { recordAccess: countingLedger(fake, sent, 0) } });
    outboxes.push(slow, other);
    await slow.enqueue(Array.from({ length: 50 }, (_, i) => entry(i)));
    const slowFlush = slow.flush();
    await waitFor('the slow call', () => slowTaken === 50);
    other.start();
    // Four leases long, the other process finds nothing it may take.
    await new Promise((r) => setTimeout(r, 4 * leaseMs));
    expect(fake.audit).to.have.length(0);
    release();
    expect(await slowFlush).to.equal(true);
    expect(fake.audit).to.have.length(50);
    expect([...sent.values()].filter((n) => n !== 1)).to.deep.equal([]);
  });

  it('an unreachable ledger gives the lease back at once: the other process delivers without waiting for it to expire', async () => {
    const schema = testPgSchema();
    const fake = new FakeLedger();
    const failing = new AuditOutbox({
      queue: new PgOutboxQueue(storeAt(schema), { leaseMs: 3_600_000 }),
      log,
      flushMs: 3_600_000,
      ledger: {
        recordAccess: async () => {
          throw new OperationOutcomeError('UNAVAILABLE', 'the ledger is unavailable');
        },
      },
    });
    const other = new AuditOutbox({ queue: new PgOutboxQueue(storeAt(schema), { leaseMs: 3_600_000 }), log, flushMs: 3_600_000, ledger: fake });
    outboxes.push(failing, other);
    await failing.enqueue([entry(1), entry(2)]);
    expect(await failing.flush()).to.equal(false);
    expect(await sqlAt(schema, 'SELECT COUNT(*) AS n FROM outbox_entry WHERE claimed_by IS NULL')).to.deep.equal([{ n: 2 }]);
    expect(await other.flush()).to.equal(true);
    expect(fake.audit).to.have.length(2);
  });

  it('the store’s change entries move in one transaction: two processes pulling at once never queue one twice, and it leaves the store', async () => {
    const schema = testPgSchema();
    const [s1, s2] = [storeAt(schema), storeAt(schema)];
    const fake = new FakeLedger();
    const changes = Array.from({ length: 120 }, (_, i) => ({ ...entry(i, { action: 'C', subtype: 'create' }), entryId: `c-${i}` }));
    const bad = { ...entry(999, { action: 'U', subtype: 'update', patient: 'not-a-reference' }), entryId: 'c-bad' };
    const versions = [{ resourceType: 'Observation', id: 'o1', versionId: 1, lastUpdated: '2026-12-01T00:00:00.000Z', patientId: 'p1', deleted: false, date: null, codes: [] }];
    await s1.insertPendingWrite({
      writeId: 'w1',
      versions: versions.map((v) => ({ ...v, content: JSON.stringify({ resourceType: 'Observation', id: 'o1' }) })),
      newPatientKeys: [],
      didLinks: [],
      changeEntries: [...changes, bad],
    });
    await s1.markWriteAnchored({ writeId: 'w1', versions, newPatientKeys: [], didLinks: [] });
    const sent = new Map<string, number>();
    const a = new AuditOutbox({ queue: new PgOutboxQueue(s1), changes: s1, log, flushMs: 3_600_000, ledger: { recordAccess: countingLedger(fake, sent, 0) } });
    const b = new AuditOutbox({ queue: new PgOutboxQueue(s2), changes: s2, log, flushMs: 3_600_000, ledger: { recordAccess: countingLedger(fake, sent, 0) } });
    outboxes.push(a, b);
    expect((await a.stats()).pending).to.equal(121);
    expect(await Promise.all([a.flush(), b.flush()])).to.deep.equal([true, true]);
    expect(fake.audit.map((e) => e.entryId).sort()).to.deep.equal(changes.map((c) => c.entryId).sort());
    expect([...sent.values()].filter((n) => n !== 1)).to.deep.equal([]);
    expect(await sqlAt(schema, 'SELECT COUNT(*) AS n FROM change_entry')).to.deep.equal([{ n: 0 }]);
    expect(await sqlAt(schema, 'SELECT entry_id, attempts FROM outbox_quarantine')).to.deep.equal([{ entry_id: 'c-bad', attempts: 0 }]);
    expect(await b.stats()).to.include({ pending: 0, deadLetters: 1 });
  });

  it('hdx outbox dead-letters | redeliver with HDX_STORE: the shared queue, no --data-dir, never the URL in the output', async () => {
    const schema = testPgSchema();
    const fake = new FakeLedger();
    let refuse = true;
    const outbox = new AuditOutbox({
      queue: new PgOutboxQueue(storeAt(schema)),
      log,
      flushMs: 3_600_000,
      maxAttempts: 1,
      ledger: {
        recordAccess: async (entries) => {
          if (refuse && entries.some((e) => e.subtype === 'refused')) throw new OperationOutcomeError('FORBIDDEN', 'not yours');
          return fake.recordAccess(entries);
        },
      },
    });
    outboxes.push(outbox);
    const [dead] = (await outbox.enqueue([entry(1, { subtype: 'refused' }), entry(2)])).map((r) => r.entryId);
    await outbox.flush();
    const env = { HDX_STORE: process.env.HDX_STORE, HDX_STORE_SCHEMA: process.env.HDX_STORE_SCHEMA };
    process.env.HDX_STORE = url;
    process.env.HDX_STORE_SCHEMA = schema;
    const hdx = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      let out = '';
      let err = '';
      const code = await runAsync(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
      return { code, out, err };
    };
    try {
      const listed = await hdx('outbox', 'dead-letters');
      expect(listed.code, listed.err).to.equal(0);
      const body = JSON.parse(listed.out) as { outbox: string; deadLetters: Array<{ entryId: string; attempts: number; error: string }> };
      expect(body.deadLetters.map((d) => [d.entryId, d.attempts, d.error])).to.deep.equal([[dead, 1, 'FORBIDDEN: not yours']]);
      expect(body.outbox).to.equal(`PostgreSQL (HDX_STORE, schema ${schema})`);
      expect(listed.out).to.not.include(PATIENT).and.not.include(url);
      const unknown = await hdx('outbox', 'redeliver', '--id', 'nope');
      expect([unknown.code, /no dead letter has entryId nope/.test(unknown.err)]).to.deep.equal([1, true]);
      refuse = false;
      const redelivered = await hdx('outbox', 'redeliver', '--all');
      expect(redelivered.code, redelivered.err).to.equal(0);
      expect(JSON.parse(redelivered.out).redelivered).to.deep.equal([dead]);
    } finally {
      if (env.HDX_STORE === undefined) delete process.env.HDX_STORE;
      else process.env.HDX_STORE = env.HDX_STORE;
      if (env.HDX_STORE_SCHEMA === undefined) delete process.env.HDX_STORE_SCHEMA;
      else process.env.HDX_STORE_SCHEMA = env.HDX_STORE_SCHEMA;
    }
    expect(await outbox.flush()).to.equal(true);
    expect(fake.audit.map((e) => e.entryId)).to.include(dead);
    expect(await outbox.stats()).to.include({ pending: 0, deadLetters: 0 });
  });
});
