import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateResource } from '@hdx/fhir-mappers';
import { expect } from 'chai';
import request from 'supertest';
import { testStore, testStoreSql } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { OperationOutcomeError } from '../errors';
import { MAX_BUNDLE_ENTRIES } from './bundle-service';
import { DID_IDENTIFIER_SYSTEM } from './resource-service';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const DR_H1 = `did:hdx:${'a'.repeat(43)}`;
const DR_H2 = `did:hdx:${'b'.repeat(43)}`;
const PATIENT_DID = `did:hdx:${'p'.repeat(43)}`;
const staff = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });

const P = 'urn:uuid:6b4f4f2e-2d4c-4a51-9a56-3a0b7c7e0f01';
const patient = (extra: object = {}) => ({ resourceType: 'Patient', name: [{ family: 'Quist', given: ['Odile'] }], birthDate: '1990-01-31', ...extra });
const observation = (subject: string, code = '8867-4') => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: subject },
  effectiveDateTime: '2026-03-01T10:00:00Z',
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});
const post = (resource: object, fullUrl?: string) => ({
  ...(fullUrl ? { fullUrl } : {}),
  resource,
  request: { method: 'POST', url: (resource as { resourceType: string }).resourceType },
});
const bundle = (type: 'transaction' | 'batch', entry: object[]) => ({ resourceType: 'Bundle', type, entry });

