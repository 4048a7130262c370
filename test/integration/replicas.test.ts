/**
 * Issue 14: two gateway processes of hospital1 sharing one PostgreSQL store (HDX_STORE), behind one public
 * URL (one HDX_GATEWAY_BASE_URL, each on its own port), on the real network: what one writes the other
 * serves; the consent flow decides alike at both; a DID token used at one is refused at the other; one
 * is SIGKILLed in the middle of a write load at both, and afterwards every acknowledged write is served
 * by the survivor, and what the dead one left pending is settled by the survivor (nothing stays pending).
 * PostgreSQL is a local cluster the test starts (fabric-network's startPostgres) and stops.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { Client } from 'pg';
import { startPostgres, stopPostgres } from '@hdx/fabric-network';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, loadConfig, signConsent, signDidToken } from '@hdx/gateway';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { GatewayProcesses, type GatewayChild } from '../support/gateway-process';
import { permitOrganizationConsent } from '../support/jose';
import { freePort, gatewayEnv, startTestGateway } from '../support/network';

const CODE_SYSTEM = 'urn:hdx-test:replicas';
const WRITES_EACH = 40;

interface Replica {
  readonly child: GatewayChild;
  readonly gw: Gw;
}

describe('two gateway processes on one PostgreSQL store (real network)', function () {
  this.timeout(600_000);
  const gateways = new GatewayProcesses();
  const pgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-replicas-pg-'));
  // Replicas key ids with one secret (the store refuses a process with another).
  const idSecretFile = path.join(pgDir, 'id-secret');
  fs.writeFileSync(idSecretFile, randomBytes(32), { mode: 0o600 });
  const schema = `replicas_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let pgUrl = '';
  /** The public URL both replicas answer to (tokens name it as their audience). */
  let publicGw: Gw;
  let a: Replica;
  let b: Replica;
  let h2: Gw;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let patientId = '';
  let observationId = '';

  async function startReplica(port: number): Promise<Replica> {
    const env = {
      PATH: process.env.PATH ?? '',
      ...gatewayEnv('hospital1'),
      HDX_GATEWAY_PORT: String(port),
      HDX_GATEWAY_BASE_URL: publicGw.config.baseUrl,
      HDX_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-replica-')),
      HDX_STORE: pgUrl,
      HDX_STORE_SCHEMA: schema,
      HDX_ID_SECRET_FILE: idSecretFile,
      HDX_SETTLE_INTERVAL_MS: '2000',
      HDX_LOG_LEVEL: 'warn',
    };
    const own = `http://127.0.0.1:${port}/fhir`;
    const child = await gateways.start(env, own, 90_000);
    // Requests go to this replica's own port; tokens name the public URL.
    return { child, gw: { config: { ...loadConfig(env), baseUrl: own } } as unknown as Gw };
  }

  const staff = (): string => staffToken(publicGw, 'hospital1', { did: drH1.did });
  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: publicGw.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 });
  const pendingVersions = async (): Promise<number> => {
    const client = new Client({ connectionString: pgUrl, options: `-c search_path=${schema}` });
    await client.connect();
    try {
      return Number((await client.query("SELECT COUNT(*) AS n FROM resource_version WHERE state = 'pending'")).rows[0].n);
    } finally {
      await client.end();
    }
  };

  before(async () => {
    pgUrl = (await startPostgres({ dir: pgDir, port: await freePort() })).url;
    const [portA, portB] = [await freePort(), await freePort()];
    publicGw = { config: { ...loadConfig({ ...gatewayEnv('hospital1'), HDX_GATEWAY_PORT: String(portA) }) } } as unknown as Gw;
    a = await startReplica(portA);
    b = await startReplica(portB);
    h2 = await startTestGateway('hospital2');
    await registerDid(a.gw, 'hospital1', 'patient', patientKey);
    await registerDid(a.gw, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
  });

  after(async () => {
    await gateways.stopAll();
    await h2?.gateway.close();
    await stopPostgres(pgDir);
    fs.rmSync(pgDir, { recursive: true, force: true });
  });

  it('what one replica writes the other serves; the consent flow decides alike at both', async () => {
    const p = await call(a.gw, 'POST', '/Patient', staff(), {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Replica', given: ['Ada'] }],
    });
    expect(p.status, p.text).to.equal(201);
    patientId = String(p.body.id);
    const o = await call(b.gw, 'POST', '/Observation', staff(), {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${patientId}` },
      effectiveDateTime: '2026-12-01T09:00:00Z',
      valueQuantity: { value: 61, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = String(o.body.id);
    for (const r of [a, b]) {
      const read = await call(r.gw, 'GET', `/Observation/${observationId}`, staff());
      expect(read.status, read.text).to.equal(200);
      // Without consent, the other member's practitioner is refused at both (answered as absent).
      expect((await call(r.gw, 'GET', `/Observation/${observationId}`, h2Token())).status).to.equal(404);
    }
    const consent = permitOrganizationConsent(randomUUID(), patientKey.did, 'Hospital2MSP', 'TREAT');
    const patientToken = signDidToken({ key: patientKey.privateJwk, audience: publicGw.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });
    const granted = await call(a.gw, 'POST', '/Consent', patientToken, signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    // A decides on what it wrote itself at once; B on its own ledger view, which may be a block behind
    // its peer for a moment (SECURITY.md, "Never on stale consent": at most HDX_VIEW_MAX_LAG_MS).
    for (const r of [a, b]) {
      const end = Date.now() + 10_000;
      let read = await call(r.gw, 'GET', `/Observation/${observationId}`, h2Token());
      while (read.status === 404 && r === b && Date.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        read = await call(r.gw, 'GET', `/Observation/${observationId}`, h2Token());
      }
      expect(read.status, read.text).to.equal(200);
      expect(read.body.valueQuantity.value).to.equal(61);
    }
  });

  it('a DID token used at one replica is refused at the other (one token-replay record)', async () => {
    const once = h2Token();
    expect((await call(a.gw, 'GET', `/Observation/${observationId}`, once)).status).to.equal(200);
    const again = await call(b.gw, 'GET', `/Observation/${observationId}`, once);
    expect(again.status, again.text).to.equal(401);
    expect(again.text).to.include('already used');
  });

  it('one replica killed mid-load: every acknowledged write is served by the other, and what it left pending is settled', async () => {
    const tag = `load-${randomUUID().slice(0, 8)}`;
    const write = (r: Replica, i: number): Promise<{ id?: string; status: number | 'no answer' }> =>
      call(r.gw, 'POST', '/Observation', staff(), {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: CODE_SYSTEM, code: tag }] },
        subject: { reference: `Patient/${patientId}` },
        effectiveDateTime: '2026-12-01T10:00:00Z',
        valueQuantity: { value: i, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
      }).then(
        (res) => ({ status: res.status, ...(res.status === 201 ? { id: String(res.body.id) } : {}) }),
        () => ({ status: 'no answer' as const }),
      );
    // Eight writers at each replica, WRITES_EACH writes each side; A is killed once a quarter are acknowledged.
    let acknowledgedAtA = 0;
    const run = async (r: Replica, offset: number): Promise<Array<{ id?: string; status: number | 'no answer' }>> => {
      const out: Array<{ id?: string; status: number | 'no answer' }> = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < WRITES_EACH) {
            const i = next++;
            const res = await write(r, offset + i);
            if (r === a && res.status === 201) acknowledgedAtA++;
            out.push(res);
          }
        }),
      );
      return out;
    };
    const atA = run(a, 0);
    const atB = run(b, 1000);
    const t0 = Date.now();
    while (acknowledgedAtA < WRITES_EACH / 4 && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
    a.child.proc.kill('SIGKILL');
    await a.child.exited;
    const results = [...(await atA), ...(await atB)];
    const acknowledged = results.filter((r) => r.status === 201).map((r) => r.id as string);
    const unanswered = results.filter((r) => r.status === 'no answer').length;
    expect(
      results.filter((r) => r.status !== 201 && r.status !== 'no answer'),
      'every answer was 201 or none (the killed process)',
    ).to.deep.equal([]);
    // The survivor settles what the dead process left pending (HDX_SETTLE_INTERVAL_MS=2000 here).
    const t1 = Date.now();
    while ((await pendingVersions()) > 0 && Date.now() - t1 < 60_000) await new Promise((r) => setTimeout(r, 250));
    const settledMs = Date.now() - t1;
    expect(await pendingVersions(), 'versions left pending by the dead process').to.equal(0);
    // Every acknowledged write is served by the survivor, and the count has nothing unacknowledged but what the dead process had anchored.
    for (const id of acknowledged) {
      const read = await call(b.gw, 'GET', `/Observation/${id}`, staff());
      expect(read.status, `Observation/${id}: ${read.text}`).to.equal(200);
    }
    const count = await call(b.gw, 'GET', `/Observation?subject=Patient/${patientId}&code=${encodeURIComponent(`${CODE_SYSTEM}|${tag}`)}&_summary=count`, staff());
    expect(count.status, count.text).to.equal(200);
    expect(Number(count.body.total))
      .to.be.at.least(acknowledged.length)
      .and.at.most(acknowledged.length + unanswered);
    process.stderr.write(
      `      ${results.length} writes (${WRITES_EACH} at each replica), replica A killed after ${acknowledgedAtA} acknowledged there: ${acknowledged.length} acknowledged, ${unanswered} unanswered; ${Number(count.body.total)} served by B; A's pending writes settled by B in ${settledMs} ms\n`,
    );
    await auditDelivered(b.gw, 60_000);
  });
});
