/**
 * The store a unit test runs on: SqliteStore by default; PgStore when HDX_TEST_STORE=postgres (the
 * test command runs the gateway's unit tests once on each). On PostgreSQL every store gets a schema of
 * its own; a store opened again on the same file gets the same schema (a restart, as with SQLite).
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type { OutboxOptions } from '../audit/outbox';
import { PgOutboxQueue } from '../audit/outbox-pg';
import { PgStore } from '../store/pg-store';
import { SqliteStore } from '../store/sqlite-store';
import type { ResourceStore } from '../store/store';
import { sqlInSchema, stopTestPostgres, testPgSchema, testPostgresUrl } from './postgres';

let pgUrl: string | undefined;
/** The PostgreSQL stores tests opened: closed before the server stops (an open connection would see it go). */
const opened: PgStore[] = [];

export function testStoreKind(): 'sqlite' | 'postgres' {
  const kind = process.env.HDX_TEST_STORE ?? 'sqlite';
  if (kind !== 'sqlite' && kind !== 'postgres') throw new Error(`HDX_TEST_STORE is sqlite or postgres, not ${kind}`);
  return kind;
}

/** A store for a test: in memory (or `file`) on SQLite, a schema of its own (or `file`'s) on PostgreSQL. */
export function testStore(file = ':memory:'): ResourceStore {
  if (testStoreKind() === 'sqlite') return new SqliteStore(file);
  if (pgUrl === undefined) throw new Error('HDX_TEST_STORE=postgres: the root hook starts PostgreSQL before the tests (gateway/.mocharc.json requires test-support/test-store.ts)');
  const store = new PgStore({ url: pgUrl, schema: file === ':memory:' ? testPgSchema() : schemaOf(file), poolSize: 4 });
  opened.push(store);
  return store;
}

/**
 * Where a test's audit outbox keeps its queue beside `store`: the PostgreSQL tables of a PgStore (as
 * server.ts does with HDX_STORE), else the SQLite file `file`.
 */
export function testOutboxQueue(store: ResourceStore, file: string): Pick<OutboxOptions, 'file' | 'queue'> {
  return store instanceof PgStore ? { queue: new PgOutboxQueue(store, { leaseMs: 5_000 }) } : { file };
}

function schemaOf(file: string): string {
  return `f_${createHash('sha256').update(file).digest('hex').slice(0, 16)}`;
}

/**
 * Runs SQL on the tables of the store testStore(file) opened, behind its back (a test that tampers with
 * what is stored, or counts rows): `?` placeholders, numbers as numbers on both databases.
 */
export async function testStoreSql(file: string, sql: string, params: readonly unknown[] = []): Promise<Array<Record<string, unknown>>> {
  if (testStoreKind() === 'sqlite') {
    const db = new Database(file);
    try {
      const stmt = db.prepare(sql);
      return stmt.reader ? (stmt.all(...params) as Array<Record<string, unknown>>) : (stmt.run(...params), []);
    } finally {
      db.close();
    }
  }
  // The store migrates at its first use: a test may look before it did anything.
  const store = new PgStore({ url: pgUrl as string, schema: schemaOf(file), poolSize: 1 });
  await store.ping();
  await store.close();
  return sqlInSchema(pgUrl as string, schemaOf(file), sql, params);
}

/**
 * Mocha root hooks (gateway/.mocharc.json requires this file): PostgreSQL is started before the first
 * test when the tests run on it, and stopped after the last (also when only some tests used it).
 */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    if (testStoreKind() !== 'postgres') return;
    this.timeout(120_000);
    pgUrl = await testPostgresUrl();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000);
    // A store a timed-out test left mid-transaction may never close: wait a while, then stop the server anyway (fast shutdown ends its sessions).
    const closed = Promise.all(opened.splice(0).map((s) => s.close())).then(() => true);
    await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000).unref())]);
    await stopTestPostgres();
  },
};
