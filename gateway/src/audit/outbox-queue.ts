import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { WalSync } from './wal-sync';

/**
 * Where the async audit outbox (AuditOutbox, outbox.ts) keeps its queue: an SQLite file per gateway
 * process (SqliteOutboxQueue, `<dataDir>/outbox.db`), or PostgreSQL tables shared by every gateway
 * process of the organization (PgOutboxQueue, outbox-pg.ts). The outbox decides what to send and when;
 * the queue only stores, leases and counts.
 */

/**
 * Where the change entries of anchored writes wait until the outbox takes them (the resource store:
 * SqliteStore and PgStore implement it).
 */
export interface ChangeFeed {
  readyChanges(limit: number): Promise<ReadonlyArray<{ readonly entryId: string; readonly entry: AccessEntryInput; readonly readyAt: number }>>;
  dropChanges(entryIds: readonly string[]): Promise<void>;
  readyChangeStats(): Promise<{ count: number; oldestReadyAt: number | undefined }>;
}

/** A dead letter as listed for the operator: no entry content (it names a patient reference and an actor). */
export interface DeadLetter {
  readonly entryId: string;
  readonly enqueuedAt: string;
  readonly deadAt: string;
  readonly attempts: number;
  /** The ledger's refusal, `CODE: message`. */
  readonly error: string;
}

/** An entry to queue: `entry` is the AccessEntryInput as JSON, with its entryId. */
export interface NewQueueEntry {
  readonly entryId: string;
  readonly entry: string;
  readonly enqueuedAt: number;
}

/** A queued entry taken for delivery. */
export interface QueuedEntry extends NewQueueEntry {
  readonly seq: number;
  /** Refusals so far. */
  readonly attempts: number;
}

/** An entry that becomes a dead letter. */
export interface DeadQueueEntry extends NewQueueEntry {
  readonly error: string;
  readonly attempts: number;
}

export interface QueueCounts {
  /** Entries in the queue (dead letters not included). */
  readonly pending: number;
  /** Of them, entries refused at least once. */
  readonly retrying: number;
  readonly deadLetters: number;
  /** enqueuedAt of the oldest entry never refused (ms since the epoch), undefined when none. */
  readonly oldestEnqueuedAt: number | undefined;
}

/** What moveChanges did: entries taken from the feed, added to the queue, and made dead letters (their entryIds). */
export interface MovedChanges {
  readonly moved: number;
  readonly added: number;
  readonly dead: readonly string[];
}

