/**
 * Every official R4 example (npm `hl7.fhir.r4.examples` 4.0.1, the spec's own package) of every type
 * this gateway holds, through the HTTP API: created, read back unchanged, valid, found by `_id` and by
 * one other of its search parameters (its first indexed value that makes a plain query).
 *
 * References to a Patient are pointed at one Patient created first (the gateway holds a record of a
 * patient's compartment only for a Patient it holds). The examples the gateway refuses are listed in
 * REFUSED by file, each with the reason it must be refused for: the test fails if one of them is
 * accepted, or refused for anything else, as much as if another example is refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateResource } from '@hdx/fhir-mappers';
import { expect } from 'chai';
import request from 'supertest';
import { SUPPORTED_TYPES } from '../model/definitions';
import { indexedParamsOf, indexEntriesOf } from '../store/search-index';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const staff = asCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const EXAMPLES = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));

/** A record of a patient-compartment type that names no Patient held here. */
const NOT_ATTRIBUTED = /must reference the Patient \(Patient\/<id>\) the record belongs to|must reference a Patient held by this server/;

/**
 * Examples refused, by file, and why. Two kinds:
 * - not attributable: a record of a patient-compartment type that names no Patient (its subject is a
 *   Group, a contained patient, a herd, nothing): refused rather than held ungoverned (SECURITY.md);
 * - invalid example: the example breaks an R4 rule (an empty narrative, txt-2; an id over 64
 *   characters; ...), which the gateway enforces.
 */
