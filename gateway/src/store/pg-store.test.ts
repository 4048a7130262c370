import { expect } from 'chai';
import { Client } from 'pg';
import { backfillContract } from '../test-support/backfill-contract';
import { storeContract } from '../test-support/store-contract';
import { testPgSchema, testPostgresUrl } from '../test-support/postgres';
import { PG_SCHEMA_VERSION, PgStore, toPositional } from './pg-store';

let url = '';
let schema = '';
storeContract('PgStore', () => ({
  open: () => new PgStore({ url, schema }),
  fresh: async () => {
    url = await testPostgresUrl();
    schema = testPgSchema();
  },
}));

let backfillSchema = '';
const sql = async (text: string): Promise<{ rows: unknown[]; rowCount: number }> => {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query(text);
    return { rows: res.rows as unknown[], rowCount: res.rowCount ?? 0 };
  } finally {
    await client.end();
  }
};
backfillContract('PgStore', { ucum: 'migration 6', identifiers: 'migration 7' }, () => ({
  fresh: async () => {
    url = await testPostgresUrl();
    backfillSchema = testPgSchema();
  },
  open: () => new PgStore({ url, schema: backfillSchema }),
  // The store as schema 5 had it: no canonical columns.
  beforeUcum: async () => {
    const s = backfillSchema;
    await sql(`DROP INDEX ${s}.search_index_canonical; ALTER TABLE ${s}.search_index DROP COLUMN cu, DROP COLUMN cn1, DROP COLUMN cn2; UPDATE ${s}.hdx_schema SET version = 5`);
  },
  // The store as schema 6 had it: no rows for Reference.identifier.
  beforeIdentifiers: async () => {
    const removed = (await sql(`DELETE FROM ${backfillSchema}.search_index WHERE param LIKE '%:identifier'`)).rowCount;
    await sql(`UPDATE ${backfillSchema}.hdx_schema SET version = 6`);
    return removed;
  },
  rows: async (text) => (await sql(text.replace(/\bsearch_index\b/, `${backfillSchema}.search_index`))).rows,
  schemaVersion: async () => ({
    recorded: Number(((await sql(`SELECT version FROM ${backfillSchema}.hdx_schema`)).rows[0] as { version: number }).version),
    current: PG_SCHEMA_VERSION,
  }),
}));

