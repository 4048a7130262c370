/**
 * ExportService without HTTP: a restart never serves a half-written export as complete, finished jobs
 * expire with their files, and a resource failing its integrity check is withheld and reported.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { newLogger } from '../../logger';
import { testStore } from '../../test-support/test-store';
import { staffCaller } from '../../test-support/callers';
import { FakeLedger } from '../../test-support/fake-ledger';
import { ResourceService } from '../resource-service';
import { ExportService, type ExportStatus } from './export';

const DR = `did:hdx:${'d'.repeat(43)}`;
const OWNER = 'owner-1';
const BASE = 'http://127.0.0.1:8080/fhir';

async function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-export-svc-'));
  const store = testStore();
  const ledger = new FakeLedger();
  await ledger.registerDid({ did: DR, kind: 'practitioner' });
  const log = newLogger('silent');
  const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
  const caller = staffCaller({ did: DR, organization: 'Hospital1MSP' });
  const patient = await resources.create(caller, 'Patient', { resourceType: 'Patient', active: true });
  const condition = await resources.create(caller, 'Condition', { resourceType: 'Condition', code: { text: 'x' }, subject: { reference: `Patient/${String(patient.id)}` } });
  const kickOff = (service: ExportService): Promise<string> =>
    service.kickOff(() => caller, OWNER, { level: 'system', types: ['Patient', 'Condition'], requestUrl: `${BASE}/$export` });
  const settle = async (service: ExportService, id: string): Promise<ExportStatus> => {
    for (let i = 0; i < 200; i++) {
      const s = service.status(OWNER, id);
      if (s.state !== 'in-progress') return s;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('export did not finish');
  };
  return { dir, ledger, log, resources, patient, condition, kickOff, settle };
}

describe('ExportService', () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(() => fs.rmSync(ctx.dir, { recursive: true, force: true }));

  it('reports a job that a restart interrupted as failed, with its partial files deleted', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const evaluate = ctx.ledger.evaluateAccess.bind(ctx.ledger);
    ctx.ledger.evaluateAccess = async (req) => {
      await gate;
      return evaluate(req);
    };
    const first = new ExportService({ resources: ctx.resources, dir: ctx.dir, log: ctx.log, baseUrl: BASE });
    const id = await ctx.kickOff(first);
    expect(first.status(OWNER, id).state).to.equal('in-progress');
    // A half-written file left by the process that stopped.
    fs.writeFileSync(path.join(ctx.dir, id, 'Patient.ndjson'), '{"resourceType":"Patient"', { mode: 0o600 });
    const restarted = new ExportService({ resources: ctx.resources, dir: ctx.dir, log: ctx.log, baseUrl: BASE });
    const status = restarted.status(OWNER, id);
    expect(status.state).to.equal('error');
    expect(JSON.stringify(status)).to.match(/interrupted by a restart/);
    expect(fs.existsSync(path.join(ctx.dir, id))).to.equal(false);
    expect(() => restarted.file(OWNER, id, 'Patient.ndjson')).to.throw(/No such export job/);
    // The old process stopping does not turn the job complete again.
    const closing = first.close();
    release();
    await closing;
    expect(restarted.status(OWNER, id).state).to.equal('error');
    await restarted.close();
  });

  it('deletes a finished job and its files once it has expired', async () => {
    const service = new ExportService({ resources: ctx.resources, dir: ctx.dir, log: ctx.log, baseUrl: BASE, ttlMs: 1 });
    const id = await ctx.kickOff(service);
    expect((await ctx.settle(service, id)).state).to.equal('complete');
    expect(fs.existsSync(path.join(ctx.dir, id, 'Patient.ndjson'))).to.equal(true);
    for (const f of ['exports.db', 'exports.db-wal']) expect(fs.statSync(path.join(ctx.dir, f)).mode & 0o777, f).to.equal(0o600);
    expect(fs.statSync(ctx.dir).mode & 0o777).to.equal(0o700);
    await new Promise((r) => setTimeout(r, 10));
    service.sweep();
    expect(() => service.status(OWNER, id)).to.throw(/No such export job/);
    expect(fs.existsSync(path.join(ctx.dir, id))).to.equal(false);
    await service.close();
  });

  it('withholds a resource that does not match its anchor and lists an OperationOutcome for it in error[]', async () => {
    const key = `Condition/${String(ctx.condition.id)}/_history/1`;
    const anchor = ctx.ledger.anchors.get(key);
    if (!anchor) throw new Error('no anchor');
    ctx.ledger.anchors.set(key, { ...anchor, commitment: { ...anchor.commitment, value: Buffer.alloc(32, 7).toString('base64') } });
    const service = new ExportService({ resources: ctx.resources, dir: ctx.dir, log: ctx.log, baseUrl: BASE });
    const id = await ctx.kickOff(service);
    const status = await ctx.settle(service, id);
    if (status.state !== 'complete') throw new Error(`export ${status.state}`);
    expect(status.manifest.output.map((o) => o.type)).to.deep.equal(['Patient']);
    expect(status.manifest.error).to.have.length(1);
    expect(status.manifest.error[0]?.count).to.equal(1);
    const outcome = fs.readFileSync(service.file(OWNER, id, 'OperationOutcome.ndjson'), 'utf8');
    expect(outcome).to.match(/does not match its anchor/);
    expect(
      fs
        .readFileSync(service.file(OWNER, id, 'Patient.ndjson'), 'utf8')
        .trim()
        .split('\n'),
    ).to.have.length(1);
    await service.close();
  });
});
