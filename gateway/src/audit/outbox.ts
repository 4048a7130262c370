import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { OperationOutcomeError } from '../fhir/outcome';
import type { AccessEntryInput, LedgerClient } from '../ledger/ledger-client';
import { type AuditSink, MAX_LEDGER_BATCH, type RecordedEntry } from './sink';

/**
 * The async audit mode's durable outbox: access entries are committed to a local SQLite file (WAL,
 * synchronous FULL) before the data they describe is released, then delivered to the ledger in batches
 * (hdx.audit:RecordAccessBatch) and deleted only once the ledger has committed them.
 *
 * - Never drops an entry: while the ledger is unavailable entries stay and delivery is retried with
 *   capped exponential backoff; entries left by a stopped or crashed process are delivered at start.
 * - A resend after a crash between the ledger commit and the delete is harmless: every entry carries
 *   an `entryId`, and the chaincode records an (MSP, entryId) pair only once.
 * - An entry the ledger refuses as INVALID cannot block the others: the batch is split until the
 *   refused entry is alone, and that entry is moved to a quarantine table (kept, counted, logged by
 *   entryId only) for the operator.
 *
 * One process owns an outbox file at a time (the gateway's data directory).
 */

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

/** What the chaincode accepts (hdx.audit); checked at enqueue so an entry that could never be delivered is refused before any release. */
const ENTRY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PATIENT_REF = /^(did:hdx:[A-Za-z0-9_-]{43}|pseudonym:[0-9a-f]{64})$/;
/** hdx.audit MAX_RESOURCES: resources named by one entry. */
const MAX_RESOURCES = 100;

export interface OutboxOptions {
  /** The SQLite file, normally `<dataDir>/outbox.db`. */
  readonly file: string;
  readonly ledger: Pick<LedgerClient, 'recordAccess'>;
  readonly log: Logger;
  /** Pause between deliveries while the ledger accepts them (ms). */
  readonly flushMs?: number;
  /** Entries per ledger transaction (1–200). */
  readonly batchSize?: number;
  /** First and largest retry delay while the ledger refuses or is unreachable (ms). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long close() keeps delivering before it leaves the rest for the next start (ms). */
  readonly drainMs?: number;
  /** The outbox reports itself unhealthy when its oldest entry is older than this (ms). */
  readonly staleMs?: number;
}

export interface OutboxStats {
  /** Entries committed locally and not yet on the ledger. */
  readonly pending: number;
  /** Entries delivered to the ledger by this process. */
  readonly delivered: number;
  /** Delivery attempts that failed (the entries stayed and were retried). */
  readonly failures: number;
  /** Failed attempts since the last successful one. */
  readonly consecutiveFailures: number;
  /** Entries the ledger refused as invalid, kept aside for the operator. */
  readonly quarantined: number;
  /** Age of the oldest pending entry (ms), 0 when empty. */
  readonly oldestPendingMs: number;
  /** Error code of the last failed attempt. */
  readonly lastError: string | undefined;
}

interface Row {
  seq: number;
  entry_id: string;
  entry: string;
  enqueued_at: number;
}

function codeOf(err: unknown): string {
  return err instanceof OperationOutcomeError ? err.code : 'INTERNAL';
}

/** The ledger refused the content of the batch (as opposed to being unavailable, slow or misconfigured). */
function isRefusal(err: unknown): boolean {
  return err instanceof OperationOutcomeError && err.code === 'INVALID';
}

export class AuditOutbox implements AuditSink {
  readonly kind = 'outbox';
  readonly #db: Database.Database;
  readonly #stmts;
  readonly #ledger: Pick<LedgerClient, 'recordAccess'>;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #batchSize: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #drainMs: number;
  readonly #staleMs: number;
  #pending: number;
  #quarantined: number;
  #delivered = 0;
  #failures = 0;
  #consecutiveFailures = 0;
  #lastError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<boolean> | undefined;
  #started = false;
  #closing: Promise<void> | undefined;
  #open = true;

