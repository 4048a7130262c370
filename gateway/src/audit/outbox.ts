import { HDX_DID, MAX_RESOURCES_PER_ENTRY, PSEUDONYM } from '@hdx/chaincode/dist/protocol';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { OperationOutcomeError } from '../errors';
import type { AccessEntryInput, LedgerClient } from '../ledger/ledger-client';
import { isTransientLedgerError } from '../ledger/ledger-errors';
import { type ChangeFeed, type DeadLetter, type NewQueueEntry, type OutboxQueue, type QueuedEntry, SqliteOutboxQueue } from './outbox-queue';
import { type AuditSink, MAX_LEDGER_BATCH, type RecordedEntry } from './sink';

export type { ChangeFeed, DeadLetter, OutboxQueue } from './outbox-queue';

/**
 * The async audit mode's durable outbox: access entries are committed to a queue (OutboxQueue: an
 * SQLite file per process, WAL, each commit flushed to disk before it is answered (wal-sync.ts); or PostgreSQL tables shared by the organization's
 * gateway processes, outbox-pg.ts) before the data they describe is released, then delivered to the
 * ledger in batches (hdx.audit:RecordAccessBatch) and deleted only once the ledger has committed them.
 *
 * - Never drops an entry: while the ledger is unavailable entries stay and delivery is retried with
 *   capped exponential backoff; entries left by a stopped or crashed process are delivered at start
 *   (on PostgreSQL: by any live process, once that process's leases have expired).
 * - A resend after a crash between the ledger commit and the delete is harmless: every entry carries
 *   an `entryId`, and the chaincode records an (MSP, entryId) pair only once.
 * - Never blocks behind, and never drops, an entry the ledger refuses (INVALID, FORBIDDEN, CONFLICT,
 *   anything but UNAVAILABLE / TIMEOUT): the batch is split until the refused entry is alone; that entry
 *   is set aside for a later attempt (refusedRetryMs, doubling) while the entries after it keep
 *   flowing, and after maxAttempts refusals it becomes a dead letter (table outbox_quarantine): kept,
 *   counted in stats()/health()/metrics, logged by entryId only, listed and re-delivered with
 *   `hdx outbox dead-letters|redeliver` (OutboxAdmin).
 * - Change entries of writes (create, update, delete) are not enqueued by the write itself: they are
 *   stored with the write in the resource store and made ready there in the same store transaction
 *   that marks the versions anchored. Each flush first moves ready change entries from the store
 *   (`changes`, a ChangeFeed) into the outbox (OutboxQueue.moveChanges: on SQLite inserted here, then
 *   deleted there, a crash in between re-moving them harmlessly; on PostgreSQL one transaction).
 *
 * On SQLite one process delivers from an outbox file at a time (the gateway's data directory); on
 * PostgreSQL each entry is leased to the process delivering it. The hdx CLI may open the queue meanwhile
 * to list and re-deliver dead letters.
 */

/** What the chaincode accepts (hdx.audit); checked at enqueue so an entry that could never be delivered is refused before any release. */
const ENTRY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PATIENT_REF = { test: (s: string): boolean => HDX_DID.test(s) || PSEUDONYM.test(s) };
/** hdx.audit MAX_RESOURCES: resources named by one entry. */
const MAX_RESOURCES = MAX_RESOURCES_PER_ENTRY;