function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bundle-'));
  const file = path.join(dir, 'hdx.db');
  const store = testStore(file);
  const ledger = new FakeLedger();
  const { app, resources } = testApp({ store, ledger, baseUrl: BASE });
  /** Rows in every table that holds patient data: a failed transaction must leave none. */
  const rows = async (): Promise<Record<string, number>> => {
    const n = async (t: string): Promise<number> => (await testStoreSql(file, `SELECT COUNT(*) AS n FROM ${t}`))[0]?.n as number;
    return { resource_version: await n('resource_version'), patient_key: await n('patient_key'), patient_did: await n('patient_did') };
  };
  return { app, resources, store, ledger, rows, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

type Setup = ReturnType<typeof setup>;
let env: Setup;
afterEach(() => env?.cleanup());

async function send(body: unknown, as: [string, string] = staff) {
  return request(env.app)
    .post('/fhir')
    .set(...as)
    .set('content-type', FHIR)
    .send(JSON.stringify(body));
}

function expressions(body: { issue: Array<{ expression?: string[] }> }): string[] {
  return body.issue.flatMap((i) => i.expression ?? []);
}

async function createPatient(): Promise<string> {
  const res = await request(env.app)
    .post('/fhir/Patient')
    .set(...staff)
    .set('content-type', FHIR)
    .send(patient());
  expect(res.status).to.equal(201);
  return res.body.id;
}

const EMPTY = { resource_version: 0, patient_key: 0, patient_did: 0 };

describe('POST /fhir: Bundle transaction (fake ledger)', () => {
  beforeEach(() => {
    env = setup();
  });

  it('creates a Patient and 3 Observations referring to it by urn:uuid, anchored in ONE AnchorBatch', async () => {
    // The Observations come first in the Bundle: the Patient is still created before they are checked.
    const res = await send(bundle('transaction', [post(observation(P)), post(observation(P, '8310-5')), post(patient(), P), post(observation(P, '9279-1'))]));
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.headers['content-type']).to.match(/^application\/fhir\+json/);
    expect(res.body.type).to.equal('transaction-response');
    expect(validateResource(res.body, 'Bundle')).to.deep.equal([]);
    const entries = res.body.entry as Array<{ fullUrl: string; resource: { id: string; resourceType: string; subject?: { reference: string } }; response: Record<string, string> }>;
    expect(entries.map((e) => e.resource.resourceType)).to.deep.equal(['Observation', 'Observation', 'Patient', 'Observation']);
    const patientId = entries[2]?.resource.id as string;
    expect(patientId).to.match(/^[0-9a-f-]{36}$/);
    for (const e of entries) {
      expect(e.response.status).to.equal('201 Created');
      expect(e.response.location).to.equal(`${e.resource.resourceType}/${e.resource.id}/_history/1`);
      expect(e.response.etag).to.equal('W/"1"');
      expect(e.response.lastModified).to.match(/^\d{4}-\d\d-\d\dT/);
      expect(e.fullUrl).to.equal(`${BASE}/${e.resource.resourceType}/${e.resource.id}`);
      expect(env.ledger.anchors.has(`${e.resource.resourceType}/${e.resource.id}/_history/1`)).to.equal(true);
      if (e.resource.resourceType === 'Observation') expect(e.resource.subject?.reference).to.equal(`Patient/${patientId}`);
    }
    expect(env.ledger.anchorBatchCalls).to.equal(1);
    expect(env.ledger.anchors.size).to.equal(4);
    // Stored and served with the rewritten reference, checked against its anchor.
    const read = await request(env.app)
      .get(`/fhir/Observation/${entries[0]?.resource.id}`)
      .set(...staff);
    expect(read.status).to.equal(200);
    expect(read.body.subject.reference).to.equal(`Patient/${patientId}`);
    const search = await request(env.app)
      .get(`/fhir/Observation?patient=Patient/${patientId}`)
      .set(...staff);
    expect(search.body.total).to.equal(3);
    // The changes are recorded: one entry for the patient, naming the 4 versions.
    const changes = env.ledger.audit.filter((e) => e.action === 'C');
    expect(changes).to.have.length(1);
    expect(changes[0]?.resources).to.have.length(4);
    expect(await env.store.listPending()).to.have.length(0);
  });

  it('Prefer: return=minimal leaves the written resources out of the response (status, location, etag stay), return=OperationOutcome says what was done; a GET entry keeps its answer', async () => {
    const existing = await createPatient();
    const entries = [post(patient(), P), post(observation(P)), { request: { method: 'GET', url: `Patient/${existing}` } }];
    const sendPreferring = async (prefer: string) =>
      request(env.app)
        .post('/fhir')
        .set(...staff)
        .set('content-type', FHIR)
        .set('prefer', prefer)
        .send(JSON.stringify(bundle('transaction', entries)));
    const minimal = await sendPreferring('return=minimal');
    expect(minimal.status, JSON.stringify(minimal.body)).to.equal(200);
    expect(validateResource(minimal.body, 'Bundle')).to.deep.equal([]);
    const [p, o, read] = minimal.body.entry as Array<{ resource?: { id: string }; response: { status: string; location?: string; etag?: string; outcome?: unknown } }>;
    for (const e of [p, o]) {
      expect(e).to.not.have.property('resource');
      expect(e?.response.status).to.equal('201 Created');
      expect(e?.response.location).to.match(/^(Patient|Observation)\/[0-9a-f-]{36}\/_history\/1$/);
      expect(e?.response.etag).to.equal('W/"1"');
    }
    expect(read?.resource?.id).to.equal(existing);
    const outcome = await sendPreferring('return=OperationOutcome');
    const written = outcome.body.entry[0] as { resource?: unknown; response: { status: string; location: string; outcome: { issue: Array<{ diagnostics: string }> } } };
    expect(written).to.not.have.property('resource');
    expect(written.response.outcome.issue[0]?.diagnostics).to.equal(`201 Created ${written.response.location}`);
    expect(validateResource(outcome.body, 'Bundle')).to.deep.equal([]);
    // No preference: the resources, as before.
    expect((await send(bundle('transaction', entries))).body.entry[0].resource.resourceType).to.equal('Patient');
  });

  it('a large transaction (1 Patient, 150 Observations): one AnchorBatch, changes recorded at most 100 versions per entry', async () => {
    const res = await send(bundle('transaction', [post(patient(), P), ...Array.from({ length: 150 }, () => post(observation(P)))]));
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).to.equal(200);
    expect(env.ledger.anchorBatchCalls).to.equal(1);
    expect(env.ledger.anchors.size).to.equal(151);
    const changes = env.ledger.audit.filter((e) => e.action === 'C');
    expect(changes.map((e) => e.resources.length)).to.deep.equal([100, 51]);
  });

  it('references to an entry by its absolute fullUrl (another server, or Type/id at this one) are rewritten to the id the server gives it', async () => {
    const elsewhere = 'https://ehr.example/fhir/Patient/p-17';
    const here = `${BASE}/Patient/temp-1`;
    const res = await send(
      bundle('transaction', [
        post(patient(), elsewhere),
        post(observation(elsewhere)),
        post(observation(`${elsewhere}/_history/4`)),
        post(patient({ birthDate: '1971-05-05' }), here),
        post(observation('Patient/temp-1')),
      ]),
    );
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    const [p1, o1, o2, p2, o3] = res.body.entry as Array<{ resource: { id: string; subject?: { reference: string } } }>;
    expect(o1?.resource.subject?.reference).to.equal(`Patient/${String(p1?.resource.id)}`);
    expect(o2?.resource.subject?.reference).to.equal(`Patient/${String(p1?.resource.id)}`);
    expect(o3?.resource.subject?.reference).to.equal(`Patient/${String(p2?.resource.id)}`);
    expect(p2?.resource.id).to.not.equal('temp-1');
    const twice = await send(bundle('transaction', [post(patient(), elsewhere), post(patient(), elsewhere)]));
    expect(twice.status).to.equal(400);
    expect(expressions(twice.body)).to.deep.equal(['Bundle.entry[1].fullUrl']);
  });

  it('an invalid entry: 400 naming Bundle.entry[3], and nothing stored or anchored', async () => {
    const bad = { ...observation(P), status: 'not-a-status' };
    const res = await send(bundle('transaction', [post(patient(), P), post(observation(P)), post(observation(P)), post(bad)]));
    expect(res.status).to.equal(400);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(expressions(res.body)).to.deep.equal(['Bundle.entry[3].resource.status']);
    expect(JSON.stringify(res.body)).to.not.include('not-a-status');
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    expect(await env.rows()).to.deep.equal(EMPTY);
    expect(env.ledger.anchors.size).to.equal(0);
    expect(env.ledger.anchorBatchCalls).to.equal(0);
    expect(env.ledger.audit).to.have.length(0);
  });

  it('a reference to a Patient not held here (checked after validation): 400 naming the element', async () => {
    const res = await send(bundle('transaction', [post(patient(), P), post(observation(P)), post(observation('Patient/nobody'))]));
    expect(res.status).to.equal(400);
    expect(expressions(res.body)).to.deep.equal(['Bundle.entry[2].resource.subject']);
    expect(res.body.issue[0].diagnostics).to.equal('Bundle.entry[2].resource.subject must reference a Patient held by this server');
    expect(await env.rows()).to.deep.equal(EMPTY);
  });

  it('a urn:uuid that is no entry of the Bundle: 400 naming the Reference', async () => {
    const res = await send(bundle('transaction', [post(patient(), P), post(observation('urn:uuid:00000000-0000-4000-8000-000000000000'))]));
    expect(res.status).to.equal(400);
    expect(expressions(res.body)).to.deep.equal(['Bundle.entry[1].resource.subject.reference']);
    expect(await env.rows()).to.deep.equal(EMPTY);
  });

  it('the ledger refuses the AnchorBatch: nothing is kept (versions, keys, DID links) and a retry succeeds', async () => {
    await env.ledger.registerDid({ did: PATIENT_DID, kind: 'patient' });
    const withDid = patient({ identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: PATIENT_DID }] });
    const tx = bundle('transaction', [post(withDid, P), post(observation(P)), post(observation(P))]);
    const real = env.ledger.anchorBatch.bind(env.ledger);
    env.ledger.anchorBatch = async () => {
      throw new OperationOutcomeError('UNAVAILABLE', 'anchoring 3 versions: the ledger is unavailable');
    };
    const res = await send(tx);
    expect(res.status).to.equal(503);
    expect(res.body.issue[0].code).to.equal('transient');
    expect(await env.rows()).to.deep.equal(EMPTY);
    expect(env.ledger.audit).to.have.length(0);

    env.ledger.anchorBatch = real;
    const retry = await send(tx);
    expect(retry.status, JSON.stringify(retry.body)).to.equal(200);
    const patientId = retry.body.entry[0].resource.id;
    // The anchors name the patient by the DID the transaction linked.
    expect(env.ledger.anchors.get(`Observation/${retry.body.entry[1].resource.id}/_history/1`)?.patient).to.equal(PATIENT_DID);
    expect(await env.store.patientByDid(PATIENT_DID)).to.equal(patientId);
    expect(await env.rows()).to.deep.equal({ resource_version: 3, patient_key: 1, patient_did: 1 });
  });

  it('a conflict on the ledger fails the whole transaction, naming the entry whose version conflicts', async () => {
    const existing = await createPatient();
    const anchor = env.ledger.anchors.get(`Patient/${existing}/_history/1`);
    if (!anchor) throw new Error('setup');
    env.ledger.anchors.set(`Patient/${existing}/_history/2`, { ...anchor, versionId: '2', commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) } });
    const before = await env.rows();
    const res = await send(
      bundle('transaction', [
        post(observation(`Patient/${existing}`)),
        { resource: { ...patient({ gender: 'other' }), id: existing }, request: { method: 'PUT', url: `Patient/${existing}` } },
      ]),
    );
    expect(res.status).to.equal(409);
    expect(expressions(res.body)).to.deep.equal(['Bundle.entry[1]']);
    expect(res.body.issue[0].diagnostics).to.match(/^Bundle\.entry\[1\]: /);
    expect(await env.rows()).to.deep.equal(before);
    expect([...env.ledger.anchors.keys()].filter((k) => k.startsWith('Observation/'))).to.have.length(0);
    expect(
      (
        await request(env.app)
          .get(`/fhir/Patient/${existing}`)
          .set(...staff)
      ).body.meta.versionId,
    ).to.equal('1');
  });

  it('updates and deletes: 200 with version 2, 204 for the deletion, all in one AnchorBatch', async () => {
    const p = await createPatient();
    const o = await request(env.app)
      .post('/fhir/Observation')
      .set(...staff)
      .set('content-type', FHIR)
      .send(observation(`Patient/${p}`));
    const res = await send(
      bundle('transaction', [
        { resource: { ...patient({ gender: 'female' }), id: p }, request: { method: 'PUT', url: `Patient/${p}` } },
        { request: { method: 'DELETE', url: `Observation/${o.body.id}` } },
        { request: { method: 'DELETE', url: 'Observation/not-there' } },
      ]),
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(validateResource(res.body, 'Bundle')).to.deep.equal([]);
    expect(res.body.entry[0].response).to.include({ status: '200 OK', location: `Patient/${p}/_history/2`, etag: 'W/"2"' });
    expect(res.body.entry[1].response).to.include({ status: '204 No Content', etag: 'W/"2"' });
    expect(res.body.entry[2].response).to.deep.equal({ status: '204 No Content' });
    expect(env.ledger.anchorBatchCalls).to.equal(1);
    expect(
      (
        await request(env.app)
          .get(`/fhir/Observation/${o.body.id}`)
          .set(...staff)
      ).status,
    ).to.equal(410);
    expect(env.ledger.audit.filter((e) => e.action === 'U' || e.action === 'D').map((e) => e.action)).to.have.members(['U', 'D']);
  });

  it('refuses a search it cannot answer (GET Type?query with an unknown parameter), conditional reads on writes and a resource changed twice', async () => {
    const p = await createPatient();
    const get = await send(bundle('transaction', [post(patient()), { request: { method: 'GET', url: 'Patient?nonsense=x' } }]));
    expect(get.status).to.equal(400);
    expect(expressions(get.body)).to.deep.equal(['Bundle.entry[1]']);
    expect(get.body.issue[0].diagnostics).to.match(/^Bundle\.entry\[1\]: Search parameter nonsense is not supported (for [A-Za-z]+ )?here/);
    const onSearch = await send(bundle('transaction', [{ request: { method: 'GET', url: 'Patient?name=x', ifNoneMatch: 'W/"1"' } }]));
    expect([onSearch.status, expressions(onSearch.body)]).to.deep.equal([400, ['Bundle.entry[0].request.ifNoneMatch']]);
    const withResource = await send(bundle('transaction', [post(patient()), { resource: patient(), request: { method: 'GET', url: 'Patient?name=x' } }]));
    expect([withResource.status, expressions(withResource.body)]).to.deep.equal([400, ['Bundle.entry[1].resource']]);
    // Conditional create and If-Match are supported (below, and conditional-writes.test.ts); ifNoneMatch and ifModifiedSince are a read's only.
    const conditional = await send(bundle('transaction', [{ resource: { ...patient(), id: p }, request: { method: 'PUT', url: `Patient/${p}`, ifNoneMatch: 'W/"1"' } }]));
    expect(conditional.status).to.equal(400);
    expect(expressions(conditional.body)).to.deep.equal(['Bundle.entry[0].request.ifNoneMatch']);
    const onPut = await send(bundle('transaction', [{ resource: { ...patient(), id: p }, request: { method: 'PUT', url: `Patient/${p}`, ifNoneExist: 'identifier=x' } }]));
    expect(onPut.status).to.equal(400);
    expect(expressions(onPut.body)).to.deep.equal(['Bundle.entry[0].request.ifNoneExist']);
    const twice = await send(
      bundle('transaction', [{ resource: { ...patient(), id: p }, request: { method: 'PUT', url: `Patient/${p}` } }, { request: { method: 'DELETE', url: `Patient/${p}` } }]),
    );
    expect(twice.status).to.equal(400);
    expect(expressions(twice.body)).to.deep.equal(['Bundle.entry[1].request.url']);
    expect(env.ledger.anchorBatchCalls).to.equal(0);
  });

  it('a transaction of 1,201 entries is anchored in 3 AnchorBatch transactions (the DID link in the first), and nothing is served before the last commits', async () => {
    await env.ledger.registerDid({ did: PATIENT_DID, kind: 'patient' });
    const withDid = patient({ identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: PATIENT_DID }] });
    const real = env.ledger.anchorBatch.bind(env.ledger);
    const seen: Array<{ anchors: number; links: number; servedBefore: number }> = [];
    env.ledger.anchorBatch = async (inputs, links = []) => {
      // What a reader sees while the write is being anchored: nothing of it.
      seen.push({ anchors: inputs.length, links: links.length, servedBefore: (await env.store.search({ resourceType: 'Observation', limit: 10_000 })).length });
      return real(inputs, links);
    };
    const res = await send(bundle('transaction', [post(withDid, P), ...Array.from({ length: 1200 }, () => post(observation(P)))]));
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).to.equal(200);
    expect(res.body.entry).to.have.length(1201);
    expect(seen.map((c) => c.anchors)).to.deep.equal([500, 500, 201]);
    expect(seen.map((c) => c.links)).to.deep.equal([1, 0, 0]);
    expect(seen.every((c) => c.servedBefore === 0)).to.equal(true);
    expect(env.ledger.anchors.size).to.equal(1201);
    expect(await env.store.search({ resourceType: 'Observation', limit: 10_000 })).to.have.length(1200);
    expect(await env.store.listPending()).to.have.length(0);
    // Every change is recorded (its entries were too many for the anchoring transactions: stored, then delivered).
    expect(env.ledger.audit.filter((e) => e.action === 'C').reduce((n, e) => n + e.resources.length, 0)).to.equal(1201);
  });

  it('more than 500 entries, the first AnchorBatch refused: nothing is kept and nothing is on the ledger', async () => {
    env.ledger.anchorBatch = async () => {
      throw new OperationOutcomeError('UNAVAILABLE', 'the ledger is unavailable');
    };
    const res = await send(bundle('transaction', [post(patient(), P), ...Array.from({ length: 600 }, () => post(observation(P)))]));
    expect(res.status).to.equal(503);
    expect(await env.rows()).to.deep.equal(EMPTY);
    expect(env.ledger.anchors.size).to.equal(0);
  });

  it('more than 500 entries, a later AnchorBatch fails: the write stays pending (never served) and is completed, not discarded, once the ledger takes the rest', async () => {
    env.resources.settleDelaysMs = [0];
    const real = env.ledger.anchorBatch.bind(env.ledger);
    let down = false;
    env.ledger.anchorBatch = async (inputs, links) => {
      if (down) throw new OperationOutcomeError('UNAVAILABLE', 'the ledger is unavailable');
      const out = await real(inputs, links);
      down = true; // the first transaction commits, then the ledger goes away
      return out;
    };
    const res = await send(bundle('transaction', [post(patient(), P), ...Array.from({ length: 700 }, () => post(observation(P)))]));
    expect(res.status).to.equal(503);
    expect(res.body.issue[0].diagnostics).to.include('being settled');
    expect(env.ledger.anchors.size).to.equal(500);
    // Pending, not served: a search sees none of it.
    expect(await env.store.search({ resourceType: 'Observation', limit: 10_000 })).to.have.length(0);
    expect(await env.store.listPending()).to.have.length(701);

    down = false;
    env.ledger.anchorBatch = real;
    expect(await env.resources.settlePending()).to.deep.equal({ kept: 701, removed: 0 });
    expect(env.ledger.anchors.size).to.equal(701);
    expect(await env.store.search({ resourceType: 'Observation', limit: 10_000 })).to.have.length(700);
    expect(await env.store.listPending()).to.have.length(0);
  });

  it(`refuses a Bundle of more than ${MAX_BUNDLE_ENTRIES} entries before doing anything`, async () => {
    const res = await send(
      bundle(
        'transaction',
        Array.from({ length: MAX_BUNDLE_ENTRIES + 1 }, () => ({ request: { method: 'DELETE', url: 'Patient/x' } })),
      ),
    );
    expect(res.status).to.equal(413);
    expect(res.body.issue[0].diagnostics).to.include(`at most ${MAX_BUNDLE_ENTRIES} entries`);
    expect(await env.rows()).to.deep.equal(EMPTY);
  });

  it("a Bundle larger than 5 MB is read from the custodian's own staff (up to 64 MB), and refused (413) from another member's user before any work", async () => {
    const big = bundle('batch', [
      {
        resource: { ...patient(), text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${'x'.repeat(6 * 1024 * 1024)}</div>` } },
        request: { method: 'POST', url: 'Patient' },
      },
    ]);
    const own = await send(big);
    expect(own.status, JSON.stringify(own.body).slice(0, 300)).to.equal(200);
    const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    const res = await send(big, other);
    expect(res.status).to.equal(413);
    expect(res.body.issue[0].diagnostics).to.include('larger than 5mb');
  });

  it('needs the scope for every entry, and a user of this custodian', async () => {
    const patientsOnly = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Patient.write' });
    const res = await send(bundle('transaction', [post(patient(), P), post(observation(P))]), patientsOnly);
    expect(res.status).to.equal(403);
    expect(expressions(res.body)).to.deep.equal(['Bundle.entry[1]']);
    const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    expect((await send(bundle('transaction', [post(patient(), P)]), other)).status).to.equal(403);
    expect(await env.rows()).to.deep.equal(EMPTY);
  });

  it('answers 400 for a body that is not a transaction or batch Bundle', async () => {
    expect((await send({ resourceType: 'Patient' })).status).to.equal(400);
    const collection = await send({ resourceType: 'Bundle', type: 'collection', entry: [] });
    expect(collection.status).to.equal(400);
    expect(expressions(collection.body)).to.deep.equal(['Bundle.type']);
    const empty = await send({ resourceType: 'Bundle', type: 'transaction' });
    expect(empty.status).to.equal(200);
    expect(empty.body).to.include({ resourceType: 'Bundle', type: 'transaction-response' });
  });

  it('the CapabilityStatement offers transaction, batch and history-system', async () => {
    const res = await request(env.app).get('/fhir/metadata');
    expect(validateResource(res.body, 'CapabilityStatement')).to.deep.equal([]);
    expect(res.body.rest[0].interaction.map((i: { code: string }) => i.code)).to.deep.equal(['transaction', 'history-system', 'batch']);
  });
});

describe('POST /fhir: Bundle batch (fake ledger)', () => {
  beforeEach(() => {
    env = setup();
  });

  it('processes each entry on its own, with its own status and OperationOutcome', async () => {
    const p = await createPatient();
    const o = await request(env.app)
      .post('/fhir/Observation')
      .set(...staff)
      .set('content-type', FHIR)
      .send(observation(`Patient/${p}`));
    const res = await send(
      bundle('batch', [
        post(observation(`Patient/${p}`)),
        post({ ...observation(`Patient/${p}`), status: 'bogus' }),
        { request: { method: 'GET', url: `Patient/${p}` } },
        { request: { method: 'GET', url: 'Patient/missing' } },
        { request: { method: 'DELETE', url: `Observation/${o.body.id}` } },
        { resource: { ...patient(), id: 'unknown' }, request: { method: 'PUT', url: 'Patient/unknown' } },
        post(observation(P)),
        { request: { method: 'GET', url: `Observation/${o.body.id}/_history/1` } },
      ]),
    );
    expect(res.status).to.equal(200);
    expect(res.body.type).to.equal('batch-response');
    expect(validateResource(res.body, 'Bundle')).to.deep.equal([]);
    const statuses = res.body.entry.map((e: { response: { status: string } }) => e.response.status);
    expect(statuses).to.deep.equal(['201 Created', '400 Bad Request', '200 OK', '404 Not Found', '204 No Content', '404 Not Found', '400 Bad Request', '200 OK']);
    expect(expressions(res.body.entry[1].response.outcome)).to.deep.equal(['Bundle.entry[1].resource.status']);
    expect(res.body.entry[6].response.outcome.issue[0].diagnostics).to.include('use a transaction');
    expect(res.body.entry[2].resource.id).to.equal(p);
    expect(res.body.entry[0].response.location).to.match(/^Observation\/[0-9a-f-]{36}\/_history\/1$/);
    // The two writes (the create and the delete) were anchored together, in one ledger transaction; each read went through the enforcement point.
    expect(env.ledger.anchorBatchCalls).to.equal(1);
    expect(env.ledger.audit.filter((e) => e.action === 'R' && e.decision === 'permit')).to.have.length(2);
  });

  it('the plain writes of a batch are committed together, 64 entries at a time: one ledger transaction per window; a second write of one resource goes alone after them', async () => {
    const p = await createPatient();
    // Each write's anchors and change entries are one ledger transaction (AnchorAndRecord).
    const calls = () => env.ledger.anchorAndRecordCalls;
    const before = calls();
    const creates = Array.from({ length: 100 }, () => post(observation(`Patient/${p}`)));
    const update = (family: string) => ({ resource: { ...patient(), id: p, name: [{ family }] }, request: { method: 'PUT', url: `Patient/${p}` } });
    const res = await send(bundle('batch', [...creates, update('Second'), update('Third')]));
    expect(res.status).to.equal(200);
    const statuses = res.body.entry.map((e: { response: { status: string } }) => e.response.status);
    expect(statuses).to.deep.equal([...Array(100).fill('201 Created'), '200 OK', '200 OK']);
    // Entries 0-63 in one transaction; 64-100 in another; the second update of the Patient alone, after them.
    expect(calls() - before).to.equal(3);
    expect(res.body.entry.slice(100).map((e: { response: { etag: string } }) => e.response.etag)).to.deep.equal(['W/"2"', 'W/"3"']);
    const current = await request(env.app)
      .get(`/fhir/Patient/${p}`)
      .set(...staff);
    expect(current.body.name[0].family).to.equal('Third');
  });

  it('a window the ledger refuses because of one write: each write committed again on its own, only that one fails', async () => {
    const p = await createPatient();
    // Version 2 of the Patient is already on the ledger with another commitment: its update is refused (409).
    const anchor = env.ledger.anchors.get(`Patient/${p}/_history/1`);
    if (!anchor) throw new Error('setup');
    env.ledger.anchors.set(`Patient/${p}/_history/2`, { ...anchor, versionId: '2', commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) } });
    const calls = env.ledger.anchorAndRecordCalls;
    const res = await send(
      bundle('batch', [
        post(observation(`Patient/${p}`)),
        { resource: { ...patient(), id: p }, request: { method: 'PUT', url: `Patient/${p}` } },
        post(observation(`Patient/${p}`)),
      ]),
    );
    expect(res.status).to.equal(200);
    expect(res.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['201 Created', '409 Conflict', '201 Created']);
    expect(res.body.entry[1].response.outcome.issue[0].expression).to.deep.equal(['Bundle.entry[1]']);
    // The window's ledger transaction refused as a whole, then each write alone: four in all.
    expect(env.ledger.anchorAndRecordCalls - calls).to.equal(4);
    const observations = await request(env.app)
      .get(`/fhir/Observation?patient=Patient/${p}`)
      .set(...staff);
    expect(observations.body.total).to.equal(2);
  });

  it('PATCH entries (a Binary carrying a JSON Patch): applied in a transaction with the rest, all or nothing; in a batch each on its own', async () => {
    const p = await createPatient();
    const patchOf = (ops: object[]) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') });
    const patchEntry = (id: string, ops: object[], ifMatch?: string) => ({
      resource: patchOf(ops),
      request: { method: 'PATCH', url: `Patient/${id}`, ...(ifMatch ? { ifMatch } : {}) },
    });
    const tx = await send(bundle('transaction', [patchEntry(p, [{ op: 'replace', path: '/birthDate', value: '1990-02-01' }], 'W/"1"'), post(observation(`Patient/${p}`))]));
    expect(tx.status, JSON.stringify(tx.body).slice(0, 300)).to.equal(200);
    expect(tx.body.entry[0].response.status).to.equal('200 OK');
    expect(tx.body.entry[0].response.etag).to.equal('W/"2"');
    expect(tx.body.entry[0].resource.birthDate).to.equal('1990-02-01');
    // A stale ifMatch or a failed test fails the whole transaction: nothing written.
    const anchorsBefore = env.ledger.anchors.size;
    const stale = await send(bundle('transaction', [patchEntry(p, [{ op: 'replace', path: '/gender', value: 'female' }], 'W/"1"'), post(observation(`Patient/${p}`))]));
    expect(stale.status).to.equal(412);
    expect(env.ledger.anchors.size).to.equal(anchorsBefore);
    // A patch whose result is not valid FHIR is unprocessable (422, as PATCH /fhir/Patient/:id answers), naming the entry.
    const broken = await send(bundle('transaction', [patchEntry(p, [{ op: 'replace', path: '/gender', value: 'not-a-gender' }])]));
    expect(broken.status).to.equal(422);
    expect(JSON.stringify(broken.body)).to.include('Bundle.entry[0]');
    // Anything but a JSON Patch Binary is refused.
    const notBinary = await send(bundle('batch', [{ resource: patient(), request: { method: 'PATCH', url: `Patient/${p}` } }]));
    expect(notBinary.body.entry[0].response.status).to.equal('400 Bad Request');
    const otherBinary = await send(bundle('batch', [{ resource: { ...patchOf([]), contentType: 'application/fhir+json' }, request: { method: 'PATCH', url: `Patient/${p}` } }]));
    expect(otherBinary.body.entry[0].response.outcome.issue[0].diagnostics).to.include('contentType must be application/json-patch+json');
    const batch = await send(
      bundle('batch', [patchEntry(p, [{ op: 'add', path: '/gender', value: 'female' }]), patchEntry('nobody', [{ op: 'add', path: '/gender', value: 'female' }])]),
    );
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '404 Not Found']);
  });

  it('PATCH entries carrying a FHIRPath Patch (a Parameters): in a transaction all or nothing, naming the entry and operation; in a batch each on its own', async () => {
    const p = await createPatient();
    const op = (type: string, ...parts: object[]) => ({ name: 'operation', part: [{ name: 'type', valueCode: type }, ...parts] });
    const parameters = (...operations: object[]) => ({ resourceType: 'Parameters', parameter: operations });
    const entry = (id: string, resource: object, ifMatch?: string) => ({ resource, request: { method: 'PATCH', url: `Patient/${id}`, ...(ifMatch ? { ifMatch } : {}) } });
    const setBirthDate = parameters(op('replace', { name: 'path', valueString: 'Patient.birthDate' }, { name: 'value', valueDate: '1991-03-04' }));
    const tx = await send(bundle('transaction', [entry(p, setBirthDate, 'W/"1"'), post(observation(`Patient/${p}`))]));
    expect(tx.status, JSON.stringify(tx.body).slice(0, 300)).to.equal(200);
    expect(tx.body.entry[0].response).to.include({ status: '200 OK', etag: 'W/"2"' });
    expect(tx.body.entry[0].resource.birthDate).to.equal('1991-03-04');
    // An operation that cannot be applied fails the whole transaction (422), naming the entry and the operation, not the path.
    const anchorsBefore = env.ledger.anchors.size;
    const bad = await send(
      bundle('transaction', [
        post(observation(`Patient/${p}`)),
        entry(
          p,
          parameters(
            op('delete', { name: 'path', valueString: 'Patient.photo' }),
            op('replace', { name: 'path', valueString: 'Patient.gender' }, { name: 'value', valueCode: 'female' }),
          ),
        ),
      ]),
    );
    expect(bad.status).to.equal(422);
    expect(bad.body.issue[0].diagnostics).to.equal('Bundle.entry[1]: FHIRPath Patch operation 1 cannot be applied: its path selects no element; nothing was written');
    expect(env.ledger.anchors.size).to.equal(anchorsBefore);
    const batch = await send(
      bundle('batch', [
        entry(p, parameters(op('add', { name: 'path', valueString: 'Patient' }, { name: 'name', valueString: 'gender' }, { name: 'value', valueCode: 'female' }))),
        entry(p, parameters(op('upsert', { name: 'path', valueString: 'Patient' }))),
        entry('nobody', setBirthDate),
      ]),
    );
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '400 Bad Request', '404 Not Found']);
    expect(batch.body.entry[0].resource).to.include({ gender: 'female', birthDate: '1991-03-04' });
    expect(batch.body.entry[1].response.outcome.issue[0].diagnostics).to.equal(
      'Bundle.entry[1]: FHIRPath Patch operation 0: its type must be add, insert, delete, replace or move',
    );
  });

  it('searches in a batch (GET Type?query): a searchset each, through the same enforcement point; a bad parameter fails only its entry', async () => {
    const p = await createPatient();
    const made = await send(bundle('transaction', [post(observation(`Patient/${p}`, '8867-4')), post(observation(`Patient/${p}`, '8310-5'))]));
    expect(made.status).to.equal(200);
    const res = await send(
      bundle('batch', [
        { request: { method: 'GET', url: `Observation?patient=Patient/${p}&code=http://loinc.org|8867-4` } },
        { request: { method: 'GET', url: `${BASE}/Observation?patient=${p}&_summary=count` } },
        { request: { method: 'GET', url: 'Observation?nonsense=1' } },
        { request: { method: 'GET', url: `Patient/${p}` } },
      ]),
    );
    expect(res.status).to.equal(200);
    const [bycode, counted, bad, read] = res.body.entry as Array<{
      resource?: { type?: string; total?: number; entry?: unknown[] };
      response: { status: string; outcome?: { issue: Array<{ diagnostics: string }> } };
    }>;
    expect(bycode?.response.status).to.equal('200 OK');
    expect(bycode?.resource).to.include({ type: 'searchset', total: 1 });
    expect(counted?.resource?.total).to.equal(2);
    expect(counted?.resource?.entry ?? []).to.have.length(0);
    expect(bad?.response.status).to.equal('400 Bad Request');
    expect(bad?.response.outcome?.issue[0]?.diagnostics).to.include('nonsense');
    expect(read?.response.status).to.equal('200 OK');
    // Another member's user without consent: the search finds nothing it may not see.
    const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const theirs = await send(bundle('batch', [{ request: { method: 'GET', url: `Observation?patient=Patient/${p}` } }]), other);
    expect(theirs.body.entry[0].resource.total).to.equal(0);
    expect(JSON.stringify(theirs.body)).to.not.include('8867-4');
    // In a transaction the same search is answered the same way (after its writes: conditional-read.test.ts).
    const inTx = await send(bundle('transaction', [{ request: { method: 'GET', url: `Observation?patient=Patient/${p}&code=http://loinc.org|8867-4` } }]));
    expect([inTx.status, inTx.body.type, inTx.body.entry[0].response.status]).to.deep.equal([200, 'transaction-response', '200 OK']);
    expect(inTx.body.entry[0].resource).to.include({ type: 'searchset', total: 1 });
  });

  it('reads by another organization go through consent: a denied read answers 404 like a missing one and is recorded; a write is 403', async () => {
    const p = await createPatient();
    const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const res = await send(bundle('batch', [{ request: { method: 'GET', url: `Patient/${p}` } }, post(patient())]), other);
    expect(res.status).to.equal(200);
    expect(res.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['404 Not Found', '403 Forbidden']);
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    expect(env.ledger.audit.filter((e) => e.actor === DR_H2 && e.decision === 'deny')).to.have.length(1);
  });
});

