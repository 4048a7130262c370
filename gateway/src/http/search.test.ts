/**
 * Search from the spec's SearchParameter definitions (HTTP, fake ledger): token, string, reference,
 * date, uri, number and quantity parameters indexed at write time with FHIRPath; modifiers :not, :exact, :contains,
 * :missing; today's patient / subject / code / date / _id / _lastUpdated still work; anything else 400.
 */
import { expect } from 'chai';
import request from 'supertest';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { poster } from '../test-support/http-fixture';

const DR = `did:hdx:${'d'.repeat(43)}`;
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const LOINC = 'http://loinc.org';

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  await ledger.registerDid({ did: DR, kind: 'practitioner' });
  const { app } = testApp({ store, ledger, subjectLinkSecret: Buffer.alloc(32, 5), idpIssuer: 'https://idp.hospital1.example' });
  const post = poster(app, staff);
  const ids = async (query: string): Promise<string[]> => {
    const res = await request(app)
      .get(`/fhir/${query}`)
      .set(...staff);
    expect(res.status, `${query}: ${JSON.stringify(res.body)}`).to.equal(200);
    return ((res.body.entry ?? []) as Array<{ resource: { id: string } }>).map((e) => e.resource.id).sort();
  };
  return { app, post, ids };
}

describe('search from the SearchParameter definitions (HTTP, fake ledger)', () => {
  it('token, string, reference, date and uri parameters of several types; modifiers; repeats AND, commas OR', async () => {
    const { post, ids } = await setup();
    const ann = await post({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:mrn', value: 'MRN-1' }],
      name: [{ family: 'Müller', given: ['Ann'] }],
      gender: 'female',
      birthDate: '1980-05-01',
    });
    const bob = await post({ resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: 'MRN-2' }], name: [{ family: 'Mullins', given: ['Bob'] }], gender: 'male' });
    const hr = await post({
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
      code: { coding: [{ system: LOINC, code: '8867-4' }] },
      subject: { reference: `Patient/${ann}` },
      effectiveDateTime: '2024-03-05T10:00:00Z',
    });
    const bp = await post({
      resourceType: 'Observation',
      status: 'amended',
      code: { coding: [{ system: LOINC, code: '85354-9' }] },
      subject: { reference: `Patient/${ann}` },
      effectivePeriod: { start: '2024-04-01T08:00:00Z', end: '2024-04-01T09:00:00Z' },
    });
    const enc = await post({
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${bob}` },
      period: { start: '2024-01-10', end: '2024-01-12' },
    });
    const dr = await post({ resourceType: 'Practitioner', identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '999' }], name: [{ family: 'Osler' }] });

    // token: system|code, code alone, |code (no system), system| ; :not
    expect(await ids(`Observation?code=${LOINC}|8867-4`)).to.deep.equal([hr]);
    expect(await ids('Observation?code=8867-4,85354-9')).to.deep.equal([bp, hr].sort());
    expect(await ids('Observation?code=|8867-4')).to.deep.equal([]);
    expect(await ids(`Observation?code=${LOINC}|`)).to.deep.equal([bp, hr].sort());
    expect(await ids('Observation?status=final')).to.deep.equal([hr]);
    expect(await ids('Observation?status:not=final')).to.deep.equal([bp]);
    expect(await ids('Observation?category=vital-signs')).to.deep.equal([hr]);
    expect(await ids('Patient?identifier=urn:mrn|MRN-2')).to.deep.equal([bob]);
    expect(await ids('Patient?gender=female')).to.deep.equal([ann]);
    expect(await ids('Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999')).to.deep.equal([dr]);
    // string: starts-with, case and accent insensitive; :exact; :contains
    expect(await ids('Patient?family=mul')).to.deep.equal([ann, bob].sort());
    expect(await ids('Patient?family=muller')).to.deep.equal([ann]);
    expect(await ids('Patient?family:exact=Müller')).to.deep.equal([ann]);
    expect(await ids('Patient?family:exact=muller')).to.deep.equal([]);
    expect(await ids('Patient?name:contains=llin')).to.deep.equal([bob]);
    expect(await ids('Practitioner?name=osl')).to.deep.equal([dr]);
    // reference: Type/id or id; the patient parameters keep naming the governing patient
    expect(await ids(`Observation?subject=Patient/${ann}`)).to.deep.equal([bp, hr].sort());
    expect(await ids(`Encounter?patient=${bob}`)).to.deep.equal([enc]);
    expect(await ids(`Encounter?subject=Patient/${bob}`)).to.deep.equal([enc]);
    // date: a dateTime, a Period, a date; prefixes; repeats AND
    expect(await ids('Observation?date=2024-03')).to.deep.equal([hr]);
    expect(await ids('Observation?date=ge2024-03-06')).to.deep.equal([bp]);
    expect(await ids('Observation?date=ge2024-01-01&date=lt2024-04-01')).to.deep.equal([hr]);
    expect(await ids('Observation?date=2024-04-01')).to.deep.equal([bp]);
    expect(await ids('Encounter?date=2024-01-11')).to.deep.equal([]);
    expect(await ids('Encounter?date=2024-01')).to.deep.equal([enc]);
    expect(await ids('Encounter?date=le2024-01-10&date=ge2024-01-12')).to.deep.equal([enc]);
    expect(await ids('Patient?birthdate=1980')).to.deep.equal([ann]);
    // :missing
    expect(await ids('Patient?birthdate:missing=true')).to.deep.equal([bob]);
    expect(await ids('Patient?birthdate:missing=false')).to.deep.equal([ann]);
    // _id and _lastUpdated (columns)
    expect(await ids(`Patient?_id=${ann}`)).to.deep.equal([ann]);
    expect(await ids('Patient?_lastUpdated=ge2000-01-01')).to.deep.equal([ann, bob].sort());
  });

  it('refuses what it does not do: unknown parameters, parameters of another type, unsupported modifiers and kinds, bad values', async () => {
    const { app } = await setup();
    for (const q of [
      'Observation?subjet=x',
      'Encounter?code=x',
      'Practitioner?patient=x',
      'Patient?family:text=x',
      'Location?near=42.25|-83.69|10|km',
      'Observation?date=yesterday',
      'Patient?birthdate:missing=maybe',
      'Observation?_sort=shoe-size',
    ]) {
      const res = await request(app)
        .get(`/fhir/${q}`)
        .set(...staff);
      expect(res.status, q).to.equal(400);
      expect(res.body.resourceType).to.equal('OperationOutcome');
    }
  });

  it('Prefer: handling=lenient ignores unknown parameters and leaves them out of the self link; strict (the default) refuses them', async () => {
    const { app, post } = await setup();
    const ann = await post({ resourceType: 'Patient', name: [{ family: 'Lenient', given: ['Ann'] }], gender: 'female' });
    await post({ resourceType: 'Patient', name: [{ family: 'Other', given: ['Bob'] }], gender: 'male' });
    const lenient = await request(app)
      .get('/fhir/Patient?gender=female&shoe-size=42')
      .set(...staff)
      .set('prefer', 'handling=lenient');
    expect(lenient.status, JSON.stringify(lenient.body)).to.equal(200);
    expect((lenient.body.entry as Array<{ resource: { id: string } }>).map((e) => e.resource.id)).to.deep.equal([ann]);
    const self = (lenient.body.link as Array<{ relation: string; url: string }>).find((l) => l.relation === 'self')?.url ?? '';
    expect(self).to.contain('gender=female');
    expect(self).to.not.contain('shoe-size');
    for (const prefer of [undefined, 'handling=strict']) {
      const req = request(app)
        .get('/fhir/Patient?gender=female&shoe-size=42')
        .set(...staff);
      const res = prefer ? await req.set('prefer', prefer) : await req;
      expect(res.status, String(prefer)).to.equal(400);
      expect(JSON.stringify(res.body)).to.contain('shoe-size');
    }
    // Lenient is about unknown parameters only: a bad value of a known one is still refused.
    const bad = await request(app)
      .get('/fhir/Patient?birthdate=yesterday&shoe-size=42')
      .set(...staff)
      .set('prefer', 'handling=lenient');
    expect(bad.status).to.equal(400);
  });

  it('the CapabilityStatement lists every stored type with exactly the parameters searched', async () => {
    const { app } = await setup();
    const cs = await request(app).get('/fhir/metadata');
    const types = (cs.body.rest[0].resource as Array<{ type: string; searchParam?: Array<{ name: string; type: string }> }>).filter(
      (r) => !['Consent', 'AuditEvent'].includes(r.type),
    );
    expect(types).to.have.length(143);
    const obs = types.find((r) => r.type === 'Observation')?.searchParam?.map((p) => p.name) ?? [];
    expect(obs).to.include.members(['_id', '_lastUpdated', 'code', 'date', 'patient', 'subject', 'status', 'category']);
    expect(obs).to.include.members(['value-quantity', 'component-value-quantity', 'code-value-quantity', 'component-code-value-quantity']);
    expect(types.find((r) => r.type === 'Observation')?.searchParam?.find((p) => p.name === 'value-quantity')?.type).to.equal('quantity');
    expect(types.find((r) => r.type === 'RiskAssessment')?.searchParam?.find((p) => p.name === 'probability')?.type).to.equal('number');
    // special parameters and the composites not read within one element are not served, so not listed
    expect(types.find((r) => r.type === 'MolecularSequence')?.searchParam?.map((p) => p.name)).to.not.include('chromosome-variant-coordinate');
    expect(types.find((r) => r.type === 'Location')?.searchParam?.map((p) => p.name)).to.not.include('near');
  });
});