export interface OutboxOptions {
  /** The SQLite file, normally `<dataDir>/outbox.db` (a SqliteOutboxQueue), when no `queue` is given. */
  readonly file?: string;
  /** The queue (PgOutboxQueue on PostgreSQL); closed with the outbox. */
  readonly queue?: OutboxQueue;
  readonly ledger: Pick<LedgerClient, 'recordAccess'>;
  readonly log: Logger;
  /** Pause between deliveries while the ledger accepts them (ms). */
  readonly flushMs?: number;
  /** Entries per ledger transaction (1–200). */
  readonly batchSize?: number;
  /**
   * Ledger transactions delivered at the same time (1–16, default 4): each of `batchSize` entries, so one
   * flush round moves up to batchSize × inFlight entries while each transaction waits for its block.
   */
  readonly inFlight?: number;
  /** True while writes callers wait on are in flight (ledger/foreground.ts): delivery then sends one transaction at a time. */
  readonly busy?: () => boolean;
  /** First and largest retry delay while the ledger refuses or is unreachable (ms). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long close() keeps delivering before it leaves the rest for the next start (ms). */
  readonly drainMs?: number;
  /** The outbox reports itself unhealthy when its oldest entry is older than this (ms). */
  readonly staleMs?: number;
  /** Refusals of one entry before it becomes a dead letter (default 5). */
  readonly maxAttempts?: number;
  /** Wait before a refused entry is tried again, doubled per refusal up to 10 min (ms, default 30 s). */
  readonly refusedRetryMs?: number;
  /** The resource store's ready change entries, moved into the outbox at each flush. */
  readonly changes?: ChangeFeed;
}

export interface OutboxStats {
  /** Entries committed locally (in the outbox, or change entries still in the store) and not yet on the ledger; dead letters not included. */
  readonly pending: number;
  /** Entries delivered to the ledger by this process. */
  readonly delivered: number;
  /** Delivery attempts that failed (the entries stayed and were retried). */
  readonly failures: number;
  /** Failed attempts since the last successful one. */
  readonly consecutiveFailures: number;
  /** Entries the ledger refused maxAttempts times: dead letters, kept for the operator to re-deliver. */
  readonly deadLetters: number;
  /** Pending entries the ledger refused at least once, waiting for their next attempt. */
  readonly retrying: number;
  /** Age of the oldest pending entry (ms), 0 when empty. */
  readonly oldestPendingMs: number;
  /** Error code of the last failed attempt. */
  readonly lastError: string | undefined;
}

function codeOf(err: unknown): string {
  return err instanceof OperationOutcomeError ? err.code : 'INTERNAL';
}

/** The ledger answered and refused (as opposed to being unreachable or slow: then the batch is retried as is). */
function isRefusal(err: unknown): boolean {
  return !isTransientLedgerError(err);
}

/** Why the ledger could never take an entry (checked before it is committed locally), or undefined. No values in the message: they may identify the patient. */
function entryProblem(entry: AccessEntryInput): string | undefined {
  if (typeof entry.entryId !== 'string' || !ENTRY_ID.test(entry.entryId)) return 'An access entry has an invalid entryId';
  if (typeof entry.patient !== 'string' || !PATIENT_REF.test(entry.patient)) return 'An access entry has no valid patient reference';
  if ((entry.resources?.length ?? 0) > MAX_RESOURCES) return `An access entry names more than ${MAX_RESOURCES} resources`;
  if (entry.decidedAt !== undefined && !(Number.isSafeInteger(entry.decidedAt.height) && entry.decidedAt.height >= 1)) return 'An access entry has an invalid decidedAt height';
  return undefined;
}

const MAX_REFUSED_RETRY_MS = 10 * 60_000;
const PULL_BATCH = 500;

export class AuditOutbox implements AuditSink {
  readonly kind = 'outbox';
  readonly #queue: OutboxQueue;
  readonly #ledger: Pick<LedgerClient, 'recordAccess'>;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #inFlight: number;
  readonly #busy: (() => boolean) | undefined;
  readonly #batchSize: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #drainMs: number;
  readonly #staleMs: number;
  readonly #maxAttempts: number;
  readonly #refusedRetryMs: number;
  readonly #changes: ChangeFeed | undefined;
  /** Entries in the queue (kept in step by this process; recounted at each flush, as the CLI or other processes change it). */
  #pending = 0;
  #delivered = 0;
  #failures = 0;
  #consecutiveFailures = 0;
  #lastError: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<boolean> | undefined;
  #pulling: Promise<void> | undefined;
  #started = false;
  #closing: Promise<void> | undefined;
  #open = true;
  /** Outbox transactions committed for records, and the records they carried (group commit). */
  readonly commits = { transactions: 0, records: 0 };
  /** Records waiting for the group commit of this turn of the event loop (record()). */
  #group: Array<{ entries: readonly AccessEntryInput[]; resolve: (r: RecordedEntry[]) => void; reject: (err: unknown) => void }> | undefined;

