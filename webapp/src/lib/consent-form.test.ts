/**
 * The consent form → FHIR Consent mapping, checked against the chaincode's own parser (parseConsent:
 * what hdx.consent:Grant accepts) and its own evaluation (evaluateAccess: what the consent then permits).
 */
import { expect } from 'chai';
import { parseConsent } from '@hdx/chaincode/dist/consent-model';
import { type AccessRequest, type EvaluationContext, evaluateAccess } from '@hdx/chaincode/dist/consent-evaluate';
import {
  ACT_CODE_SYSTEM,
  type ConsentForm,
  emptyForm,
  emptyScope,
  formFromConsent,
  formProblems,
  MSP_SYSTEM,
  plainWords,
  PURPOSE_SYSTEM,
  RESOURCE_TYPE_SYSTEM,
  toFhirConsent,
} from './consent-form';

const PATIENT = 'did:hdx:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const DOCTOR = 'did:hdx:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const ID = '3f6c1d5e-8a2b-4c7d-9e0f-1a2b3c4d5e6f';
const NOW = new Date('2026-12-07T10:00:00.123Z');

function form(patch: Partial<ConsentForm>): ConsentForm {
  return { ...emptyForm(), ...patch };
}

describe('consent form → FHIR Consent', () => {
  it('maps the simplest grant (an organization, for treatment) to what the CLI tests sign, and the chaincode accepts it unchanged', () => {
    const consent = toFhirConsent(form({ who: [{ kind: 'organization', value: 'Hospital2MSP' }] }), PATIENT, ID, NOW);
    expect(consent).to.deep.equal({
      resourceType: 'Consent',
      id: ID,
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: PATIENT },
      dateTime: '2026-12-07T10:00:00Z',
      provision: {
        type: 'permit',
        actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: 'Hospital2MSP' } } }],
        purpose: [{ system: PURPOSE_SYSTEM, code: 'TREAT' }],
      },
    });
    // What the ledger stores is exactly what the patient signed.
    expect(parseConsent(consent)).to.deep.equal(consent);
  });

  it('maps who, what, why, when, data period and exceptions to the provision model the chaincode parses', () => {
    const consent = toFhirConsent(
      form({
        who: [
          { kind: 'organization', value: ' Hospital2MSP ' },
          { kind: 'person', value: DOCTOR },
        ],
        what: { dataClasses: ['labs', 'allergies'], resourceTypes: ['CarePlan'], securityLabels: [] },
        why: ['TREAT', 'CAREMGT'],
        validFrom: '2026-12-01',
        validTo: '2027-06-30',
        dataFrom: '2020-01-01',
        dataTo: '',
        exceptions: [
          { ...emptyScope(), securityLabels: [`${ACT_CODE_SYSTEM}|PSY`] },
          { ...emptyScope(), dataClasses: ['documents'] },
        ],
      }),
      PATIENT,
      ID,
      NOW,
    );
    const parsed = parseConsent(consent);
    expect(parsed).to.deep.equal(consent);
    const p = parsed.provision;
    expect(p.type).to.equal('permit');
    expect(p.actor).to.deep.equal([{ reference: { identifier: { system: MSP_SYSTEM, value: 'Hospital2MSP' } } }, { reference: { reference: DOCTOR } }]);
    expect(p.class?.map((c) => c.code)).to.deep.equal(['Observation', 'DiagnosticReport', 'Specimen', 'AllergyIntolerance', 'CarePlan']);
    expect(p.class?.every((c) => c.system === RESOURCE_TYPE_SYSTEM)).to.equal(true);
    expect(p.purpose?.map((c) => c.code)).to.deep.equal(['TREAT', 'CAREMGT']);
    expect(p.period).to.deep.equal({ start: '2026-12-01', end: '2027-06-30' });
    expect(p.dataPeriod).to.deep.equal({ start: '2020-01-01' });
    expect(p.provision).to.deep.equal([
      { type: 'deny', securityLabel: [{ system: ACT_CODE_SYSTEM, code: 'PSY' }] },
      {
        type: 'deny',
        class: [
          { system: RESOURCE_TYPE_SYSTEM, code: 'DocumentReference' },
          { system: RESOURCE_TYPE_SYSTEM, code: 'Composition' },
        ],
      },
    ]);
    expect(JSON.stringify(consent)).to.not.match(/"(display|text)"/);
  });

  it('permits and denies as the form says, by the chaincode’s own evaluation', () => {
    const consent = parseConsent(
      toFhirConsent(
        form({
          who: [{ kind: 'organization', value: 'Hospital2MSP' }],
          what: { ...emptyScope(), dataClasses: ['labs'] },
          validTo: '2027-06-30',
          exceptions: [{ ...emptyScope(), securityLabels: [`${ACT_CODE_SYSTEM}|PSY`] }],
        }),
        PATIENT,
        ID,
        NOW,
      ),
    );
    const request = (patch: Partial<AccessRequest>): AccessRequest => ({
      patient: PATIENT,
      actor: DOCTOR,
      actorOrganization: 'Hospital2MSP',
      actorAuth: 'did',
      custodian: 'Hospital1MSP',
      action: 'access',
      purpose: 'TREAT',
      resourceType: 'Observation',
      securityLabels: [],
      ...patch,
    });
    const context = (organization = 'Hospital2MSP', now = Date.parse('2026-12-08T00:00:00Z')): EvaluationContext => ({
      now,
      actorOrganizationDids: [],
      guardians: [],
      actorIdentity: { kind: 'practitioner', status: 'active', organization },
      submitter: 'Hospital1MSP',
      patientStatus: 'active',
    });
    const stored = [{ id: ID, status: 'active' as const, consent }];
    const decide = (patch: Partial<AccessRequest>, c = context()): string => evaluateAccess(request(patch), stored, c).decision;
    expect(decide({})).to.equal('permit');
    expect(decide({ resourceType: 'Condition' })).to.not.equal('permit');
    expect(decide({ purpose: 'HRESCH' })).to.not.equal('permit');
    expect(decide({ actorOrganization: 'Hospital3MSP' }, context('Hospital3MSP'))).to.not.equal('permit');
    expect(decide({ securityLabels: [`${ACT_CODE_SYSTEM}|PSY`] })).to.equal('deny');
    expect(decide({}, context('Hospital2MSP', Date.parse('2027-07-01T00:00:00Z')))).to.not.equal('permit');
  });

  it('names every problem of a form that cannot be signed, and refuses to map it', () => {
    const bad = form({
      who: [
        { kind: 'organization', value: 'not an msp id' },
        { kind: 'person', value: 'did:web:example.org' },
      ],
      what: { dataClasses: ['nope'], resourceTypes: ['observation'], securityLabels: ['PSY'] },
      why: [],
      validFrom: '2027-01-01',
      validTo: '2026-01-01',
      dataFrom: '2026-02-30',
      exceptions: [emptyScope()],
    });
    const problems = formProblems(bad);
    expect(problems).to.include('Who 1: the organization must be its member id, for example Hospital2MSP.');
    expect(problems).to.include('Who 2: the person must be given by their DID (did:hdx: and 43 characters).');
    expect(problems).to.include('Why: choose at least one purpose.');
    expect(problems).to.include('What: unknown data class nope.');
    expect(problems).to.include('What: "observation" is not a FHIR resource type (for example Observation).');
    expect(problems).to.include('What: "PSY" is not a label (system|code).');
    expect(problems).to.include('When: the start date must not be after the end date.');
    expect(problems).to.include('Which dates of data: the start date must be a date (YYYY-MM-DD).');
    expect(problems).to.include('Exception 1: choose what stays closed (a kind of data or a sensitivity).');
    expect(() => toFhirConsent(bad, PATIENT, ID)).to.throw(/Who 1/);
    expect(formProblems(form({ who: [{ kind: 'organization', value: 'Hospital2MSP' }] }))).to.deep.equal([]);
  });

  it('says the consent in plain words, and reads a stored consent back into the same words', () => {
    const f = form({
      who: [{ kind: 'organization', value: 'Hospital2MSP' }],
      what: { ...emptyScope(), dataClasses: ['labs'] },
      why: ['TREAT'],
      validTo: '2027-06-30',
      dataFrom: '2020-01-01',
      exceptions: [{ ...emptyScope(), securityLabels: [`${ACT_CODE_SYSTEM}|PSY`] }],
    });
    const words = plainWords(f);
    expect(words[0]).to.equal('I allow the staff of Hospital2MSP to see test results and measurements, for treating me.');
    expect(words[1]).to.equal('This permission holds until 2027-06-30.');
    expect(words[2]).to.equal('It covers only records dated from 2020-01-01 on.');
    expect(words[3]).to.equal('Except: records marked as mental health stay closed to them.');
    const stored = { ...toFhirConsent(f, PATIENT, ID, NOW), meta: { versionId: '1' } };
    expect(plainWords(formFromConsent(stored))).to.deep.equal(words);
  });
});
