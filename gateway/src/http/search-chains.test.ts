/**
 * Chained parameters (one to four levels) and `_has` (HTTP, fake ledger): the linked resources count only when
 * the caller may see them (its scopes, its compartment, consent for each), so a chain never tells a
 * caller anything about a record it may not see; those that link to what is released are recorded.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { consentLike, poster, registerAll } from '../test-support/http-fixture';

const FHIR = 'application/fhir+json';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const OTHER = did('e');
const ALICE = did('a');
const BOB = did('b');
const LOINC = 'http://loinc.org';
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  /** Resource types another member's practitioner is denied (as a consent excluding them would). */
  const denied = new Set<string>();
  ledger.decide = consentLike((req, anchor) => req.actor === OTHER && !denied.has(anchor?.resourceType ?? ''));
  await registerAll(ledger, [
    [DR, 'practitioner'],
    [OTHER, 'practitioner'],
    [ALICE, 'patient'],
    [BOB, 'patient'],
  ]);
  const { app } = testApp({ store, ledger });
  const post = poster(app, staff);
  const get = (q: string, as: [string, string] = staff) =>
    request(app)
      .get(`/fhir/${q}`)
      .set(...as);
  const ids = async (q: string, as: [string, string] = staff): Promise<string[]> => {
    const res = await get(q, as);
    expect(res.status, `${q}: ${JSON.stringify(res.body)}`).to.equal(200);
    return ((res.body.entry ?? []) as Array<{ resource: { id: string } }>).map((e) => e.resource.id).sort();
  };
  const org = await post({ resourceType: 'Organization', name: 'St Elsewhere' });
  const osler = await post({ resourceType: 'Practitioner', name: [{ family: 'Osler' }] });
  const role = await post({ resourceType: 'PractitionerRole', practitioner: { reference: `Practitioner/${osler}` }, organization: { reference: `Organization/${org}` } });
  const alice = await post({
    resourceType: 'Patient',
    identifier: [
      { system: DID_IDENTIFIER_SYSTEM, value: ALICE },
      { system: 'urn:mrn', value: 'A-1' },
    ],
    name: [{ family: 'Peterson', given: ['Alice'] }],
    generalPractitioner: [{ reference: `Practitioner/${osler}` }],
    managingOrganization: { reference: `Organization/${org}` },
  });
  const bob = await post({
    resourceType: 'Patient',
    identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: BOB }],
    name: [{ family: 'Peters', given: ['Bob'] }],
    generalPractitioner: [{ reference: `PractitionerRole/${role}` }],
  });
  const obs = (patient: string, code: string) =>
    post({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code }] },
      subject: { reference: `Patient/${patient}` },
      performer: [{ reference: `Practitioner/${osler}` }],
    });
  const aliceHiv = await obs(alice, '75622-1');
  const aliceHr = await obs(alice, '8867-4');
  const bobHr = await obs(bob, '8867-4');
  const report = (patient: string, result: string) =>
    post({
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '58410-2' }] },
      subject: { reference: `Patient/${patient}` },
      result: [{ reference: `Observation/${result}` }],
    });
  const aliceReport = await report(alice, aliceHr);
  const bobReport = await report(bob, bobHr);
  return { app, ledger, denied, org, role, alice, bob, osler, aliceHiv, aliceHr, bobHr, aliceReport, bobReport, get, ids };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/**
 * Another member's search `q` through records of `types`: with any one of those types denied it finds
 * nothing, while Alice's Patient record stays permitted (the path breaks at the denied level); with none
 * denied it answers, and what it recorded is returned.
 */
async function brokenByEachThenRecorded(env: Pick<Setup, 'ids' | 'get' | 'ledger' | 'denied' | 'alice'>, q: string, types: readonly string[]): Promise<string[]> {
  for (const type of types) {
    env.denied.clear();
    env.denied.add(type);
    expect(await env.ids(`Patient?patient=${ALICE}`, other), type).to.deep.equal([env.alice]);
    expect(await env.ids(q, other), type).to.deep.equal([]);
  }
  env.denied.clear();
  const before = env.ledger.audit.length;
  expect((await env.get(q, other)).status).to.equal(200);
  return env.ledger.audit.slice(before).flatMap((e) => e.resources);
}