const REFUSED: Record<string, RegExp> = {
  'ActivityDefinition-blood-tubes-supply.json': /txt-2: the narrative SHALL have some non-whitespace content/,
  'ActivityDefinition-heart-valve-replacement.json': /txt-2: the narrative SHALL have some non-whitespace content/,
  'AppointmentResponse-exampleresp.json': NOT_ATTRIBUTED,
  'Basic-basic-example-narrative.json': NOT_ATTRIBUTED,
  'Basic-classModel.json': NOT_ATTRIBUTED,
  'Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json': /fullUrl SHALL NOT disagree with the resource type and id/,
  'Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json': /fullUrl SHALL NOT disagree with the resource type and id/,
  'Bundle-bundle-references.json': /bdl-7: fullUrl SHALL be unique/,
  'Bundle-bundle-transaction.json': /request\.url of a (POST|PUT) SHALL name the type of the entry's resource/,
  'Bundle-dataelements.json': /bdl-7: fullUrl SHALL be unique/,
  'Bundle-lri-example.json': /fullUrl SHALL NOT disagree with the resource type and id/,
  'Bundle-ussg-fht.json': /request\.url of a (POST|PUT) SHALL name the type of the entry's resource/,
  'Bundle-v2-valuesets.json': /value does not conform to the FHIR code format/,
  'Claim-100152.json': NOT_ATTRIBUTED,
  'Claim-100154.json': NOT_ATTRIBUTED,
  'Claim-100155.json': NOT_ATTRIBUTED,
  'Claim-MED-00050.json': NOT_ATTRIBUTED,
  'CodeSystem-v2-0550.json': /value does not conform to the FHIR code format/,
  'CommunicationRequest-fm-solicit.json': NOT_ATTRIBUTED,
  'DetectedIssue-allergy.json': NOT_ATTRIBUTED,
  'DetectedIssue-ddi.json': NOT_ATTRIBUTED,
  'DetectedIssue-lab.json': NOT_ATTRIBUTED,
  'DiagnosticReport-gingival-mass.json': NOT_ATTRIBUTED,
  'DocumentManifest-654789.json': NOT_ATTRIBUTED,
  'EventDefinition-example.json': /txt-2: the narrative SHALL have some non-whitespace content/,
  'Group-101.json': NOT_ATTRIBUTED,
  'Group-example-patientlist.json': NOT_ATTRIBUTED,
  'Group-herd1.json': NOT_ATTRIBUTED,
  'ImplementationGuide-fhir.json': /not a valid literal reference/,
  'List-example-simple-empty.json': NOT_ATTRIBUTED,
  'MeasureReport-hiv-indicators.json': NOT_ATTRIBUTED,
  'MeasureReport-measurereport-cms146-cat2-example.json': NOT_ATTRIBUTED,
  'MeasureReport-measurereport-cms146-cat3-example.json': NOT_ATTRIBUTED,
  'MolecularSequence-coord-0-base.json': NOT_ATTRIBUTED,
  'MolecularSequence-coord-1-base.json': NOT_ATTRIBUTED,
  'MolecularSequence-graphic-example-1.json': NOT_ATTRIBUTED,
  'MolecularSequence-graphic-example-2.json': NOT_ATTRIBUTED,
  'MolecularSequence-graphic-example-3.json': NOT_ATTRIBUTED,
  'MolecularSequence-graphic-example-4.json': NOT_ATTRIBUTED,
  'MolecularSequence-graphic-example-5.json': NOT_ATTRIBUTED,
  'MolecularSequence-sequence-complex-variant.json': NOT_ATTRIBUTED,
  'Observation-10minute-apgar-score.json': NOT_ATTRIBUTED,
  'Observation-1minute-apgar-score.json': NOT_ATTRIBUTED,
  'Observation-20minute-apgar-score.json': NOT_ATTRIBUTED,
  'Observation-2minute-apgar-score.json': NOT_ATTRIBUTED,
  'Observation-5minute-apgar-score.json': NOT_ATTRIBUTED,
  'Observation-decimal.json': NOT_ATTRIBUTED,
  'Observation-herd1.json': NOT_ATTRIBUTED,
  'Observation-vp-oyster.json': NOT_ATTRIBUTED,
  'PaymentNotice-77654.json': NOT_ATTRIBUTED,
  'Person-f002.json': NOT_ATTRIBUTED,
  'Person-grahame.json': NOT_ATTRIBUTED,
  'Person-pd.json': NOT_ATTRIBUTED,
  'Procedure-education.json': NOT_ATTRIBUTED,
  'Procedure-ob.json': NOT_ATTRIBUTED,
  'Provenance-example-biocompute-object.json': NOT_ATTRIBUTED,
  'Provenance-example.json': NOT_ATTRIBUTED,
  'Provenance-signature.json': NOT_ATTRIBUTED,
  'Questionnaire-zika-virus-exposure-assessment.json': /txt-2: the narrative SHALL have some non-whitespace content/,
  'QuestionnaireResponse-3141.json': NOT_ATTRIBUTED,
  'RiskAssessment-population.json': NOT_ATTRIBUTED,
  'Schedule-example.json': NOT_ATTRIBUTED,
  'Schedule-exampleloc1.json': NOT_ATTRIBUTED,
  'Schedule-exampleloc2.json': NOT_ATTRIBUTED,
  'SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json': /value does not conform to the FHIR id format/,
  'ServiceRequest-appendectomy-narrative.json': NOT_ATTRIBUTED,
  'ServiceRequest-education.json': NOT_ATTRIBUTED,
  'ServiceRequest-ob.json': NOT_ATTRIBUTED,
  'Specimen-pooled-serum.json': NOT_ATTRIBUTED,
  'SupplyDelivery-pumpdelivery.json': NOT_ATTRIBUTED,
  'SupplyDelivery-simpledelivery.json': NOT_ATTRIBUTED,
  'SupplyRequest-simpleorder.json': NOT_ATTRIBUTED,
  'Task-fm-example1.json': NOT_ATTRIBUTED,
  'Task-fm-example2.json': NOT_ATTRIBUTED,
  'Task-fm-example3.json': NOT_ATTRIBUTED,
  'Task-fm-example4.json': NOT_ATTRIBUTED,
  'Task-fm-example5.json': NOT_ATTRIBUTED,
  'Task-fm-example6.json': NOT_ATTRIBUTED,
};

/** Example files of the types held here, in name order. */
function exampleFiles(): string[] {
  return fs
    .readdirSync(EXAMPLES)
    .filter((f) => /^[A-Z][A-Za-z]+-.+\.json$/.test(f))
    .filter((f) => SUPPORTED_TYPES.has(f.slice(0, f.indexOf('-'))))
    .sort();
}

/** The content a client sent, without what the server assigns. */
function comparable(r: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, meta, ...rest } = r;
  const { versionId: _v, lastUpdated: _l, ...keptMeta } = (meta ?? {}) as Record<string, unknown>;
  return Object.keys(keptMeta).length > 0 ? { ...rest, meta: keptMeta } : rest;
}

/** A plain query value for one index entry of a parameter of these kinds, or undefined (a value a query cannot carry plainly). */
function queryValue(kind: string, v1: string, v2: string): string | undefined {
  const plain = (s: string): boolean => s !== '' && !/[,|$\\]/.test(s) && s.length <= 200;
  switch (kind) {
    case 'token':
      return plain(v2) && (v1 === '' || plain(v1)) ? `${v1}|${v2}` : undefined;
    case 'string':
      return plain(v1) ? v1.slice(0, 40) : undefined;
    case 'reference':
    case 'uri':
      return plain(v1) ? v1 : undefined;
    case 'date':
      return /^\d{4}/.test(v1) ? `ge${v1}` : undefined;
    default:
      return undefined;
  }
}

