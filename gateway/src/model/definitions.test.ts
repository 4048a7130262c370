import { expect } from 'chai';
import {
  evaluate,
  clinicalDateOf,
  codeTokensOf,
  expressionFor,
  governedByPatientReference,
  inPatientCompartment,
  patientReferencesOf,
  patientTargetReferencesOf,
  R4_TYPES,
  searchParamsOf,
  SUPPORTED_TYPES,
  valuesOf,
} from './definitions';

describe('FHIR R4 definitions (from the spec package, evaluated with fhirpath)', () => {
  it('knows every R4 resource type; stores all but the two the ledger holds', () => {
    expect(R4_TYPES.size).to.equal(145);
    expect(SUPPORTED_TYPES.size).to.equal(143);
    for (const t of ['Practitioner', 'Organization', 'Location', 'Medication', 'Claim', 'ExplanationOfBenefit', 'Provenance', 'ImagingStudy', 'SupplyDelivery'])
      expect(SUPPORTED_TYPES.has(t), t).to.equal(true);
    expect(SUPPORTED_TYPES.has('Consent')).to.equal(false);
    expect(SUPPORTED_TYPES.has('AuditEvent')).to.equal(false);
  });

  it('the patient compartment decides what is reference data', () => {
    for (const t of ['Observation', 'Claim', 'CarePlan', 'Provenance', 'MedicationAdministration']) expect(inPatientCompartment(t), t).to.equal(true);
    for (const t of ['Practitioner', 'Organization', 'Location', 'Medication', 'Device']) expect(inPatientCompartment(t), t).to.equal(false);
    // Device is outside the compartment but Device.patient targets Patient.
    expect(governedByPatientReference('Device')).to.equal(true);
    expect(governedByPatientReference('Practitioner')).to.equal(false);
  });

  it('finds the patient through the compartment parameters, the date and code through the SearchParameter expressions', () => {
    const obs = {
      resourceType: 'Observation',
      subject: { reference: 'Patient/p1' },
      performer: [{ reference: 'Practitioner/x' }],
      effectivePeriod: { start: '2024-01-02T10:00:00+01:00' },
      code: { coding: [{ system: 'http://loinc.org', code: '1-2' }] },
    };
    expect(patientReferencesOf(obs)).to.deep.equal(['Patient/p1']);
    expect(clinicalDateOf(obs)).to.equal('2024-01-02T09:00:00.000Z');
    expect(codeTokensOf(obs)).to.deep.equal(['http://loinc.org|1-2']);
    // A subject that is not a Patient puts no patient in the compartment.
    expect(patientReferencesOf({ resourceType: 'Observation', subject: { reference: 'Group/g' } })).to.deep.equal([]);
    // MedicationRequest's code is its medication[x] as a CodeableConcept.
    expect(codeTokensOf({ resourceType: 'MedicationRequest', medicationCodeableConcept: { coding: [{ system: 's', code: 'c' }] } })).to.deep.equal(['s|c']);
    expect(valuesOf({ resourceType: 'Patient', id: 'x' }, '_id')).to.deep.equal(['x']);
    // The clinical date (consent's dataPeriod) of types without a date parameter, or with it empty.
    expect(clinicalDateOf({ resourceType: 'Condition', onsetDateTime: '2023-02-03', recordedDate: '2024-01-01' })).to.equal('2023-02-03');
    expect(clinicalDateOf({ resourceType: 'Condition', recordedDate: '2024-01-01' })).to.equal('2024-01-01');
    expect(clinicalDateOf({ resourceType: 'MedicationRequest', authoredOn: '2022-05-06' })).to.equal('2022-05-06');
    expect(clinicalDateOf({ resourceType: 'Claim', created: '2021-07-08' })).to.equal('2021-07-08');
    expect(clinicalDateOf({ resourceType: 'Practitioner' })).to.equal(null);
  });

  it('outside the compartment, anything but a literal reference to another type counts as a patient reference (refused, not reference data)', () => {
    expect(patientTargetReferencesOf({ resourceType: 'Device', patient: { identifier: { value: 'MRN' } } })).to.deep.equal(['?']);
    expect(patientTargetReferencesOf({ resourceType: 'Device', patient: { reference: 'urn:uuid:0' } })).to.deep.equal(['urn:uuid:0']);
    expect(patientTargetReferencesOf({ resourceType: 'Device' })).to.deep.equal([]);
    expect(patientTargetReferencesOf({ resourceType: 'Device', patient: { reference: 'https://ehr.example/fhir/Patient/7/_history/2' } })).to.deep.equal([
      'https://ehr.example/fhir/Patient/7/_history/2',
    ]);
    // Clearly not a patient: a reference to another type (relative or absolute), a contained resource of another type, a typed identifier.
    expect(patientTargetReferencesOf({ resourceType: 'Device', patient: { reference: 'https://ehr.example/fhir/Group/herd' } })).to.deep.equal([]);
    expect(patientTargetReferencesOf({ resourceType: 'Device', contained: [{ resourceType: 'Group', id: 'g' }], patient: { reference: '#g' } })).to.deep.equal([]);
    expect(patientTargetReferencesOf({ resourceType: 'Device', contained: [{ resourceType: 'Patient', id: 'p' }], patient: { reference: '#p' } })).to.deep.equal(['#p']);
    expect(patientTargetReferencesOf({ resourceType: 'Device', patient: { type: 'Group', identifier: { value: 'x' } } })).to.deep.equal([]);
  });

  it('evaluates a union whose values the engine cannot compare (a Quantity with a comparator) term by term', () => {
    const obs = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'eGFR' },
      component: [{ code: { text: 'eGFR' }, valueQuantity: { value: 60, comparator: '>', unit: 'mL/min', system: 'http://unitsofmeasure.org', code: 'mL/min' } }],
    };
    const found = evaluate(obs, 'Observation.value.ofType(Quantity) | Observation.component.value.ofType(Quantity)');
    expect(found).to.have.length(1);
    expect(found[0]).to.include({ value: 60, comparator: '>' });
  });

  it('cuts a shared expression to the terms for one type, parentheses and quotes respected', () => {
    expect(expressionFor("A.x | (B.y as Quantity) | B.z.where(a = '|')", 'B')).to.equal("(B.y as Quantity) | B.z.where(a = '|')");
    expect(expressionFor('A.x', 'B')).to.equal(undefined);
    expect(searchParamsOf('Observation').get('patient')?.type).to.equal('reference');
  });
});
