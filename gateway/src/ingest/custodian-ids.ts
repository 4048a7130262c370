/**
 * The custodian's ids: every stable id this gateway derives from a natural key (an MRN, a visit or order
 * number, an EHR id) is keyed with the custodian's id secret (HDX_ID_SECRET_FILE, kept off chain), so a
 * member reading ids on the ledger cannot test guessed MRNs against them, and two custodians' ids differ.
 *
 * Re-admission after erasure: a subject's (Patient's) id also covers its erasure epoch, kept here, off
 * chain, as `subjectKey(secret, natural key)` (a keyed hash, never the key) → counter. Each derived subject
 * id is remembered with the subject key it came from; erasing the patient bumps that key's epoch and
 * forgets the link, so the returning patient's next message maps to a new Patient id (and everything
 * keyed under it to new ids): nothing links it to the tombstones of the erased one.
 */
import Database from 'better-sqlite3';
import { keyedIds, type StableIds, subjectKey } from '@hdx/fhir-mappers';

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
      CREATE TABLE IF NOT EXISTS epochs (subject_key TEXT PRIMARY KEY, epoch INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS subjects (id TEXT PRIMARY KEY, subject_key TEXT NOT NULL) WITHOUT ROWID;
    `);
    this.#epoch = this.#db.prepare('SELECT epoch FROM epochs WHERE subject_key = ?');
    this.#remember = this.#db.prepare('INSERT OR IGNORE INTO subjects (id, subject_key) VALUES (?, ?)');
    const keyed = keyedIds(this.#secret, (key) => this.#epoch.get(key)?.epoch ?? 0);
    this.ids = Object.freeze({
      id: keyed.id,
      subject: (kind: string, ...parts: ReadonlyArray<string>): string => {
        const id = keyed.subject(kind, ...parts);
        this.#remember.run(id, subjectKey(this.#secret, kind, ...parts));
        return id;
      },
    });
  }

  /**
   * The stable local id of an EHR resource (`hdx sync`): keyed from the EHR base URL and `Type/id`;
   * a Patient's is a subject id (with its erasure epoch).
   */
  ehrLocalId(ehrBase: string, type: string, id: string): string {
    const base = ehrBase.replace(/\/+$/, '');
    return type === 'Patient' ? this.ids.subject('ehr-sync/Patient', base, id) : this.ids.id('ehr-sync', base, `${type}/${id}`);
  }

  /**
   * At erasure of the subject with this local id: a new epoch for the natural key it was derived from (the
   * next message about that person gets a new id), and the link from the id to the key is forgotten.
   * Returns false when this id was not derived here (a Patient created through the FHIR API has no key).
   */
  forgetSubject(id: string): boolean {
    return this.#db.transaction((): boolean => {
      const row = this.#db.prepare('SELECT subject_key FROM subjects WHERE id = ?').get(id) as { subject_key: string } | undefined;
      if (!row) return false;
      this.#db.prepare('INSERT INTO epochs (subject_key, epoch) VALUES (?, 1) ON CONFLICT (subject_key) DO UPDATE SET epoch = epoch + 1').run(row.subject_key);
      this.#db.prepare('DELETE FROM subjects WHERE id = ?').run(id);
      return true;
    })();
  }

  close(): void {
    this.#db.close();
  }
}
