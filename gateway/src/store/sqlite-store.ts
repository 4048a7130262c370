import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { OperationOutcomeError } from '../errors';
import { clinicalDateOf, codeTokensOf, SUPPORTED_TYPES } from '../model/definitions';
import { accessClassOf } from '../model/access-class';
import { capIndexValue, INDEX_VALUE_BYTES, indexEntriesOf, referenceIdentifierEntries, withCanonical } from './search-index';
import { UCUM_SYSTEM } from './ucum';
import { CLASS_OF_ROW, HISTORY_ORDER, historyClassesSql, historyWhere, orderBy, whereOf, type SqlDialect } from './sql-search';
import type { AccessEntryInput } from '../ledger/ledger-client';
import type {
  HistoryClass,
  HistoryQuery,
  IndexEntry,
  IndexedVersion,
  NewVersion,
  PendingWrite,
  PendingWriteRef,
  ReadyChange,
  ResourceStore,
  SearchClass,
  StoredPendingWrite,
  StoreQuery,
  StoredVersion,
  VersionKey,
} from './store';
import {
  accessClassColumn,
  type ClassRow,
  coPatientsColumn,
  groupPendingWrites,
  type PendingWriteMeta,
  toHistoryClass,
  toSearchClass,
  toVersion,
  type VersionRow,
} from './sql-rows';

/** SQLite: the permitted class keys as a JSON array, read with json_each. */
const SQLITE: SqlDialect = {
  classesIn: (expr, name, values, params) => {
    params[name] = JSON.stringify(values);
    return `${expr} IN (SELECT value FROM json_each(@${name}))`;
  },
};

/** A quantity row of the index, as migration 9 reads it. */
interface CanonicalRow {
  rowid: number;
  v1: string;
  v2: string;
  n1: number;
  n2: number;
}

interface SearchColumnRow {
  resource_type: string;
  id: string;
  version_id: number;
  content: string;
}

/** The clinical date and code tokens of stored versions, computed from their content. */
function backfillSearchColumns(rows: readonly SearchColumnRow[], update: Database.Statement): void {
  for (const r of rows) {
    if (!SUPPORTED_TYPES.has(r.resource_type)) continue;
    const resource = JSON.parse(r.content) as Record<string, unknown>;
    const codes = codeTokensOf(resource);
    update.run(clinicalDateOf(resource), codes.length > 0 ? ` ${codes.join(' ')} ` : '', r.resource_type, r.id, r.version_id);
  }
}

/** An index row as migration 6 wrote it (before the canonical columns of migration 9). */
const INSERT_INDEX_6 = 'INSERT INTO search_index (resource_type, id, version_id, param, v1, v2, v3, n1, n2, grp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
const INSERT_INDEX = 'INSERT INTO search_index (resource_type, id, version_id, param, v1, v2, v3, n1, n2, grp, cu, cn1, cn2) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

/** Index rows one multi-row INSERT takes at most (13 parameters each, well under SQLite's 32,766). */
const INDEX_ROWS_PER_STATEMENT = 64;

/** INSERT_INDEX for `rows` rows at once. */
function insertIndexRows(rows: number): string {
  return `${INSERT_INDEX}${', (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'.repeat(rows - 1)}`;
}

/** Index rows of a version's content (migrations and writes alike): the columns of INSERT_INDEX, whose first ten are INSERT_INDEX_6's. */
const INDEX_COLUMNS = 13;

function indexRow(v: { resourceType: string; id: string; versionId: number }, e: IndexEntry): unknown[] {
  return [v.resourceType, v.id, v.versionId, e.param, e.v1, e.v2, e.v3 ?? '', e.n1 ?? null, e.n2 ?? null, e.grp ?? 0, e.cu ?? '', e.cn1 ?? null, e.cn2 ?? null];
}

/**
 * Schema migrations, applied in order and recorded in PRAGMA user_version, each in one transaction.
 * Never edit a released step: add a new one.
 */
