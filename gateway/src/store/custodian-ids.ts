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
 */
import Database from 'better-sqlite3';
import { epochKey, keyedIds, type StableIds } from '@hdx/fhir-mappers';

export class CustodianIds {
  readonly #db: Database.Database;
  readonly #secret: Buffer;
  readonly #epoch: Database.Statement<[string], { epoch: number }>;
  readonly #remember: Database.Statement<[string, string]>;
  /** The keyed ids the mappers take (options.ids). */
  readonly ids: StableIds;

  /** `file`: the SQLite file of the epochs (e.g. `<dataDir>/id-epochs.db`), or ':memory:' in tests. */
  constructor(secret: Uint8Array, file: string) {
    this.#secret = Buffer.from(secret);
    this.#db = new Database(file);
    if (file !== ':memory:') {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
    }
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS epochs (epoch_key TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS derived (id TEXT PRIMARY KEY, epoch_key TEXT NOT NULL) WITHOUT ROWID;
    `);
    this.#epoch = this.#db.prepare('SELECT epoch FROM epochs WHERE epoch_key = ?');
    this.#remember = this.#db.prepare('INSERT OR IGNORE INTO derived (id, epoch_key) VALUES (?, ?)');
    const keyed = keyedIds(this.#secret, (key) => this.#epoch.get(key)?.epoch ?? 0);
    this.ids = Object.freeze({
      id: (kind: string, ...parts: ReadonlyArray<string>): string => {
        const id = keyed.id(kind, ...parts);
        this.#remember.run(id, epochKey(this.#secret, kind, ...parts));
        return id;
      },
    });
  }

  /**
   * Runs `fn` (a mapping, which derives many ids) in one SQLite transaction: the ids it derives are
   * remembered with one commit instead of one per id.
   */
  derive<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /**
   * The stable local id of an EHR resource (`hdx sync`): keyed from the EHR base URL and `Type/id` (and
   * the epoch of that key).
   */
  ehrLocalId(ehrBase: string, type: string, id: string): string {
    return this.ids.id('ehr-sync', ehrBase.replace(/\/+$/, ''), `${type}/${id}`);
  }

  /**
   * At erasure of a patient, with the local ids of the patient's resources (the Patient included): a new
   * epoch for each natural key they were derived from (the next message or page about that person maps
   * to new ids), and the links from the ids to the keys are forgotten. Ids not derived here (created
   * through the FHIR API) are passed over. Returns how many keys got a new epoch.
   */
  forget(ids: readonly string[]): number {
    const find = this.#db.prepare('SELECT epoch_key FROM derived WHERE id = ?');
    const bump = this.#db.prepare('INSERT INTO epochs (epoch_key, epoch) VALUES (?, 1) ON CONFLICT (epoch_key) DO UPDATE SET epoch = epoch + 1');
    const drop = this.#db.prepare('DELETE FROM derived WHERE id = ?');
    return this.#db.transaction((): number => {
      let bumped = 0;
      for (const id of new Set(ids)) {
        const row = find.get(id) as { epoch_key: string } | undefined;
        if (!row) continue;
        bump.run(row.epoch_key);
        drop.run(id);
        bumped++;
      }
      return bumped;
    })();
  }

  close(): void {
    this.#db.close();
  }
}
