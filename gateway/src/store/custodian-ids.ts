/**
 * The custodian's ids: every stable id this gateway derives from a natural key (an MRN, a visit or order
 * number, an EHR id) is keyed with the custodian's id secret (HDX_ID_SECRET_FILE, kept off chain), so a
 * member reading ids on the ledger cannot test guessed MRNs against them, and two custodians' ids differ.
 *
 * Re-admission after erasure: every id also covers the erasure epoch of its natural key, kept here, off
 * chain, as `epochKey(secret, natural key)` (a keyed hash, never the key) → counter. Each derived id is
 * remembered with the epoch key it came from; erasing a patient bumps the epochs of the patient's
 * resources and forgets their links, so the returning patient's next message (or EHR page) maps to new
 * ids: nothing links them to the tombstones of the erased ones.
 *
 * Where the epochs live: a SQLite file of the gateway's (the default), or the PostgreSQL store's tables
 * (id_epoch, id_derived: HDX_STORE), so that every gateway process of the organization derives the same
 * ids: an erasure at one replica gives a new epoch at all of them. The mappers derive ids synchronously,
 * so `derive` reads the epochs changed since its last call first (PostgreSQL), runs the mapping on that
 * copy, then records the ids it derived in one statement.
 */
import { createHmac } from 'node:crypto';
import Database from 'better-sqlite3';
import { epochKey, keyedIds, type StableIds } from '@hdx/fhir-mappers';
import type { PgQuery } from '../auth/replay';

/** The PostgreSQL side: statements on the store's database, and one transaction. */
export interface PgIdsDatabase {
  readonly query: PgQuery;
  transaction<T>(fn: (query: PgQuery) => Promise<T>): Promise<T>;
}

export class CustodianIds {
  readonly #secret: Buffer;
  readonly #sqlite: Database.Database | undefined;
  readonly #pg: PgIdsDatabase | undefined;
  /** PostgreSQL: the epochs read so far (every key bumped at least once), and the last change seen. */
  readonly #epochs = new Map<string, number>();
  #seenSeq = 0;
  /** Ids derived during the current `derive` (PostgreSQL: recorded when it ends). */
  #derived: Array<[string, string]> | undefined;
  /** The keyed ids the mappers take (options.ids). */
  readonly ids: StableIds;

