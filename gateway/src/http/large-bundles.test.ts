import { expect } from 'chai';
import request from 'supertest';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { testStore } from '../test-support/test-store';

const FHIR = 'application/fhir+json';
const DR = `did:hdx:${'d'.repeat(43)}`;
const feed = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
/** About 10 KB per Observation: 600 of them make a body over the common 5 MB limit, so it is framed. */
const NOTE = 'n'.repeat(10_000);
const ENTRIES = 600;

const observation = (subject: string, i: number): Record<string, unknown> => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: subject },
  effectiveDateTime: new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString(),
  valueQuantity: { value: 60 + (i % 40), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  note: [{ text: NOTE }],
});

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  await ledger.registerDid({ did: DR, kind: 'practitioner' });
  const { app } = testApp({ store, ledger });
  const send = (body: string, prefer?: string) =>
    request(app)
      .post('/fhir')
      .set(...feed)
      .set('content-type', FHIR)
      .set(prefer !== undefined ? 'prefer' : 'x-none', prefer ?? '')
      .send(body);
  const observations = async (): Promise<number> => (await store.search({ resourceType: 'Observation', criteria: [], limit: 10_000 })).length;
  return { app, store, ledger, send, observations };
}

async function patientOf(env: Awaited<ReturnType<typeof setup>>): Promise<string> {
  const res = await request(env.app)
    .post('/fhir/Patient')
    .set(...feed)
    .set('content-type', FHIR)
    .send({ resourceType: 'Patient', name: [{ family: 'Large' }] });
  expect(res.status).to.equal(201);
  return `Patient/${String(res.body.id)}`;
}

const entryOf = (resource: Record<string, unknown>, fullUrl?: string): Record<string, unknown> => ({
  ...(fullUrl !== undefined ? { fullUrl } : {}),
  resource,
  request: { method: 'POST', url: String(resource.resourceType) },
});

describe("Bundles over the common body limit from the custodian's feed: framed, entries read one at a time (HTTP, fake ledger)", function () {
  this.timeout(120_000);

  it('a batch: every entry processed and answered in order (the answer sent as it is made), Prefer: return=minimal applied to each write', async () => {
    const env = await setup();
    const subject = await patientOf(env);
    const entry = Array.from({ length: ENTRIES }, (_, i) => entryOf(observation(subject, i)));
    // One entry that fails on its own (no status) and a read of the Patient: each answers for itself.
    entry[10] = entryOf({ ...observation(subject, 10), status: undefined });
    entry[11] = { request: { method: 'GET', url: subject } };
    const body = JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry });
    expect(body.length).to.be.greaterThan(5 * 1024 * 1024);
    const res = await env.send(body, 'return=minimal');
    expect(res.status).to.equal(200);
    expect(res.body.resourceType).to.equal('Bundle');
    expect(res.body.type).to.equal('batch-response');
    const answers = res.body.entry as Array<{
      resource?: { resourceType: string };
      response: { status: string; location?: string; outcome?: { issue: Array<{ expression?: string[] }> } };
    }>;
    expect(answers).to.have.length(ENTRIES);
    expect(answers[10]?.response.status).to.equal('400 Bad Request');
    expect(answers[10]?.response.outcome?.issue[0]?.expression).to.deep.equal(['Bundle.entry[10].resource.status']);
    expect(answers[11]?.response.status).to.equal('200 OK');
    expect(answers[11]?.resource?.resourceType).to.equal('Patient');
    const created = answers.filter((a) => a.response.status === '201 Created');
    expect(created).to.have.length(ENTRIES - 2);
    expect(created.every((a) => a.resource === undefined && /^Observation\/[^/]+\/_history\/1$/.test(a.response.location ?? ''))).to.equal(true);
    expect(await env.observations()).to.equal(ENTRIES - 2);
  });

  it('a batch whose body is not JSON near its end: refused whole before any entry is acted on', async () => {
    const env = await setup();
    const subject = await patientOf(env);
    const entry = Array.from({ length: ENTRIES }, (_, i) => JSON.stringify(entryOf(observation(subject, i))));
    entry[ENTRIES - 1] = '{"resource": {"resourceType": "Observation", "status": }}';
    const res = await env.send(`{"resourceType":"Bundle","type":"batch","entry":[${entry.join(',')}]}`);
    expect(res.status).to.equal(400);
    expect(res.body.issue[0].diagnostics).to.equal(`Bundle.entry[${ENTRIES - 1}] is not valid JSON`);
    expect(await env.observations()).to.equal(0);
    expect(env.ledger.anchors.size).to.equal(1); // the Patient only
  });

  it('a transaction: all or nothing as any (urn:uuid references resolved across entries); one invalid entry writes nothing', async () => {
    const env = await setup();
    const patient = 'urn:uuid:6b4f4f2e-2d4c-4a51-9a56-3a0b7c7e0f01';
    const entry = [entryOf({ resourceType: 'Patient', name: [{ family: 'Large' }] }, patient), ...Array.from({ length: ENTRIES }, (_, i) => entryOf(observation(patient, i)))];
    const broken = structuredClone(entry);
    (broken[ENTRIES - 5] as { resource: Record<string, unknown> }).resource.status = 'not-a-status';
    const refused = await env.send(JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: broken }));
    expect(refused.status).to.equal(400);
    expect(refused.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? [])).to.deep.equal([`Bundle.entry[${ENTRIES - 5}].resource.status`]);
    expect(await env.observations()).to.equal(0);

    const res = await env.send(JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }));
    expect(res.status).to.equal(200);
    expect(res.body.type).to.equal('transaction-response');
    const answers = res.body.entry as Array<{ resource?: { resourceType: string; subject?: { reference: string } }; response: { status: string } }>;
    expect(answers).to.have.length(ENTRIES + 1);
    expect(answers.every((a) => a.response.status === '201 Created')).to.equal(true);
    const patientRef = `Patient/${String((answers[0]?.resource as { id?: string } | undefined)?.id)}`;
    expect(answers.slice(1).every((a) => a.resource?.subject?.reference === patientRef)).to.equal(true);
    expect(await env.observations()).to.equal(ENTRIES);
  });
});
