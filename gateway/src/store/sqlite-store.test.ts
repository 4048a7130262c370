import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { SCHEMA_VERSION, SqliteStore } from './sqlite-store';
import { backfillContract } from '../test-support/backfill-contract';
import { storeContract } from '../test-support/store-contract';
import { criteriaOf } from './search-index';

let file = '';
storeContract('SqliteStore', () => ({
  open: () => new SqliteStore(file),
  fresh: async () => {
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
  },
}));

let backfillFile = '';
backfillContract('SqliteStore', { ucum: 'migration 9', identifiers: 'migration 10' }, () => ({
  fresh: async () => {
    backfillFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
  },
  open: () => new SqliteStore(backfillFile),
  beforeUcum: async () => {
    // The store as schema 8 had it: no canonical columns.
    const db = new Database(backfillFile);
    db.exec('DROP INDEX search_index_canonical; ALTER TABLE search_index DROP COLUMN cu; ALTER TABLE search_index DROP COLUMN cn1; ALTER TABLE search_index DROP COLUMN cn2');
    db.pragma('user_version = 8');
    db.close();
  },
  beforeIdentifiers: async () => {
    // The store as schema 9 had it: no rows for Reference.identifier.
    const db = new Database(backfillFile);
    const removed = db.prepare("DELETE FROM search_index WHERE param LIKE '%:identifier'").run().changes;
    db.pragma('user_version = 9');
    db.close();
    return removed;
  },
  rows: async (sql) => {
    const db = new Database(backfillFile, { readonly: true });
    try {
      return db.prepare(sql).all();
    } finally {
      db.close();
    }
  },
  schemaVersion: async () => {
    const db = new Database(backfillFile, { readonly: true });
    try {
      return { recorded: Number(db.pragma('user_version', { simple: true })), current: SCHEMA_VERSION };
    } finally {
      db.close();
    }
  },
}));

describe('SqliteStore schema', () => {
  it('upgrades a first-release store in place, backfilling the search columns, and keeps every version', async () => {
    const dbFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    // A store as the first release wrote it (no user_version, no search columns).
    const old = new Database(dbFile);
    old.exec(`CREATE TABLE resource_version (resource_type TEXT NOT NULL, id TEXT NOT NULL, version_id INTEGER NOT NULL, last_updated TEXT NOT NULL,
      patient_id TEXT, deleted INTEGER NOT NULL DEFAULT 0, content TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (resource_type, id, version_id)) WITHOUT ROWID;
      CREATE TABLE patient_key (patient_id TEXT PRIMARY KEY, hmac_key BLOB NOT NULL, created TEXT NOT NULL) WITHOUT ROWID;`);
    const obs = {
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: 'Patient/p1' },
      effectiveDateTime: '2026-01-02T03:04:05+01:00',
      valueQuantity: { value: 72, system: 'http://unitsofmeasure.org', code: '/min' },
    };
    old.prepare("INSERT INTO resource_version VALUES ('Observation', 'o1', 1, '2026-01-02T00:00:00.000Z', 'p1', 0, ?, 'anchored')").run(JSON.stringify(obs));
    old.close();

    const store = new SqliteStore(dbFile);
    const hits = await store.search({ resourceType: 'Observation', codes: ['http://loinc.org|8867-4'], date: [{ op: 'eq', value: '2026-01-02' }], limit: 10 });
    expect(hits.map((h) => h.id)).to.deep.equal(['o1']);
    // The search index is backfilled too (migration 5).
    const indexed = await store.search({
      resourceType: 'Observation',
      criteria: [
        { kind: 'token', param: 'code', not: false, values: [{ system: 'http://loinc.org', code: '8867-4' }] },
        { kind: 'reference', param: 'subject', values: [{ ref: 'Patient/p1' }] },
        { kind: 'date', param: 'date', op: 'eq', value: '2026-01-02' },
        // Number and quantity values too (migration 6 rebuilds the index with them).
        { kind: 'quantity', param: 'value-quantity', values: [{ op: 'gt', value: 70, lo: 69.5, hi: 70.5, system: 'http://unitsofmeasure.org', code: '/min' }] },
        // And in UCUM canonical units (migration 9 backfills them): 72 /min is 1.2 /s.
        ...(criteriaOf('Observation', 'value-quantity', ['1.2|http://unitsofmeasure.org|/s']) ?? []),
      ],
      limit: 10,
    });
    expect(indexed.map((h) => h.id)).to.deep.equal(['o1']);
    // The access class too (migration 7): the version is grouped with its clinical month and no labels.
    expect(await store.searchClasses({ resourceType: 'Observation' })).to.deep.equal([
      { key: `p1\u001f${JSON.stringify(['2026-01', []])}`, patientId: 'p1', accessClass: JSON.stringify(['2026-01', []]), count: 1 },
    ]);
    await store.close();
    const db = new Database(dbFile, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).to.equal(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a store written by a newer gateway', () => {
    const dbFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    const db = new Database(dbFile);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(dbFile)).to.throw(/newer gateway/);
  });
});
