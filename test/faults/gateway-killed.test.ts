/**
 * Faults (issue 13): the hospital1 gateway, run as its own process (`node gateway/dist/main.js` with the
 * launcher's env file, as `npm start` runs it), killed with SIGKILL in the middle of a 1,200-entry
 * transaction Bundle (three AnchorBatch ledger transactions), in each audit mode. After a restart on the
 * same data folder the Bundle is there whole or not at all: never part of it, never a resource served
 * without its anchor; what was acknowledged before the kill is all there; in async mode the outbox is
 * delivered. Then a CA is stopped: the running gateway keeps reading and writing (it enrolled at start;
 * nothing on the request path asks the CA), and restarts on its data folder without it.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { startNode, stopNode } from '@hdx/fabric-network';
import { generateDidKey, loadConfig } from '@hdx/gateway';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { GatewayProcesses, type GatewayChild } from '../support/gateway-process';
import { freePort, gatewayEnv } from '../support/network';
import { useOwnNetwork } from '../support/own-network';

const ENTRIES = 1_200;
const CODE_SYSTEM = 'urn:hdx-test:gateway-killed';

/** hospital1's gateway as a process on `port` and `dataDir` (gateway-process.ts), and its client handle. */
async function startHospital1(gateways: GatewayProcesses, port: number, dataDir: string, mode: 'sync' | 'async'): Promise<{ child: GatewayChild; gw: Gw }> {
  const env = { PATH: process.env.PATH ?? '', ...gatewayEnv('hospital1'), HDX_GATEWAY_PORT: String(port), HDX_DATA_DIR: dataDir, HDX_AUDIT_MODE: mode, HDX_LOG_LEVEL: 'warn' };
  const config = loadConfig(env);
  return { child: await gateways.start(env, config.baseUrl, 90_000), gw: { config } as unknown as Gw };
}

/** A transaction Bundle of `n` Observations of one patient, each coded `tag` (to count them by search). */
function bundleOf(patientId: string, tag: string, n: number): object {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: n }, (_, i) => ({
      fullUrl: `urn:uuid:${randomUUID()}`,
      request: { method: 'POST', url: 'Observation' },
      resource: {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: CODE_SYSTEM, code: tag }] },
        subject: { reference: `Patient/${patientId}` },
        effectiveDateTime: '2026-12-01T08:00:00Z',
        valueQuantity: { value: i, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
      },
    })),
  };
}