describe('conditional create and conditional references (fake ledger)', () => {
  beforeEach(() => {
    env = setup();
  });
  const MRN = 'urn:oid:1.2.36.146.595.217.0.1';
  const withMrn = (mrn: string) => patient({ identifier: [{ system: MRN, value: mrn }] });
  const createMrn = (mrn: string, ifNoneExist?: string) => {
    const r = request(env.app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR);
    return (ifNoneExist !== undefined ? r.set('If-None-Exist', ifNoneExist) : r).send(withMrn(mrn));
  };

  it('If-None-Exist: none → 201; one → 200 naming it, nothing written, no content disclosed; several → 412; concurrent ones create once', async () => {
    const first = await createMrn('12345', `identifier=${MRN}|12345`);
    expect(first.status, JSON.stringify(first.body)).to.equal(201);
    const anchors = env.ledger.anchors.size;
    const again = await createMrn('12345', `identifier=${MRN}|12345`);
    expect(again.status).to.equal(200);
    expect(again.headers.location).to.equal(`${BASE}/Patient/${String(first.body.id)}/_history/1`);
    expect(again.body.resourceType).to.equal('OperationOutcome');
    expect(JSON.stringify(again.body)).to.not.include('Quist');
    expect(env.ledger.anchors.size).to.equal(anchors);
    await createMrn('777');
    await createMrn('777');
    const several = await createMrn('777', `identifier=${MRN}|777`);
    expect(several.status).to.equal(412);
    expect(JSON.stringify(several.body)).to.not.include('777');
    const unknown = await createMrn('1', 'nonsense=1');
    expect(unknown.status).to.equal(400);
    const both = await Promise.all([createMrn('999', `identifier=${MRN}|999`), createMrn('999', `identifier=${MRN}|999`)]);
    expect(both.map((r) => r.status).sort()).to.deep.equal([200, 201]);
  });

  it('a transaction entry whose ifNoneExist matches writes nothing and its urn:uuid resolves to the match; conditional references resolve to their one match', async () => {
    const existing = await createMrn('4242');
    expect(existing.status).to.equal(201);
    const pid = String(existing.body.id);
    const res = await send(
      bundle('transaction', [
        { fullUrl: P, resource: withMrn('4242'), request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|4242` } },
        post(observation(P)),
        post({ ...observation(`Patient?identifier=${MRN}|4242`), code: { coding: [{ system: 'http://loinc.org', code: '8310-5' }] } }),
      ]),
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '201 Created', '201 Created']);
    expect(res.body.entry[0].response.location).to.equal(`Patient/${pid}/_history/1`);
    expect(res.body.entry[0].resource).to.equal(undefined);
    expect(res.body.entry[1].resource.subject.reference).to.equal(`Patient/${pid}`);
    expect(res.body.entry[2].resource.subject.reference).to.equal(`Patient/${pid}`);
  });

  it('a conditional reference matching none is a 400, several a 412; nothing is written and the query is not echoed', async () => {
    await createMrn('55');
    await createMrn('55');
    const before = await env.rows();
    const none = await send(bundle('transaction', [post(observation(`Patient?identifier=${MRN}|00`))]));
    expect(none.status).to.equal(400);
    expect(expressions(none.body)).to.deep.equal(['Bundle.entry[0].resource.subject']);
    const several = await send(bundle('transaction', [post(observation(`Patient?identifier=${MRN}|55`))]));
    expect(several.status).to.equal(412);
    expect(JSON.stringify(several.body)).to.not.include('|55');
    expect(await env.rows()).to.deep.equal(before);
    // Another organization's user learns nothing: 403 before any match is looked up, for a reference or an ifNoneExist.
    const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    for (const q of ['55', '00']) {
      const ref = await send(bundle('transaction', [post(observation(`Patient?identifier=${MRN}|${q}`))]), other);
      expect(ref.status, q).to.equal(403);
      const ifNone = await send(bundle('transaction', [{ resource: withMrn(q), request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${MRN}|${q}` } }]), other);
      expect(ifNone.status, q).to.equal(403);
      const header = await request(env.app)
        .post('/fhir/Patient')
        .set(...other)
        .set('content-type', FHIR)
        .set('If-None-Exist', `identifier=${MRN}|${q}`)
        .send(withMrn(q));
      expect(header.status, q).to.equal(403);
    }
    // In a batch only that entry fails.
    const batch = await send(bundle('batch', [post(observation(`Patient?identifier=${MRN}|55`)), post(withMrn('56'))]));
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['412 Precondition Failed', '201 Created']);
  });
});
