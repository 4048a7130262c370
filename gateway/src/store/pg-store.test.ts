import { expect } from 'chai';
import { Client } from 'pg';
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
