import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { FakeLedger } from '../test-support/fake-ledger';
import { entry, outboxContract } from '../test-support/outbox-contract';
import { AuditOutbox, OutboxAdmin, type OutboxOptions } from './outbox';
import { newLogger } from '../logger';

const log = newLogger('silent');

const tmpDirs: string[] = [];
function tmpFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-outbox-'));
  tmpDirs.push(dir);
  return path.join(dir, 'outbox.db');
}

// The outbox's behaviour on its SQLite queue (one file per gateway process); outbox-pg.test.ts runs the same on PostgreSQL.
outboxContract('SqliteOutboxQueue', () => ({
  place: async () => tmpFile(),
  at: (file) => ({ file }),
  sql: async (file, sql, params = []) => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(sql).all(...params) as Array<Record<string, unknown>>;
    } finally {
      db.close();
    }
  },
  admin: (file) => new OutboxAdmin(file),
  cleanup: async () => undefined,
}));

describe('AuditOutbox on SQLite (the outbox file)', () => {
  const opened: AuditOutbox[] = [];
  const open = (options: Partial<OutboxOptions> & Pick<OutboxOptions, 'file' | 'ledger'>): AuditOutbox => {
    const o = new AuditOutbox({ log, flushMs: 60_000, ...options });
    opened.push(o);
    return o;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close(false)));
  });
  after(() => {
    for (const dir of tmpDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('enqueue is on disk when it resolves: a process killed right after finds its entries at the next open', async () => {
    const file = tmpFile();
    // A separate process enqueues, then is killed with SIGKILL before it could close anything.
    const script = `
      const { AuditOutbox } = require(${JSON.stringify(path.join(__dirname, 'outbox'))});
      const { newLogger } = require(${JSON.stringify(path.join(__dirname, '..', 'logger'))});
      const o = new AuditOutbox({ file: ${JSON.stringify(file)}, ledger: { recordAccess: () => new Promise(() => {}) }, log: newLogger('silent'), flushMs: 60000 });
      o.enqueue(${JSON.stringify([entry(1), entry(2, { decision: 'deny', reason: 'no-permit' }), entry(3, { entryId: 'chosen-id-3' })])}).then(() => process.kill(process.pid, 'SIGKILL'));
    `;
    const child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(child.signal, child.stderr).to.equal('SIGKILL');

    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT entry_id, entry FROM outbox_entry ORDER BY seq').all() as Array<{ entry_id: string; entry: string }>;
    db.close();
    expect(rows).to.have.length(3);
    const entries = rows.map((r) => JSON.parse(r.entry) as AccessEntryInput);
    expect(entries.map((e) => e.decision)).to.deep.equal(['permit', 'deny', 'permit']);
    expect(rows[2]?.entry_id).to.equal('chosen-id-3');
    for (const [i, e] of entries.entries()) {
      expect(e.entryId)
        .to.equal(rows[i]?.entry_id)
        .and.to.match(/^[A-Za-z0-9._:-]{1,128}$/);
      expect(Date.parse(e.occurredAt ?? '')).to.be.closeTo(Date.now(), 60_000);
    }
    expect((await open({ file, ledger: new FakeLedger() }).stats()).pending).to.equal(3);
  });

  it('an outbox file of the earlier release (no attempt columns) opens, and its entries are delivered', async () => {
    const file = tmpFile();
    const old = new Database(file);
    old.exec(`CREATE TABLE outbox_entry (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id TEXT NOT NULL UNIQUE, entry TEXT NOT NULL, enqueued_at INTEGER NOT NULL);
      CREATE TABLE outbox_quarantine (entry_id TEXT PRIMARY KEY, entry TEXT NOT NULL, enqueued_at INTEGER NOT NULL, quarantined_at INTEGER NOT NULL, error TEXT NOT NULL) WITHOUT ROWID;`);
    old.prepare('INSERT INTO outbox_entry (entry_id, entry, enqueued_at) VALUES (?, ?, ?)').run('old-1', JSON.stringify({ ...entry(1), entryId: 'old-1' }), Date.now());
    old.prepare('INSERT INTO outbox_quarantine VALUES (?, ?, ?, ?, ?)').run('old-q', JSON.stringify({ ...entry(2), entryId: 'old-q' }), Date.now(), Date.now(), 'INVALID: x');
    old.close();
    const fake = new FakeLedger();
    const outbox = open({ file, ledger: fake });
    expect(await outbox.stats()).to.include({ pending: 1, deadLetters: 1 });
    expect(await outbox.flush()).to.equal(true);
    expect(fake.audit.map((e) => e.entryId)).to.deep.equal(['old-1']);
  });

  it('OutboxAdmin never creates an outbox where there is none', () => {
    const file = tmpFile();
    expect(() => new OutboxAdmin(file)).to.throw(/there is no audit outbox at/);
    expect(fs.existsSync(file)).to.equal(false);
  });
});
