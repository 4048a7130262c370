/**
 * Issue 13, a member leaves a running consortium (the reverse of add-org), on a real network of its own
 * (3 Raft orderers): hospital3 joins (`addOrg`), a hospital3 practitioner is permitted at hospital1 by the
 * patient's consent naming Hospital3MSP; then `removeOrg` (what `npm run network -- remove-org hospital3`
 * runs) while hospital1's, hospital2's and the regulator's gateways keep running. Afterwards: the same
 * practitioner's read at hospital1 is refused (404, as any refused read), and the refusal is on the ledger
 * with its reason; the ledger's member registry says removed; the channel config names three members, the
 * definition is committed again by them; a write at hospital1 still commits (a majority of the three);
 * `status` no longer shows hospital3; and a later add-org gets hospital3's ports. A patient whom hospital3
 * registered is not hospital3's staff: after the removal they still read their own record at hospital1 and
 * still sign consents there (the chaincode's rule: a removed member's identities stop acting, except its
 * patients, whose consent must not be held hostage by their hospital's departure).
 *
 * hospital1 runs in the default async audit mode with local decisions: its ledger view has to see the
 * removal in the blocks for its own decision to refuse.
 */
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { addOrg, channelMembers, committedDefinition, formatStatus, ledgerMemberStatus, removeOrg, status } from '@hdx/fabric-network';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { anchoredOf } from '../support/anchored';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';
import { ledgerOf, useOwnNetwork } from '../support/own-network';

const repo = path.resolve(__dirname, '..', '..');
const LEAVING = 'hospital3';
const EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';
const REMAINING = ['Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP'];

