/**
 * Issue 12, offline-verifiable audit receipts, on the real network: a hospital1 practitioner reads a
 * record (sync audit mode: decided and recorded in one transaction), the regulator's auditor finds the
 * access entry, fetches its receipt from the regulator's gateway, and `hdx receipt verify` (the CLI, as a
 * program, with no network configuration at all) verifies it: the endorsing organizations, the block, the
 * entry. A tampered copy (one field of the entry, the block number) fails. Non-auditors get no receipt.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { startTestGateway } from '../support/network';

const repo = path.resolve(__dirname, '..', '..');
const EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';

describe('audit receipts (issue 12): verified offline by hdx receipt verify (real network)', function () {
  this.timeout(300_000);
  let h1: Gw;
  let reg: Gw;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const auditor = generateDidKey();
  let observationId: string;
  let eventId: string;
  let receiptText: string;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-receipt-'));

  const auditorToken = (gw: Gw): string => signDidToken({ key: auditor.privateJwk, audience: gw.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 });

  /** `hdx receipt verify` as a program, with an empty environment: nothing tells it where a network is. */
  const verifyCli = (file: string): { status: number | null; stdout: string; stderr: string } =>
    spawnSync(process.execPath, [path.join(repo, 'gateway', 'dist', 'cli.js'), 'receipt', 'verify', file], { encoding: 'utf8', env: {}, timeout: 60_000 });

  before(async () => {
    [h1, reg] = await Promise.all([startTestGateway('hospital1', { HDX_AUDIT_MODE: 'sync' }), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1979-03-14',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${String(p.body.id)}` },
      valueQuantity: { value: 71, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = o.body.id as string;
  });

  after(async () => {
    await Promise.all([h1, reg].filter(Boolean).map((g) => g.gateway.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the auditor fetches the receipt of a read from the regulator gateway', async () => {
    const read = await call(
      h1,
      'GET',
      `/Observation/${observationId}`,
      signDidToken({ key: drH1.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
    );
    expect(read.status, read.text).to.equal(200);
    const history = await call(reg, 'GET', `/AuditEvent?entity=Observation/${observationId}&_count=100`, auditorToken(reg));
    expect(history.status, history.text).to.equal(200);
    type Event = { subtype: Array<{ code: string }>; agent: Array<{ who: { identifier: { value: string } } }>; extension?: Array<{ url: string; valueString: string }> };
    const events = (history.body.entry as Array<{ resource: Event }>).map((e) => e.resource);
    const event = events.find((e) => e.subtype[0]?.code === 'read' && e.agent[0]?.who.identifier.value === drH1.did);
    expect(event, JSON.stringify(events)).to.not.equal(undefined);
    eventId = event?.extension?.find((x) => x.url === EVENT_ID_EXTENSION)?.valueString ?? '';
    expect(eventId).to.match(/^[0-9a-f]{64}\.[0-9]+$/);

    const receipt = await call(reg, 'GET', `/AuditEvent/${eventId}/$receipt`, auditorToken(reg));
    expect(receipt.status, receipt.text).to.equal(200);
    expect(receipt.headers.get('content-disposition')).to.include(`receipt-${eventId}.json`);
    expect(receipt.body.eventId).to.equal(eventId);
    receiptText = receipt.text;
    fs.writeFileSync(path.join(dir, 'receipt.json'), receiptText);
    if (process.env.HDX_TEST_RECEIPT_OUT) fs.writeFileSync(process.env.HDX_TEST_RECEIPT_OUT, receiptText);
  });

  it('hdx receipt verify says who endorsed it, in which block, and that the entry is the one recorded', () => {
    const run = verifyCli(path.join(dir, 'receipt.json'));
    expect(run.status, run.stderr).to.equal(0);
    const report = JSON.parse(run.stdout) as {
      verified: boolean;
      eventId: string;
      blockNumber: string;
      endorsedBy: string[];
      orderedBy: string[];
      submittedBy: string;
      configBlockNumber: string;
      configBlockHash: string;
      configSignedBy: string[];
      entry: { actor: string; decision: string };
    };
    expect(report.verified).to.equal(true);
    expect(report.eventId).to.equal(eventId);
    expect(report.submittedBy).to.equal('Hospital1MSP');
    expect(report.endorsedBy.length).to.be.greaterThan(0);
    expect(report.orderedBy).to.deep.equal(['OrdererMSP']);
    // The test channel has had no config update: its configuration is the genesis block, which no orderer
    // signs; the report gives its hash to compare with the channel's.
    expect(report.configBlockNumber).to.equal('0');
    expect(report.configSignedBy).to.deep.equal([]);
    expect(report.configBlockHash).to.match(/^[0-9a-f]{64}$/);
    expect(report.blockNumber).to.equal((JSON.parse(receiptText) as { blockNumber: string }).blockNumber);
    expect(report.entry.actor).to.equal(drH1.did);
    expect(report.entry.decision).to.equal('permit');
  });

  it('a tampered receipt fails: a field of the entry, the block number', () => {
    const original = JSON.parse(receiptText) as { entry: Record<string, unknown>; blockNumber: string };
    fs.writeFileSync(path.join(dir, 'entry.json'), JSON.stringify({ ...original, entry: { ...original.entry, purpose: 'HOPERAT' } }));
    const entry = verifyCli(path.join(dir, 'entry.json'));
    expect(entry.status).to.equal(1);
    expect(entry.stderr).to.include('does NOT verify').and.include('was changed');
    fs.writeFileSync(path.join(dir, 'number.json'), JSON.stringify({ ...original, blockNumber: String(BigInt(original.blockNumber) + 1n) }));
    const number = verifyCli(path.join(dir, 'number.json'));
    expect(number.status).to.equal(1);
    expect(number.stderr).to.include(`but its block is number ${original.blockNumber}`);
  });

  it('gives receipts to auditors only, and an unknown entry is 404', async () => {
    const asPatient = await call(
      h1,
      'GET',
      `/AuditEvent/${eventId}/$receipt`,
      signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/AuditEvent.read', ttlSec: 120 }),
    );
    expect(asPatient.status, asPatient.text).to.equal(403);
    const unknown = await call(reg, 'GET', `/AuditEvent/${'0'.repeat(64)}.0/$receipt`, auditorToken(reg));
    expect(unknown.status, unknown.text).to.equal(404);
    const malformed = await call(reg, 'GET', '/AuditEvent/not-an-event/$receipt', auditorToken(reg));
    expect(malformed.status, malformed.text).to.equal(400);
  });
});
