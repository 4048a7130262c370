import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import type { PgQuery } from '../auth/replay';
import type { AccessEntryInput } from '../ledger/ledger-client';
import type { PgStore } from '../store/pg-store';
import {
  type ChangeFeed,
  type DeadLetter,
  type DeadQueueEntry,
  type MovedChanges,
  type NewQueueEntry,
  type OutboxQueue,
  type QueueCounts,
  type QueuedEntry,
  toDeadLetter,
} from './outbox-queue';

/**
 * The outbox queue in PostgreSQL (HDX_STORE): tables outbox_entry and outbox_quarantine of the store's
 * database (PgStore migration 3), shared by every gateway process of the organization.
 *
 * - An entry is delivered by one process at a time: take() leases it (claimed_by, claimed_until) with
 *   `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, so two processes taking at the
 *   same moment get different entries. It is deleted once the ledger committed it, set aside (lease
 *   given back) when refused, released when the ledger is unreachable.
 * - While the ledger call runs, the outbox renews the lease (AuditOutbox, every leaseMs / 3). A process
 *   that dies (or is closed) stops renewing; its leases expire after `leaseMs` and a live process takes
 *   those entries. A resend (the dead process's transaction had committed) is harmless: the chaincode records
 *   an (MSP, entryId) pair once.
 * - Lease and retry times are the database's clock, so processes on hosts whose clocks differ agree.
 * - The store's ready change entries (change_entry, same database) are moved in ONE transaction: locked
 *   (SKIP LOCKED: two processes never move the same one), inserted here, deleted there.
 */

/** A statement on the store's database (PgStore.query, or inside PgStore.transaction). */
type Query = PgQuery;