  constructor(options: OutboxOptions) {
    this.#ledger = options.ledger;
    this.#log = options.log;
    this.#flushMs = options.flushMs ?? 200;
    this.#batchSize = Math.max(1, Math.min(MAX_LEDGER_BATCH, options.batchSize ?? 100));
    this.#inFlight = Math.max(1, Math.min(16, options.inFlight ?? 4));
    this.#busy = options.busy;
    this.#minBackoffMs = options.minBackoffMs ?? 500;
    this.#maxBackoffMs = Math.max(this.#minBackoffMs, options.maxBackoffMs ?? 30_000);
    this.#drainMs = options.drainMs ?? 10_000;
    this.#staleMs = options.staleMs ?? Math.max(60_000, 10 * this.#flushMs);
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.#refusedRetryMs = Math.max(0, options.refusedRetryMs ?? 30_000);
    this.#changes = options.changes;
    if ((options.queue === undefined) === (options.file === undefined)) throw new Error('the audit outbox needs either a file (SQLite) or a queue');
    this.#queue = options.queue ?? new SqliteOutboxQueue(options.file as string);
  }

  /** Which queue the entries wait in. */
  get queueKind(): OutboxQueue['kind'] {
    return this.#queue.kind;
  }

  /** Starts delivering; entries an earlier process left are sent right away. */
  start(): void {
    if (this.#started || this.#closing) return;
    this.#started = true;
    this.#queue.counts().then(
      (c) => {
        if (c.pending > 0) this.#log.info({ event: 'audit-outbox', pending: c.pending }, 'delivering audit entries left by an earlier stop');
      },
      () => undefined,
    );
    this.#schedule(0);
  }

  /**
   * AuditSink: the entries are committed when this resolves. Group commit: the records asked for in the
   * same turn of the event loop (concurrent reads) share one queue transaction, so one sync to disk
   * serves them all; each caller still gets its answer only after that transaction is committed. A
   * caller's entry the ledger could never take fails that caller alone.
   */
  record(entries: readonly AccessEntryInput[]): Promise<RecordedEntry[]> {
    return new Promise<RecordedEntry[]>((resolve, reject) => {
      if (this.#group === undefined) {
        this.#group = [];
        setImmediate(() => void this.#commitGroup());
      }
      this.#group.push({ entries, resolve, reject });
    });
  }

  async #commitGroup(): Promise<void> {
    const group = this.#group ?? [];
    this.#group = undefined;
    // Changes acknowledged before these accesses come before them in the outbox too.
    await this.#pullChangesSafely();
    const prepared: Array<{ rows: AccessEntryInput[]; resolve: (r: RecordedEntry[]) => void }> = [];
    const now = Date.now();
    for (const g of group) {
      try {
        prepared.push({ rows: this.#rowsOf(g.entries, now), resolve: g.resolve });
      } catch (err) {
        g.reject(err);
      }
    }
    if (prepared.length === 0) return;
    try {
      await this.#insert(
        prepared.flatMap((p) => p.rows),
        now,
      );
    } catch (err) {
      group.forEach((g) => g.reject(err));
      return;
    }
    this.commits.transactions += 1;
    this.commits.records += prepared.length;
    for (const p of prepared) p.resolve(p.rows.map((e) => ({ entryId: e.entryId as string, breakGlass: e.breakGlass })));
  }

  /**
   * Commits entries to the queue (one transaction, synced to disk) and resolves only then. Assigns an
   * `entryId` and `occurredAt` (now) to entries without them.
   */
  async enqueue(entries: readonly AccessEntryInput[]): Promise<RecordedEntry[]> {
    const now = Date.now();
    const rows = this.#rowsOf(entries, now);
    await this.#insert(rows, now);
    return rows.map((e) => ({ entryId: e.entryId as string, breakGlass: e.breakGlass }));
  }

