import { expect } from 'chai';
import { type FhirIssue, MAX_ISSUES, fhirResourceTypes, validateResource } from './index';
import { pointerSegments } from './ajv-issues';
import { isCertainlyAfter, parseFhirDateTime } from './fhir-datetime';
import { REQUIRED_ELEMENTS } from './required-elements';
import { loadFhirSchema } from './schema';
import { buildTypeModel } from './type-model';

const UUID1 = 'urn:uuid:6f1c1b4e-3d2a-5b8e-9c1d-2e3f4a5b6c7d';
const UUID2 = 'urn:uuid:0a1b2c3d-4e5f-5a6b-8c7d-8e9f0a1b2c3d';

function one(issues: FhirIssue[], expression: string): FhirIssue {
  const found = issues.filter((i) => i.expression === expression);
  expect(found, `issues at ${expression}: ${JSON.stringify(issues)}`).to.have.length(1);
  return found[0] as FhirIssue;
}

function patient(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { resourceType: 'Patient', id: 'p1', name: [{ family: 'Doe', given: ['Jane'] }], birthDate: '1970-01-31', ...extra };
}

function observation(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: 'Patient/p1' },
    ...extra,
  };
}

describe('validateResource: schema', () => {
  it('accepts valid resources of several types', () => {
    expect(validateResource(patient())).to.deep.equal([]);
    expect(validateResource(observation({ valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } }))).to.deep.equal([]);
    expect(
      validateResource(
        observation({
          valueSampledData: { origin: { value: 0, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' }, period: 1000, dimensions: 1, data: '70 71 E' },
        }),
      ),
    ).to.deep.equal([]);
    expect(validateResource({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' } })).to.deep.equal(
      [],
    );
  });

  it('lists every supported type and nothing else', () => {
    const types = fhirResourceTypes();
    expect(types.size).to.equal(146);
    expect(types.has('Patient')).to.equal(true);
    expect(types.has('Resource')).to.equal(false);
  });

  it('maps instancePath to a FHIRPath-like expression with indexes', () => {
    const issues = validateResource(patient({ name: [{ family: 'Doe', given: ['Jane', 5] }] }));
    const i = one(issues, 'Patient.name[0].given[1]');
    expect(i).to.include({ severity: 'error', code: 'structure' });
    expect(i.diagnostics).to.match(/must be a JSON string/);
  });

  it('reports unknown elements with the element name and structure code', () => {
    const i = one(validateResource(patient({ favouriteColour: 'blue' })), 'Patient.favouriteColour');
    expect(i.code).to.equal('structure');
    expect(i.diagnostics).to.match(/unknown element/);
  });

  it('reports a missing required element at the element path', () => {
    const obs = observation();
    delete obs['code'];
    expect(one(validateResource(obs), 'Observation.code').code).to.equal('required');
  });

  it('reports a bad primitive format by primitive name', () => {
    const i = one(validateResource(patient({ birthDate: '1970-13-01' })), 'Patient.birthDate');
    expect(i.code).to.equal('value');
    expect(i.diagnostics).to.match(/FHIR date format/);
  });

  it('reports a code outside a required value set with the allowed codes', () => {
    const i = one(validateResource(patient({ gender: 'M' })), 'Patient.gender');
    expect(i.code).to.equal('value');
    expect(i.diagnostics).to.include('"female"');
  });

  it('validates nested resources in Bundle entries and contained', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ fullUrl: UUID1, resource: patient({ gender: 'M' }) }],
    };
    expect(one(validateResource(bundle), 'Bundle.entry[0].resource.gender').code).to.equal('value');
  });

  it('rejects a missing or unknown resourceType', () => {
    expect(one(validateResource({ id: 'x' }), 'Resource.resourceType').code).to.equal('required');
    expect(one(validateResource({ resourceType: 'Spaceship' }), 'Resource.resourceType').diagnostics).to.match(/not a FHIR R4 resource type/);
    expect(JSON.stringify(validateResource({ resourceType: 'JaneDoe' }, 'Patient'))).not.to.include('Jane');
    expect(one(validateResource({ resourceType: 42 }), 'Resource.resourceType').code).to.equal('invalid');
  });

  it('rejects non-objects without throwing', () => {
    for (const v of [null, undefined, 'Patient', 42, [], [patient()], true]) {
      const issues = validateResource(v);
      expect(issues).to.have.length(1);
      expect(issues[0]).to.include({ code: 'structure', expression: 'Resource' });
    }
  });

  it('checks expectedType', () => {
    const i = one(validateResource(observation(), 'Patient'), 'Observation.resourceType');
    expect(i.code).to.equal('invalid');
    expect(i.diagnostics).to.include("expected type 'Patient'");
    expect(validateResource(patient(), 'Patient')).to.deep.equal([]);
    expect(one(validateResource(patient(), 'NotAType'), 'Resource.resourceType').diagnostics).to.match(/not a FHIR R4 resource type/);
  });

  it('never echoes input values in diagnostics', () => {
    const secret = 'ZZ-SECRET-1234';
    const issues = validateResource({
      resourceType: 'Patient',
      name: [{ family: 42, given: [secret, { x: secret }] }],
      birthDate: secret,
      gender: secret,
      [`${secret} key`]: secret,
      identifier: [{ system: `bad uri ${secret}`, value: secret }],
      telecom: [{ value: secret }],
      managingOrganization: { reference: `${secret} not a ref` },
    });
    expect(issues.length).to.be.greaterThan(5);
    expect(JSON.stringify(issues)).not.to.include('SECRET');
  });

  it('never throws on cyclic or absurdly deep input', () => {
    const cyclic: Record<string, unknown> = { resourceType: 'Patient', extension: [] };
    const ext: Record<string, unknown> = { url: 'http://x.org/e' };
    ext['extension'] = [ext];
    (cyclic['extension'] as unknown[]).push(ext);
    const issues = validateResource(cyclic);
    expect(issues.length).to.be.greaterThan(0);
    expect(issues.every((i) => i.severity === 'error')).to.equal(true);

    let deep: Record<string, unknown> = { url: 'http://x.org/e', valueString: 'v' };
    for (let i = 0; i < 5000; i++) deep = { url: 'http://x.org/e', extension: [deep] };
    const deepIssues = validateResource({ resourceType: 'Patient', extension: [deep] });
    expect(deepIssues.length).to.be.greaterThan(0);
    expect(deepIssues[0]?.code).to.equal('structure');
  });

  it('caps the number of issues', () => {
    const given = Array.from({ length: 500 }, (_, i) => i);
    const issues = validateResource(patient({ name: [{ given }] }));
    expect(issues).to.have.length(MAX_ISSUES + 1);
    expect(issues.at(-1)?.diagnostics).to.match(/400 further issues not listed/);
  });

  it('the cap keeps the errors and leaves warnings beyond it warnings', () => {
    // 150 urn:uuid references that resolve to no entry of a batch: a warning each.
    const hasMember = Array.from({ length: 150 }, (_, i) => ({ reference: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}` }));
    const batch = (observation: Record<string, unknown>): Record<string, unknown> => ({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ resource: { resourceType: 'Observation', code: { text: 'panel' }, hasMember, ...observation }, request: { method: 'POST', url: 'Observation' } }],
    });
    const warnings = validateResource(batch({ status: 'final' }));
    expect(warnings).to.have.length(MAX_ISSUES + 1);
    expect(warnings.every((i) => i.severity === 'warning')).to.equal(true);
    expect(warnings.at(-1)?.diagnostics).to.match(/50 further issues not listed/);
    // The same with one error (no status): the error is listed, not crowded out by the warnings.
    const withError = validateResource(batch({}));
    expect(withError.filter((i) => i.severity === 'error').map((i) => i.expression)).to.deep.equal(['Bundle.entry[0].resource.status']);
  });
});

describe('validateResource: deliberate schema quirk handling', () => {
  const capability = (fhirVersion: string): Record<string, unknown> => ({
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2024-05-01',
    kind: 'instance',
    fhirVersion,
    format: ['json'],
  });

  it('accepts fhirVersion 4.0.1 (the enum stops at 4.0.0) but not other unknown versions', () => {
    expect(validateResource(capability('4.0.1'))).to.deep.equal([]);
    expect(validateResource(capability('4.0.0'))).to.deep.equal([]);
    expect(one(validateResource(capability('4.0.2')), 'CapabilityStatement.fhirVersion').code).to.equal('value');
  });

  it('accepts U+00A0 and other Unicode spaces in strings, still rejects control characters and empty strings', () => {
    expect(validateResource(patient({ name: [{ text: '10\u00A0mg\u2009x' }] }))).to.deep.equal([]);
    expect(one(validateResource(patient({ name: [{ text: 'a\u000Bb' }] })), 'Patient.name[0].text').code).to.equal('value');
    expect(one(validateResource(patient({ name: [{ text: '' }] })), 'Patient.name[0].text').code).to.equal('value');
  });

  it('accepts the _name form (id, extensions) of canonical elements, which the schema omits, and nothing else new', () => {
    const sd = (extra: Record<string, unknown>): Record<string, unknown> => ({
      resourceType: 'StructureDefinition',
      url: 'http://example.org/fhir/StructureDefinition/x',
      name: 'X',
      status: 'draft',
      kind: 'resource',
      abstract: false,
      type: 'Patient',
      baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
      derivation: 'constraint',
      ...extra,
    });
    const ext = { extension: [{ url: 'http://example.org/ext', valueString: 'x' }] };
    expect(validateResource(sd({ _baseDefinition: ext }))).to.deep.equal([]);
    // a repeating canonical: an array of Elements
    expect(validateResource({ resourceType: 'Questionnaire', status: 'draft', derivedFrom: ['http://example.org/q'], _derivedFrom: [ext] })).to.deep.equal([]);
    expect(one(validateResource(sd({ _baseDefinition: 'not an element' })), 'StructureDefinition._baseDefinition').code).to.equal('structure');
    expect(one(validateResource(sd({ _nothing: ext })), 'StructureDefinition._nothing').code).to.equal('structure');
  });

  it('enforces integer, positiveInt and unsignedInt ranges the schema only states as patterns', () => {
    expect(one(validateResource(patient({ multipleBirthInteger: 1.5 })), 'Patient.multipleBirthInteger').code).to.equal('structure');
    expect(one(validateResource(patient({ multipleBirthInteger: 2 ** 31 })), 'Patient.multipleBirthInteger').code).to.equal('value');
    const sampled = (dimensions: number): Record<string, unknown> => observation({ valueSampledData: { origin: { value: 0 }, period: 1, dimensions } });
    expect(validateResource(sampled(1))).to.deep.equal([]);
    expect(one(validateResource(sampled(0)), 'Observation.valueSampledData.dimensions').code).to.equal('value');
  });
});

describe('validateResource: invariants', () => {
  it('ele-1: empty objects and arrays', () => {
    expect(one(validateResource(patient({ name: [] })), 'Patient.name').code).to.equal('invariant');
    expect(one(validateResource(patient({ maritalStatus: {} })), 'Patient.maritalStatus').code).to.equal('invariant');
  });

  it('primitive extension arrays must align', () => {
    const p = patient({ name: [{ given: ['A', 'B'], _given: [null] }] });
    expect(validateResource(p).some((i) => i.expression === 'Patient.name[0]._given' && i.code === 'structure')).to.equal(true);
  });

  it('only one value[x]', () => {
    const i = one(validateResource(observation({ valueString: 'a', valueBoolean: true })), 'Observation.value[x]');
    expect(i.code).to.equal('structure');
    expect(validateResource(patient({ deceasedBoolean: false, deceasedDateTime: '2020-01-01' })).map((x) => x.expression)).to.include('Patient.deceased[x]');
    // Two lists sharing a description are no choice (DeviceRequest.reasonCode beside reasonReference).
    const request = { resourceType: 'DeviceRequest', status: 'active', intent: 'order', codeCodeableConcept: { text: 'pump' }, subject: { reference: 'Patient/p' } };
    expect(validateResource({ ...request, reasonCode: [{ text: 'why' }], reasonReference: [{ reference: 'Condition/c' }] })).to.deep.equal([]);
    expect(validateResource({ ...request, codeReference: { reference: 'Device/d' } }).map((x) => x.expression)).to.include('DeviceRequest.code[x]');
  });

  it('reference format', () => {
    for (const ok of ['Patient/p1', 'Patient/p1/_history/2', 'https://fhir.example.org/r4/Patient/p1', UUID1, 'urn:oid:1.2.3.4']) {
      expect(validateResource(observation({ subject: { reference: ok } })), ok).to.deep.equal([]);
    }
    for (const bad of ['patient/p1', 'Patient/', 'Patient/p 1', 'Nope/p1', 'urn:uuid:ABC', 'urn:oid:abc', 'just text']) {
      const i = one(validateResource(observation({ subject: { reference: bad } })), 'Observation.subject.reference');
      expect(i.code, bad).to.be.oneOf(['value', 'invariant']);
    }
  });

  it('Reference.type agrees with the reference', () => {
    expect(validateResource(observation({ subject: { reference: 'Patient/p1', type: 'Patient' } }))).to.deep.equal([]);
    expect(one(validateResource(observation({ subject: { reference: 'Patient/p1', type: 'Group' } })), 'Observation.subject.type').code).to.equal('invariant');
  });

  it('ref-1 and dom-2..5 for contained resources', () => {
    const device = { resourceType: 'Device', id: 'd1' };
    expect(validateResource(observation({ contained: [device], device: { reference: '#d1' } }))).to.deep.equal([]);
    expect(one(validateResource(observation({ contained: [device], device: { reference: '#d2' } })), 'Observation.device.reference').diagnostics).to.match(/ref-1/);
    expect(one(validateResource(observation({ contained: [device] })), 'Observation.contained[0]').diagnostics).to.match(/dom-3/);
    const nested = { ...device, contained: [{ resourceType: 'Device', id: 'd9' }] };
    expect(
      validateResource(observation({ contained: [nested], device: { reference: '#d1' } }))
        .map((i) => i.diagnostics)
        .join(),
    ).to.match(/dom-2/);
    const versioned = { ...device, meta: { versionId: '1', security: [{ code: 'R' }] } };
    const issues = validateResource(observation({ contained: [versioned], device: { reference: '#d1' } }))
      .map((i) => i.diagnostics)
      .join();
    expect(issues).to.match(/dom-4/).and.to.match(/dom-5/);
    expect(one(validateResource(observation({ focus: [{ reference: '#' }] })), 'Observation.focus[0].reference').diagnostics).to.match(/ref-1/);
    // dom-3 counts a canonical or uri naming the contained resource (a contained ValueSet of a Questionnaire item)
    const vs = { resourceType: 'ValueSet', id: 'vs1', status: 'draft' };
    const item = { linkId: '1', type: 'choice', answerValueSet: '#vs1' };
    expect(validateResource({ resourceType: 'Questionnaire', status: 'draft', contained: [vs], item: [item] })).to.deep.equal([]);
    expect(one(validateResource({ resourceType: 'Questionnaire', status: 'draft', contained: [vs] }), 'Questionnaire.contained[0]').diagnostics).to.match(/dom-3/);
    // a contained resource naming itself does not count
    expect(one(validateResource({ resourceType: 'Questionnaire', status: 'draft', contained: [{ ...vs, url: '#vs1' }] }), 'Questionnaire.contained[0]').diagnostics).to.match(
      /dom-3/,
    );
  });

  it('per-1: Period start <= end, aware of precision and time zones', () => {
    const enc = (start: string, end: string): FhirIssue[] => validateResource({ resourceType: 'Encounter', status: 'finished', class: { code: 'VR' }, period: { start, end } });
    expect(enc('2024-01-01T10:00:00Z', '2024-01-01T10:00:00Z')).to.deep.equal([]);
    expect(enc('2024-01-01T10:00:00+02:00', '2024-01-01T09:00:00Z')).to.deep.equal([]);
    expect(enc('2024-01-01', '2024-01-01T08:00:00Z')).to.deep.equal([]);
    expect(enc('2024', '2024-06')).to.deep.equal([]);
    expect(one(enc('2024-01-01T10:00:01Z', '2024-01-01T10:00:00Z'), 'Encounter.period').diagnostics).to.match(/per-1/);
    expect(one(enc('2024-01-02', '2024-01-01'), 'Encounter.period').code).to.equal('invariant');
    expect(one(enc('2024-01-03', '2024-01-01T08:00:00Z'), 'Encounter.period').code).to.equal('invariant');
  });

  it('rng-2, rat-1, qty-3, att-1, cpt-2', () => {
    expect(one(validateResource(observation({ valueRange: { low: { value: 5 }, high: { value: 1 } } })), 'Observation.valueRange').diagnostics).to.match(/rng-2/);
    expect(one(validateResource(observation({ valueRatio: { numerator: { value: 1 } } })), 'Observation.valueRatio').diagnostics).to.match(/rat-1/);
    expect(one(validateResource(observation({ valueQuantity: { value: 1, code: 'mg' } })), 'Observation.valueQuantity.system').diagnostics).to.match(/qty-3/);
    const doc = { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { data: 'AAAA' } }] };
    expect(one(validateResource(doc), 'DocumentReference.content[0].attachment.contentType').diagnostics).to.match(/att-1/);
    expect(one(validateResource(patient({ telecom: [{ value: '555' }] })), 'Patient.telecom[0].system').diagnostics).to.match(/cpt-2/);
  });

  it('txt-1/txt-2: narrative is a plain XHTML div', () => {
    const text = (div: string): Record<string, unknown> => patient({ text: { status: 'generated', div } });
    expect(validateResource(text('<div xmlns="http://www.w3.org/1999/xhtml"><p>Jane</p></div>'))).to.deep.equal([]);
    expect(one(validateResource(text('<p>Jane</p>')), 'Patient.text.div').diagnostics).to.match(/txt-1/);
    expect(one(validateResource(text('<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>')), 'Patient.text.div').diagnostics).to.match(/txt-1/);
    expect(one(validateResource(text('<div xmlns="http://www.w3.org/1999/xhtml"><b onclick="x()">a</b></div>')), 'Patient.text.div').diagnostics).to.match(/txt-1/);
    expect(one(validateResource(text('<div xmlns="http://www.w3.org/1999/xhtml"> </div>')), 'Patient.text.div').diagnostics).to.match(/txt-2/);
  });

  it('pat-1: contact needs details', () => {
    expect(one(validateResource(patient({ contact: [{ gender: 'female' }] })), 'Patient.contact[0]').diagnostics).to.match(/pat-1/);
  });

  it('obs-6 and obs-7', () => {
    const absent = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'unknown' }] };
    expect(validateResource(observation({ dataAbsentReason: absent }))).to.deep.equal([]);
    expect(one(validateResource(observation({ dataAbsentReason: absent, valueString: 'x' })), 'Observation.dataAbsentReason').diagnostics).to.match(/obs-6/);
    const sameCode = { code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, valueString: 'x' };
    expect(one(validateResource(observation({ valueString: 'y', component: [sameCode] })), 'Observation.component[0].code').diagnostics).to.match(/obs-7/);
    expect(validateResource(observation({ component: [sameCode] }))).to.deep.equal([]);
  });
});

describe('validateResource: required elements the schema cannot require', () => {
  it('every entry of the table names a real element of the schema', () => {
    const model = buildTypeModel(loadFhirSchema().definitions);
    for (const [def, names] of Object.entries(REQUIRED_ELEMENTS)) {
      const props = model.props.get(def);
      expect(props, def).to.not.equal(undefined);
      for (const n of names) {
        if (n.endsWith('[x]')) expect(model.choices.get(def)?.has(n.slice(0, -3)), `${def}.${n}`).to.equal(true);
        else expect(props?.has(n), `${def}.${n}`).to.equal(true);
      }
    }
  });

  it('reports missing required primitives, accepting the _x form', () => {
    const obs = observation();
    delete obs['status'];
    expect(one(validateResource(obs), 'Observation.status').code).to.equal('required');
    expect(validateResource({ ...obs, _status: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] } })).to.deep.equal([]);
    const b = { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: UUID1, resource: patient(), request: { method: 'POST' } }] };
    expect(one(validateResource(b), 'Bundle.entry[0].request.url').code).to.equal('required');
    expect(one(validateResource({ resourceType: 'Bundle' }), 'Bundle.type').code).to.equal('required');
  });

  it('reports a missing required choice element', () => {
    const imm = { resourceType: 'Immunization', status: 'completed', vaccineCode: { text: 'x' }, patient: { reference: 'Patient/p1' } };
    expect(one(validateResource(imm), 'Immunization.occurrence[x]').code).to.equal('required');
    expect(validateResource({ ...imm, occurrenceDateTime: '2024-01-01' })).to.deep.equal([]);
  });

  it('ext-1 and Extension.url', () => {
    expect(one(validateResource(patient({ extension: [{ url: 'http://x.org/e' }] })), 'Patient.extension[0]').diagnostics).to.match(/ext-1/);
    expect(
      one(validateResource(patient({ extension: [{ url: 'http://x.org/e', valueString: 'a', extension: [{ url: 'http://x.org/f', valueString: 'b' }] }] })), 'Patient.extension[0]')
        .diagnostics,
    ).to.match(/ext-1/);
    expect(one(validateResource(patient({ extension: [{ valueString: 'a' }] })), 'Patient.extension[0].url').code).to.equal('required');
  });
});

describe('validateResource: Bundle invariants', () => {
  const entry = (fullUrl: string, resource: Record<string, unknown>, request?: Record<string, unknown>): Record<string, unknown> =>
    request ? { fullUrl, resource, request } : { fullUrl, resource };
  const txn = (entries: unknown[]): Record<string, unknown> => ({ resourceType: 'Bundle', type: 'transaction', entry: entries });
  const pat = patient();
  delete pat['id'];

  it('accepts a transaction whose urn:uuid references resolve', () => {
    const b = txn([entry(UUID1, pat, { method: 'POST', url: 'Patient' }), entry(UUID2, observation({ subject: { reference: UUID1 } }), { method: 'POST', url: 'Observation' })]);
    expect(validateResource(b)).to.deep.equal([]);
  });

  it('bdl-3: transaction entries need a request; others must not have one', () => {
    expect(one(validateResource(txn([entry(UUID1, pat)])), 'Bundle.entry[0].request').diagnostics).to.match(/bdl-3/);
    const coll = { resourceType: 'Bundle', type: 'collection', entry: [entry(UUID1, pat, { method: 'POST', url: 'Patient' })] };
    expect(one(validateResource(coll), 'Bundle.entry[0].request').diagnostics).to.match(/bdl-3/);
  });

  it('bdl-7: fullUrl unique; bdl-8: not version specific; fullUrl absolute and consistent', () => {
    const dup = txn([entry(UUID1, pat, { method: 'POST', url: 'Patient' }), entry(UUID1, pat, { method: 'POST', url: 'Patient' })]);
    expect(one(validateResource(dup), 'Bundle.entry[1].fullUrl').diagnostics).to.match(/bdl-7/);
    const p1 = patient();
    const versioned = txn([entry('https://h.example/fhir/Patient/p1/_history/1', p1, { method: 'PUT', url: 'Patient/p1' })]);
    expect(
      validateResource(versioned)
        .map((i) => i.diagnostics)
        .join(),
    ).to.match(/bdl-8/);
    const relative = txn([entry('Patient/p1', p1, { method: 'PUT', url: 'Patient/p1' })]);
    expect(one(validateResource(relative), 'Bundle.entry[0].fullUrl').code).to.equal('value');
    const disagree = txn([entry('https://h.example/fhir/Patient/p2', p1, { method: 'PUT', url: 'Patient/p1' })]);
    expect(one(validateResource(disagree), 'Bundle.entry[0].fullUrl').diagnostics).to.match(/disagree/);
  });

  it('history bundles may repeat a fullUrl with different versions', () => {
    const v = (n: string): Record<string, unknown> => ({
      fullUrl: 'https://h.example/fhir/Patient/p1',
      resource: patient({ meta: { versionId: n } }),
      request: { method: 'PUT', url: 'Patient/p1' },
      response: { status: '200' },
    });
    expect(validateResource({ resourceType: 'Bundle', type: 'history', entry: [v('1'), v('2')] })).to.deep.equal([]);
    expect(one(validateResource({ resourceType: 'Bundle', type: 'history', entry: [v('1'), v('1')] }), 'Bundle.entry[1].fullUrl').diagnostics).to.match(/bdl-7/);
  });

  it('request.url agrees with the resource', () => {
    expect(one(validateResource(txn([entry(UUID1, pat, { method: 'POST', url: 'Observation' })])), 'Bundle.entry[0].request.url').code).to.equal('invariant');
    expect(one(validateResource(txn([entry(UUID1, patient(), { method: 'PUT', url: 'Patient/other' })])), 'Bundle.entry[0].request.url').code).to.equal('invariant');
    expect(validateResource(txn([entry(UUID1, pat, { method: 'PUT', url: 'Patient?identifier=x|1' })]))).to.deep.equal([]);
  });

  it('unresolved urn:uuid: error in a transaction, warning in a collection', () => {
    const obs = observation({ subject: { reference: UUID2 } });
    const t = one(validateResource(txn([entry(UUID1, obs, { method: 'POST', url: 'Observation' })])), 'Bundle.entry[0].resource.subject.reference');
    expect(t.severity).to.equal('error');
    const c = one(validateResource({ resourceType: 'Bundle', type: 'collection', entry: [entry(UUID1, obs)] }), 'Bundle.entry[0].resource.subject.reference');
    expect(c.severity).to.equal('warning');
  });

  it('bdl-1, bdl-2, bdl-4, bdl-5, bdl-9..12', () => {
    const diag = (b: Record<string, unknown>): string =>
      validateResource(b)
        .map((i) => i.diagnostics)
        .join('\n');
    expect(diag({ resourceType: 'Bundle', type: 'collection', total: 1 })).to.match(/bdl-1/);
    expect(diag({ resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: UUID1, resource: pat, search: { mode: 'match' } }] })).to.match(/bdl-2/);
    expect(diag({ resourceType: 'Bundle', type: 'transaction-response', entry: [{ fullUrl: UUID1, resource: pat }] })).to.match(/bdl-4/);
    expect(diag({ resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: UUID1 }] })).to.match(/bdl-5/);
    const document = diag({ resourceType: 'Bundle', type: 'document', entry: [{ fullUrl: UUID1, resource: pat }] });
    expect(document)
      .to.match(/bdl-9/)
      .and.to.match(/bdl-10/)
      .and.to.match(/bdl-11/);
    expect(diag({ resourceType: 'Bundle', type: 'message', entry: [{ fullUrl: UUID1, resource: pat }] })).to.match(/bdl-12/);
  });
});

describe('helpers', () => {
  it('pointerSegments unescapes JSON pointers and turns indexes into numbers', () => {
    expect(pointerSegments('')).to.deep.equal([]);
    expect(pointerSegments('/name/0/given')).to.deep.equal(['name', 0, 'given']);
    expect(pointerSegments('/a~1b/c~0d/01')).to.deep.equal(['a/b', 'c~d', '01']);
  });

  it('parseFhirDateTime gives intervals by precision', () => {
    const y = parseFhirDateTime('2024');
    expect(y?.lo).to.equal(Date.UTC(2024, 0, 1));
    expect(y?.hi).to.equal(Date.UTC(2025, 0, 1) - 1);
    expect(parseFhirDateTime('2024-02-01T00:00:00.5+01:00')?.lo).to.equal(Date.UTC(2024, 0, 31, 23, 0, 0, 500));
    expect(parseFhirDateTime('not a date')).to.equal(undefined);
    const a = parseFhirDateTime('2024-01-01T00:00:00Z');
    const b = parseFhirDateTime('2023-12-31');
    expect(a && b && isCertainlyAfter(a, b)).to.equal(false); // 2023-12-31 local may be 2024-01-01 UTC
  });
});