describe('the official R4 examples (hl7.fhir.r4.examples 4.0.1) through the HTTP API', function () {
  this.timeout(900_000);

  it('every example of every type held here is created, read back unchanged, valid, and found by _id and by one other search parameter; the refused ones are refused for their listed reason', async () => {
    const store = testStore();
    const { app } = testApp({ store, ledger: new FakeLedger(), rateLimits: { perIdentity: 1_000_000, perIp: 1_000_000 } });
    const post = (type: string, body: string) =>
      request(app)
        .post(`/fhir/${type}`)
        .set(...staff)
        .set('content-type', FHIR)
        .send(body);
    const get = (url: string) =>
      request(app)
        .get(url)
        .set(...staff);

    const holder = await post('Patient', JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Example' }] }));
    expect(holder.status).to.equal(201);
    const patientRef = `Patient/${String(holder.body.id)}`;

    const problems: string[] = [];
    const counts = { examples: 0, created: 0, refused: 0, searchedByAnother: 0, noPlainSearchValue: 0 };
    const types = new Set<string>();
    for (const file of exampleFiles()) {
      counts.examples++;
      const type = file.slice(0, file.indexOf('-'));
      const text = fs.readFileSync(path.join(EXAMPLES, file), 'utf8');
      const sent = JSON.parse(JSON.stringify(JSON.parse(text)).replace(/"reference":"(?:https?:\/\/[^"]*\/)?Patient\/[^"]*"/g, `"reference":"${patientRef}"`)) as Record<
        string,
        unknown
      >;
      const created = await post(type, JSON.stringify(sent));
      const refusal = REFUSED[file];
      if (refusal) {
        const why = String(created.body?.issue?.[0]?.diagnostics ?? '');
        if (created.status !== 400 || !refusal.test(why)) problems.push(`${file}: expected a 400 matching ${String(refusal)}, got ${created.status} ${why.slice(0, 120)}`);
        else counts.refused++;
        continue;
      }
      if (created.status !== 201) {
        problems.push(`${file}: ${created.status} ${String(created.body?.issue?.[0]?.diagnostics ?? '').slice(0, 160)}`);
        continue;
      }
      counts.created++;
      types.add(type);
      const id = String(created.body.id);
      const read = await get(`/fhir/${type}/${id}`);
      if (read.status !== 200) {
        problems.push(`${file}: read ${read.status}`);
        continue;
      }
      if (JSON.stringify(comparable(read.body as Record<string, unknown>)) !== JSON.stringify(comparable(sent))) problems.push(`${file}: read back changed`);
      const issues = validateResource(read.body, type).filter((i) => i.severity === 'error');
      if (issues.length > 0) problems.push(`${file}: read back invalid: ${issues[0]?.diagnostics ?? ''}`);
      const byId = await get(`/fhir/${type}?_id=${id}`);
      if (byId.body.total !== 1) problems.push(`${file}: _id found ${String(byId.body.total)} (${byId.status})`);

      // One other parameter: the first indexed value that makes a plain query, with _id (so exactly this one matches).
      const kinds = indexedParamsOf(type);
      const other = indexEntriesOf(read.body as Record<string, unknown>)
        .filter((e) => !['patient', 'subject'].includes(e.param))
        .map((e) => ({ param: e.param, value: queryValue(kinds.get(e.param)?.type ?? '', e.v1, e.v2) }))
        .find((q) => q.value !== undefined);
      if (!other) {
        counts.noPlainSearchValue++;
        continue;
      }
      const found = await get(`/fhir/${type}?_id=${id}&${other.param}=${encodeURIComponent(other.value as string)}`);
      if (found.body.total !== 1) problems.push(`${file}: ${other.param} found ${String(found.body.total)} (${found.status} ${String(found.body?.issue?.[0]?.diagnostics ?? '')})`);
      else counts.searchedByAnother++;
    }
    expect(problems, problems.slice(0, 40).join('\n')).to.deep.equal([]);
    expect(counts.refused).to.equal(Object.keys(REFUSED).length);
    // The package holds examples of most types: all of them are covered.
    expect(types.size).to.be.greaterThan(120);
    expect(counts.created).to.be.greaterThan(5000);
    expect(counts.searchedByAnother).to.be.greaterThan(counts.created * 0.95);
  });
});
