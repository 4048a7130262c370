/**
 * Replay protection for single-use tokens: a `jti` is accepted once until the token expires.
 * The gateway uses the SQLite store so the protection survives restarts, or PostgreSQL (PgJtiStore) so
 * that it holds across every gateway process sharing the database (a token used at one replica is
 * refused at the others); the in-memory one is for tests and single-process tools.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';

export interface JtiStore {
  /** True if `jti` was recorded before and has not expired; otherwise records it until `expiresAtSec` and returns false. */
  seen(jti: string, expiresAtSec: number): Promise<boolean>;
}

export interface JtiStoreOptions {
  /** Clock in milliseconds since the epoch (tests). */
  readonly now?: () => number;
  /** How often expired entries are swept, in milliseconds (default 60 s). */
  readonly sweepIntervalMs?: number;
}

/**
 * What every store shares: expired entries swept at most once per sweep interval, on use, then one
 * atomic "record unless live" step of the store's own.
 */
abstract class SweepingJtiStore implements JtiStore {
  readonly #now: () => number;
  readonly #sweepIntervalMs: number;
  #lastSweep = 0;

  protected constructor(options: JtiStoreOptions) {
    this.#now = options.now ?? Date.now;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
  }

  async seen(jti: string, expiresAtSec: number): Promise<boolean> {
    const nowMs = this.#now();
    const nowSec = Math.floor(nowMs / 1000);
    if (nowMs - this.#lastSweep >= this.#sweepIntervalMs) {
      this.#lastSweep = nowMs;
      await this.sweep(nowSec);
    }
    return this.recordUnlessLive(jti, expiresAtSec, nowSec);
  }

  /** Deletes the entries expired before `nowSec`. */
  protected abstract sweep(nowSec: number): Promise<void>;

  /** True if `jti` is held and not expired at `nowSec`; otherwise holds it until `expiresAtSec`, in one atomic step, and returns false. */
  protected abstract recordUnlessLive(jti: string, expiresAtSec: number, nowSec: number): Promise<boolean>;
}

/** Expiring entries in a Map. */
export class MemoryJtiStore extends SweepingJtiStore {
  readonly #entries = new Map<string, number>();

  constructor(options: JtiStoreOptions = {}) {
    super(options);
  }

  protected async sweep(nowSec: number): Promise<void> {
    for (const [key, exp] of this.#entries) if (exp < nowSec) this.#entries.delete(key);
  }

  protected async recordUnlessLive(jti: string, expiresAtSec: number, nowSec: number): Promise<boolean> {
    const exp = this.#entries.get(jti);
    if (exp !== undefined && exp >= nowSec) return true;
    this.#entries.set(jti, expiresAtSec);
    return false;
  }

  /** Entries held (expired ones until the next sweep). */
  get size(): number {
    return this.#entries.size;
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS token_jti (
  jti        TEXT    PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS token_jti_expires ON token_jti (expires_at);
`;

/**
 * The `token_jti` table of a SQLite database (the gateway's own, or a file of its own). One atomic
 * statement per check: insert, or take over an expired entry; no change means the jti is live.
 */
export class SqliteJtiStore extends SweepingJtiStore {
  readonly #db: Database.Database;
  readonly #owned: boolean;
  readonly #upsert: Database.Statement<[string, number, number]>;
  readonly #sweep: Database.Statement<[number]>;

  /** `database`: an open better-sqlite3 Database (left open by close()) or a file path (opened in WAL mode, closed by close()). */
  constructor(database: Database.Database | string, options: JtiStoreOptions = {}) {
    super(options);
    if (typeof database === 'string') {
      if (database !== ':memory:') fs.mkdirSync(path.dirname(database), { recursive: true, mode: 0o700 });
      this.#db = new Database(database);
      this.#db.pragma('journal_mode = WAL');
      this.#owned = true;
    } else {
      this.#db = database;
      this.#owned = false;
    }
    this.#db.exec(SCHEMA);
    this.#upsert = this.#db.prepare(
      `INSERT INTO token_jti (jti, expires_at) VALUES (?, ?)
       ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE token_jti.expires_at < ?`,
    );
    this.#sweep = this.#db.prepare('DELETE FROM token_jti WHERE expires_at < ?');
  }

  protected async sweep(nowSec: number): Promise<void> {
    this.#sweep.run(nowSec);
  }

  protected async recordUnlessLive(jti: string, expiresAtSec: number, nowSec: number): Promise<boolean> {
    return this.#upsert.run(jti, expiresAtSec, nowSec).changes === 0;
  }

  close(): void {
    if (this.#owned) this.#db.close();
  }
}

/** Runs one SQL statement on PostgreSQL (PgStore.query): the rows and how many it changed. */
export type PgQuery = (sql: string, values: readonly unknown[]) => Promise<{ rows: unknown[]; rowCount: number }>;

/**
 * The `token_jti` table of the gateway's PostgreSQL store (its migrations create it), shared by every
 * gateway process of the organization: the insert-or-take-over-if-expired is one atomic statement, so
 * of two replicas shown the same token at the same moment exactly one accepts it.
 */
export class PgJtiStore extends SweepingJtiStore {
  readonly #query: PgQuery;

  constructor(query: PgQuery, options: JtiStoreOptions = {}) {
    super(options);
    this.#query = query;
  }

  protected async sweep(nowSec: number): Promise<void> {
    await this.#query('DELETE FROM token_jti WHERE expires_at < $1', [nowSec]);
  }

  protected async recordUnlessLive(jti: string, expiresAtSec: number, nowSec: number): Promise<boolean> {
    const r = await this.#query(
      `INSERT INTO token_jti (jti, expires_at) VALUES ($1, $2)
       ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at WHERE token_jti.expires_at < $3`,
      [jti, expiresAtSec, nowSec],
    );
    return r.rowCount === 0;
  }
}
