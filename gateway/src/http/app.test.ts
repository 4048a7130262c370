import { validateResource } from '@hdx/fhir-mappers';
import { expect } from 'chai';
import request from 'supertest';
import { newLogger } from '../logger';
import { OperationOutcomeError } from '../errors';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { ResourceService } from '../fhir/resource-service';
import type { Anchor } from '../ledger/ledger-client';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const DR_H1 = `did:hdx:${'a'.repeat(43)}`;
const DR_H2 = `did:hdx:${'b'.repeat(43)}`;
const patient = { resourceType: 'Patient', name: [{ family: 'Quist', given: ['Odile'] }], birthDate: '1990-01-31', gender: 'female' };
/** A hospital1 practitioner treating patients. */
const staff = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
/** A hospital2 practitioner (another organization). */
const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });

function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  const log = newLogger('silent');
  const { app, resources } = testApp({ store, ledger, log, baseUrl: BASE });
  return { app, store, ledger, resources };
}

type App = ReturnType<typeof setup>['app'];

async function createPatient(app: App, body: object = patient): Promise<{ id: string; meta: { versionId: string } }> {
  const res = await request(app)
    .post('/fhir/Patient')
    .set(...staff)
    .set('content-type', FHIR)
    .send(body);
  expect(res.status, JSON.stringify(res.body)).to.equal(201);
  return res.body;
}

function codeOf(body: { issue: Array<{ details?: { coding: Array<{ code: string }> } }> }): string | undefined {
  return body.issue[0]?.details?.coding[0]?.code;
}

const observation = (patientId: string, code = '8867-4', date = '2026-03-01T10:00:00Z') => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: `Patient/${patientId}` },
  effectiveDateTime: date,
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
});