describe('PgStore', () => {
  before(async function () {
    this.timeout(120_000);
    url = await testPostgresUrl();
  });

  it('numbers named parameters, one number per name, and refuses a name it was not given', () => {
    expect(toPositional('a = @x AND b = @y OR c = @x', { x: 1, y: 'two' })).to.deep.equal({ text: 'a = $1 AND b = $2 OR c = $1', values: [1, 'two'] });
    expect(() => toPositional('a = @z', {})).to.throw(/not given: z/);
  });

  it('two processes starting on one empty database: one migrates, the other finds the schema done', async () => {
    const s = testPgSchema();
    const [a, b] = [new PgStore({ url, schema: s }), new PgStore({ url, schema: s })];
    await Promise.all([a.ping(), b.ping()]);
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query(`SELECT version FROM ${s}.hdx_schema`)).rows).to.deep.equal([{ version: PG_SCHEMA_VERSION }]);
    } finally {
      await client.end();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("two processes on one database: a live process's pending write is left to it; a dead one's is settled by the other, once", async () => {
    const s = testPgSchema();
    const [a, b, c] = [new PgStore({ url, schema: s }), new PgStore({ url, schema: s }), new PgStore({ url, schema: s })];
    try {
      const content = JSON.stringify({ resourceType: 'Patient', id: 'p1', meta: { versionId: '1' } });
      const version = { resourceType: 'Patient', id: 'p1', versionId: 1, lastUpdated: '2026-12-01T00:00:00.000Z', patientId: 'p1', deleted: false, content, date: null, codes: [] };
      await a.insertPendingWrite({ writeId: 'w1', versions: [version], newPatientKeys: [], didLinks: [] });
      // A is alive (it holds its lock): B and C see nothing to settle, and B cannot take its write.
      expect(await b.listPendingWrites()).to.deep.equal([]);
      expect(await c.listPendingWrites()).to.deep.equal([]);
      // A dies with its write pending: the first of B and C to look takes it over, the other does not see it.
      await a.close();
      const [fromB, fromC] = await Promise.all([b.listPendingWrites(), c.listPendingWrites()]);
      expect([...fromB, ...fromC].map((w) => w.writeId)).to.deep.equal(['w1']);
      const settler = fromB.length > 0 ? b : c;
      await settler.discardPendingWrite(fromB[0] ?? (fromC[0] as NonNullable<(typeof fromC)[0]>));
      expect(await settler.listPendingWrites()).to.deep.equal([]);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('exclusive: two processes never run the same key at once; other keys run meanwhile', async () => {
    const s = testPgSchema();
    const [a, b] = [new PgStore({ url, schema: s }), new PgStore({ url, schema: s })];
    try {
      const log: string[] = [];
      const until = async (cond: () => boolean): Promise<void> => {
        while (!cond()) await new Promise((r) => setTimeout(r, 5));
      };
      // Same key: B asks while A holds it, and runs only once A is done.
      let releaseA!: () => void;
      const heldA = a.exclusive('Patient?identifier=x', async () => {
        log.push('a+');
        await new Promise<void>((r) => (releaseA = r));
        log.push('a-');
      });
      await until(() => log.includes('a+'));
      const waitingB = b.exclusive('Patient?identifier=x', async () => {
        log.push('b+');
        log.push('b-');
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(log, 'B waits while A holds the key').to.deep.equal(['a+']);
      releaseA();
      await Promise.all([heldA, waitingB]);
      expect(log).to.deep.equal(['a+', 'a-', 'b+', 'b-']);
      // Other keys: A holds k1 until B has run k2 (it would never end if B waited for A).
      log.length = 0;
      const holdK1 = a.exclusive('k1', async () => {
        log.push('a+');
        await until(() => log.includes('b-'));
        log.push('a-');
      });
      await until(() => log.includes('a+'));
      await b.exclusive('k2', async () => {
        log.push('b+');
        log.push('b-');
      });
      await holdK1;
      expect(log).to.deep.equal(['a+', 'b+', 'b-', 'a-']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('exclusive: more locks held at once than the pool has connections, each running queries, never deadlocks', async () => {
    const store = new PgStore({ url, schema: testPgSchema(), poolSize: 2 });
    try {
      const ran = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.exclusive(`key-${i}`, async () => {
            await new Promise((r) => setTimeout(r, 20));
            await store.readCurrent('Patient', `p${i}`);
            return i;
          }),
        ),
      );
      expect(ran).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await store.close();
    }
  });

  it('a write another process settled meanwhile is not acknowledged: marking it anchored fails', async () => {
    const store = new PgStore({ url, schema: testPgSchema() });
    try {
      const content = JSON.stringify({ resourceType: 'Patient', id: 'p2', meta: { versionId: '1' } });
      const write = {
        writeId: 'w2',
        versions: [{ resourceType: 'Patient', id: 'p2', versionId: 1, lastUpdated: '2026-12-01T00:00:00.000Z', patientId: 'p2', deleted: false, content, date: null, codes: [] }],
        newPatientKeys: [],
        didLinks: [],
      };
      await store.insertPendingWrite(write);
      await store.discardPendingWrite(write); // as another process would, having taken this one for dead
      try {
        await store.markWriteAnchored(write);
        expect.fail('the write was acknowledged');
      } catch (err) {
        expect(err).to.have.property('code', 'UNAVAILABLE');
      }
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL out of reach is a 503 the client may retry, naming no host or credentials', async () => {
    const store = new PgStore({ url: 'postgres://hdx:secret-password@127.0.0.1:1/hdx', poolSize: 1 });
    try {
      const err = await store.readCurrent('Patient', 'p1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.have.property('code', 'UNAVAILABLE');
      expect(String((err as Error).message)).to.not.match(/secret-password|127\.0\.0\.1/);
    } finally {
      await store.close();
    }
  });

  it('refuses a store written by a newer gateway, and says so at the first use', async () => {
    const s = testPgSchema();
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`CREATE SCHEMA ${s}; CREATE TABLE ${s}.hdx_schema (version INTEGER NOT NULL); INSERT INTO ${s}.hdx_schema VALUES (${PG_SCHEMA_VERSION + 1})`);
    } finally {
      await client.end();
    }
    const store = new PgStore({ url, schema: s });
    try {
      await store.ping();
      expect.fail('the store opened');
    } catch (err) {
      expect(String(err)).to.match(/newer gateway/);
    } finally {
      await store.close();
    }
  });
});
