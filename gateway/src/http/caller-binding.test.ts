/**
 * The caller-bound enforcement point through HTTP (findings 1–3, 6, 7, 10 of the security review): who
 * may read and write which patient's records, with the gateway's fake ledger deciding consent the way
 * the chaincode does for these cases (the patient and a guardian may see their own; the custodian's
 * practitioners may treat). The same attacks run on the real network in test/integration/security/.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { loggablePath, redactIds } from './app';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const ALICE = did('a');
const BOB = did('b');
const GUARDIAN = did('g');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const asPatient = (who: string, scope = 'patient/*.*') => asCaller({ did: who, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope, tokenKind: 'did' });

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  // As the chaincode decides these cases: the patient (or an active guardian) sees its own records;
  // the custodian's practitioners treat; nothing else is permitted without a consent.
  ledger.decide = (req, anchor) => {
    const patient = anchor?.patient ?? req.patient;
    const guardians = patient ? (ledger.dids.get(patient)?.hdx.guardians ?? []) : [];
    if (req.actor === patient || guardians.includes(req.actor)) return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass: false };
    if (req.purpose === 'TREAT' && req.actorOrganization === (anchor?.custodian ?? req.custodian))
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
  };
  for (const [d, kind] of [
    [ALICE, 'patient'],
    [BOB, 'patient'],
    [GUARDIAN, 'patient'],
    [DR, 'practitioner'],
  ] as const) {
    await ledger.registerDid({ did: d, kind });
  }
  const log = newLogger('silent');
  const { app } = testApp({ store, ledger, log, baseUrl: BASE, subjectLinkSecret: Buffer.alloc(32, 5), idpIssuer: 'https://idp.hospital1.example' });

  const post = async (path: string, body: object): Promise<string> => {
    const res = await request(app)
      .post(`/fhir/${path}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body.id as string;
  };
  const alice = await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
  const bob = await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: BOB }] });
  const obs = (patientId: string, value: string) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'HIV test' },
    subject: { reference: `Patient/${patientId}` },
    valueString: value,
  });
  const aliceObs = await post('Observation', obs(alice, 'not detected'));
  const bobObs = await post('Observation', obs(bob, 'detected'));
  return { app, ledger, store, alice, bob, aliceObs, bobObs, obs };
}

describe('caller binding (HTTP, fake ledger)', () => {
  it("a patient reads its own records and gets another patient's answered exactly as a missing one (finding 1, 10)", async () => {
    const { app, aliceObs, bobObs, ledger } = await setup();
    expect(
      (
        await request(app)
          .get(`/fhir/Observation/${aliceObs}`)
          .set(...asPatient(ALICE))
      ).status,
    ).to.equal(200);
    const other = await request(app)
      .get(`/fhir/Observation/${bobObs}`)
      .set(...asPatient(ALICE));
    const missing = await request(app)
      .get('/fhir/Observation/00000000-0000-0000-0000-000000000000')
      .set(...asPatient(ALICE));
    expect(other.status).to.equal(404);
    expect(missing.status).to.equal(404);
    // The same answer but for the id the caller itself asked about.
    expect(JSON.stringify(other.body).replaceAll(bobObs, 'ID')).to.equal(JSON.stringify(missing.body).replaceAll('00000000-0000-0000-0000-000000000000', 'ID'));
    expect(JSON.stringify(other.body)).to.not.include('detected');
    // The refused attempt is on the record, as a deny outside the caller's compartment.
    expect(ledger.audit.some((e) => e.actor === ALICE && e.decision === 'deny' && e.reason === 'outside-compartment')).to.equal(true);
  });

  it("a patient's search, history and $everything never include another patient (finding 1)", async () => {
    const { app, bob, bobObs, aliceObs } = await setup();
    const all = await request(app)
      .get('/fhir/Observation')
      .set(...asPatient(ALICE));
    expect(all.status).to.equal(200);
    expect(all.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).to.deep.equal([aliceObs]);
    const named = await request(app)
      .get(`/fhir/Observation?patient=Patient/${bob}`)
      .set(...asPatient(ALICE));
    expect(named.body.total).to.equal(0);
    expect(
      (
        await request(app)
          .get(`/fhir/Observation/${bobObs}/_history`)
          .set(...asPatient(ALICE))
      ).status,
    ).to.equal(404);
    expect(
      (
        await request(app)
          .get(`/fhir/Patient/${bob}/$everything`)
          .set(...asPatient(ALICE))
      ).status,
    ).to.equal(404);
    const types = await request(app)
      .get('/fhir/Observation/_history')
      .set(...asPatient(ALICE));
    expect(types.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).to.deep.equal([aliceObs]);
  });

  it("a patient cannot rewrite another patient's record, nor re-link a Patient to its DID (finding 2)", async () => {
    const { app, store, bob, bobObs, obs } = await setup();
    const put = await request(app)
      .put(`/fhir/Observation/${bobObs}`)
      .set(...asPatient(ALICE))
      .set('content-type', FHIR)
      .send({ ...obs(bob, 'not detected'), id: bobObs });
    expect(put.status).to.equal(404);
    expect(JSON.parse((await store.readCurrent('Observation', bobObs))?.content ?? '{}').valueString).to.equal('detected');
    const create = await request(app)
      .post('/fhir/Observation')
      .set(...asPatient(ALICE))
      .set('content-type', FHIR)
      .send(obs(bob, 'forged'));
    expect(create.status).to.equal(400);
    // Exactly the answer for a Patient this server does not hold: no probing which patients exist.
    const absent = await request(app)
      .post('/fhir/Observation')
      .set(...asPatient(ALICE))
      .set('content-type', FHIR)
      .send(obs('00000000-0000-0000-0000-000000000000', 'forged'));
    expect(create.body).to.deep.equal(absent.body);
    const relink = await request(app)
      .put(`/fhir/Patient/${bob}`)
      .set(...asPatient(ALICE))
      .set('content-type', FHIR)
      .send({ resourceType: 'Patient', id: bob, identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
    expect(relink.status).to.equal(403);
    // Even the custodian's practitioner cannot move a Patient to another DID: that is an admin's act.
    const byStaff = await request(app)
      .put(`/fhir/Patient/${bob}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Patient', id: bob, identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
    expect(byStaff.status).to.equal(400);
    expect(await store.patientDid(bob)).to.equal(BOB);
  });

  it('a patient writes patient-reported data in its own compartment only', async () => {
    const { app, alice, obs } = await setup();
    expect(
      (
        await request(app)
          .post('/fhir/Observation')
          .set(...asPatient(ALICE))
          .set('content-type', FHIR)
          .send(obs(alice, 'home reading'))
      ).status,
    ).to.equal(201);
    expect(
      (
        await request(app)
          .delete(`/fhir/Patient/${alice}`)
          .set(...asPatient(ALICE))
      ).status,
    ).to.equal(403);
  });

  it('a guardian reads its ward, and only once registered (finding 4: guardians come from the ledger)', async () => {
    const { app, ledger, bobObs } = await setup();
    expect(
      (
        await request(app)
          .get(`/fhir/Observation/${bobObs}`)
          .set(...asPatient(GUARDIAN))
      ).status,
    ).to.equal(404);
    ledger.dids.get(BOB)?.hdx.guardians.push(GUARDIAN);
    expect(
      (
        await request(app)
          .get(`/fhir/Observation/${bobObs}`)
          .set(...asPatient(GUARDIAN))
      ).status,
    ).to.equal(200);
  });

  it('purposes are bound to roles: a patient cannot claim TREAT, a practitioner cannot claim PATRQT (finding 1)', async () => {
    const { app, bobObs } = await setup();
    const treat = await request(app)
      .get(`/fhir/Observation/${bobObs}`)
      .set(...asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'patient/*.read', tokenKind: 'did' }));
    expect(treat.status).to.equal(403);
    const glass = await request(app)
      .get(`/fhir/Observation/${bobObs}`)
      .set(...asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'ETREAT', breakGlassReason: 'x', scope: 'patient/*.read', tokenKind: 'did' }));
    expect(glass.status).to.equal(403);
    const patrqt = await request(app)
      .get(`/fhir/Observation/${bobObs}`)
      .set(...asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'user/*.read' }));
    expect(patrqt.status).to.equal(403);
  });

  it('a delegated caller (another member acting for its practitioner) cannot write here nor read the access history (finding 3)', async () => {
    const { app, alice, obs } = await setup();
    const delegated = asCaller({ did: did('h'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*', tokenKind: 'did', viaOrganization: did('o') });
    expect(
      (
        await request(app)
          .post('/fhir/Observation')
          .set(...delegated)
          .set('content-type', FHIR)
          .send(obs(alice, 'x'))
      ).status,
    ).to.equal(403);
    expect(
      (
        await request(app)
          .get('/fhir/AuditEvent')
          .set(...delegated)
      ).status,
    ).to.equal(403);
  });

  it('only admins register DIDs, and auditors only at the regulator (finding 7)', async () => {
    const { app } = await setup();
    const body = { did: did('n'), kind: 'device' };
    const byPractitioner = await request(app)
      .post('/did')
      .set(...staff)
      .send(body);
    expect(byPractitioner.status).to.equal(403);
    const admin = asCaller({ did: DR, role: 'admin', organization: 'Hospital1MSP', purpose: 'TREAT' });
    expect(
      (
        await request(app)
          .post('/did')
          .set(...admin)
          .send({ did: did('m'), kind: 'auditor' })
      ).status,
    ).to.equal(403);
    expect(
      (
        await request(app)
          .post('/did')
          .set(...admin)
          .send(body)
      ).status,
    ).to.equal(201);
  });

  it("a patient's DID document and consents are shown only to those related to the patient (finding 7)", async () => {
    const { app, ledger } = await setup();
    expect((await request(app).get(`/did/${BOB}`)).status, 'no token').to.equal(401);
    expect(
      (
        await request(app)
          .get(`/did/${BOB}`)
          .set(...asPatient(ALICE))
      ).status,
    ).to.equal(404);
    expect(
      (
        await request(app)
          .get(`/did/${BOB}`)
          .set(...asPatient(BOB))
      ).status,
    ).to.equal(200);
    expect(
      (
        await request(app)
          .get(`/did/${DR}`)
          .set(...asPatient(ALICE))
      ).status,
      "a practitioner's DID is public",
    ).to.equal(200);
    ledger.consents.set('c1', { id: 'c1', patient: BOB, status: 'active', version: 1, consent: { resourceType: 'Consent', id: 'c1', patient: { reference: BOB } } } as never);
    expect(
      (
        await request(app)
          .get('/fhir/Consent/c1')
          .set(...asPatient(ALICE, 'patient/Consent.read'))
      ).status,
    ).to.equal(404);
    const list = await request(app)
      .get(`/fhir/Consent?patient=${BOB}`)
      .set(...asPatient(ALICE, 'patient/Consent.read'));
    expect(list.status).to.equal(403);
    const unknown = await request(app)
      .get(`/fhir/Consent?patient=${did('u')}`)
      .set(...asPatient(ALICE, 'patient/Consent.read'));
    expect(unknown.body, 'the same refusal for a patient who does not exist').to.deep.equal(list.body);
    expect(
      (
        await request(app)
          .get('/fhir/Consent/c1')
          .set(...staff)
      ).status,
      'custodian staff holding the patient',
    ).to.equal(200);
  });

  it('off-boarding an IdP subject deactivates the staff DIDs registered for it, and only an admin may (finding 7)', async () => {
    const { app, ledger } = await setup();
    const admin = asCaller({ did: DR, role: 'admin', organization: 'Hospital1MSP', purpose: 'TREAT' });
    const device = did('v');
    expect(
      (
        await request(app)
          .post('/did')
          .set(...admin)
          .send({ did: device, kind: 'device', subject: 'contractor-7' })
      ).status,
    ).to.equal(201);
    expect(ledger.subjects.get(device), 'only a keyed hash of the subject is on the ledger').to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(
      (
        await request(app)
          .post('/did')
          .set(...admin)
          .send({ did: did('q'), kind: 'patient', subject: 'x' })
      ).status,
      'patients carry no IdP subject',
    ).to.equal(400);
    expect(
      (
        await request(app)
          .post('/did/$offboard')
          .set(...staff)
          .send({ subject: 'contractor-7' })
      ).status,
    ).to.equal(403);
    const off = await request(app)
      .post('/did/$offboard')
      .set(...admin)
      .send({ subject: 'contractor-7' });
    expect(off.status, JSON.stringify(off.body)).to.equal(200);
    expect(off.body.deactivated).to.deep.equal([device]);
    expect(ledger.dids.get(device)?.hdx.status).to.equal('deactivated');
  });
});

describe("another member's users ask one patient at a time (finding 6: no candidate-count oracle)", () => {
  it('a search must name the patient, and history across every patient is refused', async () => {
    const { app } = await setup();
    const h2 = asCaller({ did: did('h'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read', tokenKind: 'did' });
    expect(
      (
        await request(app)
          .get('/fhir/Observation?code=x')
          .set(...h2)
      ).status,
    ).to.equal(400);
    const named = await request(app)
      .get(`/fhir/Observation?patient=${ALICE}`)
      .set(...h2);
    expect(named.status).to.equal(200);
    expect(named.body.total, 'no consent: nothing').to.equal(0);
    expect(
      (
        await request(app)
          .get('/fhir/Observation/_history')
          .set(...h2)
      ).status,
    ).to.equal(403);
    // This organization's own staff still searches across its patients.
    expect(
      (
        await request(app)
          .get('/fhir/Observation')
          .set(...staff)
      ).body.total,
    ).to.equal(2);
  });
});

describe('logs carry no ids', () => {
  it('redacts resource references, DIDs and pseudonyms from logged messages', () => {
    expect(redactIds(`Observation/abc-1/_history/2 of ${did('p')} (pseudonym:${'a'.repeat(64)}) is withheld`)).to.equal('Observation/:id of did:hdx:… (pseudonym:…) is withheld');
    expect(loggablePath(`/fhir/Patient/1234-5678/_history/3?name=x`)).to.equal('/fhir/Patient/:id/_history/:id');
    expect(loggablePath(`/did/${did('p')}`)).to.equal('/did/:id');
    expect(loggablePath('/fhir/Patient/$exchange')).to.equal('/fhir/Patient/$exchange');
  });
});
