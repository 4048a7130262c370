import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { OperationOutcomeError } from '../fhir/outcome';
import type { ResourceStore, StoredVersion } from './store';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS resource_version (
  resource_type TEXT    NOT NULL,
  id            TEXT    NOT NULL,
  version_id    INTEGER NOT NULL,
  last_updated  TEXT    NOT NULL,
  patient_id    TEXT,
  deleted       INTEGER NOT NULL DEFAULT 0,
  content       TEXT    NOT NULL,
  state         TEXT    NOT NULL CHECK (state IN ('pending', 'anchored')),
  PRIMARY KEY (resource_type, id, version_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_version_state ON resource_version (state) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS resource_version_patient ON resource_version (patient_id, resource_type);

CREATE TABLE IF NOT EXISTS patient_key (
  patient_id TEXT PRIMARY KEY,
  hmac_key   BLOB NOT NULL,
  created    TEXT NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: string;
  patient_id: string | null;
  deleted: number;
  content: string;
  state: 'pending' | 'anchored';
}

function toVersion(r: Row): StoredVersion {
  return {
    resourceType: r.resource_type,
    id: r.id,
    versionId: r.version_id,
    lastUpdated: r.last_updated,
    patientId: r.patient_id,
    deleted: r.deleted === 1,
    content: r.content,
    state: r.state,
  };
}

/** The default store: one SQLite file (WAL, synchronous FULL so an acknowledged write survives a crash). */
export class SqliteStore implements ResourceStore {
  readonly #db: Database.Database;
  readonly #stmts;

  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.exec(SCHEMA);
    const db = this.#db;
    this.#stmts = {
      insert: db.prepare(
        `INSERT INTO resource_version (resource_type, id, version_id, last_updated, patient_id, deleted, content, state)
         VALUES (@resourceType, @id, @versionId, @lastUpdated, @patientId, @deleted, @content, 'pending')`,
      ),
      markAnchored: db.prepare(`UPDATE resource_version SET state = 'anchored' WHERE resource_type = ? AND id = ? AND version_id = ?`),
      discard: db.prepare(`DELETE FROM resource_version WHERE resource_type = ? AND id = ? AND version_id = ? AND state = 'pending'`),
      pending: db.prepare(`SELECT * FROM resource_version WHERE state = 'pending' ORDER BY last_updated`),
      current: db.prepare(
        `SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND state = 'anchored' ORDER BY version_id DESC LIMIT 1`,
      ),
      version: db.prepare(`SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND version_id = ? AND state = 'anchored'`),
      getKey: db.prepare(`SELECT hmac_key FROM patient_key WHERE patient_id = ?`),
      putKey: db.prepare(`INSERT OR IGNORE INTO patient_key (patient_id, hmac_key, created) VALUES (?, ?, ?)`),
      ping: db.prepare('SELECT 1 AS ok'),
    };
  }

  insertPending(v: Omit<StoredVersion, 'state'>): void {
    try {
      this.#stmts.insert.run({ ...v, deleted: v.deleted ? 1 : 0 });
    } catch (err) {
      if (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('SQLITE_CONSTRAINT')) {
        throw new OperationOutcomeError('CONFLICT', `${v.resourceType}/${v.id} version ${v.versionId} already exists`);
      }
      throw err;
    }
  }

  markAnchored(resourceType: string, id: string, versionId: number): void {
    this.#stmts.markAnchored.run(resourceType, id, versionId);
  }

  discardPending(resourceType: string, id: string, versionId: number): void {
    this.#stmts.discard.run(resourceType, id, versionId);
  }

  listPending(): StoredVersion[] {
    return (this.#stmts.pending.all() as Row[]).map(toVersion);
  }

  readCurrent(resourceType: string, id: string): StoredVersion | undefined {
    const row = this.#stmts.current.get(resourceType, id) as Row | undefined;
    return row ? toVersion(row) : undefined;
  }

  readVersion(resourceType: string, id: string, versionId: number): StoredVersion | undefined {
    const row = this.#stmts.version.get(resourceType, id, versionId) as Row | undefined;
    return row ? toVersion(row) : undefined;
  }

  patientKey(patientId: string): Buffer {
    const existing = this.findPatientKey(patientId);
    if (existing) return existing;
    this.#stmts.putKey.run(patientId, randomBytes(32), new Date().toISOString());
    const created = this.findPatientKey(patientId);
    if (!created) throw new Error('patient key was not stored');
    return created;
  }

  findPatientKey(patientId: string): Buffer | undefined {
    const row = this.#stmts.getKey.get(patientId) as { hmac_key: Buffer } | undefined;
    return row?.hmac_key;
  }

  ping(): void {
    this.#stmts.ping.get();
  }

  close(): void {
    this.#db.close();
  }
}