describe('chained parameters and _has through the enforcement point (HTTP, fake ledger)', () => {
  it('chains one level (typed or not) and _has find what they name', async () => {
    const { ids, alice, bob, osler, aliceHiv, aliceHr, bobHr } = await setup();
    expect(await ids('Observation?subject.name=peterson')).to.deep.equal([aliceHiv, aliceHr].sort());
    expect(await ids('Observation?subject:Patient.name=peters')).to.deep.equal([aliceHiv, aliceHr, bobHr].sort());
    expect(await ids('Observation?patient.identifier=urn:mrn|A-1&code=8867-4')).to.deep.equal([aliceHr]);
    expect(await ids('Observation?performer:Practitioner.name=osler')).to.deep.equal([aliceHiv, aliceHr, bobHr].sort());
    expect(await ids('Observation?subject.name:exact=Peters')).to.deep.equal([bobHr]);
    expect(await ids('Observation?subject.name=peters&subject.name:exact=Peters')).to.deep.equal([bobHr]);
    expect(await ids('Observation?performer:Practitioner.name=osler&subject.name:exact=Peters')).to.deep.equal([bobHr]);
    expect(await ids('Observation?performer:Practitioner.name=osler&subject.name=peters&subject.name:exact=Peters')).to.deep.equal([bobHr]);
    expect(await ids('Observation?subject.name=nobody')).to.deep.equal([]);
    expect(await ids(`Patient?_has:Observation:patient:code=75622-1`)).to.deep.equal([alice]);
    expect(await ids(`Patient?_has:Observation:patient:code=8867-4`)).to.deep.equal([alice, bob].sort());
    expect(await ids(`Patient?_has:Observation:patient:code=8867-4&_has:Observation:patient:code=75622-1`)).to.deep.equal([alice]);
    expect(await ids(`Patient?_has:Observation:patient:code=8867-4&_id=${bob}`)).to.deep.equal([bob]);
    expect(await ids(`Practitioner?_has:Observation:performer:code=8867-4`)).to.deep.equal([osler]);
    expect(await ids(`Practitioner?_has:Observation:performer:code=1234-5`)).to.deep.equal([]);
  });

  it('a linked resource the caller may not see counts as absent: consent, compartment and scopes', async () => {
    const { ids, denied, alice, aliceHiv, aliceHr } = await setup();
    // Another member's practitioner: permitted Alice's Observations, not her Patient record.
    denied.add('Patient');
    expect(await ids(`Observation?patient=${ALICE}`, other)).to.deep.equal([aliceHiv, aliceHr].sort());
    // Her name is not to be learnt through a chain.
    expect(await ids(`Observation?patient=${ALICE}&subject.name=peterson`, other)).to.deep.equal([]);
    // Permitted her Patient record but not her Observations: _has does not tell what she has.
    denied.clear();
    denied.add('Observation');
    expect(await ids(`Patient?patient=${ALICE}`, other)).to.deep.equal([alice]);
    expect(await ids(`Patient?patient=${ALICE}&_has:Observation:patient:code=75622-1`, other)).to.deep.equal([]);
    denied.clear();
    expect(await ids(`Patient?patient=${ALICE}&_has:Observation:patient:code=75622-1`, other)).to.deep.equal([alice]);
    // Alice herself: Bob's records are outside her compartment, whichever way they are reached.
    expect(await ids('Practitioner?_has:Observation:performer:code=8867-4', asAlice)).to.have.length(1);
    expect(await ids('Observation?subject.name=peters', asAlice)).to.deep.equal([aliceHiv, aliceHr].sort());
    // Scopes: a token for Observation alone chains to no Patient.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Observation.read' });
    expect(await ids(`Observation?subject.name=peterson`, narrow)).to.deep.equal([]);
    expect(await ids(`Observation?subject=Patient/${alice}`, narrow)).to.deep.equal([aliceHiv, aliceHr].sort());
  });

  it('_has does not reveal a patient outside the compartment of a patient caller', async () => {
    const { ids, bob } = await setup();
    // Bob's Observation with that code: Alice searching Patients by it sees nothing of Bob.
    expect(await ids(`Patient?_has:Observation:patient:code=8867-4&_id=${bob}`, asAlice)).to.deep.equal([]);
  });

  it('a record in several patients’ compartments counts in a chain or _has exactly as a direct search of its type finds it', async () => {
    const { app, ledger, ids, alice, bob } = await setup();
    const post = poster(app, staff);
    // Bob's Observation that Alice performed: Bob is its patient, Alice its co-patient (subject comes before performer).
    const shared = await post({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '29463-7' }] },
      subject: { reference: `Patient/${bob}` },
      performer: [{ reference: `Patient/${alice}` }],
    });
    const report = await post({
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { text: 'weight' },
      subject: { reference: `Patient/${alice}` },
      result: [{ reference: `Observation/${shared}` }],
    });
    const found = async (): Promise<string[][]> => [
      await ids('Observation?code=29463-7', asAlice),
      await ids('DiagnosticReport?result.code=29463-7', asAlice),
      await ids('Patient?_has:Observation:performer:code=29463-7', asAlice),
    ];
    // Bob lets Alice see his records: her search finds the shared one, and so do a chain and a _has through it.
    ledger.decide = consentLike((req, anchor) => req.actor === OTHER || (req.actor === ALICE && (anchor?.patient ?? req.patient) === BOB));
    expect(await found()).to.deep.equal([[shared], [report], [alice]]);
    // Without Bob's consent, none of them.
    ledger.decide = consentLike((req) => req.actor === OTHER);
    expect(await found()).to.deep.equal([[], [], []]);
  });

  it('records the linked resources that tell about a released match, not the others', async () => {
    const { get, ledger, alice, bobHr } = await setup();
    const before = ledger.audit.length;
    const res = await get(`Patient?patient=${ALICE}&_has:Observation:patient:code=75622-1`, other);
    expect(res.status).to.equal(200);
    const recorded = ledger.audit
      .slice(before)
      .flatMap((e) => e.resources)
      .sort();
    expect(recorded).to.have.length(2);
    expect(recorded[1]).to.equal(`Patient/${alice}/_history/1`);
    expect(recorded[0]).to.match(/^Observation\//);
    expect(recorded).to.not.include(`Observation/${bobHr}/_history/1`);
  });

  it('chains of two, three and four levels find what they name', async () => {
    const { ids, aliceHiv, aliceHr, bobHr, aliceReport, bobReport } = await setup();
    // Two levels: Observation → Patient → Practitioner (typed or not: general-practitioner also refers to Organization and PractitionerRole).
    expect(await ids('Observation?subject:Patient.general-practitioner:Practitioner.name=osler')).to.deep.equal([aliceHiv, aliceHr].sort());
    expect(await ids('Observation?subject.general-practitioner.name=osler')).to.deep.equal([aliceHiv, aliceHr].sort());
    expect(await ids('Observation?subject.organization.name=st')).to.deep.equal([aliceHiv, aliceHr].sort());
    expect(await ids('Observation?subject.general-practitioner.name=nobody')).to.deep.equal([]);
    // DiagnosticReport → Observation → Patient.
    expect(await ids('DiagnosticReport?result.subject.name=peterson')).to.deep.equal([aliceReport]);
    expect(await ids('DiagnosticReport?result.subject.name=peters')).to.deep.equal([aliceReport, bobReport].sort());
    expect(await ids('DiagnosticReport?result.subject.name:exact=Peters&result.code=8867-4')).to.deep.equal([bobReport]);
    // Three levels: DiagnosticReport → Observation → Patient → Practitioner.
    expect(await ids('DiagnosticReport?result.subject:Patient.general-practitioner:Practitioner.name=osler')).to.deep.equal([aliceReport]);
    // Four: DiagnosticReport → Observation → Patient → PractitionerRole → Practitioner.
    expect(await ids('DiagnosticReport?result.subject:Patient.general-practitioner:PractitionerRole.practitioner.name=osler')).to.deep.equal([bobReport]);
    expect(await ids('DiagnosticReport?result.subject.general-practitioner:PractitionerRole.organization.name=st')).to.deep.equal([bobReport]);
    // With the other parameters of the search (AND) and a one-level chain beside it.
    expect(await ids('Observation?subject.general-practitioner.name=osler&code=8867-4')).to.deep.equal([aliceHr]);
    expect(await ids('Observation?subject.general-practitioner.name=osler&subject.name:exact=Peters')).to.deep.equal([]);
    expect(bobHr).to.be.a('string');
  });

  it('a record the caller may not see at any level of a chain counts as absent', async () => {
    const { ids, denied, aliceHr, aliceReport, bobReport } = await setup();
    const threeLevels = `DiagnosticReport?patient=${ALICE}&result.subject:Patient.general-practitioner:Practitioner.name=osler`;
    // Another member's practitioner, permitted everything of Alice's: the chain finds her report.
    expect(await ids(threeLevels, other)).to.deep.equal([aliceReport]);
    // Denied one type, at any level: the chain breaks there, while the report itself is still permitted.
    for (const type of ['Observation', 'Patient']) {
      denied.clear();
      denied.add(type);
      expect(await ids(`DiagnosticReport?patient=${ALICE}`, other), type).to.deep.equal([aliceReport]);
      expect(await ids(threeLevels, other), type).to.deep.equal([]);
      expect(await ids(`DiagnosticReport?patient=${ALICE}&result.subject.name=peterson`, other), type).to.deep.equal([]);
    }
    denied.clear();
    expect(await ids(`DiagnosticReport?patient=${ALICE}&result.subject.name=peterson`, other)).to.deep.equal([aliceReport]);
    // Alice: Bob's Observation (and so his report) is outside her compartment at the first level.
    expect(await ids('DiagnosticReport?result.subject.name=peters', asAlice)).to.deep.equal([aliceReport]);
    expect(await ids('DiagnosticReport?result.subject:Patient.general-practitioner:PractitionerRole.practitioner.name=osler', asAlice)).to.deep.equal([]);
    expect(bobReport).to.be.a('string');
    // Scopes: a token that does not read Patient chains through no Patient, at whatever level.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/DiagnosticReport.read user/Observation.read user/Practitioner.read' });
    expect(await ids('DiagnosticReport?result.subject:Patient.general-practitioner:Practitioner.name=osler', narrow)).to.deep.equal([]);
    expect(await ids(`DiagnosticReport?result=Observation/${aliceHr}`, narrow)).to.deep.equal([aliceReport]);
    const noPractitioner = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/DiagnosticReport.read user/Observation.read user/Patient.read' });
    expect(await ids('DiagnosticReport?result.subject:Patient.general-practitioner:Practitioner.name=osler', noPractitioner)).to.deep.equal([]);
    expect(await ids('DiagnosticReport?result.subject.name=peterson', noPractitioner)).to.deep.equal([aliceReport]);
  });

  it('records the resources of every level that link a released match to what the chain named', async () => {
    const { get, ledger, alice, osler, aliceHr, aliceHiv, aliceReport } = await setup();
    const before = ledger.audit.length;
    const res = await get(`DiagnosticReport?patient=${ALICE}&result.subject:Patient.general-practitioner:Practitioner.name=osler`, other);
    expect(res.status).to.equal(200);
    const recorded = ledger.audit.slice(before).flatMap((e) => e.resources);
    expect(recorded).to.include.members([
      `DiagnosticReport/${aliceReport}/_history/1`,
      `Observation/${aliceHr}/_history/1`,
      `Patient/${alice}/_history/1`,
      `Practitioner/${osler}/_history/1`,
    ]);
    expect(recorded).to.not.include(`Observation/${aliceHiv}/_history/1`);
  });

  it('_has ending in a chain finds what it names, the _has and the chain together at most four levels', async () => {
    const { ids, get, alice, bob, osler } = await setup();
    expect(await ids('Patient?_has:Observation:subject:performer:Practitioner.name=osler')).to.deep.equal([alice, bob].sort());
    expect(await ids('Patient?_has:Observation:subject:performer.name=osler')).to.deep.equal([alice, bob].sort());
    expect(await ids('Patient?_has:Observation:subject:performer:Practitioner.name=nobody')).to.deep.equal([]);
    // Patients with a report whose result has that code (aliceHiv is in no report).
    expect(await ids('Patient?_has:DiagnosticReport:subject:result.code=8867-4')).to.deep.equal([alice, bob].sort());
    expect(await ids('Patient?_has:DiagnosticReport:subject:result.code=75622-1')).to.deep.equal([]);
    expect(await ids(`Patient?_has:DiagnosticReport:subject:result.code=8867-4&_id=${bob}`)).to.deep.equal([bob]);
    expect(await ids('Patient?_has:Observation:patient:encounter.status=finished')).to.deep.equal([]);
    // Three levels: Practitioner ← Observation → Patient → Practitioner; four: … → PractitionerRole → Practitioner.
    expect(await ids('Practitioner?_has:Observation:performer:subject:Patient.general-practitioner:Practitioner.name=osler')).to.deep.equal([osler]);
    expect(await ids('Practitioner?_has:Observation:performer:subject:Patient.general-practitioner:PractitionerRole.practitioner.name=osler')).to.deep.equal([osler]);
    expect(await ids('Practitioner?_has:Observation:performer:subject:Patient.general-practitioner:PractitionerRole.practitioner.name=nobody')).to.deep.equal([]);
    // Five levels: refused, naming the parameter and the limit.
    const deep = await get('Practitioner?_has:Observation:performer:subject:Patient.general-practitioner:PractitionerRole.organization.partof.name=x');
    expect(deep.status).to.equal(400);
    expect(deep.body.issue[0].diagnostics).to.equal(
      'Search parameter _has:Observation:performer:subject:Patient.general-practitioner:PractitionerRole.organization.partof.name chains 4 levels: at most 3 here',
    );
    // A chain the source type does not take is refused naming the whole _has.
    const bad = await get('Patient?_has:Observation:subject:performer.shoe=x');
    expect(bad.status).to.equal(400);
    expect(bad.body.issue[0].diagnostics).to.match(/^Search parameter _has:Observation:subject:performer\.shoe /);
  });

  it('_has ending in a chain: a record the caller may not see at any level counts as absent; the linked resources of a released match are recorded', async () => {
    const { ids, get, ledger, denied, alice, bob, aliceHr, aliceHiv, aliceReport } = await setup();
    const q = `Patient?patient=${ALICE}&_has:DiagnosticReport:subject:result.code=8867-4`;
    expect(await ids(q, other)).to.deep.equal([alice]);
    // Denied the report or the Observation it links to: the _has breaks there.
    const recorded = await brokenByEachThenRecorded({ ids, get, ledger, denied, alice }, q, ['DiagnosticReport', 'Observation']);
    expect(recorded).to.have.members([`Patient/${alice}/_history/1`, `DiagnosticReport/${aliceReport}/_history/1`, `Observation/${aliceHr}/_history/1`]);
    expect(recorded).to.not.include(`Observation/${aliceHiv}/_history/1`);
    // From outside without the patient: refused before anything is looked up, the chain's types included.
    const outside = await get('Practitioner?_has:Observation:performer:subject.name=peterson', other);
    expect([outside.status, JSON.stringify(outside.body).includes('must name the patient')]).to.deep.equal([400, true]);
    // Alice: Bob's report is outside her compartment.
    expect(await ids(`Patient?_has:DiagnosticReport:subject:result.code=8867-4&_id=${bob}`, asAlice)).to.deep.equal([]);
    expect(await ids('Patient?_has:DiagnosticReport:subject:result.code=8867-4', asAlice)).to.deep.equal([alice]);
    // Scopes: a token that does not read Observation (the chain's level) or DiagnosticReport (the _has's) finds nothing through them.
    for (const scope of ['user/Patient.read user/DiagnosticReport.read', 'user/Patient.read user/Observation.read']) {
      const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope });
      expect(await ids('Patient?_has:DiagnosticReport:subject:result.code=8867-4', narrow), scope).to.deep.equal([]);
    }
  });

  it('_has inside _has finds what it names, each nested _has on the source type of the one around it, at most three deep', async () => {
    const { app, ids, get, alice, bob, osler, aliceReport } = await setup();
    // Patients with an Observation that is a result of a report of that code (aliceHiv is in no report).
    const nested = '_has:Observation:patient:_has:DiagnosticReport:result';
    expect(await ids(`Patient?${nested}:code=58410-2`)).to.deep.equal([alice, bob].sort());
    expect(await ids(`Patient?${nested}:code=0000-0`)).to.deep.equal([]);
    expect(await ids(`Patient?${nested}:code=58410-2&_id=${bob}`)).to.deep.equal([bob]);
    // With a chain at its end: a Practitioner performing an Observation reported on for a patient named so.
    expect(await ids(`Practitioner?_has:Observation:performer:_has:DiagnosticReport:result:subject.name=peterson`)).to.deep.equal([osler]);
    expect(await ids(`Practitioner?_has:Observation:performer:_has:DiagnosticReport:result:subject.name=nobody`)).to.deep.equal([]);
    // Reference data through patient data: the Practitioner of a role that is Bob's general practitioner.
    expect(await ids('Practitioner?_has:PractitionerRole:practitioner:_has:Patient:general-practitioner:name=peters')).to.deep.equal([osler]);
    expect(await ids('Practitioner?_has:PractitionerRole:practitioner:_has:Patient:general-practitioner:name=peterson')).to.deep.equal([]);
    // Three deep: a Procedure done for Alice's report.
    await poster(
      app,
      staff,
    )({
      resourceType: 'Procedure',
      status: 'completed',
      code: { text: 'biopsy' },
      subject: { reference: `Patient/${alice}` },
      reasonReference: [{ reference: `DiagnosticReport/${aliceReport}` }],
    });
    const three = `Patient?${nested}:_has:Procedure:reason-reference`;
    expect(await ids(`${three}:status=completed`)).to.deep.equal([alice]);
    expect(await ids(`${three}:status=in-progress`)).to.deep.equal([]);
    expect(await ids(`${three}:subject.name=peterson`)).to.deep.equal([alice]);
    // Deeper, or a chain making more than four levels with them: refused, naming the parameter and the limit.
    const deeper = await get(`${three}:_has:Observation:part-of:code=x`);
    expect([deeper.status, deeper.body.issue?.[0]?.diagnostics]).to.deep.equal([
      400,
      `Search parameter _has:Observation:patient:_has:DiagnosticReport:result:_has:Procedure:reason-reference:_has:Observation:part-of:code nests _has 4 levels deep: at most 3 here`,
    ]);
    const long = await get(`${three}:subject.general-practitioner.name=osler`);
    expect([long.status, long.body.issue?.[0]?.diagnostics]).to.deep.equal([
      400,
      `Search parameter _has:Observation:patient:_has:DiagnosticReport:result:_has:Procedure:reason-reference:subject.general-practitioner.name chains 2 levels: at most 1 here`,
    ]);
    // A nested _has must refer to the source type of the one around it (Encounter.patient refers to Patient, not Observation).
    const wrong = await get('Patient?_has:Observation:patient:_has:Encounter:patient:status=x');
    expect([wrong.status, wrong.body.issue?.[0]?.diagnostics]).to.deep.equal([
      400,
      'Search parameter _has:Observation:patient:_has:Encounter:patient:status must be _has:Type:parameter:searchparameter, where parameter is a reference of Type to Observation (e.g. _has:Observation:patient:code)',
    ]);
  });

  it('_has inside _has: a record the caller may not see at any level breaks the path; the linked resources of a released match are recorded; from outside it must name the patient', async () => {
    const { ids, get, ledger, denied, alice, bob, aliceHr, aliceHiv, aliceReport, bobHr, bobReport } = await setup();
    const q = `Patient?patient=${ALICE}&_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2`;
    expect(await ids(q, other)).to.deep.equal([alice]);
    // Denied the report or the Observation: the path breaks there.
    const recorded = await brokenByEachThenRecorded({ ids, get, ledger, denied, alice }, q, ['DiagnosticReport', 'Observation']);
    expect(recorded).to.have.members([`Patient/${alice}/_history/1`, `Observation/${aliceHr}/_history/1`, `DiagnosticReport/${aliceReport}/_history/1`]);
    expect(recorded).to.not.include.members([`Observation/${aliceHiv}/_history/1`, `Observation/${bobHr}/_history/1`, `DiagnosticReport/${bobReport}/_history/1`]);
    // Alice herself: Bob's Observation and report are outside her compartment.
    expect(await ids('Patient?_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2', asAlice)).to.deep.equal([alice]);
    expect(await ids(`Patient?_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2&_id=${bob}`, asAlice)).to.deep.equal([]);
    // Scopes: a token that does not read the nested level's type finds nothing through it.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Patient.read user/Observation.read' });
    expect(await ids('Patient?_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2', narrow)).to.deep.equal([]);
    // From outside without the patient: refused before anything is looked up, for patient data at any level,
    // also where only the nested _has reaches it.
    for (const outsideQ of [
      'Patient?_has:Observation:patient:_has:DiagnosticReport:result:code=58410-2',
      'Practitioner?_has:PractitionerRole:practitioner:_has:Patient:general-practitioner:name=nobody-at-all',
    ]) {
      const outside = await get(outsideQ, other);
      expect([outside.status, outside.body.resourceType, JSON.stringify(outside.body).includes('must name the patient')], outsideQ).to.deep.equal([400, 'OperationOutcome', true]);
    }
  });

  it('refuses a chain from outside that does not name the patient at any level, whatever is held', async () => {
    const { get } = await setup();
    for (const q of ['DiagnosticReport?result.subject.name=peterson', 'DiagnosticReport?result.subject.name=nobody-at-all']) {
      const res = await get(q, other);
      expect(res.status, q).to.equal(400);
      expect(res.body.resourceType, q).to.equal('OperationOutcome');
    }
    const res = await get('DiagnosticReport?result.subject.name=nobody-at-all', other);
    expect(JSON.stringify(res.body)).to.contain('must name the patient');
  });

  it('refuses a chain reaching more candidates at one level than it decides in one request, naming the parameter', async function () {
    this.timeout(120_000);
    const { app, alice, osler } = await setup();
    // 1,001 Observations performed by Osler: the middle level of DiagnosticReport?result.performer... is too broad.
    const entry = Array.from({ length: 1001 }, () => ({
      request: { method: 'POST', url: 'Observation' },
      resource: {
        resourceType: 'Observation',
        status: 'final',
        code: { text: 'x' },
        subject: { reference: `Patient/${alice}` },
        performer: [{ reference: `Practitioner/${osler}` }],
      },
    }));
    const tx = await request(app)
      .post('/fhir')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Bundle', type: 'transaction', entry });
    expect(tx.status, JSON.stringify(tx.body).slice(0, 500)).to.equal(200);
    const res = await request(app)
      .get('/fhir/DiagnosticReport?result.performer:Practitioner.name=osler')
      .set(...staff);
    expect(res.status).to.equal(400);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(JSON.stringify(res.body)).to.contain('result.performer:Practitioner.name');
  });

  it(':identifier finds resources by the logical identifier of their reference, through the enforcement point', async () => {
    const { app, ids, denied, alice, bob } = await setup();
    const post = poster(app, staff);
    const withIds = await post({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '8867-4' }] },
      subject: { reference: `Patient/${alice}`, identifier: { system: 'urn:mrn', value: 'A-1' } },
      performer: [{ identifier: { system: 'urn:npi', value: '999' } }],
    });
    const bobsWithIds = await post({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code: '8867-4' }] },
      subject: { reference: `Patient/${bob}`, identifier: { system: 'urn:mrn', value: 'B-2' } },
      performer: [{ identifier: { system: 'urn:npi', value: '999' } }],
    });
    expect(await ids('Observation?subject:identifier=urn:mrn|A-1')).to.deep.equal([withIds]);
    expect(await ids('Observation?patient:identifier=urn:mrn|A-1,urn:mrn|B-2')).to.deep.equal([withIds, bobsWithIds].sort());
    expect(await ids('Observation?performer:identifier=999')).to.deep.equal([withIds, bobsWithIds].sort());
    expect(await ids('Observation?performer:identifier=urn:npi|999&subject:identifier=B-2')).to.deep.equal([bobsWithIds]);
    expect(await ids('Observation?performer:identifier=urn:other|999')).to.deep.equal([]);
    // The Reference's identifier, never the referenced resource's: Alice's other Observations name her by reference only.
    expect(await ids('Observation?subject:identifier=urn:mrn|A-1&code=8867-4')).to.deep.equal([withIds]);
    // Through the enforcement point: another member's practitioner sees what consent permits, and nothing of Bob's.
    expect(await ids(`Observation?patient=${ALICE}&performer:identifier=999`, other)).to.deep.equal([withIds]);
    denied.add('Observation');
    expect(await ids(`Observation?patient=${ALICE}&performer:identifier=999`, other)).to.deep.equal([]);
    // Alice herself: Bob's Observation is outside her compartment.
    expect(await ids('Observation?performer:identifier=999', asAlice)).to.deep.equal([withIds]);
    // In a chain's last level too.
    denied.clear();
    const report = await post({
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: `Patient/${alice}` },
      result: [{ reference: `Observation/${withIds}` }],
    });
    expect(await ids('DiagnosticReport?result.performer:identifier=urn:npi|999')).to.deep.equal([report]);
    denied.add('Observation');
    expect(await ids(`DiagnosticReport?patient=${ALICE}&result.performer:identifier=urn:npi|999`, other)).to.deep.equal([]);
  });

  it('refuses chains and _has it does not do, and a chain to patient data from outside without the patient', async () => {
    const { get, app, aliceHr } = await setup();
    for (const q of [
      'Observation?subject.name.family=x',
      'DiagnosticReport?result.status.name=x',
      'DiagnosticReport?result.subject:Patient.general-practitioner:PractitionerRole.organization.partof.name=x',
      'Observation?subject:Patient.general-practitioner:Patient.name=x',
      'Observation?subject.general-practitioner.shoe=x',
      'Observation?subject.',
      'Observation?code:identifier=x',
      'Observation?subject:identifier=',
      'Observation?subject:identifier:not=x',
      'Observation?status.name=x',
      'Observation?subject.shoe=x',
      'Observation?subject:Device.name=x',
      'Observation?subject:Group.name=x&subject:Group.shoe=y',
      'Patient?_has:Observation:code:code=x',
      'Patient?_has:Observation:patient:shoe=x',
      'Patient?_has:Observation:patient:encounter.shoe=x',
      'Patient?_has:Observation:patient:status.name=x',
      'Patient?_has:Observation:patient',
      'Observation?subject.birthdate=yesterday',
    ]) {
      const res = await get(q);
      expect(res.status, q).to.equal(400);
      expect(res.body.resourceType, q).to.equal('OperationOutcome');
    }
    const outside = await get('Practitioner?_has:Observation:performer:code=8867-4', other);
    expect(outside.status).to.equal(400);
    expect(JSON.stringify(outside.body)).to.contain('must name the patient');
    // A conditional write never drops a chain (that would widen what it matches).
    const put = await request(app)
      .put('/fhir/Observation?subject.name=peterson')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Observation', status: 'final', code: { text: 'x' } });
    expect(put.status).to.equal(400);
    expect(aliceHr).to.be.a('string');
  });

  it('Prefer: handling=lenient ignores a chain the types do not take, not a bad value of one they do', async () => {
    const { get, aliceHiv, aliceHr } = await setup();
    const lenient = await get('Observation?subject.name=peterson&subject.shoe=x').set('prefer', 'handling=lenient');
    expect(lenient.status).to.equal(200);
    expect(((lenient.body.entry ?? []) as Array<{ resource: { id: string } }>).map((e) => e.resource.id).sort()).to.deep.equal([aliceHiv, aliceHr].sort());
    const bad = await get('Observation?subject.birthdate=yesterday').set('prefer', 'handling=lenient');
    expect(bad.status).to.equal(400);
  });
});
