import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { PgStore } from '../store/pg-store';
import { testPgSchema, testPostgresUrl } from '../test-support/postgres';
import { type JtiStore, MemoryJtiStore, PgJtiStore, SqliteJtiStore } from './replay';

function behavesAsAJtiStore(name: string, make: (now: () => number) => JtiStore & { close?(): void | Promise<void> }): void {
  describe(name, () => {
    let clock = 1_700_000_000_000;
    const now = (): number => clock;
    let store: JtiStore & { close?(): void | Promise<void> };
    beforeEach(() => {
      clock = 1_700_000_000_000;
      store = make(now);
    });
    afterEach(async () => store.close?.());

    it('accepts a jti once, then refuses it until it expires', async () => {
      const exp = clock / 1000 + 300;
      expect(await store.seen('a', exp)).to.equal(false);
      expect(await store.seen('a', exp)).to.equal(true);
      expect(await store.seen('b', exp)).to.equal(false);
      clock += 300_000; // exactly at exp: still live
      expect(await store.seen('a', exp)).to.equal(true);
      clock += 1_000;
      expect(await store.seen('a', clock / 1000 + 300)).to.equal(false);
      expect(await store.seen('a', clock / 1000 + 300)).to.equal(true);
    });

    it('sweeps expired entries without losing live ones', async () => {
      for (let i = 0; i < 50; i++) await store.seen(`old-${i}`, clock / 1000 + 10);
      await store.seen('live', clock / 1000 + 1000);
      clock += 120_000;
      expect(await store.seen('trigger', clock / 1000 + 10)).to.equal(false);
      expect(await store.seen('live', clock / 1000 + 1000)).to.equal(true);
      expect(await store.seen('old-7', clock / 1000 + 10)).to.equal(false);
    });
  });
}

describe('auth/replay', () => {
  behavesAsAJtiStore('MemoryJtiStore', (now) => new MemoryJtiStore({ now }));
  behavesAsAJtiStore('SqliteJtiStore (a Database instance)', (now) => new SqliteJtiStore(new Database(':memory:'), { now }));

  describe('PgJtiStore', () => {
    let url = '';
    before(async function () {
      this.timeout(120_000);
      url = await testPostgresUrl();
    });
    behavesAsAJtiStore('PgJtiStore (the PostgreSQL store)', (now) => {
      const pg = new PgStore({ url, schema: testPgSchema(), poolSize: 2 });
      return Object.assign(new PgJtiStore(pg.query, { now }), { close: () => pg.close() });
    });

    it('two gateway processes on one database: a token used at one is refused at the other, even at the same moment', async () => {
      const schema = testPgSchema();
      const [a, b] = [new PgStore({ url, schema }), new PgStore({ url, schema })];
      try {
        const [ja, jb] = [new PgJtiStore(a.query), new PgJtiStore(b.query)];
        const exp = Math.floor(Date.now() / 1000) + 300;
        expect(await ja.seen('did:hdx:x once', exp)).to.equal(false);
        expect(await jb.seen('did:hdx:x once', exp)).to.equal(true);
        // Twenty tokens, each shown to both replicas at once: each is accepted exactly once.
        const raced = await Promise.all(Array.from({ length: 20 }, (_, i) => Promise.all([ja.seen(`did:hdx:x t${i}`, exp), jb.seen(`did:hdx:x t${i}`, exp)])));
        for (const [x, y] of raced) expect([x, y].sort()).to.deep.equal([false, true]);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  it('MemoryJtiStore drops expired entries on sweep', async () => {
    let clock = 0;
    const store = new MemoryJtiStore({ now: () => clock, sweepIntervalMs: 1000 });
    await store.seen('x', 10);
    await store.seen('y', 10);
    clock = 20_000;
    await store.seen('z', 30);
    expect(store.size).to.equal(1);
  });

  it('SqliteJtiStore keeps its token_jti table across restarts (file path)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-jti-'));
    try {
      const file = path.join(dir, 'sub', 'auth.db');
      const exp = Math.floor(Date.now() / 1000) + 300;
      const first = new SqliteJtiStore(file);
      expect(await first.seen('did:hdx:x j1', exp)).to.equal(false);
      first.close();
      const second = new SqliteJtiStore(file);
      expect(await second.seen('did:hdx:x j1', exp)).to.equal(true);
      second.close();
      const db = new Database(file, { readonly: true });
      expect(db.prepare('SELECT jti, expires_at FROM token_jti').all()).to.deep.equal([{ jti: 'did:hdx:x j1', expires_at: exp }]);
      db.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SqliteJtiStore leaves a Database it was given open', () => {
    const db = new Database(':memory:');
    const store = new SqliteJtiStore(db);
    store.close();
    expect(db.open).to.equal(true);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'token_jti'").get()).to.deep.equal({ name: 'token_jti' });
    db.close();
  });
});
