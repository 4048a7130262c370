/**
 * _include and _revinclude (HTTP, fake ledger): what a page names is brought in, and every included
 * resource goes through the same enforcement point as a match (the caller's scopes, its compartment,
 * consent for each, one access entry), so an include never discloses what the caller may not see.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { consentLike, poster, registerAll } from '../test-support/http-fixture';

const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const OTHER = did('e');
const ALICE = did('a');
const BOB = did('b');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });

type SearchBundle = { total: number; entry?: Array<{ resource: { resourceType: string; id: string }; search: { mode: string } }> };

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
  const { app } = testApp({ store, ledger, subjectLinkSecret: Buffer.alloc(32, 5), idpIssuer: 'https://idp.hospital1.example' });
  const post = poster(app, staff);
  const alice = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
  const bob = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: BOB }] });
  const med = await post({ resourceType: 'Medication', code: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '313782' }] } });
  const enc = await post({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${alice}` },
  });
  const condition = (patient: string) => ({
    resourceType: 'Condition',
    code: { text: 'x' },
    subject: { reference: `Patient/${patient}` },
    encounter: { reference: `Encounter/${enc}` },
  });
  const cond = await post(condition(alice));
  // Another patient's record naming Alice's encounter: never included for Alice.
  const bobCond = await post(condition(bob));
  const rx = await post({
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    subject: { reference: `Patient/${alice}` },
    medicationReference: { reference: `Medication/${med}` },
  });
  const get = async (q: string, as: [string, string] = staff): Promise<SearchBundle> => {
    const res = await request(app)
      .get(`/fhir/${q}`)
      .set(...as);
    expect(res.status, `${q}: ${JSON.stringify(res.body)}`).to.equal(200);
    return res.body as SearchBundle;
  };
  const entries = (b: SearchBundle): string[] => (b.entry ?? []).map((e) => `${e.search.mode} ${e.resource.resourceType}/${e.resource.id}`).sort();
  return { app, ledger, denied, alice, bob, med, enc, cond, bobCond, rx, get, entries };
}

/** An Organization, an Encounter of the patient it serves, and a Condition of that Encounter: a path of two rounds from the Condition. */
async function clinicPath(app: Parameters<typeof poster>[0], patient: string): Promise<{ org: string; enc2: string; cond2: string }> {
  const post = poster(app, staff);
  const org = await post({ resourceType: 'Organization', name: 'Clinic' });
  const enc2 = await post({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${patient}` },
    serviceProvider: { reference: `Organization/${org}` },
  });
  const cond2 = await post({ resourceType: 'Condition', code: { text: 'y' }, subject: { reference: `Patient/${patient}` }, encounter: { reference: `Encounter/${enc2}` } });
  return { org, enc2, cond2 };
}

describe('_include and _revinclude through the enforcement point (HTTP, fake ledger)', () => {
  it('brings in what the page names (reference data included); total counts the matches only', async () => {
    const { get, entries, alice, med, enc, cond, bobCond, rx } = await setup();
    const rxs = await get(`MedicationRequest?patient=${alice}&_include=MedicationRequest:medication`);
    expect(rxs.total).to.equal(1);
    expect(entries(rxs)).to.deep.equal([`include Medication/${med}`, `match MedicationRequest/${rx}`]);
    const encs = await get(`Encounter?patient=${alice}&_revinclude=Condition:encounter`);
    expect(encs.total).to.equal(1);
    expect(entries(encs)).to.deep.equal([`include Condition/${bobCond}`, `include Condition/${cond}`, `match Encounter/${enc}`].sort());
  });

  it('never discloses an included resource the caller may not see: consent, compartment and scopes each apply; its access is recorded', async () => {
    const { get, entries, ledger, denied, alice, med, enc, cond, rx } = await setup();
    // Another member's practitioner whose consent does not cover Conditions.
    denied.add('Condition');
    const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const before = ledger.audit.length;
    const encs = await get(`Encounter?patient=${ALICE}&_revinclude=Condition:encounter`, other);
    expect(entries(encs)).to.deep.equal([`match Encounter/${enc}`]);
    // The Encounter's access is recorded; the Conditions were evaluated (denied), not released.
    expect(ledger.audit.slice(before).flatMap((e) => e.resources)).to.deep.equal([`Encounter/${enc}/_history/1`]);
    // Alice herself: her own Condition, never Bob's that names her encounter.
    const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    expect(entries(await get(`Encounter?_revinclude=Condition:encounter`, asAlice))).to.deep.equal([`include Condition/${cond}`, `match Encounter/${enc}`].sort());
    // Scopes: a token for MedicationRequest only gets no Medication.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/MedicationRequest.read' });
    expect(entries(await get(`MedicationRequest?patient=${alice}&_include=MedicationRequest:medication`, narrow))).to.deep.equal([`match MedicationRequest/${rx}`]);
    expect(med).to.be.a('string');
  });

  it('_include:iterate and _revinclude:iterate apply to what was included too, round by round', async () => {
    const { get, entries, alice, bob, enc, cond, bobCond } = await setup();
    // Condition → its Encounter → the Encounter's subject (not the searched type's parameter: :iterate only).
    expect(entries(await get(`Condition?patient=${alice}&_include=Condition:encounter&_include:iterate=Encounter:subject`))).to.deep.equal(
      [`include Encounter/${enc}`, `include Patient/${alice}`, `match Condition/${cond}`].sort(),
    );
    // Encounter ← Conditions naming it → their subjects.
    expect(entries(await get(`Encounter?patient=${alice}&_revinclude=Condition:encounter&_include:iterate=Condition:subject`))).to.deep.equal(
      [`include Condition/${bobCond}`, `include Condition/${cond}`, `include Patient/${alice}`, `include Patient/${bob}`, `match Encounter/${enc}`].sort(),
    );
    // Three rounds: Encounter → Patient → the Patient's Conditions; nothing is included twice.
    expect(entries(await get(`Encounter?patient=${alice}&_include:iterate=Encounter:subject&_revinclude:iterate=Condition:subject`))).to.deep.equal(
      [`include Condition/${cond}`, `include Patient/${alice}`, `match Encounter/${enc}`].sort(),
    );
  });

  it('an iterated include starts only from what the caller may see: one withheld at any round breaks the path there', async () => {
    const { get, entries, ledger, denied, alice, enc, cond } = await setup();
    const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const q = `Condition?patient=${ALICE}&_include=Condition:encounter&_include:iterate=Encounter:subject`;
    expect(entries(await get(q, other))).to.deep.equal([`include Encounter/${enc}`, `include Patient/${alice}`, `match Condition/${cond}`].sort());
    // Denied the Encounter: neither it nor the Patient reached through it, though the Patient itself is permitted.
    denied.add('Encounter');
    const before = ledger.audit.length;
    expect(entries(await get(q, other))).to.deep.equal([`match Condition/${cond}`]);
    expect(ledger.audit.slice(before).flatMap((e) => e.resources)).to.deep.equal([`Condition/${cond}/_history/1`]);
    // Alice: Bob's Condition naming her encounter is outside her compartment, and so is Bob, reached only through it.
    const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    expect(entries(await get(`Encounter?_revinclude=Condition:encounter&_include:iterate=Condition:subject`, asAlice))).to.deep.equal(
      [`include Condition/${cond}`, `include Patient/${alice}`, `match Encounter/${enc}`].sort(),
    );
    // Scopes: a token that does not read Encounter reaches no Patient through one.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Condition.read user/Patient.read' });
    expect(entries(await get(`Condition?patient=${alice}&_include=Condition:encounter&_include:iterate=Encounter:subject`, narrow))).to.deep.equal([`match Condition/${cond}`]);
  });

  it('* follows every reference parameter (_include=*, _revinclude=*, Type:*[:Target], _include:iterate=Type:*)', async () => {
    const { get, entries, alice, med, enc, cond, bobCond, rx } = await setup();
    // Every reference parameter of the type searched: the Condition's encounter and its subject (named by patient and subject, included once).
    expect(entries(await get(`Condition?patient=${alice}&_include=*`))).to.deep.equal([`include Encounter/${enc}`, `include Patient/${alice}`, `match Condition/${cond}`].sort());
    expect(entries(await get(`MedicationRequest?patient=${alice}&_include=*`))).to.deep.equal(
      [`include Medication/${med}`, `include Patient/${alice}`, `match MedicationRequest/${rx}`].sort(),
    );
    // Every reference parameter of any type that may refer to the type searched.
    expect(entries(await get(`Encounter?patient=${alice}&_revinclude=*`))).to.deep.equal(
      [`include Condition/${bobCond}`, `include Condition/${cond}`, `match Encounter/${enc}`].sort(),
    );
    const patients = await get(`Patient?_id=${alice}&_revinclude=*`);
    expect(patients.total).to.equal(1);
    expect(entries(patients)).to.deep.equal([`include Condition/${cond}`, `include Encounter/${enc}`, `include MedicationRequest/${rx}`, `match Patient/${alice}`].sort());
    // One type's parameters, to one target type.
    expect(entries(await get(`Condition?patient=${alice}&_include=Condition:*:Encounter`))).to.deep.equal([`include Encounter/${enc}`, `match Condition/${cond}`].sort());
    expect(entries(await get(`Encounter?patient=${alice}&_revinclude=MedicationRequest:*`))).to.deep.equal([`match Encounter/${enc}`]);
    // Iterated, from what was included: the Encounter's every reference (its subject).
    expect(entries(await get(`Condition?patient=${alice}&_include=Condition:encounter&_include:iterate=Encounter:*`))).to.deep.equal(
      [`include Encounter/${enc}`, `include Patient/${alice}`, `match Condition/${cond}`].sort(),
    );
  });

  it('* goes through the enforcement point like a named include: consent, compartment and scopes each apply; only what is released is recorded', async () => {
    const { get, entries, ledger, denied, alice, enc, cond, rx } = await setup();
    // Another member's practitioner whose consent covers neither Conditions nor MedicationRequests.
    denied.add('Condition');
    denied.add('MedicationRequest');
    const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const before = ledger.audit.length;
    const patients = await get(`Patient?patient=${ALICE}&_revinclude=*`, other);
    expect([patients.total, entries(patients)]).to.deep.equal([1, [`include Encounter/${enc}`, `match Patient/${alice}`].sort()]);
    expect(
      ledger.audit
        .slice(before)
        .flatMap((e) => e.resources)
        .sort(),
    ).to.deep.equal([`Encounter/${enc}/_history/1`, `Patient/${alice}/_history/1`].sort());
    expect(entries(await get(`Encounter?patient=${ALICE}&_revinclude=*&_include=*`, other))).to.deep.equal([`include Patient/${alice}`, `match Encounter/${enc}`].sort());
    // Alice herself: her own Condition, never Bob's that names her encounter.
    const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    expect(entries(await get(`Encounter?_revinclude=*`, asAlice))).to.deep.equal([`include Condition/${cond}`, `match Encounter/${enc}`].sort());
    // Scopes: a token reading Encounter and MedicationRequest only gets no Patient and no Condition.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Encounter.read user/MedicationRequest.read' });
    expect(entries(await get(`Encounter?patient=${alice}&_revinclude=*&_include=*`, narrow))).to.deep.equal([`match Encounter/${enc}`]);
    expect(rx).to.be.a('string');
  });

  it('_include:iterate=* and _revinclude:iterate=* follow every reference parameter of whatever each round reached', async () => {
    const { app, get, entries, alice, bob, enc, cond, bobCond, rx, med } = await setup();
    const { org, enc2, cond2 } = await clinicPath(app, alice);
    // The Condition's references, then the Encounter's (its service provider), round by round; _include=* stops at the first.
    expect(entries(await get(`Condition?_id=${cond2}&_include=*`))).to.deep.equal([`include Encounter/${enc2}`, `include Patient/${alice}`, `match Condition/${cond2}`].sort());
    expect(entries(await get(`Condition?_id=${cond2}&_include:iterate=*`))).to.deep.equal(
      [`include Encounter/${enc2}`, `include Organization/${org}`, `include Patient/${alice}`, `match Condition/${cond2}`].sort(),
    );
    // Everything pointing at Alice, then everything pointing at that: Bob's Condition names her encounter.
    expect(entries(await get(`Patient?_id=${alice}&_revinclude=*`))).to.not.include(`include Condition/${bobCond}`);
    expect(entries(await get(`Patient?_id=${alice}&_revinclude:iterate=*`))).to.deep.equal(
      [
        `include Condition/${bobCond}`,
        `include Condition/${cond}`,
        `include Condition/${cond2}`,
        `include Encounter/${enc}`,
        `include Encounter/${enc2}`,
        `include MedicationRequest/${rx}`,
        `match Patient/${alice}`,
      ].sort(),
    );
    // Both ways: from the MedicationRequest to its Medication and Alice, and from Alice to all that points at her.
    const both = entries(await get(`MedicationRequest?_id=${rx}&_include:iterate=*&_revinclude:iterate=*`));
    expect(both).to.include.members([
      `include Medication/${med}`,
      `include Patient/${alice}`,
      `include Condition/${cond2}`,
      `include Organization/${org}`,
      `include Condition/${bobCond}`,
    ]);
    // The fourth round reaches Bob through his Condition naming Alice's encounter; nothing is included twice.
    expect(both).to.include(`include Patient/${bob}`);
    expect(new Set(both).size).to.equal(both.length);
  });

  it('_include:iterate=* and _revinclude:iterate=* go through the enforcement point at every round: what the caller may not see is absent, and breaks the path', async () => {
    const { app, get, entries, ledger, denied, alice, bob, enc, cond, bobCond } = await setup();
    const { org, enc2, cond2 } = await clinicPath(app, alice);
    const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const q = `Condition?patient=${ALICE}&_id=${cond2}&_include:iterate=*`;
    expect(entries(await get(q, other))).to.deep.equal([`include Encounter/${enc2}`, `include Organization/${org}`, `include Patient/${alice}`, `match Condition/${cond2}`].sort());
    // Denied Encounters: neither the Encounter nor the Organization reached only through it; only what is released is recorded.
    denied.add('Encounter');
    const before = ledger.audit.length;
    expect(entries(await get(q, other))).to.deep.equal([`include Patient/${alice}`, `match Condition/${cond2}`].sort());
    expect(
      ledger.audit
        .slice(before)
        .flatMap((e) => e.resources)
        .sort(),
    ).to.deep.equal([`Condition/${cond2}/_history/1`, `Patient/${alice}/_history/1`].sort());
    denied.clear();
    // Alice herself: never Bob's Condition naming her encounter, nor Bob reached through it.
    const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    const mine = entries(await get(`Encounter?_id=${enc}&_revinclude:iterate=*&_include:iterate=*`, asAlice));
    expect(mine).to.include.members([`match Encounter/${enc}`, `include Condition/${cond}`, `include Patient/${alice}`, `include Condition/${cond2}`]);
    expect(mine).to.not.include.members([`include Condition/${bobCond}`]);
    expect(mine).to.not.include.members([`include Patient/${bob}`]);
    // Scopes: a token that does not read Encounter reaches no Organization through one.
    const narrow = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Condition.read user/Patient.read user/Organization.read' });
    expect(entries(await get(`Condition?_id=${cond2}&_include:iterate=*`, narrow))).to.deep.equal([`include Patient/${alice}`, `match Condition/${cond2}`].sort());
    // Another member naming no patient may not reverse-include patient records: refused before anything is recorded.
    const recorded = ledger.audit.length;
    const refused = await request(app)
      .get(`/fhir/Organization?_id=${org}&_revinclude:iterate=*`)
      .set(...other);
    expect([refused.status, refused.body.resourceType]).to.deep.equal([400, 'OperationOutcome']);
    expect(refused.body.issue[0].diagnostics).to.match(/^A search from outside Hospital1MSP must name the patient \(patient=<the patient DID>\) to _revinclude [A-Za-z]+$/);
    expect(ledger.audit.length).to.equal(recorded);
  });

  it('a _revinclude of patient records looks among the patients the caller may search only: another member must name one, a patient its own', async () => {
    const { app, get, entries, ledger, bob, med } = await setup();
    // Both patients' MedicationRequests point at the same Medication (reference data, searchable by anyone).
    await poster(
      app,
      staff,
    )({ resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject: { reference: `Patient/${bob}` }, medicationReference: { reference: `Medication/${med}` } });
    const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
    const before = ledger.audit.length;
    const refused = await request(app)
      .get(`/fhir/Medication?_revinclude=MedicationRequest:medication`)
      .set(...other);
    expect(refused.status).to.equal(400);
    expect(refused.body.issue[0].diagnostics).to.equal('A search from outside Hospital1MSP must name the patient (patient=<the patient DID>) to _revinclude MedicationRequest');
    // Refused before anything was released or recorded.
    expect(ledger.audit.length).to.equal(before);
    // Alice's own search finds her MedicationRequest only: Bob's is not even a candidate.
    const asAlice = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    const mine = await get('Medication?_revinclude=MedicationRequest:medication', asAlice);
    expect(entries(mine).filter((e) => e.startsWith('include'))).to.have.length(1);
    // The custodian's own staff: both.
    expect(entries(await get('Medication?_revinclude=MedicationRequest:medication')).filter((e) => e.startsWith('include'))).to.have.length(2);
  });

  it('refuses includes it does not do', async () => {
    const { app, alice } = await setup();
    for (const q of [
      '_include=Condition:*',
      '_include=Encounter:*:Medication',
      '_include=Nothing:*',
      '_include=*:subject',
      '_include=Encounter:*:Observation:x',
      '_include=Observation:subject',
      '_include=Encounter:status',
      '_include:recurse=Encounter:subject',
      '_include:iterate=Encounter:status',
      '_revinclude:iterate=Condition:encounter:Observation',
      '_revinclude=Condition:encounter:Observation',
      '_include=Encounter:subject:Observation',
    ]) {
      const res = await request(app)
        .get(`/fhir/Encounter?patient=${alice}&${q}`)
        .set(...staff);
      expect(res.status, q).to.equal(400);
    }
  });
});
