import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { newLogger } from '../logger';
import { FakeLedger } from '../test-support/fake-ledger';
import { entry } from '../test-support/outbox-contract';
import { AuditOutbox } from './outbox';
import { type ChangeFeed, SqliteOutboxQueue } from './outbox-queue';
import { WalSync } from './wal-sync';

/** A flush the test finishes (or fails) by hand, recording which file each flush was for. */
function manualFlush(): { flush: (file: string) => Promise<void>; started: string[]; finish: (err?: Error) => void; auto: () => void } {
  const started: string[] = [];
  const pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  let auto = false;
  return {
    started,
    flush: (file) => {
      started.push(file);
      if (auto) return Promise.resolve();
      return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
    },
    /** From now on every flush (and the one running) succeeds at once (for closing). */
    auto: () => {
      auto = true;
      for (const p of pending.splice(0)) p.resolve();
    },
    finish: (err) => {
      const next = pending.shift();
      if (!next) throw new Error('no flush is running');
      if (err) next.reject(err);
      else next.resolve();
    },
  };
}

/** Whether the promise has settled after the callbacks queued so far have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
}

const dirs: string[] = [];
function tmpFile(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-wal-sync-'));
  dirs.push(dir);
  return path.join(dir, name);
}

describe('audit/wal-sync: the outbox WAL flushed off the event loop', () => {
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('answers a caller only after a flush that STARTED after its call: one arriving during a flush waits for the next one, which callers share', async () => {
    const m = manualFlush();
    const wal = new WalSync('/x/outbox.db-wal', m.flush);
    const first = wal.durable();
    expect(m.started).to.deep.equal(['/x/outbox.db-wal']);
    // Committed while the first flush runs: that flush may not cover it.
    const second = wal.durable();
    const third = wal.durable();
    expect(m.started).to.have.length(1);
    m.finish();
    expect(await settled(first)).to.equal(true);
    expect(await settled(second)).to.equal(false);
    expect(await settled(third)).to.equal(false);
    // The next flush started once the first was done, and serves both.
    expect(m.started).to.have.length(2);
    m.finish();
    expect(await settled(second)).to.equal(true);
    expect(await settled(third)).to.equal(true);
    expect(wal.flushes).to.equal(2);
  });

  it('a failed flush fails its callers (nothing is answered as durable), and the next caller starts a new flush', async () => {
    const m = manualFlush();
    const wal = new WalSync('/x/outbox.db-wal', m.flush);
    const failed = wal.durable();
    const waiting = wal.durable();
    m.finish(new Error('EIO'));
    let error: unknown;
    await failed.catch((err: unknown) => (error = err));
    expect((error as Error).message).to.equal('EIO');
    // The caller that arrived during the failed flush gets its own.
    expect(m.started).to.have.length(2);
    m.finish();
    await waiting;
  });

  it('by default flushes the WAL file through one descriptor kept until close(), and fails for a missing file', async () => {
    const file = tmpFile('outbox.db-wal');
    fs.writeFileSync(file, 'x');
    const wal = new WalSync(file);
    await Promise.all([wal.durable(), wal.durable(), wal.durable()]);
    expect(wal.flushes).to.equal(2);
    await wal.close();
    let error: unknown;
    await new WalSync(`${file}-missing`).durable().catch((err: unknown) => (error = err));
    expect((error as NodeJS.ErrnoException).code).to.equal('ENOENT');
  });

  it('SqliteOutboxQueue.insert resolves only after its commit is flushed, and a flush failure is the caller’s error', async () => {
    const file = tmpFile('outbox.db');
    const m = manualFlush();
    const queue = new SqliteOutboxQueue(file, { flush: m.flush });
    try {
      const inserted = queue.insert([{ entryId: 'e1', entry: JSON.stringify(entry(1, { entryId: 'e1' })), enqueuedAt: 1 }]);
      // Committed to the WAL (visible to another connection) but not answered before the flush is done.
      const db = new Database(file, { readonly: true });
      expect((db.prepare('SELECT entry_id FROM outbox_entry').all() as Array<{ entry_id: string }>).map((r) => r.entry_id)).to.deep.equal(['e1']);
      db.close();
      expect(m.started).to.deep.equal([`${file}-wal`]);
      expect(await settled(inserted)).to.equal(false);
      m.finish();
      expect(await inserted).to.equal(1);

      const failing = queue.insert([{ entryId: 'e2', entry: JSON.stringify(entry(2, { entryId: 'e2' })), enqueuedAt: 2 }]);
      m.finish(new Error('EIO'));
      let error: unknown;
      await failing.catch((err: unknown) => (error = err));
      expect((error as Error).message).to.equal('EIO');
    } finally {
      m.auto();
      await queue.close();
    }
  });

  it('moveChanges lets the store drop its change entries only after the outbox copy is flushed', async () => {
    const file = tmpFile('outbox.db');
    const m = manualFlush();
    const queue = new SqliteOutboxQueue(file, { flush: m.flush });
    const dropped: string[][] = [];
    const feed: ChangeFeed = {
      readyChanges: () => Promise.resolve([{ entryId: 'c1', entry: { ...entry(1), action: 'C', subtype: 'create' }, readyAt: 5 }]),
      dropChanges: (ids) => {
        dropped.push([...ids]);
        return Promise.resolve();
      },
      readyChangeStats: () => Promise.resolve({ count: 1, oldestReadyAt: 5 }),
    };
    try {
      const moving = queue.moveChanges(feed, 10, () => undefined);
      await new Promise((r) => setImmediate(r));
      expect(m.started).to.have.length(1);
      expect(dropped).to.deep.equal([]);
      m.finish();
      expect((await moving).added).to.equal(1);
      expect(dropped).to.deep.equal([['c1']]);
    } finally {
      m.auto();
      await queue.close();
    }
  });

  it('AuditOutbox.record (a read’s access entry) answers only once the group commit is flushed, with the real fdatasync too', async () => {
    const m = manualFlush();
    const file = tmpFile('outbox.db');
    const outbox = new AuditOutbox({ queue: new SqliteOutboxQueue(file, { flush: m.flush }), ledger: new FakeLedger(), log: newLogger('silent'), flushMs: 3_600_000 });
    const a = outbox.record([entry(1)]);
    const b = outbox.record([entry(2)]);
    await new Promise((r) => setImmediate(r));
    // One group commit of this turn, one flush for both.
    expect(m.started).to.have.length(1);
    expect(await settled(a)).to.equal(false);
    expect(await settled(b)).to.equal(false);
    m.finish();
    expect(await a).to.have.length(1);
    expect(await b).to.have.length(1);
    expect(outbox.commits).to.deep.equal({ transactions: 1, records: 2 });
    m.auto();
    await outbox.close(false);

    // The real flush: the entry is in the file once record() answers.
    const real = new AuditOutbox({ file: tmpFile('outbox.db'), ledger: new FakeLedger(), log: newLogger('silent'), flushMs: 3_600_000 });
    try {
      const [recorded] = await real.record([entry(3)]);
      expect(recorded?.entryId).to.be.a('string');
      expect((await real.stats()).pending).to.equal(1);
    } finally {
      await real.close(false);
    }
  });
});