  /** `at`: the SQLite file of the epochs (e.g. `<dataDir>/id-epochs.db`, ':memory:' in tests), or the PostgreSQL store's database. */
  constructor(secret: Uint8Array, at: string | PgIdsDatabase) {
    this.#secret = Buffer.from(secret);
    let epochOf: (key: string) => number;
    let remember: (id: string, key: string) => void;
    if (typeof at === 'string') {
      const db = new Database(at);
      this.#sqlite = db;
      if (at !== ':memory:') {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS epochs (epoch_key TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS derived (id TEXT PRIMARY KEY, epoch_key TEXT NOT NULL) WITHOUT ROWID;
      `);
      const epoch = db.prepare<[string], { epoch: number }>('SELECT epoch FROM epochs WHERE epoch_key = ?');
      const insert = db.prepare<[string, string]>('INSERT OR IGNORE INTO derived (id, epoch_key) VALUES (?, ?)');
      epochOf = (key) => epoch.get(key)?.epoch ?? 0;
      remember = (id, key) => insert.run(id, key);
    } else {
      this.#pg = at;
      epochOf = (key) => this.#epochs.get(key) ?? 0;
      remember = (id, key) => {
        if (!this.#derived) throw new Error('PostgreSQL custodian ids are derived inside derive() (ids are recorded when it ends)');
        this.#derived.push([id, key]);
      };
    }
    const keyed = keyedIds(this.#secret, epochOf);
    this.ids = Object.freeze({
      id: (kind: string, ...parts: ReadonlyArray<string>): string => {
        const id = keyed.id(kind, ...parts);
        remember(id, epochKey(this.#secret, kind, ...parts));
        return id;
      },
    });
  }

  /**
   * PostgreSQL: every process sharing the store must key ids with the same secret, or one MRN would map
   * to two ids. The first process records a fingerprint of its secret (an HMAC of a constant: it reveals
   * nothing of the secret); a process with another secret is refused at start, naming the fix.
   */
  async checkSharedSecret(): Promise<void> {
    if (!this.#pg) return;
    const fingerprint = createHmac('sha256', this.#secret).update('hdx id-secret fingerprint').digest('hex');
    await this.#pg.query('INSERT INTO id_secret (fingerprint) VALUES ($1) ON CONFLICT (only_row) DO NOTHING', [fingerprint]);
    const [row] = (await this.#pg.query('SELECT fingerprint FROM id_secret', [])).rows as Array<{ fingerprint: string }>;
    if (row?.fingerprint !== fingerprint) {
      throw new Error(
        'the id secret (HDX_ID_SECRET_FILE) is not the one the PostgreSQL store was written with: every gateway process sharing the store must use the same id secret file (copy it, mode 600)',
      );
    }
  }

  /**
   * Runs `fn` (a mapping, which derives many ids) and records the ids it derives: in one SQLite
   * transaction (one commit instead of one per id), or, on PostgreSQL, after reading the epochs other
   * processes changed and then in one statement.
   */
  async derive<T>(fn: () => T): Promise<T> {
    if (this.#sqlite) return this.#sqlite.transaction(fn)();
    const pg = this.#pg as PgIdsDatabase;
    const changed = await pg.query('SELECT epoch_key, epoch, seq FROM id_epoch WHERE seq > $1', [this.#seenSeq]);
    for (const r of changed.rows as Array<{ epoch_key: string; epoch: number; seq: string }>) {
      this.#epochs.set(r.epoch_key, r.epoch);
      this.#seenSeq = Math.max(this.#seenSeq, Number(r.seq));
    }
    const derived: Array<[string, string]> = [];
    this.#derived = derived;
    let result: T;
    try {
      result = fn();
    } finally {
      this.#derived = undefined;
    }
    if (derived.length > 0) {
      await pg.query('INSERT INTO id_derived (id, epoch_key) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (id) DO NOTHING', [
        derived.map(([id]) => id),
        derived.map(([, key]) => key),
      ]);
    }
    return result;
  }

  /**
   * The stable local id of an EHR resource (`hdx sync`): keyed from the EHR base URL and `Type/id` (and
   * the epoch of that key). Inside `derive`.
   */
  ehrLocalId(ehrBase: string, type: string, id: string): string {
    return this.ids.id('ehr-sync', ehrBase.replace(/\/+$/, ''), `${type}/${id}`);
  }

  /**
   * At erasure of a patient, with the local ids of the patient's resources (the Patient included): a new
   * epoch for each natural key they were derived from (the next message or page about that person maps
   * to new ids, at every process sharing the epochs), and the links from the ids to the keys are
   * forgotten. Ids not derived here (created through the FHIR API) are passed over. Returns how many
   * keys got a new epoch.
   */
  async forget(ids: readonly string[]): Promise<number> {
    const unique = [...new Set(ids)];
    if (this.#sqlite) {
      const db = this.#sqlite;
      const find = db.prepare<[string], { epoch_key: string }>('SELECT epoch_key FROM derived WHERE id = ?');
      const bump = db.prepare('INSERT INTO epochs (epoch_key, epoch) VALUES (?, 1) ON CONFLICT (epoch_key) DO UPDATE SET epoch = epoch + 1');
      const drop = db.prepare('DELETE FROM derived WHERE id = ?');
      return db.transaction((): number => {
        let bumped = 0;
        for (const id of unique) {
          const row = find.get(id);
          if (!row) continue;
          bump.run(row.epoch_key);
          drop.run(id);
          bumped++;
        }
        return bumped;
      })();
    }
    return (this.#pg as PgIdsDatabase).transaction(async (query) => {
      const found = (await query('SELECT id, epoch_key FROM id_derived WHERE id = ANY($1::text[])', [unique])).rows as Array<{ id: string; epoch_key: string }>;
      for (const row of found) {
        await query(
          `INSERT INTO id_epoch (epoch_key, epoch, seq) VALUES ($1, 1, nextval('id_epoch_seq'))
           ON CONFLICT (epoch_key) DO UPDATE SET epoch = id_epoch.epoch + 1, seq = nextval('id_epoch_seq')`,
          [row.epoch_key],
        );
      }
      await query('DELETE FROM id_derived WHERE id = ANY($1::text[])', [found.map((r) => r.id)]);
      return found.length;
    });
  }

  close(): void {
    this.#sqlite?.close();
  }
}