export interface OutboxQueue {
  readonly kind: 'sqlite' | 'postgres';
  /** How long an entry taken stays this process's unless renewed (ms); undefined when the queue has no leases (one process per queue). */
  readonly leaseMs: number | undefined;
  /** Adds entries in one transaction, durable when it resolves; an entryId already queued or dead is skipped. Resolves with how many were added. */
  insert(entries: readonly NewQueueEntry[]): Promise<number>;
  /**
   * Up to `limit` entries due now, oldest first. On a shared queue they are leased to this process (no
   * other process takes them until it deletes, refuses or releases them, or the lease expires).
   */
  take(limit: number): Promise<QueuedEntry[]>;
  /** Deletes delivered entries; resolves with how many were still there. */
  remove(seqs: readonly number[]): Promise<number>;
  /** Gives back the lease of entries this process could not deliver (the ledger unreachable): any process may take them. */
  release(seqs: readonly number[]): Promise<void>;
  /** Extends the lease of entries this process still holds (their ledger call is still running). */
  renew(seqs: readonly number[]): Promise<void>;
  /** An entry refused: tried again in `waitMs`, after `attempts` refusals. */
  refused(seq: number, attempts: number, waitMs: number, error: string): Promise<void>;
  /** Keeps an entry as a dead letter, and deletes it from the queue when `seq` is given (one transaction). */
  quarantine(entry: DeadQueueEntry, seq?: number): Promise<void>;
  /**
   * Moves up to `limit` ready change entries from `feed` into the queue (committed here, then dropped
   * from the feed); one for which `problemOf` names a problem becomes a dead letter instead.
   */
  moveChanges(feed: ChangeFeed, limit: number, problemOf: (entry: AccessEntryInput) => string | undefined): Promise<MovedChanges>;
  counts(): Promise<QueueCounts>;
  deadLetters(): Promise<DeadLetter[]>;
  /**
   * Puts dead letters back at the end of the queue with a fresh attempt count: the one named, or all.
   * Resolves with the entryIds moved (empty when `entryId` names no dead letter).
   */
  redeliver(entryId?: string): Promise<string[]>;
  close(): Promise<void>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox_entry (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  entry_id    TEXT    NOT NULL UNIQUE,
  entry       TEXT    NOT NULL,
  enqueued_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_quarantine (
  entry_id       TEXT    PRIMARY KEY,
  entry          TEXT    NOT NULL,
  enqueued_at    INTEGER NOT NULL,
  quarantined_at INTEGER NOT NULL,
  error          TEXT    NOT NULL
) WITHOUT ROWID;
`;

/** Columns added after the first release (outbox files have no schema version: added when missing). */
const ADDED_COLUMNS: ReadonlyArray<{ table: string; column: string; ddl: string }> = [
  { table: 'outbox_entry', column: 'attempts', ddl: 'attempts INTEGER NOT NULL DEFAULT 0' },
  { table: 'outbox_entry', column: 'next_attempt_at', ddl: 'next_attempt_at INTEGER NOT NULL DEFAULT 0' },
  { table: 'outbox_entry', column: 'last_error', ddl: 'last_error TEXT' },
  { table: 'outbox_quarantine', column: 'attempts', ddl: 'attempts INTEGER NOT NULL DEFAULT 1' },
];

function openOutboxDb(file: string, create: boolean): Database.Database {
  if (!create && file !== ':memory:' && !fs.existsSync(file)) {
    throw new Error(`there is no audit outbox at ${file} (the async audit mode keeps it in the gateway's data directory, HDX_DATA_DIR)`);
  }
  if (create && file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // Each commit is flushed to disk before its method resolves (WalSync, off the event loop): FULL's
  // guarantee. NORMAL here only keeps SQLite from flushing inside the commit call itself.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.transaction(() => {
    db.exec(SCHEMA);
    for (const c of ADDED_COLUMNS) {
      const columns = db.prepare(`PRAGMA table_info(${c.table})`).all() as Array<{ name: string }>;
      if (!columns.some((x) => x.name === c.column)) db.exec(`ALTER TABLE ${c.table} ADD COLUMN ${c.ddl}`);
    }
    db.exec('CREATE INDEX IF NOT EXISTS outbox_entry_due ON outbox_entry (next_attempt_at, seq)');
  })();
  if (create && file !== ':memory:') fs.chmodSync(file, 0o600);
  return db;
}

export function toDeadLetter(r: { entry_id: string; enqueued_at: number | string; quarantined_at: number | string; attempts: number; error: string }): DeadLetter {
  return {
    entryId: r.entry_id,
    enqueuedAt: new Date(Number(r.enqueued_at)).toISOString(),
    deadAt: new Date(Number(r.quarantined_at)).toISOString(),
    attempts: r.attempts,
    error: r.error,
  };
}

/**
 * The queue in an SQLite file (WAL): one gateway process delivers from it at a time (the gateway's
 * data directory), so there is no lease; the hdx CLI may open it meanwhile to list and re-deliver dead
 * letters (SQLite locking). Every method does its work before its first await, as the synchronous
 * better-sqlite3 statements it runs. A method that adds entries (insert, moveChanges, redeliver) then
 * resolves only once its transaction is flushed to disk (WalSync: an fdatasync of the WAL file on
 * libuv's thread pool, shared by the commits made while the previous flush ran), as `synchronous =
 * FULL` would before returning; delivery's own bookkeeping (remove, refused, quarantine) is not waited
 * for: undone by a power failure, it only sends or tries an entry again.
 */