  constructor(options: OutboxOptions) {
    this.#ledger = options.ledger;
    this.#log = options.log;
    this.#flushMs = options.flushMs ?? 200;
    this.#batchSize = Math.max(1, Math.min(MAX_LEDGER_BATCH, options.batchSize ?? 100));
    this.#minBackoffMs = options.minBackoffMs ?? 500;
    this.#maxBackoffMs = Math.max(this.#minBackoffMs, options.maxBackoffMs ?? 30_000);
    this.#drainMs = options.drainMs ?? 10_000;
    this.#staleMs = options.staleMs ?? Math.max(60_000, 10 * this.#flushMs);
    if (options.file !== ':memory:') fs.mkdirSync(path.dirname(options.file), { recursive: true, mode: 0o700 });
    this.#db = new Database(options.file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(SCHEMA);
    if (options.file !== ':memory:') fs.chmodSync(options.file, 0o600);
    const db = this.#db;
    this.#stmts = {
      insert: db.prepare(`INSERT INTO outbox_entry (entry_id, entry, enqueued_at) VALUES (?, ?, ?) ON CONFLICT (entry_id) DO NOTHING`),
      next: db.prepare(`SELECT seq, entry_id, entry, enqueued_at FROM outbox_entry ORDER BY seq LIMIT ?`),
      remove: db.prepare(`DELETE FROM outbox_entry WHERE seq = ?`),
      quarantine: db.prepare(
        `INSERT INTO outbox_quarantine (entry_id, entry, enqueued_at, quarantined_at, error) VALUES (?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO NOTHING`,
      ),
      count: db.prepare(`SELECT COUNT(*) AS n FROM outbox_entry`),
      countQuarantined: db.prepare(`SELECT COUNT(*) AS n FROM outbox_quarantine`),
      oldest: db.prepare(`SELECT enqueued_at FROM outbox_entry ORDER BY seq LIMIT 1`),
    };
    this.#pending = (this.#stmts.count.get() as { n: number }).n;
    this.#quarantined = (this.#stmts.countQuarantined.get() as { n: number }).n;
  }

  /** Starts delivering; entries an earlier process left are sent right away. */
  start(): void {
    if (this.#started || this.#closing) return;
    this.#started = true;
    if (this.#pending > 0) this.#log.info({ event: 'audit-outbox', pending: this.#pending }, 'delivering audit entries left by an earlier stop');
    this.#schedule(0);
  }

  /** AuditSink: the entries are on disk when this resolves. */
  async record(entries: readonly AccessEntryInput[]): Promise<RecordedEntry[]> {
    return this.enqueue(entries);
  }

  /**
   * Commits entries to the outbox file (one SQLite transaction, synced to disk) and returns only then.
   * Assigns an `entryId` and `occurredAt` (now) to entries without them.
   */
  enqueue(entries: readonly AccessEntryInput[]): RecordedEntry[] {
    if (!this.#open) throw new OperationOutcomeError('UNAVAILABLE', 'The audit outbox is closed; the access cannot be recorded');
    const now = Date.now();
    const occurredAt = new Date(now).toISOString();
    const rows = entries.map((e) => {
      const entry: AccessEntryInput = { ...e, entryId: e.entryId ?? randomUUID(), occurredAt: e.occurredAt ?? occurredAt };
      // Refused here, so nothing is released under an entry the ledger would never take (no values in the message: they may identify the patient).
      if (!ENTRY_ID.test(entry.entryId as string)) throw new OperationOutcomeError('INTERNAL', 'An access entry has an invalid entryId; nothing was released');
      if (!PATIENT_REF.test(entry.patient)) throw new OperationOutcomeError('INTERNAL', 'An access entry has no valid patient reference; nothing was released');
      if ((entry.resources?.length ?? 0) > MAX_RESOURCES) throw new OperationOutcomeError('INTERNAL', `An access entry names more than ${MAX_RESOURCES} resources; nothing was released`);
      return entry;
    });
    let added = 0;
    this.#db.transaction(() => {
      for (const entry of rows) added += this.#stmts.insert.run(entry.entryId, JSON.stringify(entry), now).changes;
    })();
    this.#pending += added;
    // A full batch need not wait for the timer (unless the ledger is failing: then the backoff rules).
    if (this.#pending >= this.#batchSize && this.#started && !this.#closing && this.#consecutiveFailures === 0 && !this.#flushing) this.#schedule(0);
    return rows.map((e) => ({ entryId: e.entryId as string, breakGlass: e.breakGlass }));
  }

  /**
   * Delivers pending entries, batch after batch, until the outbox is empty (→ true) or the ledger fails
   * (→ false; the entries stay). Concurrent calls share one run.
   */
  flush(): Promise<boolean> {
    this.#flushing ??= this.#flushAll().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flushAll(): Promise<boolean> {
    while (this.#open) {
      const rows = this.#stmts.next.all(this.#batchSize) as Row[];
      if (rows.length === 0) return true;
      try {
        await this.#deliver(rows);
      } catch (err) {
        this.#failures++;
        this.#consecutiveFailures++;
        this.#lastError = codeOf(err);
        const level = this.#consecutiveFailures === 1 || this.#consecutiveFailures % 10 === 0 ? 'warn' : 'debug';
        this.#log[level](
          { event: 'audit-outbox-retry', code: this.#lastError, pending: this.#pending, consecutiveFailures: this.#consecutiveFailures },
          'audit entries could not be delivered to the ledger; they stay in the outbox and will be retried',
        );
        return false;
      }
      if (this.#consecutiveFailures > 0) this.#log.info({ event: 'audit-outbox-recovered', pending: this.#pending }, 'the ledger accepts audit entries again');
      this.#consecutiveFailures = 0;
    }
    return false;
  }

  /** One ledger transaction for `rows`, then their deletion; a refused batch is split to isolate the entry at fault. */
  async #deliver(rows: Row[]): Promise<void> {
    try {
      await this.#ledger.recordAccess(rows.map((r) => JSON.parse(r.entry) as AccessEntryInput));
    } catch (err) {
      if (!isRefusal(err)) throw err;
      if (rows.length === 1) {
        this.#quarantine(rows[0] as Row, err as OperationOutcomeError);
        return;
      }
      const mid = Math.ceil(rows.length / 2);
      await this.#deliver(rows.slice(0, mid));
      await this.#deliver(rows.slice(mid));
      return;
    }
    // Closed meanwhile (drain deadline): the rows stay and the next start resends them (idempotent).
    if (!this.#open) return;
    let removed = 0;
    this.#db.transaction(() => {
      for (const r of rows) removed += this.#stmts.remove.run(r.seq).changes;
    })();
    this.#pending -= removed;
    this.#delivered += removed;
  }

  #quarantine(row: Row, err: OperationOutcomeError): void {
    if (!this.#open) return;
    this.#db.transaction(() => {
      this.#stmts.quarantine.run(row.entry_id, row.entry, row.enqueued_at, Date.now(), `${err.code}: ${err.message}`);
      this.#stmts.remove.run(row.seq);
    })();
    this.#pending--;
    this.#quarantined++;
    this.#log.error({ event: 'audit-outbox-quarantine', entryId: row.entry_id, code: err.code }, 'the ledger refused an audit entry; it is kept in the outbox quarantine for the operator');
  }

  #schedule(ms: number): void {
    if (this.#closing) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), ms);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    const ok = await this.flush();
    this.#schedule(ok ? this.#flushMs : this.#backoffMs());
  }

  /** Capped exponential backoff with jitter (half to full delay). */
  #backoffMs(): number {
    const ceiling = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** Math.min(this.#consecutiveFailures - 1, 30));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  stats(): OutboxStats {
    const oldest = this.#open ? (this.#stmts.oldest.get() as { enqueued_at: number } | undefined) : undefined;
    return {
      pending: this.#pending,
      delivered: this.#delivered,
      failures: this.#failures,
      consecutiveFailures: this.#consecutiveFailures,
      quarantined: this.#quarantined,
      oldestPendingMs: oldest ? Math.max(0, Date.now() - oldest.enqueued_at) : 0,
      lastError: this.#lastError,
    };
  }

  /** For /healthz: the outbox answers and its oldest entry is not stuck. */
  health(): { ok: boolean; pending: number; error?: string } {
    if (!this.#open) return { ok: false, pending: this.#pending, error: 'audit outbox closed' };
    try {
      const s = this.stats();
      if (s.oldestPendingMs > this.#staleMs) return { ok: false, pending: s.pending, error: `audit entries have waited ${Math.round(s.oldestPendingMs / 1000)} s for the ledger` };
      return { ok: true, pending: s.pending };
    } catch {
      return { ok: false, pending: this.#pending, error: 'audit outbox unavailable' };
    }
  }

  /**
   * Stops the timer and drains: delivers what it can within `drainMs` (none with `drain` false), then
   * closes the file. What is left stays on disk and is delivered at the next start.
   */
  close(drain = true): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      let deadline: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        deadline = setTimeout(() => resolve('timeout'), drain ? this.#drainMs : 0);
      });
      const drained = await Promise.race([drain ? this.flush() : (this.#flushing ?? Promise.resolve(false)), timedOut]);
      clearTimeout(deadline);
      this.#open = false;
      if (this.#pending > 0) {
        this.#log.warn(
          { event: 'audit-outbox-closed', pending: this.#pending, reason: drained === 'timeout' ? 'drain timed out' : drained ? 'entries arrived during the drain' : 'ledger unavailable' },
          'audit entries stay in the outbox and will be delivered at the next start',
        );
      }
      this.#db.close();
    })();
    return this.#closing;
  }
}
