/**
 * A Synthea population loads through `POST /fhir` as Synthea writes it (HTTP, fake ledger): the
 * hospital and practitioner batches (conditional creates, `ifNoneExist`), then the patient's
 * transaction (every R4 type it uses, conditional references `Practitioner?identifier=…`). The fixture
 * is Synthea 3.3.0, one patient, seed 42 (test-data/synthea/README.md says how it was made).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const DR = `did:hdx:${'d'.repeat(43)}`;
const feed = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'test-data', 'synthea', `${name}.json`), 'utf8')) as Record<string, unknown>;

type ResponseBundle = { type: string; entry: Array<{ response: { status: string; location?: string; outcome?: unknown } }> };

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  await ledger.registerDid({ did: DR, kind: 'practitioner' });
  const { app } = testApp({ store, ledger, subjectLinkSecret: Buffer.alloc(32, 5), idpIssuer: 'https://idp.hospital1.example' });
  const load = async (name: string): Promise<ResponseBundle> => {
    const res = await request(app)
      .post('/fhir')
      .set(...feed)
      .set('content-type', FHIR)
      .send(fixture(name));
    expect(res.status, JSON.stringify(res.body).slice(0, 2000)).to.equal(200);
    return res.body as ResponseBundle;
  };
  const statuses = (b: ResponseBundle): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const e of b.entry) out[e.response.status] = (out[e.response.status] ?? 0) + 1;
    return out;
  };
  return { app, ledger, load, statuses };
}

describe('Synthea population through POST /fhir (HTTP, fake ledger)', () => {
  it('loads the hospital and practitioner batches, then the patient transaction, completely; searches a clinician runs work on it', async function () {
    this.timeout(120_000);
    const { app, ledger, load, statuses } = await setup();
    const hospital = await load('hospitalInformation');
    expect(statuses(hospital)).to.deep.equal({ '201 Created': 13 });
    const practitioners = await load('practitionerInformation');
    expect(statuses(practitioners)).to.deep.equal({ '201 Created': 12 });

    const patientBundle = fixture('patient') as { entry: unknown[] };
    const loaded = await load('patient');
    expect(loaded.type).to.equal('transaction-response');
    expect(statuses(loaded)).to.deep.equal({ '201 Created': patientBundle.entry.length });
    expect(ledger.anchors.size).to.equal(13 + 12 + patientBundle.entry.length);

    // A second load of the batches changes nothing where Synthea asks for conditional create.
    const again = await load('hospitalInformation');
    expect(statuses(again)).to.deep.equal({ '200 OK': 13 });
    const againPractitioners = await load('practitionerInformation');
    // Synthea sends PractitionerRole without ifNoneExist: those are created again (as on any FHIR server).
    expect(statuses(againPractitioners)).to.deep.equal({ '200 OK': 6, '201 Created': 6 });

    const get = async (q: string) => {
      const res = await request(app)
        .get(`/fhir/${q}`)
        .set(...feed);
      expect(res.status, `${q}: ${JSON.stringify(res.body).slice(0, 500)}`).to.equal(200);
      return res.body as { total: number; entry?: Array<{ resource: Record<string, unknown> }> };
    };
    const patient = await get('Patient?identifier=https://github.com/synthetichealth/synthea|347ceebf-0248-5a56-14f3-e1e8e8ffb73c');
    expect(patient.total).to.equal(1);
    const pid = String(patient.entry?.[0]?.resource.id);
    const obs = await get(`Observation?patient=${pid}&code=http://loinc.org|8302-2&date=ge2019-01-01`);
    expect(obs.total).to.be.greaterThan(0);
    const encounters = await get(`Encounter?patient=${pid}&_count=100`);
    expect(encounters.total).to.equal(36);
    // Conditional references were resolved to the Practitioner loaded by the batch.
    const enc = encounters.entry?.[0]?.resource as { participant?: Array<{ individual?: { reference?: string } }> };
    expect(enc.participant?.[0]?.individual?.reference).to.match(/^Practitioner\/[0-9a-f-]{36}$/);
    const meds = await get(`MedicationRequest?patient=${pid}&_include=MedicationRequest:medication`);
    expect(meds.total).to.equal(9);
    // The one MedicationRequest naming a Medication brings it in (reference data).
    expect(meds.entry?.filter((e) => e.resource.resourceType === 'Medication')).to.have.length(1);
    const withConditions = await get(`Encounter?patient=${pid}&_count=100&_revinclude=Condition:encounter`);
    expect(withConditions.entry?.filter((e) => e.resource.resourceType === 'Condition')).to.have.length(30);
    const claims = await get(`ExplanationOfBenefit?patient=${pid}&_count=100`);
    expect(claims.total).to.equal(45);
  });
});
