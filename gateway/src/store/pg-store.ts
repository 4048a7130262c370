import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Pool, type PoolClient, type QueryResultRow } from 'pg';
import type { PgQuery } from '../auth/replay';
import { OperationOutcomeError } from '../errors';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { referenceIdentifierEntries, withCanonical } from './search-index';
import { SUPPORTED_TYPES } from '../model/definitions';
import { CLASS_OF_ROW, HISTORY_ORDER, historyClassesSql, historyWhere, orderBy, whereOf, type SqlDialect } from './sql-search';
import { UCUM_SYSTEM } from './ucum';
import type {
  HistoryClass,
  HistoryQuery,
  IndexedVersion,
  IndexEntry,
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
import { accessClassColumn, type ClassRow, coPatientsColumn, groupPendingWrites, toHistoryClass, toSearchClass, toVersion, type VersionRow } from './sql-rows';

/**
 * The store on PostgreSQL (HDX_STORE=postgres://…): the same tables, search and transactions as
 * SqliteStore, in a database the hospital's DBAs already run, shared by every gateway process of the
 * organization. Text columns compare byte by byte (COLLATE "C", as SQLite does), so both stores sort and
 * page alike. Every write that SqliteStore makes in one SQLite transaction is one PostgreSQL transaction
 * here; a version that exists (or a DID linked to another patient) is a unique violation → CONFLICT.
 */

/**
 * Schema migrations, all in one transaction, recorded in hdx_schema. Never edit a released step: add one.
 * A step is SQL, or a function of the migrating connection (a backfill computed in the gateway).
 */
const MIGRATIONS: ReadonlyArray<string | ((client: PoolClient) => Promise<void>)> = [
  // 1: everything SqliteStore's seven migrations come to.
  `
  CREATE TABLE resource_version (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    version_id    INTEGER NOT NULL,
    last_updated  TEXT COLLATE "C" NOT NULL,
    patient_id    TEXT COLLATE "C",
    deleted       INTEGER NOT NULL DEFAULT 0,
    content       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'anchored')),
    clinical_date TEXT COLLATE "C",
    codes         TEXT COLLATE "C" NOT NULL DEFAULT '',
    write_id      TEXT COLLATE "C",
    access_class  TEXT COLLATE "C",
    PRIMARY KEY (resource_type, id, version_id)
  );
  CREATE INDEX resource_version_state ON resource_version (state) WHERE state = 'pending';
  CREATE INDEX resource_version_patient ON resource_version (patient_id, resource_type);
  CREATE INDEX resource_version_updated ON resource_version (resource_type, last_updated);
  CREATE INDEX resource_version_write ON resource_version (write_id) WHERE write_id IS NOT NULL;
  CREATE INDEX resource_version_class ON resource_version (resource_type, patient_id, access_class);
  CREATE TABLE patient_key (
    patient_id TEXT COLLATE "C" PRIMARY KEY,
    hmac_key   BYTEA NOT NULL,
    created    TEXT NOT NULL
  );
  CREATE TABLE patient_did (
    patient_id TEXT COLLATE "C" PRIMARY KEY,
    did        TEXT COLLATE "C" NOT NULL UNIQUE
  );
  CREATE TABLE pending_write (
    write_id     TEXT COLLATE "C" PRIMARY KEY,
    did_links    TEXT NOT NULL,
    new_patients TEXT NOT NULL,
    created      TEXT NOT NULL
  );
  CREATE TABLE change_entry (
    seq      BIGSERIAL PRIMARY KEY,
    entry_id TEXT COLLATE "C" NOT NULL UNIQUE,
    write_id TEXT COLLATE "C" NOT NULL,
    entry    TEXT NOT NULL,
    state    TEXT NOT NULL CHECK (state IN ('pending', 'ready')),
    ready_at BIGINT
  );
  CREATE INDEX change_entry_write ON change_entry (write_id);
  CREATE INDEX change_entry_ready ON change_entry (state, seq);
  CREATE TABLE search_index (
    resource_type TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    version_id    INTEGER NOT NULL,
    param         TEXT COLLATE "C" NOT NULL,
    v1            TEXT COLLATE "C" NOT NULL,
    v2            TEXT COLLATE "C" NOT NULL,
    v3            TEXT COLLATE "C" NOT NULL DEFAULT '',
    n1            DOUBLE PRECISION,
    n2            DOUBLE PRECISION,
    grp           INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX search_index_value ON search_index (resource_type, param, v1, v2);
  CREATE INDEX search_index_version ON search_index (resource_type, id, version_id);
  CREATE INDEX search_index_number ON search_index (resource_type, param, n1, n2);
  `,
  // 2: the token-replay record (auth/replay.ts PgJtiStore), shared by every gateway process of the organization.
  `
  CREATE TABLE token_jti (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX token_jti_expires ON token_jti (expires_at);
  `,
  // 3: which process a pending write belongs to (PgStore's owner, alive while it holds its advisory lock),
  // so a live process settles only what a dead one left, never a write another process is still making.
  `
  ALTER TABLE pending_write ADD COLUMN owner TEXT COLLATE "C";
  `,
  // 4: the custodian's id epochs (store/custodian-ids.ts), shared by the organization's gateway processes:
  // an erasure at one gives every one of them a new epoch for the patient's natural keys.
  `
  CREATE SEQUENCE id_epoch_seq;
  CREATE TABLE id_epoch (
    epoch_key TEXT COLLATE "C" PRIMARY KEY,
    epoch     INTEGER NOT NULL,
    seq       BIGINT NOT NULL
  );
  CREATE INDEX id_epoch_seq_idx ON id_epoch (seq);
  CREATE TABLE id_derived (
    id        TEXT COLLATE "C" PRIMARY KEY,
    epoch_key TEXT COLLATE "C" NOT NULL
  );
  CREATE TABLE id_secret (
    only_row    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    fingerprint TEXT NOT NULL
  );
  `,
  // 5: the async-audit outbox (audit/outbox-pg.ts PgOutboxQueue), shared by every gateway process of the
  // organization: an entry is delivered by the process holding its lease (claimed_by, claimed_until).
  `
  CREATE TABLE outbox_entry (
    seq             BIGSERIAL PRIMARY KEY,
    entry_id        TEXT COLLATE "C" NOT NULL UNIQUE,
    entry           TEXT NOT NULL,
    enqueued_at     BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    claimed_by      TEXT COLLATE "C",
    claimed_until   BIGINT NOT NULL DEFAULT 0
  );
  CREATE INDEX outbox_entry_due ON outbox_entry (next_attempt_at, seq);
  CREATE TABLE outbox_quarantine (
    entry_id       TEXT COLLATE "C" PRIMARY KEY,
    entry          TEXT NOT NULL,
    enqueued_at    BIGINT NOT NULL,
    quarantined_at BIGINT NOT NULL,
    error          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 1
  );
  `,
  // 6: UCUM canonical units in quantity search (store/ucum.ts), as SqliteStore's migration 9: a quantity's
  // unit in base units and its values in it, backfilled from the index rows themselves (system, code, n1,
  // n2: what index time reads), one update per distinct quantity, so no resource is indexed again.
  async (client) => {
    await client.query(`
      ALTER TABLE search_index ADD COLUMN cu TEXT COLLATE "C" NOT NULL DEFAULT '', ADD COLUMN cn1 DOUBLE PRECISION, ADD COLUMN cn2 DOUBLE PRECISION;
      CREATE INDEX search_index_canonical ON search_index (resource_type, param, cu, cn1);
    `);
    const found = await client.query<{ v2: string; n1: number; n2: number }>('SELECT DISTINCT v2, n1, n2 FROM search_index WHERE v1 = $1 AND n1 IS NOT NULL AND n2 IS NOT NULL', [
      UCUM_SYSTEM,
    ]);
    const rows = found.rows.flatMap((r) => {
      const c = withCanonical({ v1: UCUM_SYSTEM, v2: r.v2, n1: r.n1, n2: r.n2 });
      return c.cu !== undefined ? [{ ...r, cu: c.cu, cn1: c.cn1 ?? r.n1, cn2: c.cn2 ?? r.n2 }] : [];
    });
    for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
      const chunk = rows.slice(i, i + WRITE_CHUNK);
      await client.query(
        `UPDATE search_index s SET cu = u.cu, cn1 = u.cn1, cn2 = u.cn2
         FROM unnest($2::text[], $3::float8[], $4::float8[], $5::text[], $6::float8[], $7::float8[]) AS u(code, n1, n2, cu, cn1, cn2)
         WHERE s.v1 = $1 AND s.v2 = u.code AND s.n1 = u.n1 AND s.n2 = u.n2`,
        [UCUM_SYSTEM, chunk.map((r) => r.v2), chunk.map((r) => r.n1), chunk.map((r) => r.n2), chunk.map((r) => r.cu), chunk.map((r) => r.cn1), chunk.map((r) => r.cn2)],
      );
    }
  },
  // 7: the logical identifiers of references (Reference.identifier, for :identifier), as SqliteStore's
  // migration 10: the versions that may hold one (a single Identifier object in their JSON) are indexed
  // again, their new rows added.
  async (client) => {
    const found = await client.query<{ resource_type: string; id: string; version_id: number; content: string }>(
      `SELECT resource_type, id, version_id, content FROM resource_version WHERE deleted = 0 AND content LIKE '%"identifier":{%'`,
    );
    const rows = found.rows.flatMap((r) =>
      SUPPORTED_TYPES.has(r.resource_type) ? referenceIdentifierEntries(JSON.parse(r.content) as Record<string, unknown>).map((e) => ({ r, e })) : [],
    );
    for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
      const chunk = rows.slice(i, i + WRITE_CHUNK);
      await client.query(
        `INSERT INTO search_index (resource_type, id, version_id, param, v1, v2)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[])`,
        [
          chunk.map((x) => x.r.resource_type),
          chunk.map((x) => x.r.id),
          chunk.map((x) => x.r.version_id),
          chunk.map((x) => x.e.param),
          chunk.map((x) => x.e.v1),
          chunk.map((x) => x.e.v2),
        ],
      );
    }
  },
  // 8: the other patients of a version in several patients' compartments, as SqliteStore's migration 11.
  `ALTER TABLE resource_version ADD COLUMN IF NOT EXISTS co_patients TEXT COLLATE "C";`,
];