describe(`a member leaves a running consortium: remove-org ${LEAVING} (real network)`, function () {
  this.timeout(600_000);
  const own = useOwnNetwork('remove-org', 1200, { HDX_ORDERER_TYPE: 'raft', HDX_ORDERERS: '3' });
  let h1: Gw;
  let h2: Gw;
  let reg: Gw;
  let h3: Gw | undefined;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH3 = generateDidKey();
  const auditor = generateDidKey();
  /** A patient registered by hospital3, with records at hospital1. */
  const patientOfH3 = generateDidKey();
  let patientOfH3ObservationId: string;
  const h3Consent = permitOrganizationConsent(randomUUID(), patientKey.did, 'Hospital3MSP', 'TREAT') as { id: string } & Record<string, unknown>;
  let observationId: string;
  let hospital3PeerPort: string | undefined;
  const progress = (m: string): void => {
    if (process.env.HDX_TEST_VERBOSE) process.stderr.write(`  [remove-org] ${m}\n`);
  };

  /** A DID token of hospital3's practitioner, for hospital1's gateway. */
  const drH3Token = (): string => signDidToken({ key: drH3.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 });
  const patientToken = (scope: string): string => signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope, ttlSec: 120 });

  before(async () => {
    [h1, h2, reg] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2'), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1958-03-02',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${p.body.id as string}` },
      effectiveDateTime: '2026-12-01T08:15:00Z',
      valueQuantity: { value: 64, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = o.body.id as string;

    // hospital3 joins; its practitioner is registered through its own gateway; the patient's consent names Hospital3MSP.
    const joined = await addOrg(own().options, LEAVING, progress);
    hospital3PeerPort = joined.orgs[LEAVING]?.peerEndpoint.split(':')[1];
    h3 = await startTestGateway(LEAVING);
    await registerDid(h3, LEAVING, 'practitioner', drH3);
    await registerDid(h3, LEAVING, 'patient', patientOfH3);
    const p3 = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientOfH3.did }],
      birthDate: '1971-05-05',
    });
    expect(p3.status, p3.text).to.equal(201);
    const o3 = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${p3.body.id as string}` },
      effectiveDateTime: '2026-12-02T09:00:00Z',
      valueQuantity: { value: 71, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o3.status, o3.text).to.equal(201);
    patientOfH3ObservationId = o3.body.id as string;
    const granted = await call(h1, 'POST', '/Consent', patientToken('patient/Consent.write'), signConsent(patientKey.privateJwk, h3Consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    const permitted = await call(h1, 'GET', `/Observation/${observationId}`, drH3Token());
    expect(permitted.status, `hospital3's practitioner reads with consent before the removal: ${permitted.text}`).to.equal(200);
  });

  after(async () => {
    await Promise.all([h1, h2, reg, h3].filter((g): g is Gw => g !== undefined).map((g) => g.gateway.close()));
  });

  it(`removes ${LEAVING} while the other gateways run: out of the ledger's member registry and the channel config, the definition committed again by the three`, async () => {
    // Its own gateway goes first (remove-org stops one `npm start` started; this one runs in the test process).
    await h3?.gateway.close();
    h3 = undefined;
    const options = own().options;
    const start = Date.now();
    const info = await removeOrg(options, LEAVING, progress);
    process.stderr.write(`      remove-org ${LEAVING}: ${((Date.now() - start) / 1000).toFixed(1)} s\n`);

    expect(info.orgs[LEAVING]).to.equal(undefined);
    expect(Object.keys(info.orgs).sort()).to.deep.equal(['hospital1', 'hospital2', 'regulator']);
    const registry = await ledgerMemberStatus(options, 'Hospital3MSP');
    expect(registry.member).to.equal(false);
    expect(registry.removal?.status).to.equal('removed');
    expect(registry.removal?.approvals.map((a) => a.mspId)).to.not.include('Hospital3MSP');
    expect((await channelMembers(options)).sort()).to.deep.equal(REMAINING);
    const definition = await committedDefinition(options);
    expect(definition.sequence, 'committed again after add-org (2): 3').to.equal(3);
    expect(definition.endorsementPolicy).to.equal('/Channel/Application/Endorsement');
    expect(definition.approvals).to.deep.equal(Object.fromEntries(REMAINING.map((m) => [m, true])));
    // Its state is gone, its logs stay.
    expect(fs.existsSync(path.join(info.home, 'orgs', LEAVING))).to.equal(false);
    expect(fs.existsSync(path.join(info.home, 'gateways', `${LEAVING}.env`))).to.equal(false);
    expect(fs.existsSync(path.join(info.home, 'logs', `peer0.${LEAVING}.log`))).to.equal(true);
  });

  it(`refuses the departed member's practitioner at hospital1 (404, as any refused read) although the consent stays, and the refusal is on the ledger`, async () => {
    const refused = await call(h1, 'GET', `/Observation/${observationId}`, drH3Token());
    expect(refused.status, refused.text).to.equal(404);
    const search = await call(h1, 'GET', `/Observation?patient=${patientKey.did}`, drH3Token());
    expect(search.status, search.text).to.equal(200);
    expect(search.body.total).to.equal(0);
    // The consent is still on the ledger, active.
    const hospital1 = await ledgerOf('hospital1');
    try {
      expect((await hospital1.getConsent(h3Consent.id))?.status).to.equal('active');
    } finally {
      hospital1.close();
    }
    // The refusal, as the regulator's auditor reads the patient's access history.
    await auditDelivered(h1);
    const token = signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 });
    const history = await call(reg, 'GET', `/AuditEvent?patient=${patientKey.did}&_count=100`, token);
    expect(history.status, history.text).to.equal(200);
    type Event = { outcome: string; outcomeDesc?: string; agent?: Array<{ who?: { identifier?: { value?: string } } }> };
    const byDrH3 = ((history.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource).filter((e) => e.agent?.some((a) => a.who?.identifier?.value === drH3.did));
    expect(byDrH3.map((e) => e.outcomeDesc)).to.include('permit (consent-permit)');
    expect(byDrH3.map((e) => e.outcomeDesc)).to.include('denied (actor-organization-removed)');
  });

  it(`a patient ${LEAVING} registered keeps acting: reads their own record at hospital1 and signs a consent there`, async () => {
    const token = (scope: string, purposeOfUse?: string): string =>
      signDidToken({ key: patientOfH3.privateJwk, audience: h1.config.baseUrl, scope, ...(purposeOfUse ? { purposeOfUse } : {}), ttlSec: 120 });
    const own = await call(h1, 'GET', `/Observation/${patientOfH3ObservationId}`, token('patient/*.read', 'PATRQT'));
    expect(own.status, own.text).to.equal(200);
    expect((own.body.valueQuantity as { value: number }).value).to.equal(71);
    const consent = permitOrganizationConsent(randomUUID(), patientOfH3.did, 'Hospital2MSP', 'TREAT');
    const granted = await call(h1, 'POST', '/Consent', token('patient/Consent.write'), signConsent(patientOfH3.privateJwk, consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
  });

  it('a write at hospital1 still commits, endorsed by a majority of the three that remain (its receipt), read from hospital2', async () => {
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const created = await call(h1, 'POST', '/Patient', staff, { resourceType: 'Patient', birthDate: '1990-09-09', gender: 'female' });
    expect(created.status, created.text).to.equal(201);
    const id = created.body.id as string;
    const hospital2 = await ledgerOf('hospital2');
    try {
      expect((await anchoredOf(hospital2, [id])).missing, 'anchored, read from peer0.hospital2').to.deep.equal([]);
    } finally {
      hospital2.close();
    }
    // The write's access entry, as the regulator's auditor reads it, and the receipt of its transaction.
    await auditDelivered(h1);
    const asAuditor = (): string => signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 });
    const events = await call(reg, 'GET', `/AuditEvent?entity=Patient/${id}&_count=100`, asAuditor());
    expect(events.status, events.text).to.equal(200);
    type Event = { subtype: Array<{ code: string }>; extension?: Array<{ url: string; valueString: string }> };
    const create = ((events.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource).find((e) => e.subtype[0]?.code === 'create');
    const eventId = create?.extension?.find((x) => x.url === EVENT_ID_EXTENSION)?.valueString;
    expect(eventId, events.text).to.match(/^[0-9a-f]{64}\.[0-9]+$/);
    const receipt = await call(reg, 'GET', `/AuditEvent/${eventId ?? ''}/$receipt`, asAuditor());
    expect(receipt.status, receipt.text).to.equal(200);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-remove-org-'));
    try {
      fs.writeFileSync(path.join(dir, 'receipt.json'), receipt.text);
      const verified = spawnSync(process.execPath, [path.join(repo, 'gateway', 'dist', 'cli.js'), 'receipt', 'verify', path.join(dir, 'receipt.json')], {
        encoding: 'utf8',
        env: {},
        timeout: 60_000,
      });
      expect(verified.status, verified.stderr).to.equal(0);
      const report = JSON.parse(verified.stdout) as { verified: boolean; endorsedBy: string[] };
      process.stderr.write(`      the write's entry: endorsed by ${report.endorsedBy.join(', ')}\n`);
      expect(report.verified).to.equal(true);
      // MAJORITY of the three that remain is two; the departed member endorses nothing.
      expect(report.endorsedBy).to.have.length.of.at.least(2);
      for (const msp of report.endorsedBy) expect(REMAINING).to.include(msp);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`status no longer shows ${LEAVING}, and every node left is healthy`, async () => {
    const rows = await status(own().options);
    process.stderr.write(`${formatStatus(rows).replace(/^/gm, '      ')}\n`);
    expect(rows.filter((r) => r.name.includes(LEAVING)).map((r) => r.name)).to.deep.equal([]);
    expect(rows.filter((r) => !r.running || r.healthy === false).map((r) => r.name)).to.deep.equal([]);
  });

  it(`a later add-org takes ${LEAVING}'s freed ports; the removed name is refused`, async () => {
    const options = own().options;
    let refusal = '';
    await addOrg(options, LEAVING, progress).catch((err: Error) => (refusal = err.message));
    expect(refusal).to.match(/was removed from this network/);
    const info = await addOrg(options, 'clinic4', progress);
    expect(info.orgs.clinic4?.peerEndpoint.split(':')[1]).to.equal(hospital3PeerPort);
    expect((await channelMembers(options)).sort()).to.deep.equal(['Clinic4MSP', ...REMAINING]);
  });
});