describe('gateway HTTP (fake ledger)', () => {
  it('creates a Patient: 201, Location, ETag, server-assigned id and meta, anchored, change recorded', async () => {
    const { app, ledger } = setup();
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ ...patient, id: 'client-chosen', meta: { versionId: '7' } });
    expect(res.status).to.equal(201);
    expect(res.headers['content-type']).to.match(/^application\/fhir\+json/);
    expect(res.body.id).to.match(/^[0-9a-f-]{36}$/);
    expect(res.body.meta.versionId).to.equal('1');
    expect(res.headers.location).to.equal(`${BASE}/Patient/${res.body.id}/_history/1`);
    expect(res.headers.etag).to.equal('W/"1"');
    const anchor = ledger.anchors.get(`Patient/${res.body.id}/_history/1`);
    expect(anchor?.patient).to.match(/^pseudonym:[0-9a-f]{64}$/);
    expect(JSON.stringify(anchor)).to.not.include('Quist');
    expect(ledger.audit.map((e) => [e.action, e.actor])).to.deep.equal([['C', DR_H1]]);
    // Sync audit: the anchor and its change record are one ledger transaction.
    expect(ledger.anchorAndRecordCalls).to.equal(1);
  });

  it('401 without authentication, with a WWW-Authenticate challenge', async () => {
    const { app } = setup();
    const res = await request(app).get('/fhir/Patient');
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.match(/^Bearer/);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect((await request(app).get('/fhir/metadata')).status).to.equal(200);
  });

  it('403 for a scope that does not cover the interaction, and for a token without DID or purpose', async () => {
    const { app } = setup();
    const readOnly = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Observation.read' });
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...readOnly)
      .set('content-type', FHIR)
      .send(patient);
    expect(res.status).to.equal(403);
    const p = await createPatient(app);
    const noDid = await request(app)
      .get(`/fhir/Patient/${p.id}`)
      .set(...asCaller({ organization: 'Hospital1MSP', purpose: 'TREAT' }));
    expect(noDid.status).to.equal(403);
    expect(noDid.body.issue[0].diagnostics).to.match(/DID/);
    const noPurpose = await request(app)
      .get(`/fhir/Patient/${p.id}`)
      .set(...asCaller({ did: DR_H1, organization: 'Hospital1MSP' }));
    expect(noPurpose.status).to.equal(403);
  });

  it('reads through the enforcement point: custodian permitted, another organization denied, both recorded', async () => {
    const { app, ledger } = setup();
    const created = await createPatient(app);
    const read = await request(app)
      .get(`/fhir/Patient/${created.id}`)
      .set(...staff);
    expect(read.status).to.equal(200);
    expect(read.body).to.deep.equal(created);
    const denied = await request(app)
      .get(`/fhir/Patient/${created.id}`)
      .set(...other);
    // Denied is answered as absent (no existence oracle); the deny is on the ledger.
    expect(denied.status).to.equal(404);
    expect(JSON.stringify(denied.body)).to.not.include('Quist');
    const reads = ledger.audit.filter((e) => e.action === 'R');
    expect(reads.map((e) => [e.actor, e.decision])).to.deep.equal([
      [DR_H1, 'permit'],
      [DR_H2, 'deny'],
    ]);
  });

  it('break-glass (ETREAT) needs a reason', async () => {
    const { app } = setup();
    const created = await createPatient(app);
    const res = await request(app)
      .get(`/fhir/Patient/${created.id}`)
      .set(...asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'ETREAT', scope: 'user/*.read' }));
    expect(res.status).to.equal(403);
    expect(res.body.issue[0].diagnostics).to.match(/reason/);
  });

  it('search: totals and pages count only what the caller may see; next links page', async () => {
    const { app, ledger } = setup();
    const a = await createPatient(app);
    const b = await createPatient(app);
    for (let i = 0; i < 3; i++)
      await request(app)
        .post('/fhir/Observation')
        .set(...staff)
        .set('content-type', FHIR)
        .send(observation(a.id));
    await request(app)
      .post('/fhir/Observation')
      .set(...staff)
      .set('content-type', FHIR)
      .send(observation(b.id, '59408-5'));
    // Patient b's records are hidden from everyone but by a (fake) consent rule: deny b to the custodian too.
    const bAnchorPatient = ledger.anchors.get(`Patient/${b.id}/_history/1`)?.patient;
    ledger.decide = (req, anchor) =>
      anchor?.patient === bAnchorPatient
        ? { decision: 'deny', consents: ['c1'], reason: 'consent-deny', breakGlass: false }
        : { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    const page1 = await request(app)
      .get('/fhir/Observation?_count=2')
      .set(...staff);
    expect(page1.status).to.equal(200);
    expect(page1.body.total).to.equal(3);
    expect(page1.body.entry).to.have.length(2);
    const next = page1.body.link.find((l: { relation: string }) => l.relation === 'next');
    expect(next.url).to.include('_getpagesoffset=2');
    const page2 = await request(app)
      .get(new URL(next.url).pathname + new URL(next.url).search)
      .set(...staff);
    expect(page2.body.entry).to.have.length(1);
    const byCode = await request(app)
      .get('/fhir/Observation?code=http://loinc.org|59408-5')
      .set(...staff);
    expect(byCode.body.total).to.equal(0);
    const byPatient = await request(app)
      .get(`/fhir/Observation?patient=Patient/${a.id}&date=ge2026-03-01&date=lt2026-03-02`)
      .set(...staff);
    expect(byPatient.body.total).to.equal(3);
    const disclosed = ledger.audit.filter((e) => e.subtype === 'search-type').flatMap((e) => e.resources);
    expect(disclosed.every((r) => !r.includes(b.id))).to.equal(true);
  });

  it('refuses unknown search parameters (ignoring one would widen the search)', async () => {
    const { app } = setup();
    const res = await request(app)
      .get('/fhir/Observation?subjet=Patient/1')
      .set(...staff);
    expect(res.status).to.equal(400);
    expect(res.body.issue[0].diagnostics).to.include('subjet');
  });

  it('update makes version 2, history lists both, delete makes the resource gone', async () => {
    const { app } = setup();
    const created = await createPatient(app);
    const upd = await request(app)
      .put(`/fhir/Patient/${created.id}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send({ ...patient, id: created.id, gender: 'other' });
    expect(upd.status).to.equal(200);
    expect(upd.body.meta.versionId).to.equal('2');
    const hist = await request(app)
      .get(`/fhir/Patient/${created.id}/_history`)
      .set(...staff);
    expect(hist.body.type).to.equal('history');
    expect(hist.body.entry.map((e: { response: { etag: string } }) => e.response.etag)).to.deep.equal(['W/"2"', 'W/"1"']);
    expect(
      (
        await request(app)
          .delete(`/fhir/Patient/${created.id}`)
          .set(...staff)
      ).status,
    ).to.equal(204);
    expect(
      (
        await request(app)
          .get(`/fhir/Patient/${created.id}`)
          .set(...staff)
      ).status,
    ).to.equal(410);
    expect(
      (
        await request(app)
          .get(`/fhir/Patient/${created.id}/_history/1`)
          .set(...staff)
      ).status,
    ).to.equal(200);
  });

  it("type history: every version the caller may see, newest first, paged; another organization's users are refused it (they ask per patient)", async () => {
    const { app } = setup();
    const a = await createPatient(app);
    await createPatient(app);
    await request(app)
      .put(`/fhir/Patient/${a.id}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send({ ...patient, id: a.id, gender: 'other' });
    const page1 = await request(app)
      .get('/fhir/Patient/_history?_count=2')
      .set(...staff);
    expect(page1.status, JSON.stringify(page1.body)).to.equal(200);
    expect(page1.body.type).to.equal('history');
    expect(page1.body.total).to.equal(3);
    expect(page1.body.entry).to.have.length(2);
    expect(page1.body.entry[0].resource.id).to.equal(a.id);
    expect(page1.body.entry[0].response.etag).to.equal('W/"2"');
    expect(page1.body.link.find((l: { relation: string }) => l.relation === 'next').url).to.include('_getpagesoffset=2');
    const hidden = await request(app)
      .get('/fhir/Patient/_history')
      .set(...other);
    expect(hidden.status).to.equal(403);
    const future = await request(app)
      .get('/fhir/Patient/_history?_since=2999-01-01T00:00:00Z')
      .set(...staff);
    expect(future.body.total).to.equal(0);
    expect(
      (
        await request(app)
          .get('/fhir/Patient/_history?_since=2024-01-01')
          .set(...staff)
      ).status,
    ).to.equal(400);
  });

  it("system history: every version of every type the caller's scopes read, newest first; _at keeps the versions current at that time; another organization's users are refused it", async () => {
    const { app } = setup();
    const a = await createPatient(app);
    const obs = await request(app)
      .post('/fhir/Observation')
      .set(...staff)
      .set('content-type', FHIR)
      .send(observation(a.id));
    expect(obs.status).to.equal(201);
    const before = String(obs.body.meta.lastUpdated);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await request(app)
      .put(`/fhir/Patient/${a.id}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send({ ...patient, id: a.id, gender: 'other' });

    const all = await request(app)
      .get('/fhir/_history')
      .set(...staff);
    expect(all.status, JSON.stringify(all.body)).to.equal(200);
    expect(all.body.type).to.equal('history');
    expect(all.body.total).to.equal(3);
    expect(all.body.entry.map((e: { resource: { resourceType: string }; response: { etag: string } }) => `${e.resource.resourceType} ${e.response.etag}`)).to.deep.equal([
      'Patient W/"2"',
      'Observation W/"1"',
      'Patient W/"1"',
    ]);
    // Only the types the token's scopes read.
    const patientsOnly = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Patient.read' });
    const some = await request(app)
      .get('/fhir/_history')
      .set(...patientsOnly);
    expect(some.body.entry.map((e: { resource: { resourceType: string } }) => e.resource.resourceType)).to.deep.equal(['Patient', 'Patient']);
    // _at: what was current then (the Patient's first version and the Observation), not the later version.
    const then = await request(app)
      .get(`/fhir/_history?_at=${encodeURIComponent(before)}`)
      .set(...staff);
    expect(then.status, JSON.stringify(then.body)).to.equal(200);
    expect(then.body.entry.map((e: { resource: { resourceType: string }; response: { etag: string } }) => `${e.resource.resourceType} ${e.response.etag}`)).to.deep.equal([
      'Observation W/"1"',
      'Patient W/"1"',
    ]);
    const typeAt = await request(app)
      .get(`/fhir/Patient/_history?_at=${encodeURIComponent(before)}`)
      .set(...staff);
    expect(typeAt.body.total).to.equal(1);
    expect(typeAt.body.entry[0].response.etag).to.equal('W/"1"');
    const longAgo = await request(app)
      .get('/fhir/_history?_at=2001')
      .set(...staff);
    expect(longAgo.body.total).to.equal(0);
    expect(
      (
        await request(app)
          .get('/fhir/_history?_at=ge2026-01-01')
          .set(...staff)
      ).status,
    ).to.equal(400);
    expect(
      (
        await request(app)
          .get('/fhir/_history')
          .set(...other)
      ).status,
    ).to.equal(403);
  });

  it('another organization cannot write into this custodian', async () => {
    const { app } = setup();
    const writer = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...writer)
      .set('content-type', FHIR)
      .send(patient);
    expect(res.status).to.equal(403);
  });

  it('an Observation must reference a Patient held here', async () => {
    const { app } = setup();
    const res = await request(app)
      .post('/fhir/Observation')
      .set(...staff)
      .set('content-type', FHIR)
      .send(observation('nobody'));
    expect(res.status).to.equal(400);
    expect(res.body.issue[0].diagnostics).to.include('Observation.subject');
  });

  it('400 with one issue per problem and its FHIRPath, without echoing values', async () => {
    const { app, store } = setup();
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ ...patient, birthDate: 'Quist-day', gender: 'x' });
    expect(res.status).to.equal(400);
    const expressions = res.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? []);
    expect(expressions).to.include.members(['Patient.birthDate', 'Patient.gender']);
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    expect(await store.listPending()).to.have.length(0);
  });

  it('400 for a body that is not JSON, or not an object; 415 for another media type', async () => {
    const { app } = setup();
    const bad = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send('{"resourceType": "Patient",');
    expect(bad.status).to.equal(400);
    expect(bad.body.issue[0].diagnostics).to.equal('The request body is not valid JSON');
    expect(
      (
        await request(app)
          .post('/fhir/Patient')
          .set(...staff)
          .set('content-type', FHIR)
          .send('[1,2]')
      ).status,
    ).to.equal(400);
    expect(
      (
        await request(app)
          .post('/fhir/Patient')
          .set(...staff)
          .set('content-type', 'application/fhir+xml')
          .send('<Patient/>')
      ).status,
    ).to.equal(415);
  });

  it('404 OperationOutcomes for unknown ids, types and routes', async () => {
    const { app } = setup();
    const missing = await request(app)
      .get('/fhir/Patient/does-not-exist')
      .set(...staff);
    expect(missing.status).to.equal(404);
    expect(codeOf(missing.body)).to.equal('NOT_FOUND');
    const type = await request(app)
      .get('/fhir/Spaceship/1')
      .set(...staff);
    expect(type.status).to.equal(404);
    expect(codeOf(type.body)).to.equal('UNSUPPORTED');
    expect(
      (
        await request(app)
          .get('/fhir/Patient/has%20space')
          .set(...staff)
      ).status,
    ).to.equal(400);
    const route = await request(app).get('/nowhere');
    expect(route.status).to.equal(404);
    expect(route.body.resourceType).to.equal('OperationOutcome');
  });

  it('withholds a version whose anchor does not match (500 INTEGRITY), and $verify says why', async () => {
    const { app, ledger } = setup();
    const created = await createPatient(app);
    const key = `Patient/${created.id}/_history/1`;
    const anchor = ledger.anchors.get(key);
    if (!anchor) throw new Error('setup');
    ledger.anchors.set(key, { ...anchor, commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) } });
    const res = await request(app)
      .get(`/fhir/Patient/${created.id}`)
      .set(...staff);
    expect(res.status).to.equal(500);
    expect(codeOf(res.body)).to.equal('INTEGRITY');
    expect(JSON.stringify(res.body)).to.not.include('Quist');
    const verify = await request(app)
      .get(`/fhir/Patient/${created.id}/$verify`)
      .set(...staff);
    expect(verify.status).to.equal(200);
    expect(verify.body.parameter[0]).to.deep.equal({ name: 'verified', valueBoolean: false });
  });

  it("with view anchors, a read's integrity check takes the view's anchor (no ledger call); a version the view lacks asks the ledger; tampered content is still withheld; $verify asks the ledger", async () => {
    const store = testStore();
    const ledger = new FakeLedger();
    const view = new Map<string, Anchor>();
    const resources = new ResourceService({
      store,
      ledger,
      log: newLogger('silent'),
      mspId: 'Hospital1MSP',
      viewAnchors: { anchor: (t, id, v) => view.get(`${t}/${id}/_history/${v}`) },
    });
    const { app } = testApp({ store, ledger, resources, baseUrl: BASE });
    const created = await createPatient(app);
    const key = `Patient/${created.id}/_history/1`;
    const asked: string[] = [];
    const getAnchor = ledger.getAnchor.bind(ledger);
    ledger.getAnchor = (t: string, id: string, v: string) => {
      asked.push(`${t}/${id}/_history/${v}`);
      return getAnchor(t, id, v);
    };
    const read = () =>
      request(app)
        .get(`/fhir/Patient/${created.id}`)
        .set(...staff);
    // Not in the view yet: the ledger's anchor.
    expect((await read()).status).to.equal(200);
    expect(asked).to.deep.equal([key]);
    // In the view: no ledger call.
    view.set(key, ledger.anchors.get(key) as Anchor);
    expect((await read()).status).to.equal(200);
    expect(asked).to.have.length(1);
    // The view's anchor is still checked against the content: a different commitment withholds it.
    view.set(key, { ...(ledger.anchors.get(key) as Anchor), commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) } });
    const withheld = await read();
    expect(withheld.status).to.equal(500);
    expect(codeOf(withheld.body)).to.equal('INTEGRITY');
    // $verify is the ledger's word, not the view's.
    const verify = await request(app)
      .get(`/fhir/Patient/${created.id}/$verify`)
      .set(...staff);
    expect(verify.body.parameter[0]).to.deep.equal({ name: 'verified', valueBoolean: true });
    expect(asked).to.have.length(2);
  });

  it('503 when the ledger is down, and the unanchored write leaves nothing behind', async () => {
    const { app, ledger, store } = setup();
    ledger.failWith = new OperationOutcomeError('UNAVAILABLE', 'anchoring: the ledger is unavailable');
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send(patient);
    expect(res.status).to.equal(503);
    expect(res.body.issue[0].code).to.equal('transient');
    expect(await store.listPending()).to.have.length(0);
    expect(await store.search({ resourceType: 'Patient', limit: 10 })).to.have.length(0);
    const health = await request(app).get('/healthz');
    expect(health.status).to.equal(503);
  });

  it('500 for unexpected errors names only a request id', async () => {
    const { app, ledger } = setup();
    ledger.failWith = new OperationOutcomeError('INTERNAL', 'anchoring failed');
    const res = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send(patient);
    expect(res.status).to.equal(500);
    expect(res.body.issue[0].diagnostics).to.match(/quote request id [0-9a-f-]{36}/);
  });

  it('Consent changes must come as a signed JWS (application/jose)', async () => {
    const { app } = setup();
    const json = await request(app)
      .post('/fhir/Consent')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Consent' });
    expect(json.status).to.equal(415);
    expect(json.body.issue[0].diagnostics).to.include('hdx consent-sign');
    const garbage = await request(app)
      .post('/fhir/Consent')
      .set(...staff)
      .set('content-type', 'application/jose')
      .send('not-a-jws');
    expect(garbage.status).to.equal(400);
  });

  it('AuditEvents from the ledger are valid R4 AuditEvents', async () => {
    const { app } = setup();
    const created = await createPatient(app);
    await request(app)
      .get(`/fhir/Patient/${created.id}`)
      .set(...other);
    const res = await request(app)
      .get(`/fhir/AuditEvent?patient=Patient/${created.id}`)
      .set(...asCaller({ did: DR_H1, organization: 'Hospital1MSP', scope: 'user/AuditEvent.read' }));
    expect(res.status).to.equal(200);
    expect(res.body.entry.length).to.be.greaterThan(0);
    for (const e of res.body.entry) expect(validateResource(e.resource, 'AuditEvent')).to.deep.equal([]);
    const denied = res.body.entry.find((e: { resource: { outcome: string } }) => e.resource.outcome === '4');
    expect(denied.resource.agent[0].who.identifier.value).to.equal(DR_H2);
  });

  it('serves a CapabilityStatement that validates and lists what is implemented', async () => {
    const { app } = setup();
    const res = await request(app).get('/fhir/metadata');
    expect(res.status).to.equal(200);
    expect(res.body.fhirVersion).to.equal('4.0.1');
    expect(validateResource(res.body, 'CapabilityStatement')).to.deep.equal([]);
    const obs = res.body.rest[0].resource.find((r: { type: string }) => r.type === 'Observation');
    expect(obs.interaction.map((i: { code: string }) => i.code)).to.include.members(['create', 'read', 'vread', 'update', 'delete', 'history-instance', 'search-type']);
  });
});
