import { validateResource } from '@hdx/fhir-mappers';
import { expect } from 'chai';
import request from 'supertest';
import { newLogger } from '../logger';
import { ResourceService } from '../fhir/resource-service';
import { OperationOutcomeError } from '../fhir/outcome';
import { SqliteStore } from '../store/sqlite-store';
import { FakeLedger } from '../test-support/fake-ledger';
import { createApp } from './app';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const patient = { resourceType: 'Patient', name: [{ family: 'Quist', given: ['Odile'] }], birthDate: '1990-01-31', gender: 'female' };

function setup() {
  const store = new SqliteStore(':memory:');
  const ledger = new FakeLedger();
  const log = newLogger('silent');
  const resources = new ResourceService({ store, ledger, log });
  const app = createApp({ config: { baseUrl: BASE }, log, resources, ledger, store });
  return { app, store, ledger, resources };
}

function codeOf(body: { issue: Array<{ details?: { coding: Array<{ code: string }> } }> }): string | undefined {
  return body.issue[0]?.details?.coding[0]?.code;
}

describe('gateway HTTP (fake ledger)', () => {
  it('creates a Patient: 201, Location, ETag, server-assigned id and meta, anchored', async () => {
    const { app, ledger } = setup();
    const res = await request(app).post('/fhir/Patient').set('content-type', FHIR).send({ ...patient, id: 'client-chosen', meta: { versionId: '7' } });
    expect(res.status).to.equal(201);
    expect(res.headers['content-type']).to.match(/^application\/fhir\+json/);
    expect(res.body.id).to.match(/^[0-9a-f-]{36}$/);
    expect(res.body.id).to.not.equal('client-chosen');
    expect(res.body.meta.versionId).to.equal('1');
    expect(res.headers.location).to.equal(`${BASE}/Patient/${res.body.id}/_history/1`);
    expect(res.headers.etag).to.equal('W/"1"');
    const anchor = ledger.anchors.get(`Patient/${res.body.id}/_history/1`);
    expect(anchor?.patient).to.match(/^pseudonym:[0-9a-f]{64}$/);
    expect(JSON.stringify(anchor)).to.not.include('Quist');
  });

  it('reads and vreads what it created', async () => {
    const { app } = setup();
    const created = (await request(app).post('/fhir/Patient').set('content-type', FHIR).send(patient)).body;
    const read = await request(app).get(`/fhir/Patient/${created.id}`);
    expect(read.status).to.equal(200);
    expect(read.body).to.deep.equal(created);
    const vread = await request(app).get(`/fhir/Patient/${created.id}/_history/1`);
    expect(vread.status).to.equal(200);
    expect((await request(app).get(`/fhir/Patient/${created.id}/_history/2`)).status).to.equal(404);
  });

  it('400 with one issue per problem and its FHIRPath, without echoing values', async () => {
    const { app, store } = setup();
    const res = await request(app).post('/fhir/Patient').set('content-type', FHIR).send({ ...patient, birthDate: 'Quist-day', gender: 'x' });
    expect(res.status).to.equal(400);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    const expressions = res.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? []);
    expect(expressions).to.include.members(['Patient.birthDate', 'Patient.gender']);
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    expect(store.listPending()).to.have.length(0);
  });

  it('400 for a body that is not JSON, or not an object; 415 for another media type', async () => {
    const { app } = setup();
    const bad = await request(app).post('/fhir/Patient').set('content-type', FHIR).send('{"resourceType": "Patient",');
    expect(bad.status).to.equal(400);
    expect(bad.body.issue[0].diagnostics).to.equal('The request body is not valid JSON');
    const arr = await request(app).post('/fhir/Patient').set('content-type', FHIR).send('[1,2]');
    expect(arr.status).to.equal(400);
    const xml = await request(app).post('/fhir/Patient').set('content-type', 'application/fhir+xml').send('<Patient/>');
    expect(xml.status).to.equal(415);
  });

  it('400 when the resourceType does not match the URL', async () => {
    const { app } = setup();
    const res = await request(app).post('/fhir/Patient').set('content-type', FHIR).send({ resourceType: 'Observation', status: 'final', code: { text: 'x' } });
    expect(res.status).to.equal(400);
  });

  it('404 OperationOutcomes for unknown ids, types and routes', async () => {
    const { app } = setup();
    const missing = await request(app).get('/fhir/Patient/does-not-exist');
    expect(missing.status).to.equal(404);
    expect(codeOf(missing.body)).to.equal('NOT_FOUND');
    const type = await request(app).get('/fhir/Spaceship/1');
    expect(type.status).to.equal(404);
    expect(codeOf(type.body)).to.equal('UNSUPPORTED');
    const badId = await request(app).get('/fhir/Patient/has%20space');
    expect(badId.status).to.equal(400);
    const route = await request(app).get('/nowhere');
    expect(route.status).to.equal(404);
    expect(route.body.resourceType).to.equal('OperationOutcome');
  });

  it('withholds a tampered version (500 INTEGRITY) and one whose anchor is missing', async () => {
    const { app, ledger, store } = setup();
    const created = (await request(app).post('/fhir/Patient').set('content-type', FHIR).send(patient)).body;
    const v = store.readCurrent('Patient', created.id);
    // Tamper through a second connection is not possible with :memory:, so change the anchor instead.
    const anchor = ledger.anchors.get(`Patient/${created.id}/_history/1`);
    if (!anchor || !v) throw new Error('setup');
    ledger.anchors.set(`Patient/${created.id}/_history/1`, { ...anchor, commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) } });
    const res = await request(app).get(`/fhir/Patient/${created.id}`);
    expect(res.status).to.equal(500);
    expect(codeOf(res.body)).to.equal('INTEGRITY');
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    ledger.anchors.delete(`Patient/${created.id}/_history/1`);
    expect(codeOf((await request(app).get(`/fhir/Patient/${created.id}`)).body)).to.equal('INTEGRITY');
  });

  it('503 when the ledger is down, and the unanchored write leaves nothing behind', async () => {
    const { app, ledger, store } = setup();
    ledger.failWith = new OperationOutcomeError('UNAVAILABLE', 'anchoring: the ledger is unavailable');
    const res = await request(app).post('/fhir/Patient').set('content-type', FHIR).send(patient);
    expect(res.status).to.equal(503);
    expect(res.body.issue[0].code).to.equal('transient');
    expect(store.listPending()).to.have.length(0);
    const health = await request(app).get('/healthz');
    expect(health.status).to.equal(503);
    expect(health.body.checks.ledger.ok).to.equal(false);
  });

  it('500 for unexpected errors names only a request id', async () => {
    const { app, ledger } = setup();
    ledger.failWith = new OperationOutcomeError('INTERNAL', 'anchoring failed');
    const res = await request(app).post('/fhir/Patient').set('content-type', FHIR).send(patient);
    expect(res.status).to.equal(500);
    expect(res.body.issue[0].diagnostics).to.match(/quote request id [0-9a-f-]{36}/);
    expect(res.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
  });

  it('serves a CapabilityStatement that validates and lists what is implemented', async () => {
    const { app } = setup();
    const res = await request(app).get('/fhir/metadata');
    expect(res.status).to.equal(200);
    expect(res.body.fhirVersion).to.equal('4.0.1');
    expect(validateResource(res.body, 'CapabilityStatement')).to.deep.equal([]);
    const patientRes = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'Patient');
    expect(patientRes.interaction.map((i: { code: string }) => i.code)).to.deep.equal(['create', 'read', 'vread']);
  });
});