export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Versions inserted by one statement (insertPendingWrite). */
const WRITE_CHUNK = 1_000;

/** PostgreSQL: the permitted class keys as one text[] parameter. */
const POSTGRES: SqlDialect = {
  classesIn: (expr, name, values, params) => {
    params[name] = [...values];
    return `${expr} = ANY(CAST(@${name} AS TEXT[]))`;
  },
};

/** Named parameters (`@name`, as sql-search.ts writes them) as PostgreSQL's numbered ones. */
export function toPositional(sql: string, params: Record<string, unknown>): { text: string; values: unknown[] } {
  const numbers = new Map<string, number>();
  const values: unknown[] = [];
  const text = sql.replace(/@([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
    let n = numbers.get(name);
    if (n === undefined) {
      if (!(name in params)) throw new Error(`the query names a parameter it was not given: ${name}`);
      values.push(params[name]);
      n = values.length;
      numbers.set(name, n);
    }
    return `$${n}`;
  });
  return { text, values };
}

/**
 * A failure to reach PostgreSQL (refused, reset, the server shutting down: SQLSTATE classes 08 and 57P)
 * as a 503 the client may retry; anything else as it was. The message names no host or credentials.
 */
function unavailableOr(err: unknown): unknown {
  if (err instanceof OperationOutcomeError) return err;
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  const message = err instanceof Error ? err.message : '';
  const down =
    code.startsWith('08') ||
    code.startsWith('57P') ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code) ||
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message);
  return down ? new OperationOutcomeError('UNAVAILABLE', 'The store (PostgreSQL) is unavailable; retry shortly') : err;
}