/** Milliseconds since the epoch on the database's clock. */
const DB_NOW = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`;

const INSERT = `
  INSERT INTO outbox_entry (entry_id, entry, enqueued_at)
  SELECT u.entry_id, u.entry, u.enqueued_at
    FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(entry_id, entry, enqueued_at, n)
   WHERE NOT EXISTS (SELECT 1 FROM outbox_quarantine q WHERE q.entry_id = u.entry_id)
   ORDER BY u.n
  ON CONFLICT (entry_id) DO NOTHING`;

const QUARANTINE = `
  INSERT INTO outbox_quarantine (entry_id, entry, enqueued_at, quarantined_at, error, attempts)
  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id) DO NOTHING`;

function insertValues(entries: readonly NewQueueEntry[]): unknown[] {
  return [entries.map((e) => e.entryId), entries.map((e) => e.entry), entries.map((e) => e.enqueuedAt)];
}

export interface PgOutboxQueueOptions {
  /**
   * How long an entry taken for delivery stays this process's unless renewed (ms, default 30 s). The
   * outbox renews the lease of entries whose ledger call is still running (every third of it), so a live
   * process's entries are not sent by another meanwhile; the entries of a process that died wait at
   * most this long before a live one sends them.
   */
  readonly leaseMs?: number;
  /** Names this process in claimed_by (default host:pid:random). */
  readonly owner?: string;
}

export class PgOutboxQueue implements OutboxQueue {
  readonly kind = 'postgres';
  readonly #store: Pick<PgStore, 'query' | 'transaction'>;
  readonly #query: Query;
  readonly leaseMs: number;
  readonly owner: string;

  /** On the store's database (its pool: the store is closed by its owner, not by this queue). */
  constructor(store: Pick<PgStore, 'query' | 'transaction'>, options: PgOutboxQueueOptions = {}) {
    this.#store = store;
    this.#query = store.query;
    this.leaseMs = Math.max(1, Math.round(options.leaseMs ?? 30_000));
    this.owner = options.owner ?? `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  }

  async insert(entries: readonly NewQueueEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    return (await this.#query(INSERT, insertValues(entries))).rowCount;
  }

  async take(limit: number): Promise<QueuedEntry[]> {
    const r = await this.#query(
      `UPDATE outbox_entry SET claimed_by = $1, claimed_until = ${DB_NOW} + $2
        WHERE seq IN (SELECT seq FROM outbox_entry WHERE next_attempt_at <= ${DB_NOW} AND claimed_until <= ${DB_NOW}
                       ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING seq, entry_id, entry, enqueued_at, attempts`,
      [this.owner, this.leaseMs, limit],
    );
    const rows = r.rows as Array<{ seq: string; entry_id: string; entry: string; enqueued_at: string; attempts: number }>;
    return rows.map((x) => ({ seq: Number(x.seq), entryId: x.entry_id, entry: x.entry, enqueuedAt: Number(x.enqueued_at), attempts: x.attempts })).sort((a, b) => a.seq - b.seq);
  }

  async remove(seqs: readonly number[]): Promise<number> {
    if (seqs.length === 0) return 0;
    return (await this.#query('DELETE FROM outbox_entry WHERE seq = ANY($1::bigint[])', [[...seqs]])).rowCount;
  }

  async release(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.#query('UPDATE outbox_entry SET claimed_by = NULL, claimed_until = 0 WHERE seq = ANY($1::bigint[]) AND claimed_by = $2', [[...seqs], this.owner]);
  }

  async renew(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.#query(`UPDATE outbox_entry SET claimed_until = ${DB_NOW} + $1 WHERE seq = ANY($2::bigint[]) AND claimed_by = $3`, [this.leaseMs, [...seqs], this.owner]);
  }

  async refused(seq: number, attempts: number, waitMs: number, error: string): Promise<void> {
    await this.#query(`UPDATE outbox_entry SET attempts = $1, next_attempt_at = ${DB_NOW} + $2, last_error = $3, claimed_by = NULL, claimed_until = 0 WHERE seq = $4`, [
      attempts,
      Math.round(waitMs),
      error,
      seq,
    ]);
  }

  async quarantine(entry: DeadQueueEntry, seq?: number): Promise<void> {
    await this.#store.transaction(async (q) => {
      await q(QUARANTINE, [entry.entryId, entry.entry, entry.enqueuedAt, Date.now(), entry.error, entry.attempts]);
      if (seq !== undefined) await q('DELETE FROM outbox_entry WHERE seq = $1', [seq]);
    });
  }

  /**
   * From the store of this database (`feed` is that PgStore): one transaction that locks the ready
   * change entries no other process is moving, queues them here and deletes them there. From any other
   * feed: inserted here, then dropped there (a crash in between moves them again, harmlessly).
   */
  async moveChanges(feed: ChangeFeed, limit: number, problemOf: (entry: AccessEntryInput) => string | undefined): Promise<MovedChanges> {
    if ((feed as unknown) !== this.#store) {
      const ready = await feed.readyChanges(limit);
      if (ready.length === 0) return { moved: 0, added: 0, dead: [] };
      const sorted = this.#sort(ready, problemOf);
      const added = await this.#store.transaction(async (q) => this.#queueSorted(q, sorted));
      await feed.dropChanges(ready.map((r) => r.entryId));
      return { moved: ready.length, added, dead: sorted.dead.map((d) => d.entryId) };
    }
    return this.#store.transaction(async (q) => {
      const locked = (await q(`SELECT seq, entry_id, entry, ready_at FROM change_entry WHERE state = 'ready' ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit]))
        .rows as Array<{ seq: string; entry_id: string; entry: string; ready_at: string }>;
      if (locked.length === 0) return { moved: 0, added: 0, dead: [] };
      const ready = locked.map((r) => ({ entryId: r.entry_id, entry: JSON.parse(r.entry) as AccessEntryInput, readyAt: Number(r.ready_at) }));
      const sorted = this.#sort(ready, problemOf);
      const added = await this.#queueSorted(q, sorted);
      await q('DELETE FROM change_entry WHERE seq = ANY($1::bigint[])', [locked.map((r) => r.seq)]);
      return { moved: locked.length, added, dead: sorted.dead.map((d) => d.entryId) };
    });
  }

  #sort(
    ready: ReadonlyArray<{ readonly entryId: string; readonly entry: AccessEntryInput; readonly readyAt: number }>,
    problemOf: (entry: AccessEntryInput) => string | undefined,
  ): { queued: NewQueueEntry[]; dead: DeadQueueEntry[] } {
    const queued: NewQueueEntry[] = [];
    const dead: DeadQueueEntry[] = [];
    for (const r of ready) {
      const entry: AccessEntryInput = { ...r.entry, entryId: r.entryId };
      const problem = problemOf(entry);
      if (problem) dead.push({ entryId: r.entryId, entry: JSON.stringify(entry), enqueuedAt: r.readyAt, error: `INTERNAL: ${problem}`, attempts: 0 });
      else queued.push({ entryId: r.entryId, entry: JSON.stringify(entry), enqueuedAt: r.readyAt });
    }
    return { queued, dead };
  }

  async #queueSorted(q: Query, sorted: { queued: NewQueueEntry[]; dead: DeadQueueEntry[] }): Promise<number> {
    for (const d of sorted.dead) await q(QUARANTINE, [d.entryId, d.entry, d.enqueuedAt, Date.now(), d.error, d.attempts]);
    return sorted.queued.length > 0 ? (await q(INSERT, insertValues(sorted.queued))).rowCount : 0;
  }

  async counts(): Promise<QueueCounts> {
    const r = await this.#query(
      `SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE attempts > 0) AS retrying, MIN(enqueued_at) FILTER (WHERE attempts = 0) AS oldest,
              (SELECT COUNT(*) FROM outbox_quarantine) AS dead
         FROM outbox_entry`,
      [],
    );
    const row = r.rows[0] as { n: string; retrying: string; oldest: string | null; dead: string } | undefined;
    return {
      pending: Number(row?.n ?? 0),
      retrying: Number(row?.retrying ?? 0),
      deadLetters: Number(row?.dead ?? 0),
      oldestEnqueuedAt: row?.oldest == null ? undefined : Number(row.oldest),
    };
  }

  async deadLetters(): Promise<DeadLetter[]> {
    const r = await this.#query('SELECT entry_id, enqueued_at, quarantined_at, attempts, error FROM outbox_quarantine ORDER BY quarantined_at, entry_id', []);
    return (r.rows as Array<{ entry_id: string; enqueued_at: string; quarantined_at: string; attempts: number; error: string }>).map(toDeadLetter);
  }

  async redeliver(entryId?: string): Promise<string[]> {
    return this.#store.transaction(async (q) => {
      const rows = (
        entryId === undefined
          ? await q('SELECT entry_id, entry, enqueued_at FROM outbox_quarantine ORDER BY quarantined_at, entry_id FOR UPDATE', [])
          : await q('SELECT entry_id, entry, enqueued_at FROM outbox_quarantine WHERE entry_id = $1 FOR UPDATE', [entryId])
      ).rows as Array<{ entry_id: string; entry: string; enqueued_at: string }>;
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.entry_id);
      await q('DELETE FROM outbox_quarantine WHERE entry_id = ANY($1::text[])', [ids]);
      await q(INSERT, insertValues(rows.map((r) => ({ entryId: r.entry_id, entry: r.entry, enqueuedAt: Number(r.enqueued_at) }))));
      return ids;
    });
  }

  /** The pool is the store's: closed with the store. */
  async close(): Promise<void> {
    // Nothing of its own to close.
  }
}
