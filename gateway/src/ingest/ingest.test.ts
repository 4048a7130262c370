import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { HDX_ID_NAMESPACE, keyedIds, validateResource } from '@hdx/fhir-mappers';
import { expect } from 'chai';
import type { Request, Response } from 'express';
import request from 'supertest';
import type { Caller } from '../fhir/policy';
import { ErasureService } from '../fhir/erasure';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { CustodianIds } from '../store/custodian-ids';
import { redactIds } from './ingest-service';
import { testApp } from '../test-support/test-app';
import { LargeBodyGate } from '../http/large-body-gate';

const BASE = 'http://127.0.0.1:8080/fhir';
const DR = `did:hdx:${'a'.repeat(43)}`;
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const HL7 = 'x-application/hl7-v2+er7';
const data = (f: string): string => fs.readFileSync(path.join(__dirname, '..', '..', '..', 'fhir-mappers', 'test-data', 'hl7v2', f), 'utf8');
const ADT = data('adt-a01.hl7');
const ORU = data('oru-r01.hl7');

/** This test custodian's id secret (a real one is 32 random bytes in the gateway's data dir). */
const SECRET = Buffer.alloc(32, 7);
const MRN_SYSTEM = 'urn:oid:1.2.840.114350.1.13.1.2';
const ADMIN: Caller = { did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', kind: 'admin', actorAuth: 'idp', local: true };
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

function setup(options: { ids?: boolean } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-ingest-'));
  const store = testStore(path.join(dir, 'hdx.db'));
  const ledger = new FakeLedger();
  const log = newLogger('silent');
  const ids = new CustodianIds(SECRET, path.join(dir, 'id-epochs.db'));
  const { app } = testApp({ store, ledger, log, baseUrl: BASE, ...(options.ids === false ? {} : { ids }) });
  return {
    app,
    store,
    ledger,
    ids,
    erasure: (withIds = true) => new ErasureService(store, ledger, log, 'Hospital1MSP', withIds ? ids : undefined),
    cleanup: () => {
      ids.close();
      void store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

let env: ReturnType<typeof setup>;
/** The id scheme before keyed ids: SHA-256 of the public namespace + parts (security-poc/mrn-bruteforce.js). */
function unkeyedUuid(kind: string, ...parts: string[]): string {
  const h = createHash('sha256').update(Buffer.from(HDX_ID_NAMESPACE.replace(/-/g, ''), 'hex'));
  for (const p of [kind, ...parts]) {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(Buffer.byteLength(p));
    h.update(l).update(p);
  }
  const d = h.digest();
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x80;
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80;
  const x = d.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

beforeEach(() => {
  env = setup();
});
afterEach(() => env.cleanup());

const hl7 = (message: string, as: [string, string] = staff, type = HL7) =>
  request(env.app)
    .post('/ingest/hl7v2')
    .set(...as)
    .set('content-type', type)
    .send(message);
const fhir = (body: unknown, source = 'ehr-1', as: [string, string] = staff) =>
  request(env.app)
    .post(`/ingest/fhir?source=${source}`)
    .set(...as)
    .set('content-type', 'application/fhir+json')
    .send(JSON.stringify(body));
const statuses = (body: { entry: Array<{ response: { status: string } }> }): string[] => body.entry.map((e) => e.response.status);
const changes = () => env.ledger.audit.filter((e) => ['C', 'U', 'D'].includes(e.action));

describe('ingestion (fake ledger)', () => {
  it('HL7 v2 ADT^A01 then ORU^R01: created with the mapper ids, one anchor transaction per message; re-ingesting is a no-op', async () => {
    const adt = await hl7(ADT);
    expect(adt.status, adt.text).to.equal(200);
    expect(adt.body.type).to.equal('transaction-response');
    expect(validateResource(adt.body, 'Bundle').filter((i) => i.severity === 'error')).to.deep.equal([]);
    expect(statuses(adt.body)).to.deep.equal(['201 Created', '201 Created']);
    const patientUrl = adt.body.entry[0].fullUrl as string;
    expect(patientUrl).to.match(/\/Patient\/[0-9a-f-]{36}$/);
    expect(env.ledger.anchors.size).to.equal(2);
    expect(env.ledger.anchorBatchCalls).to.equal(1);

    // Again: nothing new anywhere.
    const adtAgain = await hl7(ADT);
    expect(statuses(adtAgain.body)).to.deep.equal(['200 OK', '200 OK']);
    expect(adtAgain.body.entry[0].response.outcome.issue[0].diagnostics).to.match(/^unchanged/);
    expect(env.ledger.anchors.size).to.equal(2);
    expect(env.ledger.anchorBatchCalls).to.equal(1);

    const oru = await hl7(ORU);
    expect(oru.status, oru.text).to.equal(200);
    // The same Patient (same PID-3), kept as the ADT feed wrote it: a result message's PID carries less
    // and is a create-only entry, so it does not replace the Patient. The results are new.
    expect(oru.body.entry[0].fullUrl).to.equal(patientUrl);
    expect(oru.body.entry[0].response.status).to.equal('200 OK');
    expect(oru.body.entry[0].response.outcome.issue[0].diagnostics).to.match(/create-only/);
    expect(
      statuses(oru.body)
        .slice(1)
        .every((s) => s === '201 Created'),
    ).to.equal(true);
    const anchorsAfter = env.ledger.anchors.size;
    expect(anchorsAfter).to.equal(2 + oru.body.entry.length - 1);
    expect(env.ledger.anchorBatchCalls).to.equal(2);
    const recorded = changes().length;

    const again = await hl7(ORU);
    expect(again.status).to.equal(200);
    expect(statuses(again.body).every((s) => s === '200 OK')).to.equal(true);
    expect(
      again.body.entry.every((e: { response: { outcome: { issue: Array<{ diagnostics: string }> } } }) => /^unchanged/.test(e.response.outcome.issue[0]?.diagnostics ?? '')),
    ).to.equal(true);
    expect(env.ledger.anchors.size).to.equal(anchorsAfter);
    expect(env.ledger.anchorBatchCalls).to.equal(2);
    expect(changes()).to.have.length(recorded);
    const id = patientUrl.split('/').pop() as string;
    expect(await env.store.history('Patient', id)).to.have.length(1);

    // Served, and checked against its anchor, like anything else.
    const read = await request(env.app)
      .get(`/fhir/Patient/${id}`)
      .set(...staff);
    expect(read.status).to.equal(200);
  });

  it('an ORU^R01 for a patient not held yet creates the Patient (create-only creates)', async () => {
    const oru = await hl7(ORU);
    expect(oru.status, oru.text).to.equal(200);
    expect(oru.body.entry[0].response.status).to.equal('201 Created');
    expect(await env.store.history('Patient', String(oru.body.entry[0].fullUrl).split('/').pop() as string)).to.have.length(1);
  });

  it('the same message delivered twice at once: one creates, the other finds it unchanged', async () => {
    // A ledger that takes its time, as a real one does: the second delivery arrives while the first is anchoring.
    const anchorBatch = env.ledger.anchorBatch.bind(env.ledger);
    env.ledger.anchorBatch = async (inputs) => {
      await new Promise((r) => setTimeout(r, 100));
      return anchorBatch(inputs);
    };
    const [a, b] = await Promise.all([hl7(ADT), hl7(ADT)]);
    expect([a.status, b.status]).to.deep.equal([200, 200]);
    expect([...statuses(a.body), ...statuses(b.body)].sort()).to.deep.equal(['200 OK', '200 OK', '201 Created', '201 Created']);
    expect(env.ledger.anchors.size).to.equal(2);
  });

  it('a changed resource gets a new version (meta differences alone do not)', async () => {
    const patient = { resourceType: 'Patient', id: 'p-1', name: [{ family: 'Quist' }], birthDate: '1990-01-31' };
    const obs = {
      resourceType: 'Observation',
      id: 'o-1',
      status: 'final',
      code: { text: 'pulse' },
      subject: { reference: 'urn:uuid:0e3c8a1e-8f7e-4d55-9a2c-111111111111' },
      valueQuantity: { value: 72 },
    };
    const bundle = (p: object, o: object) => ({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0e3c8a1e-8f7e-4d55-9a2c-111111111111', resource: p, request: { method: 'PUT', url: 'Patient/p-1' } },
        { resource: o, request: { method: 'PUT', url: 'Observation/o-1' } },
      ],
    });
    const first = await fhir(bundle(patient, obs));
    expect(first.status, first.text).to.equal(200);
    expect(statuses(first.body)).to.deep.equal(['201 Created', '201 Created']);
    expect((await env.store.readCurrent('Observation', 'o-1'))?.content).to.contain('"reference":"Patient/p-1"');

    const metaOnly = await fhir(bundle({ ...patient, meta: { versionId: '17', lastUpdated: '2020-01-01T00:00:00Z' } }, obs));
    expect(metaOnly.body.entry.map((e: { response: { etag: string } }) => e.response.etag)).to.deep.equal(['W/"1"', 'W/"1"']);

    const changed = await fhir(bundle(patient, { ...obs, valueQuantity: { value: 80 } }));
    expect(changed.status).to.equal(200);
    expect(statuses(changed.body)).to.deep.equal(['200 OK', '200 OK']);
    expect(changed.body.entry[1].response.etag).to.equal('W/"2"');
    expect(changed.body.entry[1].response.outcome.issue[0].diagnostics).to.match(/^updated/);
    expect(await env.store.history('Observation', 'o-1')).to.have.length(2);
    expect(env.ledger.anchors.has('Observation/o-1/_history/2')).to.equal(true);
    expect(env.ledger.anchors.has('Patient/p-1/_history/2')).to.equal(false);
    expect(changes().filter((e) => e.action === 'U')).to.have.length(1);
  });

  it('more than 500 changed resources: anchored in chunks of at most 500, Patients first', async () => {
    const entry: object[] = [];
    for (let i = 0; i < 600; i++) {
      entry.push({ resource: { resourceType: 'Observation', id: `o-${i}`, status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/p-big' }, valueInteger: i } });
    }
    entry.push({ resource: { resourceType: 'Patient', id: 'p-big' } });
    const res = await fhir({ resourceType: 'Bundle', type: 'collection', entry });
    expect(res.status, res.text.slice(0, 500)).to.equal(200);
    expect(env.ledger.anchors.size).to.equal(601);
    expect(env.ledger.anchorBatchCalls).to.equal(2);
    const again = await fhir({ resourceType: 'Bundle', type: 'collection', entry });
    expect(again.status).to.equal(200);
    expect(env.ledger.anchorBatchCalls).to.equal(2);
  });

  it('HL7 v2 errors name the segment or field (400/422), and nothing is stored', async () => {
    const bad = await hl7(ADT.replace('ADT^A01^ADT_A01', 'ADT^A99^ADT_A01'));
    expect(bad.status).to.equal(422);
    expect(bad.body.resourceType).to.equal('OperationOutcome');
    expect(JSON.stringify(bad.body)).to.contain('MSH-9');
    const garbage = await hl7('not an HL7 message');
    expect(garbage.status).to.equal(400);
    expect(garbage.body.issue[0].diagnostics).to.match(/MSH|segment/);
    expect(JSON.stringify(garbage.body)).to.not.contain("O'Brien");
    expect(env.ledger.anchors.size).to.equal(0);
    const wrongType = await hl7(ADT, staff, 'application/json');
    expect(wrongType.status).to.equal(415);
  });

  it('HL7 v2 with required fields left blank: stored (200), each lenient reading a warning issue in the outcome of the entry it concerns', async () => {
    type Issue = { severity: string; code: string; diagnostics?: string; details?: { coding?: Array<{ system: string; code: string }> } };
    type Entry = { fullUrl: string; response: { status: string; outcome: { resourceType: string; issue: Issue[] } } };
    const warningsOf = (e: Entry | undefined): Issue[] => e?.response.outcome.issue.filter((i) => i.severity === 'warning') ?? [];
    // OBX[2] without its result status (OBX-11)
    const res = await hl7(ORU.replace('|<^150|mg/dL^^UCUM|0-150|N|||F', '|<^150|mg/dL^^UCUM|0-150|N|||'));
    expect(res.status).to.equal(200);
    const entries = res.body.entry as Entry[];
    expect(statuses(res.body)).to.deep.equal(Array<string>(7).fill('201 Created'));
    expect(entries.map((e) => warningsOf(e).length)).to.deep.equal([0, 0, 1, 0, 0, 0, 0]);
    const issue = warningsOf(entries[2])[0];
    expect(issue).to.deep.include({
      severity: 'warning',
      code: 'incomplete',
      diagnostics: 'OBX[2]-11: observation result status missing: Observation.status is unknown (result-status-missing)',
    });
    expect(issue?.details?.coding?.[0]).to.deep.include({ system: 'http://terminology.hl7.org/CodeSystem/v2-0357', code: '101' });
    expect(validateResource(entries[2]?.response.outcome)).to.deep.equal([]);
    const id = entries[2]?.fullUrl.split('/').pop() ?? '';
    const stored = JSON.parse((await env.store.readCurrent('Observation', id))?.content ?? '{}') as { status?: string; code?: { coding?: Array<{ code: string }> } };
    expect(stored.status).to.equal('unknown');
    expect(stored.code?.coding?.[0]?.code).to.equal('2571-8');
    expect(JSON.stringify(res.body)).to.not.contain('Brien');
    // A warning about the whole message (no version id) goes with the first entry
    const adt = await hl7(ADT.replace('|P|2.5.1|', '|P||'));
    expect(adt.status).to.equal(200);
    expect((adt.body.entry as Entry[]).map((e) => warningsOf(e).map((i) => i.diagnostics))).to.deep.equal([
      ['MSH-12: version id missing: read as HL7 v2 (the structure of every v2.x message HDX maps) (version-missing)'],
      [],
    ]);
  });

  it("only the custodian's users with write scopes may ingest", async () => {
    const reader = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.read' });
    expect((await hl7(ADT, reader)).status).to.equal(403);
    const other = asCaller({ did: DR, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    expect((await hl7(ADT, other)).status).to.equal(403);
    expect((await request(env.app).post('/ingest/hl7v2').set('content-type', HL7).send(ADT)).status).to.equal(401);
    expect(env.ledger.anchors.size).to.equal(0);
  });

  it('FHIR pushes: entries need stable ids, PUT only, a named source, and urn:uuid references that resolve', async () => {
    const post = await fhir({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } }] });
    expect(post.status).to.equal(400);
    expect(post.body.issue[0].expression).to.deep.equal(['Bundle.entry[0].request']);
    const noId = await fhir({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient' } }] });
    expect(noId.status).to.equal(400);
    const dangling = await fhir({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { resource: { resourceType: 'Observation', id: 'o', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:0e3c8a1e-8f7e-4d55-9a2c-222222222222' } } },
      ],
    });
    expect(dangling.status).to.equal(400);
    expect(dangling.body.issue[0].expression).to.deep.equal(['Bundle.entry[0].resource.subject']);
    const invalidObs = await fhir({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { resource: { resourceType: 'Patient', id: 'p' } },
        { resource: { resourceType: 'Observation', id: 'o', status: 'bogus', code: { text: 'x' }, subject: { reference: 'Patient/p' } } },
      ],
    });
    expect(invalidObs.status).to.equal(400);
    expect(JSON.stringify(invalidObs.body)).to.contain('Bundle.entry[1].resource.status');
    expect(env.ledger.anchors.size).to.equal(0);
    const noSource = await request(env.app)
      .post('/ingest/fhir')
      .set(...staff)
      .set('content-type', 'application/fhir+json')
      .send('{}');
    expect(noSource.status).to.equal(400);
    const badSource = await fhir({ resourceType: 'Patient', id: 'p' }, 'a%20b');
    expect(badSource.status).to.equal(400);
    // One plain resource with its id is fine.
    const single = await fhir({ resourceType: 'Patient', id: 'p' });
    expect(single.status).to.equal(200);
    expect(statuses(single.body)).to.deep.equal(['201 Created']);
  });

  it("large ingestion bodies take turns with the FHIR base's: one beyond the gate's queue is 503 with Retry-After before its body is read", async () => {
    // A gate whose one turn is taken (a large body being processed elsewhere in this process) and with no queue.
    const gate = new LargeBodyGate({ thresholdBytes: 100, inFlight: 1, queue: 0 });
    gate.admit({ headers: { 'content-length': '1000' } } as unknown as Request, new EventEmitter() as unknown as Response, () => undefined);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-ingest-gate-'));
    const store = testStore(path.join(dir, 'hdx.db'));
    const { app } = testApp({ store, ledger: new FakeLedger(), baseUrl: BASE, largeBodies: gate });
    const bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ resource: { resourceType: 'Patient', id: 'p1', name: [{ family: 'Gate' }] }, request: { method: 'PUT', url: 'Patient/p1' } }],
    };
    for (const route of ['/ingest/fhir?source=ehr', '/ingest/vr-session?patient=Patient/p1']) {
      const res = await request(app)
        .post(route)
        .set(...staff)
        .set('content-type', 'application/json')
        .send(bundle);
      expect(res.status, route).to.equal(503);
      expect(res.headers['retry-after']).to.equal('5');
      expect(res.body.issue[0].diagnostics).to.match(/processing as many large bodies/);
    }
    // A small body goes at once.
    const small = await request(app)
      .post('/ingest/fhir?source=ehr')
      .set(...staff)
      .set('content-type', 'application/json')
      .send({ resourceType: 'Patient' });
    expect(small.status).to.equal(400);
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('VR session record: mapped onto the Patient given, every entry stored (Devices as reference data, the Provenance governed by the patient); idempotent', async () => {
    const record = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'fhir-mappers', 'src', 'vr-session', 'example.json'), 'utf8')) as Record<string, unknown>;
    const noPatient = await request(env.app)
      .post('/ingest/vr-session')
      .set(...staff)
      .set('content-type', 'application/json')
      .send(record);
    expect(noPatient.status).to.equal(422);
    await fhir({ resourceType: 'Patient', id: 'vr-p' });
    const send = () =>
      request(env.app)
        .post('/ingest/vr-session?patient=Patient/vr-p')
        .set(...staff)
        .set('content-type', 'application/json')
        .send(record);
    const res = await send();
    expect(res.status, res.text.slice(0, 1000)).to.equal(200);
    const st = statuses(res.body);
    expect(st.filter((s) => s === '201 Created').length).to.be.greaterThan(5);
    // Every R4 type is held: nothing skipped (the 11-type table left 3 Devices and the Provenance out).
    expect(st.filter((s) => s.startsWith('422')).length).to.equal(0);
    const anchorsOf = (type: string) => [...env.ledger.anchors.entries()].filter(([k]) => k.startsWith(`${type}/`)).map(([, a]) => a);
    const patientRef = anchorsOf('Patient')[0]?.patient;
    // The Provenance names no Patient, only the patient's records: it is governed by that patient.
    expect(anchorsOf('Provenance').map((a) => a.patient)).to.deep.equal([patientRef]);
    // The headset, platform and wearable name no patient: reference data, anchored under the custodian's reference-data pseudonym.
    const devices = anchorsOf('Device');
    expect(devices).to.have.length(3);
    expect(new Set(devices.map((a) => a.patient)).size).to.equal(1);
    expect(devices[0]?.patient).to.not.equal(patientRef);
    const anchors = env.ledger.anchors.size;
    const again = await send();
    expect(statuses(again.body).filter((s) => s === '201 Created')).to.have.length(0);
    expect(env.ledger.anchors.size).to.equal(anchors);
    const invalid = await request(env.app)
      .post('/ingest/vr-session?patient=Patient/vr-p')
      .set(...staff)
      .set('content-type', 'application/json')
      .send({ ...record, sessionType: 'dancing' });
    expect(invalid.status).to.equal(400);
    expect(JSON.stringify(invalid.body)).to.contain('/sessionType');
  });
});

describe('ingestion ids: keyed with the custodian secret; re-admission after erasure; no ids in errors', () => {
  const patientIdOf = (body: { entry: Array<{ fullUrl: string }> }): string => String(body.entry[0]?.fullUrl.split('/').pop());

  it('the Patient id of the golden ADT is keyed: not the unkeyed hash of its MRN, another secret gives another id; same secret, same id', async () => {
    const adt = await hl7(ADT);
    expect(adt.status, adt.text).to.equal(200);
    const id = patientIdOf(adt.body);
    expect(id).to.not.equal(unkeyedUuid('Patient', MRN_SYSTEM, 'MRN-000042'));
    expect(id).to.equal(keyedIds(SECRET).id('Patient', MRN_SYSTEM, 'MRN-000042'));
    expect(id).to.not.equal(keyedIds(Buffer.alloc(32, 8)).id('Patient', MRN_SYSTEM, 'MRN-000042'));
    // The ledger holds only the keyed id.
    expect([...env.ledger.anchors.keys()].some((k) => k.startsWith(`Patient/${id}/`))).to.equal(true);
  });

  it('a patient erased, then admitted again, gets a new Patient id and is anchored (the erasure entry names no resource)', async () => {
    const first = await hl7(ADT);
    const oldId = patientIdOf(first.body);
    const encounterOld = String(first.body.entry[1].fullUrl).split('/').pop() as string;
    await env.erasure().erasePatient(ADMIN, oldId);
    expect(env.ledger.anchors.get(`Patient/${oldId}/_history/1`)?.tombstone).to.not.equal(undefined);
    const erase = env.ledger.audit.at(-1);
    expect(erase).to.include({ action: 'D', subtype: 'erase' });
    expect(erase?.resources).to.deep.equal([]);
    expect(JSON.stringify(env.ledger.audit.filter((e) => e.subtype === 'erase'))).to.not.contain(oldId);

    const again = await hl7(ADT);
    expect(again.status, again.text).to.equal(200);
    expect(statuses(again.body)).to.deep.equal(['201 Created', '201 Created']);
    const newId = patientIdOf(again.body);
    expect(newId).to.not.equal(oldId);
    expect(String(again.body.entry[1].fullUrl)).to.not.contain(encounterOld);
    expect(env.ledger.anchors.get(`Patient/${newId}/_history/1`)?.tombstone).to.equal(undefined);
    // Stable again from now on: the same message is a no-op, and the lab results join the new Patient.
    expect(statuses((await hl7(ADT)).body)).to.deep.equal(['200 OK', '200 OK']);
    const oru = await hl7(ORU);
    expect(oru.status, oru.text).to.equal(200);
    expect(patientIdOf(oru.body)).to.equal(newId);
    // Erased twice: a third id.
    await env.erasure().erasePatient(ADMIN, newId);
    const third = await hl7(ADT);
    expect(third.status).to.equal(200);
    expect([oldId, newId]).to.not.include(patientIdOf(third.body));
  });

  it('without the new epoch the returning patient hits the tombstone, and the refusal names no id', async () => {
    const oldId = patientIdOf((await hl7(ADT)).body);
    await env.erasure(false).erasePatient(ADMIN, oldId);
    const refused = await hl7(ADT);
    expect(refused.status).to.equal(409);
    expect(refused.text).to.not.match(UUID);
    expect(refused.text).to.not.contain(oldId);
  });

  it('hdx sync pushes (?ehr=): the gateway keys the EHR ids and rewrites the references; an erased EHR patient comes back under new ids', async () => {
    const ehr = 'https://ehr.example/fhir';
    const page = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { resourceType: 'Patient', id: '123', meta: { versionId: '4', lastUpdated: '2026-01-01T00:00:00Z' } }, request: { method: 'PUT', url: 'Patient/123' } },
        {
          resource: { resourceType: 'Observation', id: 'o1', status: 'final', code: { text: 'pulse' }, subject: { reference: `${ehr}/Patient/123/_history/4` } },
          request: { method: 'PUT', url: 'Observation/o1' },
        },
      ],
    };
    const push = () =>
      request(env.app)
        .post(`/ingest/fhir?source=ehr-1&ehr=${encodeURIComponent(ehr)}`)
        .set(...staff)
        .set('content-type', 'application/fhir+json')
        .send(JSON.stringify(page));
    const res = await push();
    expect(res.status, res.text).to.equal(200);
    const patientId = env.ids.ehrLocalId(ehr, 'Patient', '123');
    const obsId = env.ids.ehrLocalId(ehr, 'Observation', 'o1');
    expect(statuses(res.body)).to.deep.equal(['201 Created', '201 Created']);
    expect(patientId).to.not.equal(unkeyedUuid('ehr-sync', ehr, 'Patient/123'));
    const obs = JSON.parse((await env.store.readCurrent('Observation', obsId))?.content ?? '{}') as { subject: { reference: string }; meta: { source: string; versionId: string } };
    expect(obs.subject.reference).to.equal(`Patient/${patientId}`);
    expect(obs.meta.source).to.equal(`${ehr}/Observation/o1`);
    expect(statuses((await push()).body)).to.deep.equal(['200 OK', '200 OK']);
    await env.erasure().erasePatient(ADMIN, patientId);
    // The EHR still holds the patient: the next page re-sends both, under new ids, and both are anchored.
    const back = await push();
    expect(back.status, back.text).to.equal(200);
    expect(statuses(back.body)).to.deep.equal(['201 Created', '201 Created']);
    const newPatient = env.ids.ehrLocalId(ehr, 'Patient', '123');
    expect(newPatient).to.not.equal(patientId);
    expect(env.ids.ehrLocalId(ehr, 'Observation', 'o1')).to.not.equal(obsId);
    expect((await env.store.readCurrent('Observation', env.ids.ehrLocalId(ehr, 'Observation', 'o1')))?.content).to.contain(`"reference":"Patient/${newPatient}"`);
    const bad = await request(env.app)
      .post('/ingest/fhir?source=ehr-1&ehr=ftp://x')
      .set(...staff)
      .set('content-type', 'application/fhir+json')
      .send(JSON.stringify(page));
    expect(bad.status).to.equal(400);
  });

  it('redactIds: resource ids, UUIDs, DIDs and pseudonyms go; locations, types and field names stay', () => {
    const did = `did:hdx:${'b'.repeat(43)}`;
    const text = `Bundle.entry[2]: Patient/abc-1.2/_history/3 was erased; urn:uuid:0e3c8a1e-8f7e-4d55-9a2c-555555555555 for ${did} and pseudonym:${'c'.repeat(64)}`;
    expect(redactIds(text)).to.equal('Bundle.entry[2]: Patient/:id/_history/3 was erased; urn:uuid::id for :id and :id');
    const kept = 'Bundle.entry[0].resource.subject: OBX[3]-5 in x-application/hl7-v2+er7 (MSH-9), PUT Type/id';
    expect(redactIds(kept)).to.equal(kept);
  });

  it('an unknown ingestion path is answered without echoing it (it may hold an id)', async () => {
    const id = '0e3c8a1e-8f7e-4d55-9a2c-444444444444';
    const res = await request(env.app)
      .post(`/ingest/Patient/${id}`)
      .set(...staff)
      .set('content-type', 'application/fhir+json')
      .send('{}');
    expect(res.status).to.equal(404);
    expect(res.text).to.not.contain(id);
  });

  it('a server without the custodian id secret refuses HL7 v2 and EHR-keyed ingestion instead of deriving unkeyed ids', async () => {
    env.cleanup();
    env = setup({ ids: false });
    const res = await hl7(ADT);
    expect(res.status).to.equal(404);
    expect(res.body.issue[0].diagnostics).to.match(/HDX_ID_SECRET_FILE/);
    expect(env.ledger.anchors.size).to.equal(0);
  });
});