/** The constraint a unique violation broke (PostgreSQL error 23505), else undefined. */
function uniqueViolation(err: unknown): string | undefined {
  if (err instanceof Error && (err as { code?: unknown }).code === '23505') return String((err as { constraint?: unknown }).constraint ?? '');
  return undefined;
}

const VERSION_COLUMNS = 'resource_type, id, version_id, last_updated, patient_id, deleted, content, state, write_id, access_class, co_patients';

export interface PgStoreOptions {
  /** postgres://user:password@host:port/database */
  readonly url: string;
  /** The schema holding the tables (created if missing; default: the connection's search_path, normally `public`). */
  readonly schema?: string;
  /** Connections in the pool (default 10; one more is held for the process's ownership lock). */
  readonly poolSize?: number;
}

export class PgStore implements ResourceStore {
  readonly #pool: Pool;
  /**
   * The connections `exclusive` holds its advisory locks on, apart from #pool: a lock holder's own
   * queries never wait for a connection that another lock holder (or waiter) keeps.
   */
  readonly #lockPool: Pool;
  readonly #ready: Promise<void>;
  readonly #schema: string | undefined;
  readonly #url: string;
  #closed: Promise<void> | undefined;
  /**
   * This process's name on its pending writes, and the connection holding the session advisory lock on
   * it: while the lock is held the process is alive, and no other process settles its writes.
   */
  #owner = randomUUID();
  #ownerLock: Promise<Client> | undefined;
  #ownerLost: Error | undefined;