  /** The entries as stored: with an entryId and occurredAt; one the ledger could never take is refused (nothing is released). */
  #rowsOf(entries: readonly AccessEntryInput[], now: number): AccessEntryInput[] {
    if (!this.#open) throw new OperationOutcomeError('UNAVAILABLE', 'The audit outbox is closed; the access cannot be recorded');
    const occurredAt = new Date(now).toISOString();
    return entries.map((e) => {
      const entry: AccessEntryInput = { ...e, entryId: e.entryId ?? randomUUID(), occurredAt: e.occurredAt ?? occurredAt };
      // Refused here, so nothing is released under an entry the ledger would never take.
      const problem = entryProblem(entry);
      if (problem) throw new OperationOutcomeError('INTERNAL', `${problem}; nothing was released`);
      return entry;
    });
  }

  async #insert(rows: readonly AccessEntryInput[], now: number): Promise<void> {
    if (!this.#open) throw new OperationOutcomeError('UNAVAILABLE', 'The audit outbox is closed; the access cannot be recorded');
    const queued: NewQueueEntry[] = rows.map((entry) => ({ entryId: entry.entryId as string, entry: JSON.stringify(entry), enqueuedAt: now }));
    const added = await this.#queue.insert(queued);
    this.#pending += added;
    // A full batch need not wait for the timer (unless the ledger is failing: then the backoff rules).
    if (this.#pending >= this.#batchSize && this.#started && !this.#closing && this.#consecutiveFailures === 0 && !this.#flushing) this.#schedule(0);
  }

  /**
   * Moves the store's ready change entries into the outbox (OutboxQueue.moveChanges). An entry the
   * ledger could never take becomes a dead letter at once, so it cannot hold the feed up either.
   */
  async #pullChanges(): Promise<void> {
    const feed = this.#changes;
    if (!feed) return;
    for (;;) {
      if (!this.#open) return;
      const moved = await this.#queue.moveChanges(feed, PULL_BATCH, entryProblem);
      this.#pending += moved.added;
      for (const entryId of moved.dead) {
        this.#log.error({ event: 'audit-outbox-dead-letter', entryId, code: 'INTERNAL' }, 'a change entry the ledger could never take is a dead letter');
      }
      if (moved.moved < PULL_BATCH) return;
    }
  }

  /**
   * Delivers the entries that are due, batch after batch, until none is left (→ true; refused entries
   * waiting for their next attempt, and on PostgreSQL entries another process holds, do not count) or
   * the ledger is unreachable (→ false; the entries stay). Concurrent calls share one run.
   */
  flush(): Promise<boolean> {
    this.#flushing ??= this.#flushAll().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** #pullChanges, never failing its caller (the entries stay in the store for the next try). */
  #pullChangesSafely(): Promise<void> {
    if (!this.#open || !this.#changes) return Promise.resolve();
    // One pull at a time: concurrent ones would read the same ready entries.
    this.#pulling ??= this.#pullChanges()
      .catch((err: unknown) => {
        this.#log.error({ event: 'audit-outbox-pull', err }, 'change entries could not be moved from the store into the outbox; retried at the next flush');
      })
      .finally(() => {
        this.#pulling = undefined;
      });
    return this.#pulling;
  }

  async #flushAll(): Promise<boolean> {
    try {
      if (this.#open) {
        await this.#pullChangesSafely();
        if (!this.#open) return false;
        this.#pending = (await this.#queue.counts()).pending;
      }
      while (this.#open) {
        // While a caller waits on a ledger write, one transaction at a time: the backlog gives way.
        const parallel = this.#busy?.() === true ? 1 : this.#inFlight;
        const rows = await this.#queue.take(this.#batchSize * parallel);
        if (rows.length === 0) return true;
        // Up to inFlight transactions at once, each its own batch: entries are independent (unique keys,
        // idempotent by entryId), so they may commit in any order, in the same block or not.
        const batches: QueuedEntry[][] = [];
        for (let i = 0; i < rows.length; i += this.#batchSize) batches.push(rows.slice(i, i + this.#batchSize));
        const settled = await this.#holding(rows, Promise.allSettled(batches.map((b) => this.#deliver(b))));
        const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) {
          // The entries not delivered are given back at once (shared queue): any process may retry them.
          if (this.#open) await this.#queue.release(rows.map((r) => r.seq)).catch(() => undefined);
          throw failed.reason;
        }
        if (this.#consecutiveFailures > 0) this.#log.info({ event: 'audit-outbox-recovered', pending: this.#pending }, 'the ledger accepts audit entries again');
        this.#consecutiveFailures = 0;
      }
      return false;
    } catch (err) {
      // The ledger unreachable or slow, or the queue itself failing (PostgreSQL down): the entries stay.
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
  }

  /**
   * On a queue with leases: renews the lease of `rows` every third of it until `delivery` settles, so no
   * other process sends them while their ledger call runs. Stops when this outbox closes (a closed or
   * dead process's leases expire and another process delivers those entries).
   */
  async #holding<T>(rows: readonly QueuedEntry[], delivery: Promise<T>): Promise<T> {
    const leaseMs = this.#queue.leaseMs;
    if (leaseMs === undefined) return delivery;
    const seqs = rows.map((r) => r.seq);
    const timer = setInterval(
      () => {
        if (!this.#open) {
          clearInterval(timer);
          return;
        }
        // Entries already deleted or given back are not this process's any more: renewing skips them.
        this.#queue
          .renew(seqs)
          .catch((err: unknown) => this.#log.warn({ event: 'audit-outbox-lease', code: codeOf(err) }, 'the lease of audit entries being delivered could not be renewed'));
      },
      Math.max(1, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    try {
      return await delivery;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * One ledger transaction for `rows`, then their deletion. A refused batch is split to isolate the
   * entry at fault, which is set aside (or dead-lettered); an unreachable ledger fails the whole call.
   */
  async #deliver(rows: QueuedEntry[]): Promise<void> {
    try {
      await this.#ledger.recordAccess(rows.map((r) => JSON.parse(r.entry) as AccessEntryInput));
    } catch (err) {
      if (!isRefusal(err)) throw err;
      if (rows.length === 1) {
        await this.#refused(rows[0] as QueuedEntry, err);
        return;
      }
      const mid = Math.ceil(rows.length / 2);
      await this.#deliver(rows.slice(0, mid));
      await this.#deliver(rows.slice(mid));
      return;
    }
    // Closed meanwhile (drain deadline): the rows stay and the next start resends them (idempotent).
    if (!this.#open) return;
    const removed = await this.#queue.remove(rows.map((r) => r.seq));
    this.#pending -= removed;
    this.#delivered += removed;
  }

  /** One entry refused: tried again later (the others go on meanwhile), a dead letter after maxAttempts. */
  async #refused(row: QueuedEntry, err: unknown): Promise<void> {
    if (!this.#open) return;
    const code = codeOf(err);
    const error = `${code}: ${err instanceof Error ? err.message : String(err)}`;
    const attempts = row.attempts + 1;
    this.#failures++;
    this.#lastError = code;
    if (attempts < this.#maxAttempts) {
      const wait = Math.min(MAX_REFUSED_RETRY_MS, this.#refusedRetryMs * 2 ** (attempts - 1));
      await this.#queue.refused(row.seq, attempts, wait, error);
      this.#log.warn(
        { event: 'audit-outbox-refused', entryId: row.entryId, code, attempts, maxAttempts: this.#maxAttempts },
        'the ledger refused an audit entry; it is tried again later, the entries after it go on',
      );
      return;
    }
    await this.#queue.quarantine({ entryId: row.entryId, entry: row.entry, enqueuedAt: row.enqueuedAt, error, attempts }, row.seq);
    this.#pending--;
    this.#log.error(
      { event: 'audit-outbox-dead-letter', entryId: row.entryId, code, attempts },
      'the ledger refused an audit entry every time; it is a dead letter: list it with `hdx outbox dead-letters`, re-deliver it with `hdx outbox redeliver`',
    );
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

  /** On PostgreSQL `pending`, `retrying`, `deadLetters` and the oldest entry are the shared queue's; `delivered` and the failures this process's. */
  async stats(): Promise<OutboxStats> {
    const inStore = this.#open && this.#changes ? await this.#changes.readyChangeStats() : { count: 0, oldestReadyAt: undefined };
    const counts = this.#open ? await this.#queue.counts() : undefined;
    const oldestAt = Math.min(counts?.oldestEnqueuedAt ?? Infinity, inStore.oldestReadyAt ?? Infinity);
    return {
      pending: (counts?.pending ?? this.#pending) + inStore.count,
      delivered: this.#delivered,
      failures: this.#failures,
      consecutiveFailures: this.#consecutiveFailures,
      deadLetters: counts?.deadLetters ?? 0,
      retrying: counts?.retrying ?? 0,
      oldestPendingMs: Number.isFinite(oldestAt) ? Math.max(0, Date.now() - oldestAt) : 0,
      lastError: this.#lastError,
    };
  }

  /**
   * For /healthz: the outbox answers and its oldest entry is not stuck. Dead letters are reported
   * (`deadLetters`, when there are any: the operator re-delivers them) but do not make the gateway
   * unhealthy: entries keep flowing past them.
   */
  async health(): Promise<{ ok: boolean; pending: number; deadLetters?: number; error?: string }> {
    if (!this.#open) return { ok: false, pending: this.#pending, error: 'audit outbox closed' };
    try {
      const s = await this.stats();
      // Named only when there are some, so the usual answer stays {ok, pending}.
      const dead = s.deadLetters > 0 ? { deadLetters: s.deadLetters } : {};
      if (s.oldestPendingMs > this.#staleMs)
        return { ok: false, pending: s.pending, ...dead, error: `audit entries have waited ${Math.round(s.oldestPendingMs / 1000)} s for the ledger` };
      return { ok: true, pending: s.pending, ...dead };
    } catch {
      return { ok: false, pending: this.#pending, error: 'audit outbox unavailable' };
    }
  }

  /**
   * Stops the timer and drains: delivers what it can within `drainMs` (none with `drain` false), then
   * closes the queue. What is left stays queued and is delivered at the next start (on PostgreSQL by
   * any process, once the leases of entries in flight have expired).
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
          {
            event: 'audit-outbox-closed',
            pending: this.#pending,
            reason: drained === 'timeout' ? 'drain timed out' : drained ? 'entries arrived during the drain' : 'ledger unavailable',
          },
          'audit entries stay in the outbox and will be delivered at the next start',
        );
      }
      await this.#queue.close();
    })();
    return this.#closing;
  }
}

/**
 * The operator's view of an outbox queue (the hdx CLI): dead letters listed and re-delivered. Works
 * beside running gateways (SQLite locking, or PostgreSQL transactions; a gateway picks re-delivered
 * entries up at its next flush).
 */
export class OutboxAdmin {
  readonly #queue: OutboxQueue;

  /** An existing SQLite outbox file (never created here), or a queue (PgOutboxQueue). */
  constructor(fileOrQueue: string | OutboxQueue) {
    this.#queue = typeof fileOrQueue === 'string' ? new SqliteOutboxQueue(fileOrQueue, { create: false }) : fileOrQueue;
  }

  deadLetters(): Promise<DeadLetter[]> {
    return this.#queue.deadLetters();
  }

  /**
   * Puts dead letters back at the end of the queue with a fresh attempt count: the one named, or all.
   * Returns the entryIds moved (empty when `entryId` names no dead letter).
   */
  redeliver(entryId?: string): Promise<string[]> {
    return this.#queue.redeliver(entryId);
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}