const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  // 1: resource versions and per-patient keys (the first gateway release).
  (db) =>
    db.exec(`
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
    `),
  // 2: search columns (clinical date, code tokens, backfilled from the stored content) and patient DID links.
  (db) => {
    db.exec(`
      ALTER TABLE resource_version ADD COLUMN clinical_date TEXT;
      ALTER TABLE resource_version ADD COLUMN codes TEXT NOT NULL DEFAULT '';
      CREATE INDEX IF NOT EXISTS resource_version_updated ON resource_version (resource_type, last_updated);
      CREATE TABLE IF NOT EXISTS patient_did (
        patient_id TEXT PRIMARY KEY,
        did        TEXT NOT NULL UNIQUE
      ) WITHOUT ROWID;
    `);
    const rows = db.prepare('SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0').all() as SearchColumnRow[];
    backfillSearchColumns(rows, db.prepare('UPDATE resource_version SET clinical_date = ?, codes = ? WHERE resource_type = ? AND id = ? AND version_id = ?'));
  },
  // 3: whole pending writes (their DID links and new patients, to undo them after a restart) and the
  // change entries of each write, durable with its versions and made ready in the transaction that
  // marks them anchored (then delivered to the audit outbox or the ledger, and deleted).
  (db) =>
    db.exec(`
      ALTER TABLE resource_version ADD COLUMN write_id TEXT;
      CREATE INDEX IF NOT EXISTS resource_version_write ON resource_version (write_id) WHERE write_id IS NOT NULL;
      CREATE TABLE IF NOT EXISTS pending_write (
        write_id     TEXT PRIMARY KEY,
        did_links    TEXT NOT NULL,
        new_patients TEXT NOT NULL,
        created      TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS change_entry (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_id TEXT    NOT NULL UNIQUE,
        write_id TEXT    NOT NULL,
        entry    TEXT    NOT NULL,
        state    TEXT    NOT NULL CHECK (state IN ('pending', 'ready')),
        ready_at INTEGER
      );
      CREATE INDEX IF NOT EXISTS change_entry_write ON change_entry (write_id);
      CREATE INDEX IF NOT EXISTS change_entry_ready ON change_entry (state, seq);
    `),
  // 4: the search columns from the spec's SearchParameter definitions (FHIRPath) instead of a table of 11 types.
  (db) => {
    const rows = db.prepare('SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0').all() as SearchColumnRow[];
    backfillSearchColumns(rows, db.prepare('UPDATE resource_version SET clinical_date = ?, codes = ? WHERE resource_type = ? AND id = ? AND version_id = ?'));
  },
  // 5: the search index: one row per value of each indexed SearchParameter of a version (store/search-index.ts).
  (db) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS search_index (
        resource_type TEXT    NOT NULL,
        id            TEXT    NOT NULL,
        version_id    INTEGER NOT NULL,
        param         TEXT    NOT NULL,
        v1            TEXT    NOT NULL,
        v2            TEXT    NOT NULL
      );
      CREATE INDEX IF NOT EXISTS search_index_value ON search_index (resource_type, param, v1, v2);
      CREATE INDEX IF NOT EXISTS search_index_version ON search_index (resource_type, id, version_id);
    `);
    const insert = db.prepare('INSERT INTO search_index (resource_type, id, version_id, param, v1, v2) VALUES (?, ?, ?, ?, ?, ?)');
    const rows = db.prepare('SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0').all() as SearchColumnRow[];
    for (const r of rows) {
      if (!SUPPORTED_TYPES.has(r.resource_type)) continue;
      for (const e of indexEntriesOf(JSON.parse(r.content) as Record<string, unknown>)) insert.run(r.resource_type, r.id, r.version_id, e.param, e.v1, e.v2);
    }
  },
  // 6: number, quantity and composite parameters: numeric bounds, a unit and the element a composite's
  // components share; the index is rebuilt from the stored content.
  (db) => {
    db.exec(`
      ALTER TABLE search_index ADD COLUMN v3 TEXT NOT NULL DEFAULT '';
      ALTER TABLE search_index ADD COLUMN n1 REAL;
      ALTER TABLE search_index ADD COLUMN n2 REAL;
      ALTER TABLE search_index ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX IF NOT EXISTS search_index_number ON search_index (resource_type, param, n1, n2);
      DELETE FROM search_index;
    `);
    const insert = db.prepare(INSERT_INDEX_6);
    const rows = db.prepare('SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0').all() as SearchColumnRow[];
    for (const r of rows) {
      if (!SUPPORTED_TYPES.has(r.resource_type)) continue;
      const key = { resourceType: r.resource_type, id: r.id, versionId: r.version_id };
      for (const e of indexEntriesOf(JSON.parse(r.content) as Record<string, unknown>)) insert.run(...indexRow(key, e).slice(0, 10));
    }
  },
  // 7: the access class of each version (model/access-class.ts), so a search decides consent once per
  // patient and class and pages through any number of matches; backfilled from the stored content.
  (db) => {
    db.exec(`
      ALTER TABLE resource_version ADD COLUMN access_class TEXT;
      CREATE INDEX IF NOT EXISTS resource_version_class ON resource_version (resource_type, patient_id, access_class);
    `);
    const update = db.prepare('UPDATE resource_version SET access_class = ? WHERE resource_type = ? AND id = ? AND version_id = ?');
    const rows = db.prepare('SELECT resource_type, id, version_id, deleted, content FROM resource_version').all() as Array<SearchColumnRow & { deleted: number }>;
    for (const r of rows) update.run(accessClassOf(JSON.parse(r.content) as Record<string, unknown>, r.deleted === 1), r.resource_type, r.id, r.version_id);
  },
  // 8: index values cut at INDEX_VALUE_BYTES (search-index.ts capIndexValue), as searches now cut theirs.
  (db) => {
    const long = db
      .prepare(`SELECT rowid, v1, v2, v3 FROM search_index WHERE length(CAST(v1 AS BLOB)) > ? OR length(CAST(v2 AS BLOB)) > ? OR length(CAST(v3 AS BLOB)) > ?`)
      .all(INDEX_VALUE_BYTES, INDEX_VALUE_BYTES, INDEX_VALUE_BYTES) as Array<{ rowid: number; v1: string; v2: string; v3: string }>;
    const update = db.prepare('UPDATE search_index SET v1 = ?, v2 = ?, v3 = ? WHERE rowid = ?');
    for (const r of long) update.run(capIndexValue(r.v1), capIndexValue(r.v2), capIndexValue(r.v3), r.rowid);
  },
  // 9: UCUM canonical units in quantity search (store/ucum.ts): a quantity's unit in base units and its
  // values in it. Backfilled from the index rows themselves (system, code, n1, n2: what index time reads),
  // so no resource is indexed again.
  (db) => {
    db.exec(`
      ALTER TABLE search_index ADD COLUMN cu TEXT NOT NULL DEFAULT '';
      ALTER TABLE search_index ADD COLUMN cn1 REAL;
      ALTER TABLE search_index ADD COLUMN cn2 REAL;
      CREATE INDEX IF NOT EXISTS search_index_canonical ON search_index (resource_type, param, cu, cn1);
    `);
    const rows = db.prepare(`SELECT rowid, v1, v2, n1, n2 FROM search_index WHERE v1 = ? AND n1 IS NOT NULL AND n2 IS NOT NULL`).all(UCUM_SYSTEM) as CanonicalRow[];
    const update = db.prepare('UPDATE search_index SET cu = ?, cn1 = ?, cn2 = ? WHERE rowid = ?');
    for (const r of rows) {
      const c = withCanonical(r);
      if (c.cu !== undefined) update.run(c.cu, c.cn1 ?? null, c.cn2 ?? null, r.rowid);
    }
  },
  // 10: the logical identifiers of references (Reference.identifier, for :identifier): the versions
  // that may hold one (a single Identifier object in their JSON) are indexed again, their new rows added.
  (db) => {
    const insert = db.prepare(INSERT_INDEX);
    const rows = db.prepare(`SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0 AND content LIKE '%"identifier":{%'`).all() as SearchColumnRow[];
    for (const r of rows) {
      if (!SUPPORTED_TYPES.has(r.resource_type)) continue;
      const key = { resourceType: r.resource_type, id: r.id, versionId: r.version_id };
      for (const e of referenceIdentifierEntries(JSON.parse(r.content) as Record<string, unknown>)) insert.run(...indexRow(key, e));
    }
  },
  // 11: the other patients of a version in several patients' compartments (` id1 id2 `, NULL for most):
  // each one's consents govern it too. No version written before can have any (they were refused).
  (db) => {
    // Added only where missing: a store taken back to an older schema version (the migration tests) keeps it.
    const columns = db.prepare('PRAGMA table_info(resource_version)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'co_patients')) db.exec(`ALTER TABLE resource_version ADD COLUMN co_patients TEXT;`);
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the store was written by a newer gateway (schema ${current}, this one knows ${MIGRATIONS.length}); upgrade the gateway`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      MIGRATIONS[v]?.(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

function isConstraintError(err: unknown): boolean {
  return err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('SQLITE_CONSTRAINT');
}

/** The default store: one SQLite file (WAL, synchronous FULL so an acknowledged write survives a crash). */
export class SqliteStore implements ResourceStore {
  readonly #db: Database.Database;
  readonly #stmts;
  readonly #insertWrite: (w: PendingWrite) => void;
  readonly #discardWrite: (w: PendingWriteRef) => void;
  readonly #markAll: (versions: readonly VersionKey[]) => void;
  readonly #markWrite: (w: PendingWriteRef) => void;

  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    migrate(this.#db);
    const db = this.#db;
    this.#stmts = {
      insert: db.prepare(
        `INSERT INTO resource_version (resource_type, id, version_id, last_updated, patient_id, deleted, content, clinical_date, codes, access_class, co_patients, write_id, state)
         VALUES (@resourceType, @id, @versionId, @lastUpdated, @patientId, @deleted, @content, @date, @codes, @accessClass, @coPatients, @writeId, 'pending')`,
      ),
      markAnchored: db.prepare(`UPDATE resource_version SET state = 'anchored' WHERE resource_type = ? AND id = ? AND version_id = ?`),
      discard: db.prepare(`DELETE FROM resource_version WHERE resource_type = ? AND id = ? AND version_id = ? AND state = 'pending'`),
      dropIndexOf: db.prepare('DELETE FROM search_index WHERE resource_type = @t AND id = @id AND version_id = @v'),
      held: db.prepare('SELECT 1 FROM resource_version WHERE resource_type = @t AND id = @id AND version_id = @v'),
      discardIndex: db.prepare(
        `DELETE FROM search_index WHERE resource_type = @t AND id = @id AND version_id = @v
         AND EXISTS (SELECT 1 FROM resource_version WHERE resource_type = @t AND id = @id AND version_id = @v AND state = 'pending')`,
      ),
      pending: db.prepare(`SELECT * FROM resource_version WHERE state = 'pending' ORDER BY last_updated`),
      current: db.prepare(`SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND state = 'anchored' ORDER BY version_id DESC LIMIT 1`),
      version: db.prepare(`SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND version_id = ? AND state = 'anchored'`),
      history: db.prepare(`SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND state = 'anchored' ORDER BY version_id DESC`),
      linkDid: db.prepare(`INSERT INTO patient_did (patient_id, did) VALUES (?, ?) ON CONFLICT (patient_id) DO UPDATE SET did = excluded.did`),
      didOf: db.prepare(`SELECT did FROM patient_did WHERE patient_id = ?`),
      patientOf: db.prepare(`SELECT patient_id FROM patient_did WHERE did = ?`),
      getKey: db.prepare(`SELECT hmac_key FROM patient_key WHERE patient_id = ?`),
      putKey: db.prepare(`INSERT OR IGNORE INTO patient_key (patient_id, hmac_key, created) VALUES (?, ?, ?)`),
      ping: db.prepare('SELECT 1 AS ok'),
      newKey: db.prepare(`INSERT INTO patient_key (patient_id, hmac_key, created) VALUES (?, ?, ?)`),
      dropNewKey: db.prepare(`DELETE FROM patient_key WHERE patient_id = ? AND NOT EXISTS (SELECT 1 FROM resource_version WHERE patient_id = ?)`),
      unlinkDid: db.prepare(`DELETE FROM patient_did WHERE patient_id = ? AND did = ?`),
      insertWriteRow: db.prepare(`INSERT INTO pending_write (write_id, did_links, new_patients, created) VALUES (?, ?, ?, ?)`),
      writeRow: db.prepare(`SELECT did_links, new_patients FROM pending_write WHERE write_id = ?`),
      deleteWriteRow: db.prepare(`DELETE FROM pending_write WHERE write_id = ?`),
      insertChange: db.prepare(`INSERT INTO change_entry (entry_id, write_id, entry, state) VALUES (?, ?, ?, 'pending')`),
      readyChangesOf: db.prepare(`UPDATE change_entry SET state = 'ready', ready_at = ? WHERE write_id = ? AND state = 'pending'`),
      dropPendingChangesOf: db.prepare(`DELETE FROM change_entry WHERE write_id = ? AND state = 'pending'`),
      readyChanges: db.prepare(`SELECT entry_id, entry, ready_at FROM change_entry WHERE state = 'ready' ORDER BY seq LIMIT ?`),
      dropChange: db.prepare(`DELETE FROM change_entry WHERE entry_id = ? AND state = 'ready'`),
      readyStats: db.prepare(`SELECT COUNT(*) AS n, MIN(ready_at) AS oldest FROM change_entry WHERE state = 'ready'`),
      pendingOf: db.prepare(`SELECT * FROM resource_version WHERE resource_type = ? AND id = ? AND state = 'pending' ORDER BY version_id`),
      orphanWrites: db.prepare(
        `SELECT write_id FROM pending_write pw WHERE NOT EXISTS (SELECT 1 FROM resource_version rv WHERE rv.write_id = pw.write_id AND rv.state = 'pending')`,
      ),
    };
    // One SQLite transaction each: a failure anywhere rolls the whole write back.
    this.#insertWrite = db.transaction((w: PendingWrite) => {
      const now = new Date().toISOString();
      for (const k of w.newPatientKeys) {
        try {
          this.#stmts.newKey.run(k.patientId, k.key, now);
        } catch (err) {
          if (isConstraintError(err)) throw new OperationOutcomeError('CONFLICT', `Patient/${k.patientId} already has a key: retry`);
          throw err;
        }
      }
      for (const l of w.didLinks) {
        try {
          this.#stmts.linkDid.run(l.patientId, l.did);
        } catch (err) {
          if (isConstraintError(err)) throw new OperationOutcomeError('CONFLICT', `The DID of Patient/${l.patientId} is already linked to another Patient on this server`);
          throw err;
        }
      }
      // The versions and their index rows, the write's id on each (one savepoint for all: the transaction's);
      // the rows go out a statement's worth at a time, never all held at once.
      const index: unknown[] = [];
      for (const v of w.versions) {
        this.#insertVersion(v, w.writeId ?? null);
        if (v.deleted) continue;
        for (const e of v.index ?? []) {
          index.push(...indexRow(v, e));
          if (index.length === INDEX_ROWS_PER_STATEMENT * INDEX_COLUMNS) this.#insertIndexRows(index.splice(0));
        }
      }
      this.#insertIndexRows(index);
      if (w.writeId !== undefined) {
        const writeId = w.writeId;
        this.#stmts.insertWriteRow.run(
          writeId,
          JSON.stringify(w.didLinks.map((l) => ({ patientId: l.patientId, did: l.did, previous: l.previous ?? null }))),
          JSON.stringify(w.newPatientKeys.map((k) => k.patientId)),
          now,
        );
        for (const e of w.changeEntries ?? []) {
          if (typeof e.entryId !== 'string' || e.entryId.length === 0) throw new Error('a change entry needs its entryId before it is stored');
          this.#stmts.insertChange.run(e.entryId, writeId, JSON.stringify(e));
        }
      } else if ((w.changeEntries?.length ?? 0) > 0) {
        throw new Error('change entries are stored with a write: give the write a writeId');
      }
    });
    this.#discardWrite = db.transaction((w: PendingWriteRef) => {
      if (w.writeId !== undefined) {
        this.#stmts.dropPendingChangesOf.run(w.writeId);
        this.#stmts.deleteWriteRow.run(w.writeId);
      }
      for (const v of w.versions) this.#discardOne(v.resourceType, v.id, v.versionId);
      for (const l of w.didLinks) {
        if (l.previous === undefined) this.#stmts.unlinkDid.run(l.patientId, l.did);
        else this.#stmts.linkDid.run(l.patientId, l.previous);
      }
      for (const k of w.newPatientKeys) this.#stmts.dropNewKey.run(k.patientId, k.patientId);
    });
    this.#markAll = db.transaction((versions: readonly VersionKey[]) => {
      for (const v of versions) this.#stmts.markAnchored.run(v.resourceType, v.id, v.versionId);
    });
    this.#markWrite = db.transaction((w: PendingWriteRef) => {
      for (const v of w.versions) this.#stmts.markAnchored.run(v.resourceType, v.id, v.versionId);
      if (w.writeId !== undefined) {
        this.#stmts.readyChangesOf.run(Date.now(), w.writeId);
        this.#stmts.deleteWriteRow.run(w.writeId);
      }
    });
  }

  /** Removes a pending version and its index entries (never an anchored one). */
  #discardOne(resourceType: string, id: string, versionId: number): void {
    this.#stmts.discardIndex.run({ t: resourceType, id, v: versionId });
    this.#stmts.discard.run(resourceType, id, versionId);
  }

  /** Multi-row INSERT_INDEX statements, by their number of rows (prepared once each). */
  readonly #insertIndexBy = new Map<number, Database.Statement>();

  /** Index rows (indexRow's columns, one row after another) in statements of up to INDEX_ROWS_PER_STATEMENT rows. */
  #insertIndexRows(values: readonly unknown[]): void {
    const width = INDEX_ROWS_PER_STATEMENT * INDEX_COLUMNS;
    for (let at = 0; at < values.length; at += width) {
      const chunk = values.slice(at, at + width);
      const rows = chunk.length / INDEX_COLUMNS;
      let stmt = this.#insertIndexBy.get(rows);
      if (!stmt) {
        stmt = this.#db.prepare(insertIndexRows(rows));
        this.#insertIndexBy.set(rows, stmt);
      }
      stmt.run(chunk);
    }
  }

  async insertPending(v: NewVersion): Promise<void> {
    this.#db.transaction(() => {
      this.#insertVersion(v, null);
      if (!v.deleted) this.#insertIndexRows((v.index ?? []).flatMap((e) => indexRow(v, e)));
    })();
  }

  /** A version's row, pending (a version already there is a CONFLICT); its index rows are the caller's. */
  #insertVersion(v: NewVersion, writeId: string | null): void {
    const { index: _index, coPatientIds: _co, ...row } = v;
    try {
      this.#stmts.insert.run({
        ...row,
        coPatients: coPatientsColumn(v.coPatientIds),
        deleted: v.deleted ? 1 : 0,
        codes: v.codes.length > 0 ? ` ${v.codes.join(' ')} ` : '',
        accessClass: accessClassColumn(v),
        writeId,
      });
    } catch (err) {
      if (isConstraintError(err)) {
        throw new OperationOutcomeError('CONFLICT', `${v.resourceType}/${v.id} version ${v.versionId} already exists`);
      }
      throw err;
    }
  }

  async insertPendingWrite(write: PendingWrite): Promise<void> {
    this.#insertWrite(write);
  }

  async discardPendingWrite(write: PendingWriteRef): Promise<void> {
    this.#discardWrite(write);
  }

  async markAnchoredAll(versions: readonly VersionKey[]): Promise<void> {
    this.#markAll(versions);
  }

  async markWriteAnchored(write: PendingWriteRef): Promise<void> {
    this.#markWrite(write);
  }

  async indexVersions(versions: readonly IndexedVersion[]): Promise<void> {
    this.#db.transaction(() => {
      const index: unknown[] = [];
      for (const v of versions) {
        const key = { t: v.resourceType, id: v.id, v: v.versionId };
        this.#stmts.dropIndexOf.run(key);
        if (this.#stmts.held.get(key) === undefined) continue;
        for (const e of v.index) index.push(...indexRow(v, e));
      }
      this.#insertIndexRows(index);
    })();
  }

  async listPendingWrites(): Promise<StoredPendingWrite[]> {
    // A write whose versions are all gone (erased meanwhile) leaves nothing to settle.
    for (const { write_id } of this.#stmts.orphanWrites.all() as Array<{ write_id: string }>) {
      this.#db.transaction(() => {
        this.#stmts.dropPendingChangesOf.run(write_id);
        this.#stmts.deleteWriteRow.run(write_id);
      })();
    }
    return groupPendingWrites(this.#stmts.pending.all() as VersionRow[], (writeId) => this.#stmts.writeRow.get(writeId) as PendingWriteMeta | undefined);
  }

  async pendingVersions(resourceType: string, id: string): Promise<StoredVersion[]> {
    return (this.#stmts.pendingOf.all(resourceType, id) as VersionRow[]).map(toVersion);
  }

  async readyChanges(limit: number): Promise<ReadyChange[]> {
    return (this.#stmts.readyChanges.all(limit) as Array<{ entry_id: string; entry: string; ready_at: number }>).map((r) => ({
      entryId: r.entry_id,
      entry: JSON.parse(r.entry) as AccessEntryInput,
      readyAt: r.ready_at,
    }));
  }

  async dropChanges(entryIds: readonly string[]): Promise<void> {
    this.#db.transaction(() => {
      for (const id of entryIds) this.#stmts.dropChange.run(id);
    })();
  }

  async readyChangeStats(): Promise<{ count: number; oldestReadyAt: number | undefined }> {
    const r = this.#stmts.readyStats.get() as { n: number; oldest: number | null };
    return { count: r.n, oldestReadyAt: r.oldest ?? undefined };
  }

  async markAnchored(resourceType: string, id: string, versionId: number): Promise<void> {
    this.#stmts.markAnchored.run(resourceType, id, versionId);
  }

  async discardPending(resourceType: string, id: string, versionId: number): Promise<void> {
    this.#db.transaction(() => this.#discardOne(resourceType, id, versionId))();
  }

  async listPending(): Promise<StoredVersion[]> {
    return (this.#stmts.pending.all() as VersionRow[]).map(toVersion);
  }

  async readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    const row = this.#stmts.current.get(resourceType, id) as VersionRow | undefined;
    return row ? toVersion(row) : undefined;
  }

  async readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    const row = this.#stmts.version.get(resourceType, id, versionId) as VersionRow | undefined;
    return row ? toVersion(row) : undefined;
  }

  async history(resourceType: string, id: string): Promise<StoredVersion[]> {
    return (this.#stmts.history.all(resourceType, id) as VersionRow[]).map(toVersion);
  }

  async typeHistory(resourceType: string | undefined, opts: HistoryQuery): Promise<StoredVersion[]> {
    const params: Record<string, unknown> = { limit: opts.limit, offset: opts.offset ?? 0 };
    const where = historyWhere(resourceType, opts, params, SQLITE);
    const sql = `SELECT rv.* FROM resource_version rv WHERE ${where.join(' AND ')} ORDER BY ${HISTORY_ORDER} LIMIT @limit OFFSET @offset`;
    return (this.#db.prepare(sql).all(params) as VersionRow[]).map(toVersion);
  }

  async historyClasses(resourceType: string | undefined, opts: Omit<HistoryQuery, 'classes' | 'offset' | 'limit'>): Promise<HistoryClass[]> {
    const params: Record<string, unknown> = {};
    const rows = this.#db.prepare(historyClassesSql(historyWhere(resourceType, opts, params, SQLITE))).all(params) as Array<ClassRow & { resource_type: string }>;
    return rows.map(toHistoryClass);
  }

  async search(q: StoreQuery): Promise<StoredVersion[]> {
    const params: Record<string, unknown> = { limit: q.limit, offset: q.offset ?? 0 };
    const where = whereOf(q, params, SQLITE);
    const sql = `SELECT rv.* FROM resource_version rv WHERE ${where.join(' AND ')} ORDER BY ${orderBy(q.sort ?? [], params)} LIMIT @limit OFFSET @offset`;
    return (this.#db.prepare(sql).all(params) as VersionRow[]).map(toVersion);
  }

  async searchClasses(q: Omit<StoreQuery, 'limit' | 'offset' | 'sort' | 'classes'>): Promise<SearchClass[]> {
    const params: Record<string, unknown> = {};
    const where = whereOf(q, params, SQLITE);
    const sql = `SELECT rv.patient_id AS patient_id, rv.access_class AS access_class, ${CLASS_OF_ROW} AS cls,
                        MIN(rv.id) AS id, MIN(rv.version_id) AS version_id, COUNT(*) AS n
                   FROM resource_version rv WHERE ${where.join(' AND ')} GROUP BY rv.patient_id, rv.access_class, cls`;
    const rows = this.#db.prepare(sql).all(params) as Array<{ patient_id: string | null; access_class: string | null; cls: string; id: string; version_id: number; n: number }>;
    return rows.map(toSearchClass);
  }

  async linkPatientDid(patientId: string, did: string): Promise<void> {
    this.#stmts.linkDid.run(patientId, did);
  }

  async patientDid(patientId: string): Promise<string | undefined> {
    return (this.#stmts.didOf.get(patientId) as { did: string } | undefined)?.did;
  }

  async patientByDid(did: string): Promise<string | undefined> {
    return (this.#stmts.patientOf.get(did) as { patient_id: string } | undefined)?.patient_id;
  }

  async patientKey(patientId: string): Promise<Buffer> {
    const existing = this.#findPatientKey(patientId);
    if (existing) return existing;
    this.#stmts.putKey.run(patientId, randomBytes(32), new Date().toISOString());
    const created = this.#findPatientKey(patientId);
    if (!created) throw new Error('patient key was not stored');
    return created;
  }

  async findPatientKey(patientId: string): Promise<Buffer | undefined> {
    return this.#findPatientKey(patientId);
  }

  #findPatientKey(patientId: string): Buffer | undefined {
    const row = this.#stmts.getKey.get(patientId) as { hmac_key: Buffer } | undefined;
    return row?.hmac_key;
  }

  async erasePatient(patientId: string): Promise<number> {
    // Its own versions and those naming it beside another patient (erased for all of them).
    const ofPatient = `(rv.patient_id = @p OR rv.co_patients LIKE @co)`;
    const params = { p: patientId, co: `% ${patientId} %` };
    return this.#db.transaction(() => {
      this.#db
        .prepare(
          `DELETE FROM search_index WHERE EXISTS (SELECT 1 FROM resource_version rv WHERE ${ofPatient} AND rv.resource_type = search_index.resource_type AND rv.id = search_index.id AND rv.version_id = search_index.version_id)`,
        )
        .run(params);
      const versions = this.#db.prepare(`DELETE FROM resource_version AS rv WHERE ${ofPatient}`).run(params).changes;
      this.#db.prepare('DELETE FROM patient_key WHERE patient_id = ?').run(patientId);
      this.#db.prepare('DELETE FROM patient_did WHERE patient_id = ?').run(patientId);
      // Pending writes left without versions are dropped by the next listPendingWrites.
      return versions;
    })();
  }

  /** One process per SQLite file: nothing else to exclude. */
  exclusive<T>(_key: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async ping(): Promise<void> {
    this.#stmts.ping.get();
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}
