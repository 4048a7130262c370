import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { SCHEMA_VERSION, SqliteStore } from './sqlite-store';

describe('SqliteStore schema', () => {
  it('upgrades a first-release store in place, backfilling the search columns, and keeps every version', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    // A store as the first release wrote it (no user_version, no search columns).
    const old = new Database(file);
    old.exec(`CREATE TABLE resource_version (resource_type TEXT NOT NULL, id TEXT NOT NULL, version_id INTEGER NOT NULL, last_updated TEXT NOT NULL,
      patient_id TEXT, deleted INTEGER NOT NULL DEFAULT 0, content TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (resource_type, id, version_id)) WITHOUT ROWID;
      CREATE TABLE patient_key (patient_id TEXT PRIMARY KEY, hmac_key BLOB NOT NULL, created TEXT NOT NULL) WITHOUT ROWID;`);
    const obs = { resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: 'Patient/p1' }, effectiveDateTime: '2026-01-02T03:04:05+01:00' };
    old.prepare("INSERT INTO resource_version VALUES ('Observation', 'o1', 1, '2026-01-02T00:00:00.000Z', 'p1', 0, ?, 'anchored')").run(JSON.stringify(obs));
    old.close();

    const store = new SqliteStore(file);
    const hits = store.search({ resourceType: 'Observation', codes: ['http://loinc.org|8867-4'], date: [{ op: 'eq', value: '2026-01-02' }], limit: 10 });
    expect(hits.map((h) => h.id)).to.deep.equal(['o1']);
    store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).to.equal(SCHEMA_VERSION);
    db.close();
  });

  it('refuses a store written by a newer gateway', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'store-')), 'hdx.db');
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteStore(file)).to.throw(/newer gateway/);
  });
});