  /** Connects lazily: the first call waits for the connection and the migrations (and fails as they do). */
  constructor(options: PgStoreOptions) {
    if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) throw new Error(`not a schema name: ${options.schema}`);
    this.#schema = options.schema;
    this.#url = options.url;
    this.#pool = new Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    this.#lockPool = new Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // A connection the server ends while idle is dropped from the pool, not a crash of the process.
    this.#pool.on('error', () => undefined);
    this.#lockPool.on('error', () => undefined);
    this.#ready = this.#migrate();
    // Reported by the first call that needs the store (and by ping), not as an unhandled rejection.
    this.#ready.catch(() => undefined);
  }

  /**
   * Holds this process's ownership lock (once; again under a new name if its connection was lost: the
   * writes left under the old name are then another process's to settle, as a dead one's).
   */
  #holdOwnership(): Promise<Client> {
    this.#ownerLock ??= (async () => {
      const client = new Client({ connectionString: this.#url });
      client.on('error', () => undefined);
      client.on('end', () => {
        if (this.#closed) return;
        this.#ownerLost = new Error('the store lost the connection holding its ownership lock; it takes a new one');
        this.#ownerLock = undefined;
        this.#owner = randomUUID();
      });
      await client.connect();
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [this.#owner]);
      this.#ownerLost = undefined;
      return client;
    })();
    const held = this.#ownerLock;
    held.catch(() => {
      if (this.#ownerLock === held) this.#ownerLock = undefined;
    });
    return held;
  }

  /** The owners of pending writes that no live process holds (their process died): taken over by this one. */
  async #deadOwners(owners: readonly string[]): Promise<Set<string>> {
    const dead = new Set<string>();
    if (owners.length === 0) return dead;
    const client = await this.#pool.connect();
    try {
      for (const owner of owners) {
        const got = await client.query<{ free: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS free', [owner]);
        if (got.rows[0]?.free !== true) continue;
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [owner]);
        dead.add(owner);
      }
    } finally {
      client.release();
    }
    return dead;
  }

  async #migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      // Two processes starting on one database: one migrates, the other waits and finds it done.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('hdx-store-migrations'))`);
      if (this.#schema) {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.#schema}`);
        await client.query(`SET LOCAL search_path TO ${this.#schema}`);
      }
      await client.query('CREATE TABLE IF NOT EXISTS hdx_schema (version INTEGER NOT NULL)');
      const current = (await client.query<{ version: number }>('SELECT version FROM hdx_schema')).rows[0]?.version ?? 0;
      if (current > MIGRATIONS.length) {
        throw new Error(`the store was written by a newer gateway (schema ${current}, this one knows ${MIGRATIONS.length}); upgrade the gateway`);
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        const step = MIGRATIONS[v];
        if (typeof step === 'string') await client.query(step);
        else if (step) await step(client);
      }
      if (current === 0) await client.query('INSERT INTO hdx_schema (version) VALUES ($1)', [MIGRATIONS.length]);
      else if (current < MIGRATIONS.length) await client.query('UPDATE hdx_schema SET version = $1', [MIGRATIONS.length]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw unavailableOr(err);
    } finally {
      client.release();
    }
  }

  /**
   * One statement on the store's database, for the other tables the gateway keeps beside the store's
   * (token_jti: PgJtiStore): its rows and how many it changed.
   */
  readonly query = async (sql: string, values: readonly unknown[] = []): Promise<{ rows: unknown[]; rowCount: number }> => {
    try {
      await this.#ready;
      const r = await this.#pool.query(sql, [...values]);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw unavailableOr(err);
    }
  };

  /**
   * Runs `fn` in one transaction (its statements through the `query` it is given): committed if it
   * returns, rolled back if it throws. For the other tables the gateway keeps beside the store's (the
   * outbox, audit/outbox-pg.ts; the custodian's id epochs, store/custodian-ids.ts).
   */
  transaction<T>(fn: (query: PgQuery) => Promise<T>): Promise<T> {
    return this.#transaction((c) =>
      fn(async (sql, values) => {
        const r = await c.query(sql, [...values]);
        return { rows: r.rows, rowCount: r.rowCount ?? 0 };
      }),
    );
  }

  async #query<R extends QueryResultRow>(sql: string, values: unknown[] = []): Promise<R[]> {
    try {
      await this.#ready;
      return (await this.#pool.query<R>(sql, values)).rows;
    } catch (err) {
      throw unavailableOr(err);
    }
  }

  /** Runs `fn` in one transaction on one connection: committed if it returns, rolled back if it throws. */
  async #transaction<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      await this.#ready;
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailableOr(err);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Every version of a write and all their index rows, in chunks of WRITE_CHUNK versions: two statements
   * a chunk (arrays unnested), not two round trips a version (a Synthea transaction holds 6,550).
   */
  async #insertVersions(c: PoolClient, versions: readonly NewVersion[], writeId: string | null): Promise<void> {
    for (let at = 0; at < versions.length; at += WRITE_CHUNK) {
      const chunk = versions.slice(at, at + WRITE_CHUNK);
      try {
        await c.query(
          `INSERT INTO resource_version (resource_type, id, version_id, last_updated, patient_id, deleted, content, clinical_date, codes, access_class, co_patients, state, write_id)
           SELECT u.t, u.id, u.v, u.lu, u.p, u.d, u.c, u.cd, u.codes, u.ac, u.cp, 'pending', $12
             FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                  AS u(t, id, v, lu, p, d, c, cd, codes, ac, cp)`,
          [
            chunk.map((v) => v.resourceType),
            chunk.map((v) => v.id),
            chunk.map((v) => v.versionId),
            chunk.map((v) => v.lastUpdated),
            chunk.map((v) => v.patientId),
            chunk.map((v) => (v.deleted ? 1 : 0)),
            chunk.map((v) => v.content),
            chunk.map((v) => v.date),
            chunk.map((v) => (v.codes.length > 0 ? ` ${v.codes.join(' ')} ` : '')),
            chunk.map((v) => accessClassColumn(v)),
            chunk.map((v) => coPatientsColumn(v.coPatientIds)),
            writeId,
          ],
        );
      } catch (err) {
        if (uniqueViolation(err) !== undefined) {
          // PostgreSQL names the key: `Key (resource_type, id, version_id)=(Observation, o1, 2) already exists.`
          const key = /=\(([^,]+), ([^,]+), (\d+)\)/.exec(String((err as { detail?: unknown }).detail ?? ''));
          throw new OperationOutcomeError('CONFLICT', key ? `${key[1]}/${key[2]} version ${key[3]} already exists` : 'A version of this write already exists');
        }
        throw err;
      }
      await this.#insertIndex(
        c,
        chunk.flatMap((v) => (v.deleted ? [] : (v.index ?? []).map((e) => ({ v, e })))),
      );
    }
  }

  /** Index rows of versions, in one statement. */
  async #insertIndex(c: PoolClient, rows: ReadonlyArray<{ v: VersionKey; e: IndexEntry }>): Promise<void> {
    if (rows.length > 0)
      await c.query(
        `INSERT INTO search_index (resource_type, id, version_id, param, v1, v2, v3, n1, n2, grp, cu, cn1, cn2)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::int[], $11::text[], $12::float8[], $13::float8[])`,
        [
          rows.map((r) => r.v.resourceType),
          rows.map((r) => r.v.id),
          rows.map((r) => r.v.versionId),
          rows.map((r) => r.e.param),
          rows.map((r) => r.e.v1),
          rows.map((r) => r.e.v2),
          rows.map((r) => r.e.v3 ?? ''),
          rows.map((r) => r.e.n1 ?? null),
          rows.map((r) => r.e.n2 ?? null),
          rows.map((r) => r.e.grp ?? 0),
          rows.map((r) => r.e.cu ?? ''),
          rows.map((r) => r.e.cn1 ?? null),
          rows.map((r) => r.e.cn2 ?? null),
        ],
      );
  }

  async #discardOne(c: PoolClient, resourceType: string, id: string, versionId: number): Promise<void> {
    const gone = await c.query(`DELETE FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id = $3 AND state = 'pending'`, [resourceType, id, versionId]);
    if ((gone.rowCount ?? 0) > 0) await c.query('DELETE FROM search_index WHERE resource_type = $1 AND id = $2 AND version_id = $3', [resourceType, id, versionId]);
  }

  async #linkDid(c: PoolClient, patientId: string, did: string): Promise<void> {
    await c.query('INSERT INTO patient_did (patient_id, did) VALUES ($1, $2) ON CONFLICT (patient_id) DO UPDATE SET did = excluded.did', [patientId, did]);
  }

  async insertPending(v: NewVersion): Promise<void> {
    await this.#transaction((c) => this.#insertVersions(c, [v], null));
  }

  async insertPendingWrite(w: PendingWrite): Promise<void> {
    if (w.writeId === undefined && (w.changeEntries?.length ?? 0) > 0) throw new Error('change entries are stored with a write: give the write a writeId');
    // Never a write without the lock that says this process is alive (another would settle it).
    await this.#holdOwnership();
    const owner = this.#owner;
    await this.#transaction(async (c) => {
      const now = new Date().toISOString();
      for (const k of w.newPatientKeys) {
        try {
          await c.query('INSERT INTO patient_key (patient_id, hmac_key, created) VALUES ($1, $2, $3)', [k.patientId, k.key, now]);
        } catch (err) {
          if (uniqueViolation(err) !== undefined) throw new OperationOutcomeError('CONFLICT', `Patient/${k.patientId} already has a key: retry`);
          throw err;
        }
      }
      for (const l of w.didLinks) {
        try {
          await this.#linkDid(c, l.patientId, l.did);
        } catch (err) {
          if (uniqueViolation(err) !== undefined)
            throw new OperationOutcomeError('CONFLICT', `The DID of Patient/${l.patientId} is already linked to another Patient on this server`);
          throw err;
        }
      }
      await this.#insertVersions(c, w.versions, w.writeId ?? null);
      if (w.writeId === undefined) return;
      await c.query('INSERT INTO pending_write (write_id, did_links, new_patients, created, owner) VALUES ($1, $2, $3, $4, $5)', [
        w.writeId,
        JSON.stringify(w.didLinks.map((l) => ({ patientId: l.patientId, did: l.did, previous: l.previous ?? null }))),
        JSON.stringify(w.newPatientKeys.map((k) => k.patientId)),
        now,
        owner,
      ]);
      for (const e of w.changeEntries ?? []) {
        if (typeof e.entryId !== 'string' || e.entryId.length === 0) throw new Error('a change entry needs its entryId before it is stored');
        await c.query(`INSERT INTO change_entry (entry_id, write_id, entry, state) VALUES ($1, $2, $3, 'pending')`, [e.entryId, w.writeId, JSON.stringify(e)]);
      }
    });
  }

  async discardPendingWrite(w: PendingWriteRef): Promise<void> {
    await this.#transaction(async (c) => {
      if (w.writeId !== undefined) {
        await c.query(`DELETE FROM change_entry WHERE write_id = $1 AND state = 'pending'`, [w.writeId]);
        await c.query('DELETE FROM pending_write WHERE write_id = $1', [w.writeId]);
      }
      for (const v of w.versions) await this.#discardOne(c, v.resourceType, v.id, v.versionId);
      for (const l of w.didLinks) {
        if (l.previous === undefined) await c.query('DELETE FROM patient_did WHERE patient_id = $1 AND did = $2', [l.patientId, l.did]);
        else await this.#linkDid(c, l.patientId, l.previous);
      }
      for (const k of w.newPatientKeys) {
        await c.query('DELETE FROM patient_key WHERE patient_id = $1 AND NOT EXISTS (SELECT 1 FROM resource_version WHERE patient_id = $1)', [k.patientId]);
      }
    });
  }

  /** Marks versions anchored; how many of them were there to mark. */
  async #markAnchored(c: PoolClient, versions: readonly VersionKey[]): Promise<number> {
    if (versions.length === 0) return 0;
    const r = await c.query(
      `UPDATE resource_version rv SET state = 'anchored'
         FROM unnest($1::text[], $2::text[], $3::int[]) AS k(resource_type, id, version_id)
        WHERE rv.resource_type = k.resource_type AND rv.id = k.id AND rv.version_id = k.version_id`,
      [versions.map((v) => v.resourceType), versions.map((v) => v.id), versions.map((v) => v.versionId)],
    );
    return r.rowCount ?? 0;
  }

  async markAnchoredAll(versions: readonly VersionKey[]): Promise<void> {
    await this.#transaction((c) => this.#markAnchored(c, versions));
  }

  async markWriteAnchored(w: PendingWriteRef): Promise<void> {
    await this.#transaction(async (c) => {
      // A write another process settled meanwhile (it took this one for dead) is not acknowledged here.
      if ((await this.#markAnchored(c, w.versions)) < w.versions.length) {
        throw new OperationOutcomeError(
          'UNAVAILABLE',
          'The write was settled by another gateway process meanwhile; read the resource, and send the change again if it is not there',
        );
      }
      if (w.writeId !== undefined) {
        await c.query(`UPDATE change_entry SET state = 'ready', ready_at = $1 WHERE write_id = $2 AND state = 'pending'`, [Date.now(), w.writeId]);
        await c.query('DELETE FROM pending_write WHERE write_id = $1', [w.writeId]);
      }
    });
  }

  async indexVersions(versions: readonly IndexedVersion[]): Promise<void> {
    if (versions.length === 0) return;
    await this.#transaction(async (c) => {
      const keys = [versions.map((v) => v.resourceType), versions.map((v) => v.id), versions.map((v) => v.versionId)];
      await c.query(
        `DELETE FROM search_index si USING unnest($1::text[], $2::text[], $3::int[]) AS k(resource_type, id, version_id)
          WHERE si.resource_type = k.resource_type AND si.id = k.id AND si.version_id = k.version_id`,
        keys,
      );
      const held = await c.query<{ resource_type: string; id: string; version_id: number }>(
        `SELECT rv.resource_type, rv.id, rv.version_id FROM resource_version rv
           JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(resource_type, id, version_id)
             ON rv.resource_type = k.resource_type AND rv.id = k.id AND rv.version_id = k.version_id`,
        keys,
      );
      const there = new Set(held.rows.map((r) => `${r.resource_type}\u0000${r.id}\u0000${r.version_id}`));
      await this.#insertIndex(
        c,
        versions.filter((v) => there.has(`${v.resourceType}\u0000${v.id}\u0000${v.versionId}`)).flatMap((v) => v.index.map((e) => ({ v, e }))),
      );
    });
  }

  async markAnchored(resourceType: string, id: string, versionId: number): Promise<void> {
    await this.#query(`UPDATE resource_version SET state = 'anchored' WHERE resource_type = $1 AND id = $2 AND version_id = $3`, [resourceType, id, versionId]);
  }

  async discardPending(resourceType: string, id: string, versionId: number): Promise<void> {
    await this.#transaction((c) => this.#discardOne(c, resourceType, id, versionId));
  }

  async listPending(): Promise<StoredVersion[]> {
    return (await this.#query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM resource_version WHERE state = 'pending' ORDER BY last_updated`)).map(toVersion);
  }

  /**
   * The pending writes this process may settle: its own, and those of processes that died (no live
   * process holds their owner's lock), taken over one by one so two live processes never settle the
   * same write. A write of a live process is left to it.
   */
  async listPendingWrites(): Promise<StoredPendingWrite[]> {
    await this.#holdOwnership();
    const me = this.#owner;
    const owners = await this.#query<{ owner: string }>('SELECT DISTINCT owner FROM pending_write WHERE owner IS NOT NULL AND owner <> $1', [me]);
    for (const dead of await this.#deadOwners(owners.map((o) => o.owner))) {
      await this.#query('UPDATE pending_write SET owner = $1 WHERE owner = $2', [me, dead]);
    }
    // A write whose versions are all gone (erased meanwhile) leaves nothing to settle.
    await this.#transaction(async (c) => {
      const orphans = await c.query<{ write_id: string }>(
        `SELECT write_id FROM pending_write pw WHERE NOT EXISTS (SELECT 1 FROM resource_version rv WHERE rv.write_id = pw.write_id AND rv.state = 'pending')`,
      );
      const ids = orphans.rows.map((r) => r.write_id);
      if (ids.length === 0) return;
      await c.query(`DELETE FROM change_entry WHERE write_id = ANY($1::text[]) AND state = 'pending'`, [ids]);
      await c.query('DELETE FROM pending_write WHERE write_id = ANY($1::text[])', [ids]);
    });
    const rows = await this.#query<VersionRow & { did_links: string | null; new_patients: string | null }>(
      `SELECT rv.resource_type, rv.id, rv.version_id, rv.last_updated, rv.patient_id, rv.deleted, rv.content, rv.state, rv.write_id, rv.access_class, rv.co_patients,
              pw.did_links, pw.new_patients
         FROM resource_version rv LEFT JOIN pending_write pw ON pw.write_id = rv.write_id
        WHERE rv.state = 'pending' AND (pw.owner IS NULL OR pw.owner = $1) ORDER BY rv.last_updated`,
      [me],
    );
    return groupPendingWrites(rows, (_writeId, row) => {
      const { did_links, new_patients } = row as VersionRow & { did_links: string | null; new_patients: string | null };
      return did_links !== null && new_patients !== null ? { did_links, new_patients } : undefined;
    });
  }

  async pendingVersions(resourceType: string, id: string): Promise<StoredVersion[]> {
    const rows = await this.#query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM resource_version WHERE resource_type = $1 AND id = $2 AND state = 'pending' ORDER BY version_id`, [
      resourceType,
      id,
    ]);
    return rows.map(toVersion);
  }

  async readyChanges(limit: number): Promise<ReadyChange[]> {
    const rows = await this.#query<{ entry_id: string; entry: string; ready_at: string }>(
      `SELECT entry_id, entry, ready_at FROM change_entry WHERE state = 'ready' ORDER BY seq LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({ entryId: r.entry_id, entry: JSON.parse(r.entry) as AccessEntryInput, readyAt: Number(r.ready_at) }));
  }

  async dropChanges(entryIds: readonly string[]): Promise<void> {
    if (entryIds.length === 0) return;
    await this.#query(`DELETE FROM change_entry WHERE entry_id = ANY($1::text[]) AND state = 'ready'`, [[...entryIds]]);
  }

  async readyChangeStats(): Promise<{ count: number; oldestReadyAt: number | undefined }> {
    const [r] = await this.#query<{ n: string; oldest: string | null }>(`SELECT COUNT(*) AS n, MIN(ready_at) AS oldest FROM change_entry WHERE state = 'ready'`);
    return { count: Number(r?.n ?? 0), oldestReadyAt: r?.oldest == null ? undefined : Number(r.oldest) };
  }

  async readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined> {
    const [row] = await this.#query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM resource_version WHERE resource_type = $1 AND id = $2 AND state = 'anchored' ORDER BY version_id DESC LIMIT 1`,
      [resourceType, id],
    );
    return row ? toVersion(row) : undefined;
  }

  async readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined> {
    const [row] = await this.#query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id = $3 AND state = 'anchored'`, [
      resourceType,
      id,
      versionId,
    ]);
    return row ? toVersion(row) : undefined;
  }

  async history(resourceType: string, id: string): Promise<StoredVersion[]> {
    const rows = await this.#query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM resource_version WHERE resource_type = $1 AND id = $2 AND state = 'anchored' ORDER BY version_id DESC`,
      [resourceType, id],
    );
    return rows.map(toVersion);
  }

  async typeHistory(resourceType: string | undefined, opts: HistoryQuery): Promise<StoredVersion[]> {
    const params: Record<string, unknown> = { limit: opts.limit, offset: opts.offset ?? 0 };
    const where = historyWhere(resourceType, opts, params, POSTGRES);
    const { text, values } = toPositional(`SELECT rv.* FROM resource_version rv WHERE ${where.join(' AND ')} ORDER BY ${HISTORY_ORDER} LIMIT @limit OFFSET @offset`, params);
    return (await this.#query<VersionRow>(text, values)).map(toVersion);
  }

  async historyClasses(resourceType: string | undefined, opts: Omit<HistoryQuery, 'classes' | 'offset' | 'limit'>): Promise<HistoryClass[]> {
    const params: Record<string, unknown> = {};
    const { text, values } = toPositional(historyClassesSql(historyWhere(resourceType, opts, params, POSTGRES)), params);
    return (await this.#query<ClassRow & { resource_type: string }>(text, values)).map(toHistoryClass);
  }

  async search(q: StoreQuery): Promise<StoredVersion[]> {
    const params: Record<string, unknown> = { limit: q.limit, offset: q.offset ?? 0 };
    const where = whereOf(q, params, POSTGRES);
    const sql = `SELECT rv.* FROM resource_version rv WHERE ${where.join(' AND ')} ORDER BY ${orderBy(q.sort ?? [], params)} LIMIT @limit OFFSET @offset`;
    const { text, values } = toPositional(sql, params);
    return (await this.#query<VersionRow>(text, values)).map(toVersion);
  }

  async searchClasses(q: Omit<StoreQuery, 'limit' | 'offset' | 'sort' | 'classes'>): Promise<SearchClass[]> {
    const params: Record<string, unknown> = {};
    const where = whereOf(q, params, POSTGRES);
    const sql = `SELECT rv.patient_id AS patient_id, rv.access_class AS access_class, ${CLASS_OF_ROW} AS cls,
                        MIN(rv.id) AS id, MIN(rv.version_id) AS version_id, COUNT(*) AS n
                   FROM resource_version rv WHERE ${where.join(' AND ')} GROUP BY rv.patient_id, rv.access_class, cls`;
    const { text, values } = toPositional(sql, params);
    const rows = await this.#query<{ patient_id: string | null; access_class: string | null; id: string; version_id: number; n: string }>(text, values);
    return rows.map(toSearchClass);
  }

  async linkPatientDid(patientId: string, did: string): Promise<void> {
    await this.#query('INSERT INTO patient_did (patient_id, did) VALUES ($1, $2) ON CONFLICT (patient_id) DO UPDATE SET did = excluded.did', [patientId, did]);
  }

  async patientDid(patientId: string): Promise<string | undefined> {
    const [row] = await this.#query<{ did: string }>('SELECT did FROM patient_did WHERE patient_id = $1', [patientId]);
    return row?.did;
  }

  async patientByDid(did: string): Promise<string | undefined> {
    const [row] = await this.#query<{ patient_id: string }>('SELECT patient_id FROM patient_did WHERE did = $1', [did]);
    return row?.patient_id;
  }

  async patientKey(patientId: string): Promise<Buffer> {
    const existing = await this.findPatientKey(patientId);
    if (existing) return existing;
    // Two processes creating it at once: one insert wins, both read the winner's key.
    await this.#query('INSERT INTO patient_key (patient_id, hmac_key, created) VALUES ($1, $2, $3) ON CONFLICT (patient_id) DO NOTHING', [
      patientId,
      randomBytes(32),
      new Date().toISOString(),
    ]);
    const created = await this.findPatientKey(patientId);
    if (!created) throw new Error('patient key was not stored');
    return created;
  }

  async findPatientKey(patientId: string): Promise<Buffer | undefined> {
    const [row] = await this.#query<{ hmac_key: Buffer }>('SELECT hmac_key FROM patient_key WHERE patient_id = $1', [patientId]);
    return row?.hmac_key;
  }

  async erasePatient(patientId: string): Promise<number> {
    return this.#transaction(async (c) => {
      // Its own versions and those naming it beside another patient (erased for all of them).
      const params = [patientId, `% ${patientId} %`];
      await c.query(
        `DELETE FROM search_index si USING resource_version rv
          WHERE (rv.patient_id = $1 OR rv.co_patients LIKE $2) AND rv.resource_type = si.resource_type AND rv.id = si.id AND rv.version_id = si.version_id`,
        params,
      );
      const versions = (await c.query('DELETE FROM resource_version WHERE patient_id = $1 OR co_patients LIKE $2', params)).rowCount ?? 0;
      await c.query('DELETE FROM patient_key WHERE patient_id = $1', [patientId]);
      await c.query('DELETE FROM patient_did WHERE patient_id = $1', [patientId]);
      // Pending writes left without versions are dropped by the next listPendingWrites.
      return versions;
    });
  }

  /** Holds a session advisory lock on the key (its own key space, apart from the owners') on one connection while `fn` runs. */
  async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#ready;
    const client = await this.#lockPool.connect();
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 1))', [key]);
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 1))', [key]);
      }
    } finally {
      client.release();
    }
  }

  /** Fails while the database does not answer, or this process has lost its ownership lock (it is retaken at the next write). */
  async ping(): Promise<void> {
    await this.#query('SELECT 1 AS ok');
    if (this.#ownerLost) throw this.#ownerLost;
  }

  /** Ends the pool's connections (once: closing again does nothing). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const lock = this.#ownerLock;
      this.#ownerLock = undefined;
      if (lock) await (await lock.catch(() => undefined))?.end();
      await Promise.all([this.#pool.end(), this.#lockPool.end()]);
    })();
    return this.#closed;
  }
}
