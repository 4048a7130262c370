/**
 * Every R4 type held, and whose consent governs it decided by the spec's patient CompartmentDefinition
 * (HTTP, fake ledger deciding as the chaincode does): a resource in no patient's compartment is
 * reference data, readable by any member user and written only by the custodian's staff; a record that
 * names a patient is governed by that patient's consents, whatever its type.
 */
import { expect } from 'chai';
import request from 'supertest';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const OTHER_DR = did('e');
const ALICE = did('a');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const otherMember = asCaller({ did: OTHER_DR, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
const patient = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.*', tokenKind: 'did' });

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  // As the chaincode: the custodian's practitioners treat; nothing else is permitted without a consent.
  ledger.decide = (req, anchor) =>
    req.purpose === 'TREAT' && req.actorOrganization === (anchor?.custodian ?? req.custodian)
      ? { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false }
      : { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
  for (const [d, kind] of [
    [ALICE, 'patient'],
    [DR, 'practitioner'],
    [OTHER_DR, 'practitioner'],
  ] as const) {
    await ledger.registerDid({ did: d, kind });
  }
  const { app } = testApp({ store, ledger, subjectLinkSecret: Buffer.alloc(32, 5), idpIssuer: 'https://idp.hospital1.example' });
  const post = async (path: string, body: object) =>
    request(app)
      .post(`/fhir/${path}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send(body);
  return { app, ledger, store, post };
}

const practitioner = {
  resourceType: 'Practitioner',
  identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '9999999999' }],
  name: [{ family: 'Osler', given: ['William'] }],
};

describe('every R4 type, governed as the patient CompartmentDefinition says (HTTP, fake ledger)', () => {
  it('stores types the 11-type table did not hold (Practitioner, Organization, Location, Medication), validated; Consent and AuditEvent stay on the ledger', async () => {
    const { post } = await setup();
    for (const body of [
      practitioner,
      { resourceType: 'Organization', name: 'General Hospital' },
      { resourceType: 'Location', name: 'Ward 3' },
      { resourceType: 'Medication', code: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '313782' }] } },
    ]) {
      const res = await post(body.resourceType, body);
      expect(res.status, JSON.stringify(res.body)).to.equal(201);
    }
    const invalid = await post('Practitioner', { resourceType: 'Practitioner', gender: 'sometimes' });
    expect(invalid.status).to.equal(400);
    expect((await post('Spaceship', { resourceType: 'Spaceship' })).status).to.equal(404);
    // Consents live on the ledger, not in the store.
    expect((await post('AuditEvent', { resourceType: 'AuditEvent' })).status).to.equal(404);
  });

  it('reference data: read by another member and by a patient (recorded as reference-data access), written only by custodian staff', async () => {
    const { app, ledger, post } = await setup();
    const created = await post('Practitioner', practitioner);
    const id = String(created.body.id);
    const before = ledger.audit.length;
    const read = await request(app)
      .get(`/fhir/Practitioner/${id}`)
      .set(...otherMember);
    expect(read.status, JSON.stringify(read.body)).to.equal(200);
    expect(read.body.name[0].family).to.equal('Osler');
    const entry = ledger.audit.at(-1);
    expect(ledger.audit.length).to.equal(before + 1);
    expect(entry).to.include({ actor: OTHER_DR, decision: 'permit', reason: 'reference-data', subtype: 'read' });
    expect(entry?.patient).to.match(/^pseudonym:[0-9a-f]{64}$/);
    // Another member searches reference data without naming a patient (there is none).
    const search = await request(app)
      .get('/fhir/Practitioner')
      .set(...otherMember);
    expect(search.status, JSON.stringify(search.body)).to.equal(200);
    expect(search.body.total).to.equal(1);
    expect(
      (
        await request(app)
          .get(`/fhir/Practitioner/${id}`)
          .set(...patient)
      ).status,
    ).to.equal(200);
    // Writes: a patient and another member are refused.
    expect(
      (
        await request(app)
          .post('/fhir/Practitioner')
          .set(...patient)
          .set('content-type', FHIR)
          .send(practitioner)
      ).status,
    ).to.equal(403);
    expect(
      (
        await request(app)
          .put(`/fhir/Practitioner/${id}`)
          .set(...otherMember)
          .set('content-type', FHIR)
          .send({ ...practitioner, id })
      ).status,
    ).to.equal(403);
    const device = asCaller({ did: DR, role: 'device', organization: 'Hospital1MSP', scope: 'system/*.*', purpose: 'TREAT' });
    expect(
      (
        await request(app)
          .post('/fhir/Organization')
          .set(...device)
          .set('content-type', FHIR)
          .send({ resourceType: 'Organization', name: 'x' })
      ).status,
    ).to.equal(403);
  });

  it('a record naming a patient is governed by that patient, whatever its type: Claim (compartment), Device.patient (outside it)', async () => {
    const { app, ledger, post } = await setup();
    const p = await post('Patient', { resourceType: 'Patient', name: [{ family: 'Doe' }] });
    const pid = String(p.body.id);
    const patientRef = ledger.anchors.get(`Patient/${pid}/_history/1`)?.patient;
    const claim = await post('Claim', {
      resourceType: 'Claim',
      status: 'active',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      use: 'claim',
      patient: { reference: `Patient/${pid}` },
      created: '2024-01-01',
      provider: { display: 'x' },
      priority: { coding: [{ code: 'normal' }] },
      insurance: [{ sequence: 1, focal: true, coverage: { display: 'c' } }],
    });
    expect(claim.status, JSON.stringify(claim.body)).to.equal(201);
    expect(ledger.anchors.get(`Claim/${String(claim.body.id)}/_history/1`)?.patient).to.equal(patientRef);
    const device = await post('Device', { resourceType: 'Device', patient: { reference: `Patient/${pid}` } });
    expect(device.status, JSON.stringify(device.body)).to.equal(201);
    expect(ledger.anchors.get(`Device/${String(device.body.id)}/_history/1`)?.patient).to.equal(patientRef);
    // Another member without consent: the Device is the patient's data, answered as missing.
    expect(
      (
        await request(app)
          .get(`/fhir/Device/${String(device.body.id)}`)
          .set(...otherMember)
      ).status,
    ).to.equal(404);
    // A Device naming a patient not held here, or only by identifier, is refused rather than taken for reference data.
    expect((await post('Device', { resourceType: 'Device', patient: { reference: 'Patient/unknown' } })).status).to.equal(400);
    expect((await post('Device', { resourceType: 'Device', patient: { identifier: { value: 'MRN-1' } } })).status).to.equal(400);
    // A compartment type naming no patient at all is refused too.
    expect((await post('Claim', { resourceType: 'Claim', status: 'active' })).status).to.equal(400);
  });
});
