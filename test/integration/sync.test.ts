/**
 * `hdx sync` on the real network (issue 6): a real FHIR server started here (in memory, with
 * `_lastUpdated` filtering, `_sort` and `next` links) stands in for the EHR; the CLI runs as a child
 * process (`node gateway/dist/cli.js sync ...`) against the real hospital1 gateway. A full pull, a pull
 * SIGKILLed right after its first Observation page was acknowledged and then restarted (every resource
 * ends up exactly once: one version in the store, one anchor on the ledger), and an incremental pull
 * that picks up only what changed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { generateDidKey } from '@hdx/gateway';
import { type MiniFhirServer, startMiniFhirServer } from '../../gateway/src/test-support/mini-fhir-server';
import { type Gw, registerDid } from '../support/fhir-client';
import { OrgClient, evaluateOnceThere } from '../support/ledger';
import { network, startTestGateway } from '../support/network';

const repo = path.resolve(__dirname, '..', '..');
const CLI = path.join(repo, 'gateway', 'dist', 'cli.js');
const PATIENTS = 3;
const OBSERVATIONS = 30;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe('hdx sync from an EHR FHIR API (real network, hospital1 gateway)', function () {
  let h1: Gw;
  let ehr: MiniFhirServer;
  let hospital2: OrgClient;
  const system = generateDidKey();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-sync-it-'));
  const stateFile = path.join(dir, 'state.json');
  const children = new Set<ChildProcess>();

  const args = (): string[] => [
    CLI,
    'sync',
    '--ehr',
    ehr.baseUrl,
    '--gateway',
    h1.config.baseUrl,
    '--types',
    'Patient,Observation',
    '--state',
    stateFile,
    '--page',
    '5',
    '--idp-key',
    path.join(network().info.home, 'gateways', 'hospital1-idp-private.pem'),
    '--iss',
    'https://idp.hospital1.hdx.test',
    '--sub',
    'ehr-sync',
    '--did',
    system.did,
  ];

  /** Runs `hdx sync`; `killWhen` SIGKILLs it as soon as its progress output matches. */
  const hdxSync = (killWhen?: RegExp): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, args(), { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (killWhen?.test(stderr)) child.kill('SIGKILL');
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal, stdout, stderr });
      });
    });

  /** Versions per resource in the gateway's store. */
  const versions = (): Map<string, number> => {
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    try {
      const rows = db.prepare("SELECT resource_type || '/' || id AS ref, COUNT(*) AS n FROM resource_version WHERE state = 'anchored' GROUP BY resource_type, id").all() as Array<{
        ref: string;
        n: number;
      }>;
      return new Map(rows.map((r) => [r.ref, r.n]));
    } finally {
      db.close();
    }
  };

  const observation = (i: number, value: number) => ({
    resourceType: 'Observation',
    id: `obs-${i}`,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/pat-${i % PATIENTS}` },
    effectiveDateTime: '2026-11-01T08:00:00Z',
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  });

  before(async () => {
    h1 = await startTestGateway('hospital1');
    hospital2 = OrgClient.admin('hospital2');
    // The DID the ingested changes are recorded under: a device DID, which an IdP token of role system may
    // carry (system DIDs are registered by the Fabric org admin only).
    await registerDid(h1, 'hospital1', 'device', system);
    ehr = await startMiniFhirServer();
    for (let p = 0; p < PATIENTS; p++) ehr.put({ resourceType: 'Patient', id: `pat-${p}`, name: [{ family: `Ehr-${p}` }], birthDate: '1980-02-02' }, '2026-11-01T09:00:00.000Z');
    // Bulk-loaded: many Observations share one lastUpdated, so page boundaries split equal instants.
    for (let i = 0; i < OBSERVATIONS; i++) ehr.put(observation(i, 60 + i), `2026-11-01T10:00:0${Math.floor(i / 10)}.000Z`);
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    hospital2?.close();
    await ehr?.close();
    await h1?.gateway.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('killed (SIGKILL) right after its first Observation page was acknowledged, then restarted: every resource exactly once', async () => {
    const killed = await hdxSync(/Observation: page \d+/);
    expect(killed.signal, killed.stderr).to.equal('SIGKILL');
    // A page the gateway was still writing when its client died is finished (or dropped) by the gateway.
    await new Promise((r) => setTimeout(r, 3000));
    const midway = versions();
    expect(midway.size).to.be.at.least(PATIENTS + 5);
    expect(midway.size).to.be.below(PATIENTS + OBSERVATIONS);

    const resumed = await hdxSync();
    expect(resumed.code, resumed.stderr).to.equal(0);
    expect(resumed.stderr).to.match(/page \d+: \d+ resources/);
    const summary = JSON.parse(resumed.stdout) as { resources: number; created: number };
    expect(summary.created).to.be.at.most(PATIENTS + OBSERVATIONS - midway.size);
    expect(summary.resources).to.be.at.least(summary.created);

    const after = versions();
    expect(after.size).to.equal(PATIENTS + OBSERVATIONS);
    expect([...after.values()].every((n) => n === 1)).to.equal(true);
    // On the ledger: version 1 anchored for every resource, and no version 2 for any.
    await Promise.all(
      [...after.keys()].map(async (ref) => {
        const [type, id] = ref.split('/') as [string, string];
        const v1 = await evaluateOnceThere<{ custodian: string }>(hospital2, 'hdx.record', 'GetAnchor', type, id, '1');
        expect(v1.custodian).to.equal('Hospital1MSP');
        const v2 = await hospital2.evaluate('hdx.record', 'GetAnchor', type, id, '2').catch((err: { code?: string }) => err.code);
        expect(v2).to.equal('NOT_FOUND');
      }),
    );
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { types: Record<string, { since?: string; run?: unknown }> };
    expect(state.types.Observation?.run).to.equal(undefined);
    expect(state.types.Observation?.since).to.equal('2026-11-01T10:00:02.000Z');
  });

  it('a later sync picks up only what changed: updates get version 2, new ones version 1, the rest stay as they were', async () => {
    const before = versions();
    ehr.put(observation(4, 99), '2026-11-02T08:00:00.000Z');
    ehr.put(observation(17, 98), '2026-11-02T08:00:00.000Z');
    ehr.put(observation(OBSERVATIONS, 70), '2026-11-02T08:00:01.000Z');
    const run = await hdxSync();
    expect(run.code, run.stderr).to.equal(0);
    const summary = JSON.parse(run.stdout) as { resources: number; created: number; updated: number; unchanged: number };
    expect(summary).to.include({ resources: 3, created: 1, updated: 2, unchanged: 0 });
    const after = versions();
    expect(after.size).to.equal(before.size + 1);
    const changed = [...after].filter(([ref, n]) => n !== (before.get(ref) ?? 0));
    expect(changed.map(([, n]) => n).sort()).to.deep.equal([1, 2, 2]);

    // Nothing changed: nothing pushed.
    const idle = await hdxSync();
    expect(idle.code, idle.stderr).to.equal(0);
    expect(JSON.parse(idle.stdout)).to.include({ resources: 0 });
    expect(versions()).to.deep.equal(after);
  });
});