export class SqliteOutboxQueue implements OutboxQueue {
  readonly kind = 'sqlite';
  readonly leaseMs = undefined;
  readonly #db: Database.Database;
  readonly #stmts;
  /** Flushes the WAL file; undefined for an in-memory database (nothing to flush). */
  readonly wal: WalSync | undefined;

  /**
   * Opens (or, with `create`, creates) the outbox file; without `create` a missing file is an error.
   * `flush` replaces the WAL file's fdatasync (tests).
   */
  constructor(file: string, options: { create?: boolean; flush?: (walFile: string) => Promise<void> } = {}) {
    const db = openOutboxDb(file, options.create ?? true);
    this.#db = db;
    this.wal = file === ':memory:' ? undefined : new WalSync(`${file}-wal`, options.flush);
    this.#stmts = {
      insert: db.prepare(
        `INSERT INTO outbox_entry (entry_id, entry, enqueued_at) SELECT @id, @entry, @at WHERE NOT EXISTS (SELECT 1 FROM outbox_quarantine WHERE entry_id = @id) ON CONFLICT (entry_id) DO NOTHING`,
      ),
      next: db.prepare(`SELECT seq, entry_id, entry, enqueued_at, attempts FROM outbox_entry WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?`),
      remove: db.prepare(`DELETE FROM outbox_entry WHERE seq = ?`),
      refused: db.prepare(`UPDATE outbox_entry SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?`),
      quarantine: db.prepare(
        `INSERT INTO outbox_quarantine (entry_id, entry, enqueued_at, quarantined_at, error, attempts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO NOTHING`,
      ),
      count: db.prepare(`SELECT COUNT(*) AS n FROM outbox_entry`),
      countRetrying: db.prepare(`SELECT COUNT(*) AS n FROM outbox_entry WHERE attempts > 0`),
      countQuarantined: db.prepare(`SELECT COUNT(*) AS n FROM outbox_quarantine`),
      // Entries waiting after a refusal are counted as `retrying`, not as a stuck ledger.
      oldest: db.prepare(`SELECT MIN(enqueued_at) AS enqueued_at FROM outbox_entry WHERE attempts = 0`),
    };
  }

  #insertAll(entries: readonly NewQueueEntry[]): number {
    let added = 0;
    for (const e of entries) added += this.#stmts.insert.run({ id: e.entryId, entry: e.entry, at: e.enqueuedAt }).changes;
    return added;
  }

  /** Resolves once everything this connection committed before the call is on disk. */
  async #durable(): Promise<void> {
    await this.wal?.durable();
  }

  async insert(entries: readonly NewQueueEntry[]): Promise<number> {
    const added = this.#db.transaction(() => this.#insertAll(entries))();
    await this.#durable();
    return added;
  }

  async take(limit: number): Promise<QueuedEntry[]> {
    const rows = this.#stmts.next.all(Date.now(), limit) as Array<{ seq: number; entry_id: string; entry: string; enqueued_at: number; attempts: number }>;
    return rows.map((r) => ({ seq: r.seq, entryId: r.entry_id, entry: r.entry, enqueuedAt: r.enqueued_at, attempts: r.attempts }));
  }

  async remove(seqs: readonly number[]): Promise<number> {
    // Not flushed: an entry delivered whose removal a power failure undoes is delivered again, and the
    // ledger records an entryId once. (The next flush of any commit covers it.)
    return this.#db.transaction(() => {
      let removed = 0;
      for (const seq of seqs) removed += this.#stmts.remove.run(seq).changes;
      return removed;
    })();
  }

  /** One process per file: nothing is leased. */
  async release(): Promise<void> {
    // Nothing to give back.
  }

  /** One process per file: nothing is leased. */
  async renew(): Promise<void> {
    // Nothing to extend.
  }

  async refused(seq: number, attempts: number, waitMs: number, error: string): Promise<void> {
    // Not flushed: a refusal a power failure undoes is only an attempt tried again.
    this.#stmts.refused.run(attempts, Date.now() + waitMs, error, seq);
  }

  async quarantine(entry: DeadQueueEntry, seq?: number): Promise<void> {
    this.#db.transaction(() => {
      this.#stmts.quarantine.run(entry.entryId, entry.entry, entry.enqueuedAt, Date.now(), entry.error, entry.attempts);
      if (seq !== undefined) this.#stmts.remove.run(seq);
    })();
    // Not flushed: a dead letter a power failure undoes is a pending entry again, refused again.
  }

  /**
   * The store and the outbox are separate files (SQLite is not atomic across WAL files): inserted here
   * first, then dropped from the store; a crash in between moves them again, which is harmless
   * (entry_id is unique here, and the ledger records an entryId once).
   */
  async moveChanges(feed: ChangeFeed, limit: number, problemOf: (entry: AccessEntryInput) => string | undefined): Promise<MovedChanges> {
    const ready = await feed.readyChanges(limit);
    if (!this.#db.open || ready.length === 0) return { moved: 0, added: 0, dead: [] };
    const dead: string[] = [];
    const added = this.#db.transaction(() => {
      const queued: NewQueueEntry[] = [];
      for (const r of ready) {
        const entry: AccessEntryInput = { ...r.entry, entryId: r.entryId };
        const problem = problemOf(entry);
        if (problem) {
          this.#stmts.quarantine.run(r.entryId, JSON.stringify(entry), r.readyAt, Date.now(), `INTERNAL: ${problem}`, 0);
          dead.push(r.entryId);
        } else {
          queued.push({ entryId: r.entryId, entry: JSON.stringify(entry), enqueuedAt: r.readyAt });
        }
      }
      return this.#insertAll(queued);
    })();
    // On disk here before the store lets them go.
    await this.#durable();
    await feed.dropChanges(ready.map((r) => r.entryId));
    return { moved: ready.length, added, dead };
  }

  async counts(): Promise<QueueCounts> {
    const oldest = this.#stmts.oldest.get() as { enqueued_at: number | null } | undefined;
    return {
      pending: (this.#stmts.count.get() as { n: number }).n,
      retrying: (this.#stmts.countRetrying.get() as { n: number }).n,
      deadLetters: (this.#stmts.countQuarantined.get() as { n: number }).n,
      oldestEnqueuedAt: oldest?.enqueued_at ?? undefined,
    };
  }

  async deadLetters(): Promise<DeadLetter[]> {
    const rows = this.#db.prepare('SELECT entry_id, enqueued_at, quarantined_at, attempts, error FROM outbox_quarantine ORDER BY quarantined_at, entry_id').all() as Array<{
      entry_id: string;
      enqueued_at: number;
      quarantined_at: number;
      attempts: number;
      error: string;
    }>;
    return rows.map(toDeadLetter);
  }

  async redeliver(entryId?: string): Promise<string[]> {
    const moved = this.#db.transaction(() => {
      const rows = (
        entryId === undefined
          ? this.#db.prepare('SELECT entry_id, entry, enqueued_at FROM outbox_quarantine ORDER BY quarantined_at, entry_id').all()
          : this.#db.prepare('SELECT entry_id, entry, enqueued_at FROM outbox_quarantine WHERE entry_id = ?').all(entryId)
      ) as Array<{ entry_id: string; entry: string; enqueued_at: number }>;
      const insert = this.#db.prepare('INSERT INTO outbox_entry (entry_id, entry, enqueued_at) VALUES (?, ?, ?) ON CONFLICT (entry_id) DO NOTHING');
      const remove = this.#db.prepare('DELETE FROM outbox_quarantine WHERE entry_id = ?');
      for (const r of rows) {
        insert.run(r.entry_id, r.entry, r.enqueued_at);
        remove.run(r.entry_id);
      }
      return rows.map((r) => r.entry_id);
    })();
    await this.#durable();
    return moved;
  }

  async close(): Promise<void> {
    // The last commits flushed and the WAL's descriptor closed first (closing the connection checkpoints
    // the WAL into the file and deletes it).
    if (this.#db.open) await this.wal?.durable().catch(() => undefined);
    await this.wal?.close();
    if (this.#db.open) this.#db.close();
  }
}
