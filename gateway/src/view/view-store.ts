/**
 * The ledger view's SQLite file (`<dataDir>/ledger-view.db`, better-sqlite3, WAL, synchronous=FULL):
 * the hdx chaincode's state that access decisions read, kept row for row from committed blocks.
 *
 * | ledger key (hdx namespace)                      | table          |
 * |-------------------------------------------------|----------------|
 * | `hdx.did` [did]: IdentityRecord                  | identities     |
 * | `hdx.did~org` [msp, did] (put / delete)          | org_dids       |
 * | `hdx.consent` [id]: ConsentRecord (current)      | consents       |
 * | `hdx.link` [custodian, pseudonym]: PatientLink   | patient_links  |
 * | `hdx.anchor` [type, id, version]: Anchor         | anchors        |
 * | `hdx.member` [msp]: MemberRemoval                | members        |
 *
 * The chaincode's other keys are not kept: its secondary indexes (`hdx.consent~patient`,
 * `hdx.link~did`, `hdx.anchor~patient`) are SQL indexes here over the same rows; version history
 * (`hdx.did~version`, `hdx.consent~version`), the access history (`hdx.audit…`), nonces and identifier
 * and subject hashes are not read by decisions.
 *
 * Every block is applied in ONE SQLite transaction together with the checkpoint (the last block
 * applied and the index of its last transaction), so after a crash the file holds either the whole
 * block and its checkpoint or neither: a restart resumes from the next block without a gap or a double.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { Anchor, ConsentRecord, IdentityRecord, MemberRemoval, PatientLink } from '@hdx/chaincode';
import type { KeyWrite, ParsedBlock } from './block-parser';

export const VIEW_FILE_NAME = 'ledger-view.db';

/** 2: the member registry (`members`). A gateway of schema 1 would ignore removals: it refuses this file. */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS view_checkpoint (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  channel     TEXT    NOT NULL,
  namespace   TEXT    NOT NULL,
  block       INTEGER NOT NULL,
  tx_index    INTEGER NOT NULL,
  applied_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
  did          TEXT    PRIMARY KEY,
  kind         TEXT    NOT NULL,
  organization TEXT    NOT NULL,
  status       TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  guardians    TEXT    NOT NULL,
  record       TEXT    NOT NULL,
  block        INTEGER NOT NULL,
  tx_id        TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS org_dids (
  msp_id TEXT    NOT NULL,
  did    TEXT    NOT NULL,
  block  INTEGER NOT NULL,
  tx_id  TEXT    NOT NULL,
  PRIMARY KEY (msp_id, did)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consents (
  id      TEXT    PRIMARY KEY,
  patient TEXT    NOT NULL,
  status  TEXT    NOT NULL,
  version INTEGER NOT NULL,
  record  TEXT    NOT NULL,
  block   INTEGER NOT NULL,
  tx_id   TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consents_by_patient ON consents (patient, id);
CREATE TABLE IF NOT EXISTS patient_links (
  custodian TEXT    NOT NULL,
  pseudonym TEXT    NOT NULL,
  did       TEXT    NOT NULL,
  record    TEXT    NOT NULL,
  block     INTEGER NOT NULL,
  tx_id     TEXT    NOT NULL,
  PRIMARY KEY (custodian, pseudonym)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS patient_links_by_did ON patient_links (did, custodian, pseudonym);
CREATE TABLE IF NOT EXISTS anchors (
  resource_type TEXT    NOT NULL,
  id            TEXT    NOT NULL,
  version_id    TEXT    NOT NULL,
  patient       TEXT,
  custodian     TEXT    NOT NULL,
  erased        INTEGER NOT NULL,
  record        TEXT    NOT NULL,
  block         INTEGER NOT NULL,
  tx_id         TEXT    NOT NULL,
  PRIMARY KEY (resource_type, id, version_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anchors_by_patient ON anchors (patient, custodian) WHERE patient IS NOT NULL;
CREATE TABLE IF NOT EXISTS members (
  msp_id TEXT    PRIMARY KEY,
  status TEXT    NOT NULL,
  record TEXT    NOT NULL,
  block  INTEGER NOT NULL,
  tx_id  TEXT    NOT NULL
) WITHOUT ROWID;
`;

/** The tables a view holds, each with its key columns (for snapshots and comparison). */
export const VIEW_TABLES = {
  identities: ['did'],
  org_dids: ['msp_id', 'did'],
  consents: ['id'],
  patient_links: ['custodian', 'pseudonym'],
  anchors: ['resource_type', 'id', 'version_id'],
  members: ['msp_id'],
} as const;
export type ViewTable = keyof typeof VIEW_TABLES;

/** Where the view stands: the last block applied (and its last transaction's index); height = block + 1. */
export interface ViewCheckpoint {
  readonly block: bigint;
  readonly txIndex: number;
  /** When that block was applied (ms since the epoch). */
  readonly appliedAt: number;
}

/** A block that does not follow the checkpoint: applying it would leave a gap. */
export class ViewGapError extends Error {
  constructor(
    readonly expected: bigint,
    readonly received: bigint,
  ) {
    super(`the ledger view expected block ${expected} and received block ${received}`);
    this.name = ViewGapError.name;
  }
}

/** A value under a kept key that is not what the chaincode writes there: the block is not applied. */
export class ViewValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = ViewValueError.name;
  }
}

function splitCompositeKey(key: string): { objectType: string; attributes: string[] } | undefined {
  if (!key.startsWith('\u0000') || !key.endsWith('\u0000')) return undefined;
  const [objectType, ...attributes] = key.slice(1, -1).split('\u0000');
  return objectType === undefined ? undefined : { objectType, attributes };
}

function json<T>(write: KeyWrite, what: string): T {
  try {
    const value = JSON.parse(Buffer.from(write.value ?? []).toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as T;
  } catch {
    // The key is a ledger key (it can name a DID or a resource id): only its type and block are said.
    throw new ViewValueError(`block ${write.blockNumber} transaction ${write.txIndex}: the value of a ${what} key is not a JSON object`);
  }
}

function text(value: unknown, field: string, write: KeyWrite, what: string): string {
  if (typeof value !== 'string') throw new ViewValueError(`block ${write.blockNumber} transaction ${write.txIndex}: ${what}.${field} is not a string`);
  return value;
}

/** One row of a table, as stored (for snapshots). */
export type ViewRow = Record<string, string | number | null>;

export class ViewStore {
  readonly #db: Database.Database;
  readonly #channel: string;
  readonly #namespace: string;
  /** Prepared statements, compiled once (a catch-up applies thousands of writes). */
  readonly #statements = new Map<string, Database.Statement>();

  /**
   * Opens (or creates) the view file for one channel and chaincode. A file made for another channel or
   * chaincode is refused: its rows would not be this ledger's.
   */
  constructor(file: string, options: { channel: string; namespace: string; readonly?: boolean }) {
    this.#channel = options.channel;
    this.#namespace = options.namespace;
    if (options.readonly === true) {
      if (!fs.existsSync(file)) throw new Error(`there is no ledger view at ${file}`);
      this.#db = new Database(file, { readonly: true, fileMustExist: true });
    } else {
      if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      this.#db = new Database(file);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('busy_timeout = 5000');
      this.#db.transaction(() => {
        const version = this.#db.pragma('user_version', { simple: true }) as number;
        if (version > SCHEMA_VERSION) throw new Error(`the ledger view at ${file} has schema ${version}, newer than this gateway's ${SCHEMA_VERSION}`);
        this.#db.exec(SCHEMA);
        if (version === 1) {
          // A view of schema 1 skipped `hdx.member` writes: it is emptied and follows its peer again from block 0.
          for (const table of [...Object.keys(VIEW_TABLES), 'view_checkpoint']) this.#db.exec(`DELETE FROM ${table}`);
        }
        this.#db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
      if (file !== ':memory:') fs.chmodSync(file, 0o600);
    }
    const row = this.#db.prepare('SELECT channel, namespace FROM view_checkpoint WHERE id = 1').get() as { channel: string; namespace: string } | undefined;
    if (row && (row.channel !== this.#channel || row.namespace !== this.#namespace)) {
      this.#db.close();
      throw new Error(`the ledger view at ${file} is of channel ${row.channel} and chaincode ${row.namespace}, not ${this.#channel} and ${this.#namespace}`);
    }
  }

  /** The last block applied, or undefined for a new view (which starts at block 0). */
  checkpoint(): ViewCheckpoint | undefined {
    const row = this.#prepare('SELECT block, tx_index, applied_at FROM view_checkpoint WHERE id = 1').safeIntegers(true).get() as
      { block: bigint; tx_index: bigint; applied_at: bigint } | undefined;
    return row ? { block: row.block, txIndex: Number(row.tx_index), appliedAt: Number(row.applied_at) } : undefined;
  }

  /** The number of blocks reflected (the ledger's height convention): last block applied + 1. */
  height(): bigint {
    const c = this.checkpoint();
    return c === undefined ? 0n : c.block + 1n;
  }

  /**
   * Applies one committed block, parsed, and moves the checkpoint to it, in one SQLite transaction.
   * A block already applied is skipped (returns false: no double); a block after the next one is refused
   * (ViewGapError: no gap). A value that is not what the chaincode writes under its key refuses the
   * whole block (ViewValueError), leaving the view where it was.
   */
  apply(block: ParsedBlock, now: number = Date.now()): boolean {
    return this.#db.transaction((): boolean => {
      const next = this.height();
      if (block.blockNumber < next) return false;
      if (block.blockNumber > next) throw new ViewGapError(next, block.blockNumber);
      for (const write of block.writes) this.#applyWrite(write);
      this.#prepare(
        `INSERT INTO view_checkpoint (id, channel, namespace, block, tx_index, applied_at) VALUES (1, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET block = excluded.block, tx_index = excluded.tx_index, applied_at = excluded.applied_at`,
      ).run(this.#channel, this.#namespace, block.blockNumber, block.envelopes - 1, now);
      return true;
    })();
  }

  #prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #applyWrite(write: KeyWrite): void {
    const composite = splitCompositeKey(write.key);
    if (!composite) return;
    const { objectType, attributes } = composite;
    const block = write.blockNumber;
    switch (objectType) {
      case 'hdx.did': {
        const [did] = attributes;
        if (write.deleted) {
          this.#prepare('DELETE FROM identities WHERE did = ?').run(did);
          return;
        }
        const r = json<IdentityRecord>(write, 'hdx.did');
        if (r.did !== did || !Array.isArray(r.guardians)) throw new ViewValueError(`block ${block} transaction ${write.txIndex}: an hdx.did value does not match its key`);
        this.#prepare(
          `INSERT INTO identities (did, kind, organization, status, version, guardians, record, block, tx_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (did) DO UPDATE SET kind = excluded.kind, organization = excluded.organization, status = excluded.status, version = excluded.version,
             guardians = excluded.guardians, record = excluded.record, block = excluded.block, tx_id = excluded.tx_id`,
        ).run(
          did,
          text(r.kind, 'kind', write, 'hdx.did'),
          text(r.organization, 'organization', write, 'hdx.did'),
          text(r.status, 'status', write, 'hdx.did'),
          Number(r.version),
          JSON.stringify(r.guardians),
          JSON.stringify(r),
          block,
          write.txId,
        );
        return;
      }
      case 'hdx.did~org': {
        const [mspId, did] = attributes;
        if (write.deleted) this.#prepare('DELETE FROM org_dids WHERE msp_id = ? AND did = ?').run(mspId, did);
        else
          this.#prepare('INSERT INTO org_dids (msp_id, did, block, tx_id) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET block = excluded.block, tx_id = excluded.tx_id').run(
            mspId,
            did,
            block,
            write.txId,
          );
        return;
      }
      case 'hdx.consent': {
        const [id] = attributes;
        if (write.deleted) {
          this.#prepare('DELETE FROM consents WHERE id = ?').run(id);
          return;
        }
        const r = json<ConsentRecord>(write, 'hdx.consent');
        if (r.id !== id) throw new ViewValueError(`block ${block} transaction ${write.txIndex}: an hdx.consent value does not match its key`);
        this.#prepare(
          `INSERT INTO consents (id, patient, status, version, record, block, tx_id) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET patient = excluded.patient, status = excluded.status, version = excluded.version, record = excluded.record,
             block = excluded.block, tx_id = excluded.tx_id`,
        ).run(id, text(r.patient, 'patient', write, 'hdx.consent'), text(r.status, 'status', write, 'hdx.consent'), Number(r.version), JSON.stringify(r), block, write.txId);
        return;
      }
      case 'hdx.link': {
        const [custodian, pseudonym] = attributes;
        if (write.deleted) {
          this.#prepare('DELETE FROM patient_links WHERE custodian = ? AND pseudonym = ?').run(custodian, pseudonym);
          return;
        }
        const r = json<PatientLink>(write, 'hdx.link');
        this.#prepare(
          `INSERT INTO patient_links (custodian, pseudonym, did, record, block, tx_id) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET did = excluded.did, record = excluded.record, block = excluded.block, tx_id = excluded.tx_id`,
        ).run(custodian, pseudonym, text(r.did, 'did', write, 'hdx.link'), JSON.stringify(r), block, write.txId);
        return;
      }
      case 'hdx.anchor': {
        const [resourceType, id, versionId] = attributes;
        if (write.deleted) {
          this.#prepare('DELETE FROM anchors WHERE resource_type = ? AND id = ? AND version_id = ?').run(resourceType, id, versionId);
          return;
        }
        const r = json<Anchor>(write, 'hdx.anchor');
        this.#prepare(
          `INSERT INTO anchors (resource_type, id, version_id, patient, custodian, erased, record, block, tx_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET patient = excluded.patient, custodian = excluded.custodian, erased = excluded.erased, record = excluded.record,
             block = excluded.block, tx_id = excluded.tx_id`,
        ).run(resourceType, id, versionId, r.patient ?? null, text(r.custodian, 'custodian', write, 'hdx.anchor'), r.tombstone ? 1 : 0, JSON.stringify(r), block, write.txId);
        return;
      }
      case 'hdx.member': {
        const [mspId] = attributes;
        if (write.deleted) {
          this.#prepare('DELETE FROM members WHERE msp_id = ?').run(mspId);
          return;
        }
        const r = json<MemberRemoval>(write, 'hdx.member');
        if (r.mspId !== mspId) throw new ViewValueError(`block ${block} transaction ${write.txIndex}: an hdx.member value does not match its key`);
        this.#prepare(
          `INSERT INTO members (msp_id, status, record, block, tx_id) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (msp_id) DO UPDATE SET status = excluded.status, record = excluded.record, block = excluded.block, tx_id = excluded.tx_id`,
        ).run(mspId, text(r.status, 'status', write, 'hdx.member'), JSON.stringify(r), block, write.txId);
        return;
      }
      default:
        return;
    }
  }

  identity(did: string): IdentityRecord | undefined {
    return this.#record<IdentityRecord>('SELECT record FROM identities WHERE did = ?', did);
  }

  /** The DIDs under an organization's `hdx.did~org` index (its organization DIDs), in key order. */
  organizationDids(mspId: string): string[] {
    return (this.#prepare('SELECT did FROM org_dids WHERE msp_id = ? ORDER BY did').all(mspId) as Array<{ did: string }>).map((r) => r.did);
  }

  /** Whether the organization was removed from the consortium (its `hdx.member` removal is in force). */
  organizationRemoved(mspId: string): boolean {
    return (this.#prepare('SELECT status FROM members WHERE msp_id = ?').get(mspId) as { status: string } | undefined)?.status === 'removed';
  }

  consent(id: string): ConsentRecord | undefined {
    return this.#record<ConsentRecord>('SELECT record FROM consents WHERE id = ?', id);
  }

  /** A patient's consents (active and revoked), in id order, as the chaincode lists them. */
  consentsOf(patient: string): ConsentRecord[] {
    return (this.#prepare('SELECT record FROM consents WHERE patient = ? ORDER BY id').all(patient) as Array<{ record: string }>).map((r) => JSON.parse(r.record) as ConsentRecord);
  }

  link(custodian: string, pseudonym: string): PatientLink | undefined {
    return this.#record<PatientLink>('SELECT record FROM patient_links WHERE custodian = ? AND pseudonym = ?', custodian, pseudonym);
  }

  anchor(resourceType: string, id: string, versionId: string): Anchor | undefined {
    return this.#record<Anchor>('SELECT record FROM anchors WHERE resource_type = ? AND id = ? AND version_id = ?', resourceType, id, versionId);
  }

  #record<T>(sql: string, ...params: string[]): T | undefined {
    const row = this.#prepare(sql).get(...params) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as T) : undefined;
  }

  /** Row counts per table. */
  counts(): Record<ViewTable, number> {
    const out = {} as Record<ViewTable, number>;
    for (const table of Object.keys(VIEW_TABLES) as ViewTable[]) out[table] = (this.#prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return out;
  }

  /**
   * Every row of every table and the checkpoint, read in one SQLite read transaction (a consistent
   * state even while a gateway applies blocks to the same file).
   */
  snapshot(): ViewSnapshot {
    return this.#db.transaction((): ViewSnapshot => {
      const tables = {} as Record<ViewTable, ViewRow[]>;
      for (const [table, keys] of Object.entries(VIEW_TABLES) as Array<[ViewTable, readonly string[]]>) {
        tables[table] = this.#prepare(`SELECT * FROM ${table} ORDER BY ${keys.join(', ')}`).all() as ViewRow[];
      }
      return { height: this.height(), tables };
    })();
  }

  close(): void {
    this.#db.close();
  }
}

export interface ViewSnapshot {
  readonly height: bigint;
  readonly tables: Readonly<Record<ViewTable, readonly ViewRow[]>>;
}
