/**
 * Issue 13, a member joins a running consortium, on a real network of its own (3 Raft orderers, the three
 * founding members): records, a consent and a history are made at hospital1 with the gateways running; then
 * `addOrg` (what `npm run network -- add-org hospital3` runs) brings hospital3 in while they keep running.
 * Afterwards: the channel config names four members, the chaincode definition is committed again with the
 * approvals of all four, `status` shows hospital3's nodes; what was there stays readable and enforced; a
 * hospital3 practitioner is governed by the same consents (denied, then permitted once the patient names
 * Hospital3MSP); and a write at hospital1 is endorsed by a majority of the four, as its audit receipt shows.
 */
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { addOrg, channelMembers, committedDefinition, formatStatus, status } from '@hdx/fabric-network';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { anchoredOf } from '../support/anchored';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';
import { ledgerOf, useOwnNetwork } from '../support/own-network';

const repo = path.resolve(__dirname, '..', '..');
const NEW_ORG = 'hospital3';
const MEMBERS = ['Hospital1MSP', 'Hospital2MSP', 'Hospital3MSP', 'RegulatorMSP'];
const EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';

describe(`a member joins a running consortium: add-org ${NEW_ORG} (real network)`, function () {
  this.timeout(600_000);
  const own = useOwnNetwork('add-org', 800, { HDX_ORDERER_TYPE: 'raft', HDX_ORDERERS: '3' });
  let h1: Gw;
  let h2: Gw;
  let reg: Gw;
  let h3: Gw | undefined;
  const patientKey = generateDidKey();
  const otherPatientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  const drH3 = generateDidKey();
  const auditor = generateDidKey();
  const h2Consent = permitOrganizationConsent(randomUUID(), patientKey.did, 'Hospital2MSP', 'TREAT') as { id: string } & Record<string, unknown>;
  const h3Consent = permitOrganizationConsent(randomUUID(), patientKey.did, 'Hospital3MSP', 'TREAT') as { id: string } & Record<string, unknown>;
  let observationId: string;
  let otherObservationId: string;

  /** A DID token of a practitioner of another member, for hospital1's gateway. */
  const visitorToken = (key: ReturnType<typeof generateDidKey>): string =>
    signDidToken({ key: key.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 });
  const patientToken = (scope: string): string => signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope, ttlSec: 120 });
  const observation = (patientId: string, value: number): object => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2026-12-01T08:15:00Z',
    valueQuantity: { value, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  });

  before(async () => {
    // hospital1 in sync audit mode: a write and its access entry are one transaction, whose receipt shows its endorsers.
    [h1, h2, reg] = await Promise.all([startTestGateway('hospital1', { HDX_AUDIT_MODE: 'sync' }), startTestGateway('hospital2'), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'patient', otherPatientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const patients: string[] = [];
    const observations: string[] = [];
    for (const key of [patientKey, otherPatientKey]) {
      const p = await call(h1, 'POST', '/Patient', staff, { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: key.did }], birthDate: '1961-02-17' });
      expect(p.status, p.text).to.equal(201);
      patients.push(p.body.id as string);
      const o = await call(h1, 'POST', '/Observation', staff, observation(p.body.id as string, 58));
      expect(o.status, o.text).to.equal(201);
      observations.push(o.body.id as string);
    }
    [observationId = '', otherObservationId = ''] = observations;
    // A second version: a history to keep.
    const updated = await call(h1, 'PUT', `/Observation/${observationId}`, staff, { ...observation(patients[0] ?? '', 61), id: observationId });
    expect(updated.status, updated.text).to.equal(200);
    const granted = await call(h1, 'POST', '/Consent', patientToken('patient/Consent.write'), signConsent(patientKey.privateJwk, h2Consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    expect((await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH2))).status, 'hospital2 reads with consent before the join').to.equal(200);
  });

  after(async () => {
    await Promise.all([h1, h2, reg, h3].filter((g): g is Gw => g !== undefined).map((g) => g.gateway.close()));
  });

  it(`adds ${NEW_ORG} while the gateways run: four members in the channel config, the definition approved by all four, its nodes in status`, async () => {
    const options = own().options;
    const start = Date.now();
    const info = await addOrg(options, NEW_ORG, (m) => {
      if (process.env.HDX_TEST_VERBOSE) process.stderr.write(`  [add-org] ${m}\n`);
    });
    const seconds = ((Date.now() - start) / 1000).toFixed(1);
    process.stderr.write(`      add-org ${NEW_ORG}: ${seconds} s\n`);

    expect((await channelMembers(options)).sort()).to.deep.equal(MEMBERS);
    const definition = await committedDefinition(options);
    expect(definition.sequence, 'committed again at the next sequence').to.equal(2);
    expect(definition.endorsementPolicy).to.equal('/Channel/Application/Endorsement');
    expect(definition.approvals).to.deep.equal(Object.fromEntries(MEMBERS.map((m) => [m, true])));

    const conn = info.orgs[NEW_ORG];
    expect(conn?.mspId).to.equal('Hospital3MSP');
    expect(conn?.orgDid).to.match(/^did:hdx:/);
    const env = fs.readFileSync(path.join(info.home, 'gateways', `${NEW_ORG}.env`), 'utf8');
    expect(env)
      .to.include('HDX_MSP_ID=Hospital3MSP')
      .and.include(`HDX_PEER_ENDPOINT=${conn?.peerEndpoint ?? '?'}`);

    const rows = await status(options);
    process.stderr.write(`${formatStatus(rows).replace(/^/gm, '      ')}\n`);
    for (const name of [`ca-${NEW_ORG}`, `peer0.${NEW_ORG}`, `chaincode.${NEW_ORG}`]) {
      const row = rows.find((r) => r.name === name);
      expect(row, name).to.include({ running: true, healthy: true });
    }
    expect(rows.filter((r) => !r.running || r.healthy === false).map((r) => r.name)).to.deep.equal([]);
  });

  it('existing records, history and consents at hospital1 stay readable and enforced', async () => {
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const read = await call(h1, 'GET', `/Observation/${observationId}`, staff);
    expect(read.status, read.text).to.equal(200);
    const history = await call(h1, 'GET', `/Observation/${observationId}/_history`, staff);
    expect(history.status, history.text).to.equal(200);
    expect(history.body.total).to.equal(2);
    const verify = await call(h1, 'GET', `/Observation/${observationId}/$verify`, staff);
    expect(verify.body.parameter[0].valueBoolean, verify.text).to.equal(true);
    // hospital2's consent still permits, and only for the patient who gave it.
    expect((await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH2))).status).to.equal(200);
    expect((await call(h1, 'GET', `/Observation/${otherObservationId}`, visitorToken(drH2))).status).to.equal(404);
  });

  it(`a practitioner of ${NEW_ORG} is denied without consent, and permitted once the patient's consent names Hospital3MSP`, async () => {
    // hospital3's own gateway: enrolled from its CA, submitting through its peer (the practitioner's DID).
    h3 = await startTestGateway(NEW_ORG);
    await registerDid(h3, NEW_ORG, 'practitioner', drH3);

    const denied = await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH3));
    expect(denied.status, denied.text).to.equal(404);
    const none = await call(h1, 'GET', `/Observation?patient=${patientKey.did}`, visitorToken(drH3));
    expect(none.status, none.text).to.equal(200);
    expect(none.body.total).to.equal(0);

    const granted = await call(h1, 'POST', '/Consent', patientToken('patient/Consent.write'), signConsent(patientKey.privateJwk, h3Consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    const permitted = await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH3));
    expect(permitted.status, permitted.text).to.equal(200);
    const found = await call(h1, 'GET', `/Observation?patient=${patientKey.did}`, visitorToken(drH3));
    expect(found.body.total).to.equal(1);
    // Still per organization and per patient: not the other patient's record.
    expect((await call(h1, 'GET', `/Observation/${otherObservationId}`, visitorToken(drH3))).status).to.equal(404);

    // The patient revokes hospital2's consent: hospital2 is denied, hospital3 is not.
    const revoked = await call(
      h1,
      'PUT',
      `/Consent/${h2Consent.id}`,
      patientToken('patient/Consent.write'),
      signConsent(patientKey.privateJwk, h2Consent, 'revoke'),
      'application/jose',
    );
    expect(revoked.status, revoked.text).to.equal(200);
    expect((await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH2))).status).to.equal(404);
    expect((await call(h1, 'GET', `/Observation/${observationId}`, visitorToken(drH3))).status).to.equal(200);
  });

  it('a write at hospital1 commits, endorsed by a majority of the four members (its receipt), and reaches the new peer', async () => {
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const created = await call(h1, 'POST', '/Patient', staff, { resourceType: 'Patient', birthDate: '1990-09-09', gender: 'female' });
    expect(created.status, created.text).to.equal(201);
    const id = created.body.id as string;
    const hospital3 = await ledgerOf(NEW_ORG);
    try {
      expect((await anchoredOf(hospital3, [id])).missing, 'anchored, read from peer0.hospital3').to.deep.equal([]);
    } finally {
      hospital3.close();
    }

    await auditDelivered(h1);
    // A fresh token per request: the gateway refuses a token used twice (jti replay).
    const asAuditor = (): string => signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 });
    const events = await call(reg, 'GET', `/AuditEvent?entity=Patient/${id}&_count=100`, asAuditor());
    expect(events.status, events.text).to.equal(200);
    type Event = { subtype: Array<{ code: string }>; extension?: Array<{ url: string; valueString: string }> };
    const create = (events.body.entry as Array<{ resource: Event }>).map((e) => e.resource).find((e) => e.subtype[0]?.code === 'create');
    const eventId = create?.extension?.find((x) => x.url === EVENT_ID_EXTENSION)?.valueString;
    expect(eventId, events.text).to.match(/^[0-9a-f]{64}\.[0-9]+$/);
    const receipt = await call(reg, 'GET', `/AuditEvent/${eventId ?? ''}/$receipt`, asAuditor());
    expect(receipt.status, receipt.text).to.equal(200);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-add-org-'));
    try {
      fs.writeFileSync(path.join(dir, 'receipt.json'), receipt.text);
      const verified = spawnSync(process.execPath, [path.join(repo, 'gateway', 'dist', 'cli.js'), 'receipt', 'verify', path.join(dir, 'receipt.json')], {
        encoding: 'utf8',
        env: {},
        timeout: 60_000,
      });
      expect(verified.status, verified.stderr).to.equal(0);
      const report = JSON.parse(verified.stdout) as { verified: boolean; submittedBy: string; endorsedBy: string[] };
      process.stderr.write(`      the write's receipt: endorsed by ${report.endorsedBy.join(', ')}\n`);
      expect(report.verified).to.equal(true);
      expect(report.submittedBy).to.equal('Hospital1MSP');
      // MAJORITY of four members is three: with three members it would have been two.
      expect(report.endorsedBy).to.have.length.of.at.least(3);
      for (const msp of report.endorsedBy) expect(MEMBERS).to.include(msp);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
