import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { runAsync } from '../cli';
import { OperationOutcomeError } from '../errors';
import type { AccessEntryInput } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import { FakeLedger } from '../test-support/fake-ledger';
import { AuditOutbox } from './outbox';

const PATIENT = `pseudonym:${'2'.repeat(64)}`;

function entry(subtype: string): AccessEntryInput {
  return {
    actor: `did:hdx:${'a'.repeat(43)}`,
    actorOrganization: 'Hospital1MSP',
    patient: PATIENT,
    resources: ['Observation/o/_history/1'],
    action: 'R',
    subtype,
    purpose: 'TREAT',
    decision: 'permit',
    consents: [],
    breakGlass: false,
    custodian: 'Hospital1MSP',
  };
}

async function hdx(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runAsync(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('hdx outbox dead-letters | redeliver', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-outbox-cli-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists the dead letters of a data directory without their content, and puts one back in the queue', async () => {
    const fake = new FakeLedger();
    let refuse = true;
    const outbox = new AuditOutbox({
      file: path.join(dir, 'outbox.db'),
      log: newLogger('silent'),
      flushMs: 3_600_000,
      maxAttempts: 1,
      ledger: {
        recordAccess: async (entries) => {
          if (refuse && entries.some((e) => e.subtype === 'refused')) throw new OperationOutcomeError('FORBIDDEN', 'not yours');
          return fake.recordAccess(entries);
        },
      },
    });
    try {
      const [dead] = (await outbox.enqueue([entry('refused'), entry('read')])).map((r) => r.entryId);
      await outbox.flush();
      const listed = await hdx('outbox', 'dead-letters', '--data-dir', dir);
      expect(listed.code, listed.err).to.equal(0);
      const body = JSON.parse(listed.out) as { deadLetters: Array<{ entryId: string; attempts: number; error: string }> };
      expect(body.deadLetters.map((d) => [d.entryId, d.attempts, d.error])).to.deep.equal([[dead, 1, 'FORBIDDEN: not yours']]);
      expect(listed.out).to.not.include(PATIENT);

      const unknown = await hdx('outbox', 'redeliver', '--data-dir', dir, '--id', 'nope');
      expect(unknown.code).to.equal(1);
      expect(unknown.err).to.match(/no dead letter has entryId nope/);

      refuse = false;
      const redelivered = await hdx('outbox', 'redeliver', '--data-dir', dir, '--id', String(dead));
      expect(redelivered.code, redelivered.err).to.equal(0);
      expect(JSON.parse(redelivered.out).redelivered).to.deep.equal([dead]);
      expect(await outbox.flush()).to.equal(true);
      expect(fake.audit.map((e) => e.entryId)).to.include(dead);
      expect(await outbox.stats()).to.include({ pending: 0, deadLetters: 0 });
    } finally {
      await outbox.close(false);
    }
  });

  it('usage errors (exit 2) say how to call it; no outbox file is created where there is none', async () => {
    expect((await hdx('outbox')).code).to.equal(2);
    const noDir = await hdx('outbox', 'dead-letters');
    expect([noDir.code, noDir.err.includes('--data-dir is required')]).to.deep.equal([2, true]);
    const neither = await hdx('outbox', 'redeliver', '--data-dir', dir);
    expect([neither.code, /--id ENTRY_ID .* or --all/.test(neither.err)]).to.deep.equal([2, true]);
    const missing = await hdx('outbox', 'dead-letters', '--data-dir', dir);
    expect([missing.code, /there is no audit outbox at/.test(missing.err)]).to.deep.equal([2, true]);
    expect(fs.existsSync(path.join(dir, 'outbox.db'))).to.equal(false);
    const help = await hdx('outbox', '--help');
    expect([help.code, help.out.includes('hdx outbox redeliver --data-dir DIR (--id ENTRY_ID | --all)')]).to.deep.equal([0, true]);
  });
});
