import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { type JtiStore, MemoryJtiStore, SqliteJtiStore } from './replay';

function behavesAsAJtiStore(name: string, make: (now: () => number) => JtiStore & { close?(): void }): void {
  describe(name, () => {
    let clock = 1_700_000_000_000;
    const now = (): number => clock;
    let store: JtiStore & { close?(): void };
    beforeEach(() => {
      clock = 1_700_000_000_000;
      store = make(now);
    });
    afterEach(() => store.close?.());

    it('accepts a jti once, then refuses it until it expires', () => {
      const exp = clock / 1000 + 300;
      expect(store.seen('a', exp)).to.equal(false);
      expect(store.seen('a', exp)).to.equal(true);
      expect(store.seen('b', exp)).to.equal(false);
      clock += 300_000; // exactly at exp: still live
      expect(store.seen('a', exp)).to.equal(true);
      clock += 1_000;
      expect(store.seen('a', clock / 1000 + 300)).to.equal(false);
      expect(store.seen('a', clock / 1000 + 300)).to.equal(true);
    });

    it('sweeps expired entries without losing live ones', () => {
      for (let i = 0; i < 50; i++) store.seen(`old-${i}`, clock / 1000 + 10);
      store.seen('live', clock / 1000 + 1000);
      clock += 120_000;
      expect(store.seen('trigger', clock / 1000 + 10)).to.equal(false);
      expect(store.seen('live', clock / 1000 + 1000)).to.equal(true);
      expect(store.seen('old-7', clock / 1000 + 10)).to.equal(false);
    });
  });
}

describe('auth/replay', () => {
  behavesAsAJtiStore('MemoryJtiStore', (now) => new MemoryJtiStore({ now }));
  behavesAsAJtiStore('SqliteJtiStore (a Database instance)', (now) => new SqliteJtiStore(new Database(':memory:'), { now }));

  it('MemoryJtiStore drops expired entries on sweep', () => {
    let clock = 0;
    const store = new MemoryJtiStore({ now: () => clock, sweepIntervalMs: 1000 });
    store.seen('x', 10);
    store.seen('y', 10);
    clock = 20_000;
    store.seen('z', 30);
    expect(store.size).to.equal(1);
  });

  it('SqliteJtiStore keeps its token_jti table across restarts (file path)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-jti-'));
    try {
      const file = path.join(dir, 'sub', 'auth.db');
      const exp = Math.floor(Date.now() / 1000) + 300;
      const first = new SqliteJtiStore(file);
      expect(first.seen('did:hdx:x j1', exp)).to.equal(false);
      first.close();
      const second = new SqliteJtiStore(file);
      expect(second.seen('did:hdx:x j1', exp)).to.equal(true);
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
