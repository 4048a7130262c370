import { expect } from 'chai';
import { Client } from 'pg';
import { storeContract } from '../test-support/store-contract';
import { testPgSchema, testPostgresUrl } from '../test-support/postgres';
import { PG_SCHEMA_VERSION, PgStore, toPositional } from './pg-store';
import { criteriaOf, indexEntriesOf } from './search-index';
import type { NewVersion } from './store';

const UCUM = 'http://unitsofmeasure.org';

let url = '';
let schema = '';
storeContract('PgStore', () => ({
  open: () => new PgStore({ url, schema }),
  fresh: async () => {
    url = await testPostgresUrl();
    schema = testPgSchema();
  },
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

  it('migration 6 backfills the UCUM canonical values of the quantity rows a schema-5 store holds, and nothing else', async () => {
    const s = testPgSchema();
    const store = new PgStore({ url, schema: s });
    const obs = (id: string, valueQuantity: Record<string, unknown>): NewVersion => {
      const content = { resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, valueQuantity };
      return {
        resourceType: 'Observation',
        id,
        versionId: 1,
        lastUpdated: '2026-12-01T00:00:00.000Z',
        patientId: 'p1',
        deleted: false,
        content: JSON.stringify(content),
        date: null,
        codes: [],
        index: indexEntriesOf(content),
      };
    };
    const versions = [
      obs('mg', { value: 5000, system: UCUM, code: 'mg' }),
      obs('mg2', { value: 5000, system: UCUM, code: 'mg' }),
      obs('under', { value: 3, comparator: '<', system: UCUM, code: 'g' }),
      obs('local', { value: 5000, unit: 'mg' }),
      obs('iu', { value: 5, system: UCUM, code: '[IU]/L' }),
    ];
    try {
      await store.insertPendingWrite({ versions, newPatientKeys: [], didLinks: [] });
      await store.markAnchoredAll(versions);
    } finally {
      await store.close();
    }
    // The store as schema 5 had it: no canonical columns.
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(
        `DROP INDEX ${s}.search_index_canonical; ALTER TABLE ${s}.search_index DROP COLUMN cu, DROP COLUMN cn1, DROP COLUMN cn2; UPDATE ${s}.hdx_schema SET version = 5`,
      );
    } finally {
      await client.end();
    }
    const reopened = new PgStore({ url, schema: s });
    try {
      const find = async (raw: string): Promise<string[]> =>
        (await reopened.search({ resourceType: 'Observation', criteria: criteriaOf('Observation', 'value-quantity', [raw]) ?? [], limit: 10 })).map((v) => v.id).sort();
      expect(await find(`5|${UCUM}|g`)).to.deep.equal(['mg', 'mg2']);
      expect(await find(`lt1000|${UCUM}|mg`)).to.deep.equal(['under']);
      expect(await find(`5|${UCUM}|[IU]/L`)).to.deep.equal(['iu']);
      expect(await find('5000||mg')).to.deep.equal(['local', 'mg', 'mg2']);
      const rows = (await reopened.query(`SELECT id, cu, cn1, cn2 FROM search_index WHERE param = 'value-quantity' ORDER BY id`)).rows;
      expect(rows).to.deep.equal([
        { id: 'iu', cu: '', cn1: null, cn2: null },
        { id: 'local', cu: '', cn1: null, cn2: null },
        { id: 'mg', cu: 'g', cn1: 5, cn2: 5 },
        { id: 'mg2', cu: 'g', cn1: 5, cn2: 5 },
        { id: 'under', cu: 'g', cn1: -Infinity, cn2: 3 },
      ]);
      expect((await reopened.query('SELECT version FROM hdx_schema')).rows).to.deep.equal([{ version: PG_SCHEMA_VERSION }]);
    } finally {
      await reopened.close();
    }
  });

  it('migration 7 indexes the logical identifiers of the references a schema-6 store holds', async () => {
    const s = testPgSchema();
    const store = new PgStore({ url, schema: s });
    const content = {
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: 'Patient/p1', identifier: { system: 'urn:mrn', value: 'A-1' } },
    };
    const plain = { resourceType: 'Observation', id: 'o2', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/p1' } };
    const versions: NewVersion[] = [content, plain].map((c) => ({
      resourceType: 'Observation',
      id: c.id,
      versionId: 1,
      lastUpdated: '2026-12-01T00:00:00.000Z',
      patientId: 'p1',
      deleted: false,
      content: JSON.stringify(c),
      date: null,
      codes: [],
      index: indexEntriesOf(c),
    }));
    try {
      await store.insertPendingWrite({ versions, newPatientKeys: [], didLinks: [] });
      await store.markAnchoredAll(versions);
      // The store as schema 6 had it: no rows for Reference.identifier.
      expect((await store.query("DELETE FROM search_index WHERE param LIKE '%:identifier'")).rowCount).to.equal(2);
      await store.query('UPDATE hdx_schema SET version = 6');
    } finally {
      await store.close();
    }
    const reopened = new PgStore({ url, schema: s });
    try {
      const hits = await reopened.search({ resourceType: 'Observation', criteria: criteriaOf('Observation', 'subject:identifier', ['urn:mrn|A-1']) ?? [], limit: 10 });
      expect(hits.map((v) => v.id)).to.deep.equal(['o1']);
      expect((await reopened.query(`SELECT id, param FROM search_index WHERE param LIKE '%:identifier' ORDER BY param`)).rows).to.deep.equal([
        { id: 'o1', param: 'patient:identifier' },
        { id: 'o1', param: 'subject:identifier' },
      ]);
      expect((await reopened.query('SELECT version FROM hdx_schema')).rows).to.deep.equal([{ version: PG_SCHEMA_VERSION }]);
    } finally {
      await reopened.close();
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
