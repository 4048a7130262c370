/**
 * Issue 11, replayable decisions, on the real network: a patient grants hospital2 access, hospital2's
 * practitioner reads at hospital1 (sync audit mode: the chaincode decides and records in one
 * transaction), the patient revokes, the next read is denied; `hdx replay` (the CLI, as an operator runs
 * it with hospital1's environment) re-decides every entry from the blocks and finds that each follows.
 * Then a false entry (a permit after the revoke, at a height that holds the revoke) submitted with
 * hospital1's gateway identity, as a dishonest member's gateway could in async mode, is flagged. Last,
 * hospital2's gateway in async mode decides reads of its own copy on its ledger view: the entries its
 * outbox delivers carry their view height, and replay finds them following too.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { expect } from 'chai';
import pino from 'pino';
import { DID_IDENTIFIER_SYSTEM, enrollGatewayIdentity, FabricLedger, generateDidKey, type ReplayReport, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { gatewayEnv, startTestGateway } from '../support/network';

const repo = path.resolve(__dirname, '..', '..');

describe('hdx replay (issue 11): access decisions re-decided from the ledger alone (real network)', function () {
  this.timeout(600_000);
  const log = pino({ level: 'silent' });
  let h1: Gw;
  let h2: Gw;
  let peer1: FabricLedger;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  // Consent ids are global on the ledger: each run and each test file takes its own.
  const CONSENT_ID = randomUUID();
  const consent = permitOrganizationConsent(CONSENT_ID, patientKey.did, 'Hospital2MSP', 'TREAT');
  let observationRef: string;
  let h2ObservationId: string;
  const CONSENT_H1_ID = randomUUID();
  const consentH1 = permitOrganizationConsent(CONSENT_H1_ID, patientKey.did, 'Hospital1MSP', 'TREAT');

  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 300 });
  const patientToken = (): string => signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });

  /** `hdx replay` as a program, with hospital1's environment (its env file and data dir, where its identity is). */
  const replayCli = (): { status: number | null; report: ReplayReport; stderr: string } => {
    const env = gatewayEnv('hospital1');
    const run = spawnSync(process.execPath, [path.join(repo, 'gateway', 'dist', 'cli.js'), 'replay', '--patient', patientKey.did, '--data-dir', h1.config.dataDir], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', ...env },
      // The whole suite's chain is replayed from block 0 (every other test's blocks too).
      timeout: 300_000,
    });
    let report: ReplayReport;
    try {
      report = JSON.parse(run.stdout) as ReplayReport;
    } catch {
      throw new Error(`hdx replay printed no JSON (status ${String(run.status)}): ${run.stdout}\n${run.stderr}`);
    }
    return { status: run.status, report, stderr: run.stderr };
  };

  before(async () => {
    [h1, h2] = await Promise.all([
      // Sync audit mode: reads decided and recorded by AuthorizeAndRecord.
      startTestGateway('hospital1', { HDX_AUDIT_MODE: 'sync' }),
      // Async audit mode, decisions on the ledger view, entries delivered to the ledger every 200 ms.
      startTestGateway('hospital2', { HDX_AUDIT_MODE: 'async', HDX_AUDIT_FLUSH_MS: '200', HDX_DECISIONS: 'local' }),
    ]);
    peer1 = new FabricLedger(h1.config, await enrollGatewayIdentity(h1.config, log));
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1981-06-02',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${p.body.id}` },
      effectiveDateTime: '2026-11-21T08:15:00Z',
      valueQuantity: { value: 64, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationRef = `Observation/${o.body.id}/_history/${o.body.meta.versionId}`;
    // Hospital2 holds a record of the same patient.
    const staff2 = staffToken(h2, 'hospital2', { did: drH2.did });
    const p2 = await call(h2, 'POST', '/Patient', staff2, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1981-06-02',
    });
    expect(p2.status, p2.text).to.equal(201);
    const o2 = await call(h2, 'POST', '/Observation', staff2, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${p2.body.id}` },
      effectiveDateTime: '2026-11-22T08:15:00Z',
      valueQuantity: { value: 66, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o2.status, o2.text).to.equal(201);
    h2ObservationId = o2.body.id;
  });

  after(async () => {
    peer1?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('grant, read, revoke, read: hdx replay finds every decision following, at the height before its own block', async () => {
    const granted = await call(h1, 'POST', '/Consent', patientToken(), signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    const first = await call(h1, 'GET', `/${observationRef.split('/_history/')[0] as string}`, h2Token());
    expect(first.status, first.text).to.equal(200);
    const revoked = await call(h1, 'PUT', `/Consent/${CONSENT_ID}`, patientToken(), signConsent(patientKey.privateJwk, consent, 'revoke'), 'application/jose');
    expect(revoked.status, revoked.text).to.equal(200);
    expect((await call(h1, 'GET', `/${observationRef.split('/_history/')[0] as string}`, h2Token())).status).to.equal(404);

    const { status, report, stderr } = replayCli();
    expect(status, stderr).to.equal(0);
    expect(report.patient).to.equal(patientKey.did);
    expect(report.doesNotFollow).to.deep.equal([]);
    // The two reads were decided by the chaincode (AuthorizeAndRecord) and follow; the custodian's own
    // creations (action C) are listed as unchecked: no consent decision to replay.
    expect(report.follows, JSON.stringify(report)).to.equal(2);
    expect(
      report.unchecked.every((u) => u.decidedBy === 'gateway-stated' && /action C/.test(u.why ?? '')),
      JSON.stringify(report.unchecked),
    ).to.equal(true);
    expect(report.entries).to.equal(report.follows + report.unchecked.length);
    expect(stderr).to.match(/replay: \d+ access entries read/);
  });

  it("a false entry submitted with hospital1's gateway identity (a permit at a height holding the revoke) is flagged, and hdx replay exits 1", async () => {
    const height = Number(await peer1.chainHeight());
    const [forged] = await peer1.recordAccess([
      {
        actor: drH2.did,
        actorOrganization: 'Hospital2MSP',
        actorAuth: 'delegated',
        patient: patientKey.did,
        resources: [observationRef],
        action: 'R',
        subtype: 'read',
        purpose: 'TREAT',
        decision: 'permit',
        consents: [CONSENT_ID],
        reason: 'consent-permit',
        breakGlass: false,
        custodian: 'Hospital1MSP',
        decidedAt: { height },
      },
    ]);
    const { status, report } = replayCli();
    expect(status).to.equal(1);
    expect(report.follows).to.equal(2);
    expect(report.doesNotFollow.map((r) => r.eventId)).to.deep.equal([forged?.eventId]);
    expect(report.doesNotFollow[0]).to.deep.include({ decidedBy: 'gateway-view', height });
    expect(report.doesNotFollow[0]?.replayed).to.deep.include({ decision: 'deny', reason: 'no-permit' });
  });

  it('reads hospital2 decided on its ledger view (async mode) carry their view height, and replay finds them following', async () => {
    const until = async (what: string, ms: number, probe: () => Promise<boolean>): Promise<void> => {
      const end = Date.now() + ms;
      while (!(await probe())) {
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const peer2 = new FabricLedger(h2.config, await enrollGatewayIdentity(h2.config, log));
    try {
      /** Hospital2's view fresh and holding every block its peer has. */
      const caughtUp = async (): Promise<boolean> => {
        const res = await call(h2, 'GET', `${h2.config.baseUrl.replace(/\/fhir$/, '')}/healthz`, undefined);
        const view = res.body.checks.view as { fresh: boolean; height: string };
        return view.fresh && BigInt(view.height) >= (await peer2.chainHeight());
      };
      const h1Read = async (): Promise<number> =>
        (
          await call(
            h2,
            'GET',
            `/Observation/${h2ObservationId}`,
            signDidToken({ key: drH1.privateJwk, audience: h2.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 300 }),
          )
        ).status;
      // The consent changes go through hospital1's gateway: hospital2's view learns them from its blocks.
      const granted = await call(h1, 'POST', '/Consent', patientToken(), signConsent(patientKey.privateJwk, consentH1, 'grant'), 'application/jose');
      expect(granted.status, granted.text).to.equal(201);
      await until("hospital2's view to hold the grant", 60_000, caughtUp);
      expect(await h1Read()).to.equal(200);
      const revoked = await call(h1, 'PUT', `/Consent/${CONSENT_H1_ID}`, patientToken(), signConsent(patientKey.privateJwk, consentH1, 'revoke'), 'application/jose');
      expect(revoked.status, revoked.text).to.equal(200);
      await until("hospital2's view to hold the revoke", 60_000, caughtUp);
      expect(await h1Read()).to.equal(404);
      // The outbox delivers both entries, each with the view height it was decided at (the false entry above is drH2's).
      const viewEntries = async (): Promise<Array<{ decision: string; decidedAt?: { height: number } }>> =>
        (await peer1.queryAccess({ patient: patientKey.did, requester: patientKey.did, pageSize: 200 })).entries.filter((e) => e.decidedAt !== undefined && e.actor === drH1.did);
      await until('the async entries on the ledger', 60_000, async () => (await viewEntries()).length >= 2);
      expect((await viewEntries()).map((e) => e.decision)).to.deep.equal(['permit', 'deny']);
      const { status, report } = replayCli();
      // Still 1: the false entry of the test before is still there, and still the only one flagged.
      expect(status).to.equal(1);
      expect(report.doesNotFollow).to.have.length(1);
      expect(report.follows, JSON.stringify(report)).to.equal(4);
    } finally {
      peer2.close();
    }
  });
});