describe('faults: the gateway killed in the middle of a transaction Bundle (each audit mode); a CA stopped', function () {
  this.timeout(600_000);
  const own = useOwnNetwork('gateway-killed', 1000, { HDX_ORDERER_TYPE: 'raft', HDX_ORDERERS: '3' });
  const gateways = new GatewayProcesses();

  after(async () => {
    await gateways.stopAll();
  });

  for (const mode of ['sync', 'async'] as const) {
    it(`${mode} audit: after SIGKILL mid-Bundle and a restart, the Bundle is whole or absent, and everything acknowledged is there`, async () => {
      own();
      const port = await freePort();
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `hdx-killed-${mode}-`));
      let proc = await startHospital1(gateways, port, dataDir, mode);
      const practitioner = generateDidKey();
      await registerDid(proc.gw, 'hospital1', 'practitioner', practitioner);
      const token = (): string => staffToken(proc.gw, 'hospital1', { did: practitioner.did });
      const patient = await call(proc.gw, 'POST', '/Patient', token(), { resourceType: 'Patient', name: [{ family: 'Killed', given: [mode] }], gender: 'unknown' });
      expect(patient.status, patient.text).to.equal(201);
      const patientId = String(patient.body.id);
      const countOf = async (tag: string): Promise<number> => {
        const res = await call(proc.gw, 'GET', `/Observation?subject=Patient/${patientId}&code=${encodeURIComponent(`${CODE_SYSTEM}|${tag}`)}&_summary=count`, token());
        expect(res.status, res.text).to.equal(200);
        return Number(res.body.total);
      };

      // The same Bundle once without a fault: acknowledged, all there; its time tells when "the middle" is.
      const t0 = Date.now();
      const first = await call(proc.gw, 'POST', '/', token(), bundleOf(patientId, `${mode}-before`, ENTRIES));
      const took = Date.now() - t0;
      expect(first.status, first.text.slice(0, 500)).to.equal(200);
      expect(await countOf(`${mode}-before`)).to.equal(ENTRIES);

      // The fault: SIGKILL half-way through the second Bundle.
      const tag = `${mode}-killed`;
      const killAfter = Math.round(took / 2);
      const posted = call(proc.gw, 'POST', '/', token(), bundleOf(patientId, tag, ENTRIES)).then(
        (r) => r.status,
        () => 'no answer' as const,
      );
      await new Promise((r) => setTimeout(r, killAfter));
      proc.child.proc.kill('SIGKILL');
      await proc.child.exited;
      const answer = await posted;

      const t1 = Date.now();
      proc = await startHospital1(gateways, port, dataDir, mode);
      const restartMs = Date.now() - t1;

      const after = await countOf(tag);
      process.stderr.write(
        `      [${mode}] Bundle of ${ENTRIES} took ${took} ms; killed after ${killAfter} ms; the client got ${String(answer)}; restarted healthy in ${restartMs} ms; ${after === ENTRIES ? 'the Bundle was completed' : after === 0 ? 'the Bundle was rolled back' : `${after} of ${ENTRIES} entries are there`}\n`,
      );
      expect([0, ENTRIES], 'the Bundle is all there or not at all').to.include(after);
      if (answer === 200) expect(after, 'an acknowledged Bundle is all there').to.equal(ENTRIES);
      // What was acknowledged before the kill is all there, and served: its anchors check out on release.
      expect(await countOf(`${mode}-before`)).to.equal(ENTRIES);
      const page = await call(proc.gw, 'GET', `/Observation?subject=Patient/${patientId}&_count=100`, token());
      expect(page.status, page.text.slice(0, 500)).to.equal(200);
      expect(page.body.entry).to.have.length(100);
      const read = await call(proc.gw, 'GET', `/Patient/${patientId}`, token());
      expect(read.status, read.text).to.equal(200);
      // Async mode: the access entries the killed process had acknowledged into its outbox are delivered.
      await auditDelivered(proc.gw, 60_000);
    });
  }

  it('a CA stopped: the running gateway keeps reading and writing, and restarts without it', async () => {
    const { options } = own();
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-ca-down-'));
    const proc = await startHospital1(gateways, port, dataDir, 'async');
    const practitioner = generateDidKey();
    await registerDid(proc.gw, 'hospital1', 'practitioner', practitioner);
    const token = (): string => staffToken(proc.gw, 'hospital1', { did: practitioner.did });
    expect(await stopNode(options, 'ca-hospital1', { kill: false }), 'ca-hospital1 was running').to.equal(true);
    try {
      const created = await call(proc.gw, 'POST', '/Patient', token(), { resourceType: 'Patient', name: [{ family: 'Cadown' }], gender: 'unknown' });
      expect(created.status, created.text).to.equal(201);
      const read = await call(proc.gw, 'GET', `/Patient/${String(created.body.id)}`, token());
      expect(read.status, read.text).to.equal(200);
      const health = await fetch(`${proc.gw.config.baseUrl.replace(/\/fhir$/, '')}/healthz`);
      expect(health.status).to.equal(200);
      await auditDelivered(proc.gw, 60_000);
      // A restart on its data folder needs no CA either (the identity enrolled at the first start is kept).
      proc.child.proc.kill('SIGTERM');
      await proc.child.exited;
      const again = await startHospital1(gateways, port, dataDir, 'async');
      const reread = await call(again.gw, 'GET', `/Patient/${String(created.body.id)}`, token());
      expect(reread.status, reread.text).to.equal(200);
    } finally {
      expect(await startNode(options, 'ca-hospital1')).to.equal('started');
    }
  });
});
