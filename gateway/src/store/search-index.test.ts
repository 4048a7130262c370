import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import { SUPPORTED_TYPES } from '../model/definitions';
import { capIndexValue, criteriaOf, INDEX_VALUE_BYTES, indexEntriesOf, parseNumber, topElementsOf } from './search-index';
import type { IndexEntry } from './store';

const UCUM = 'http://unitsofmeasure.org';

describe('search index: number and quantity parameters', () => {
  it('a searched number carries the range its precision implies', () => {
    expect(parseNumber('x', '100')).to.deep.equal({ op: 'eq', value: 100, lo: 99.5, hi: 100.5 });
    expect(parseNumber('x', 'gt5.40')).to.deep.equal({ op: 'gt', value: 5.4, lo: 5.395, hi: 5.405 });
    expect(parseNumber('x', '1e2')).to.deep.include({ value: 100, lo: 50, hi: 150 });
    expect(parseNumber('x', 'ap-0.5')).to.deep.include({ op: 'ap', value: -0.5, lo: -0.55, hi: -0.45 });
    // The bounds are the doubles of the decimal bounds: a stored 5.35 is inside eq5.4's range.
    expect(parseNumber('x', '5.4').lo).to.equal(5.35);
    for (const bad of ['', 'five', 'gt', 'xx5', '5.', '.5', '1e9999', '5,4']) {
      expect(() => parseNumber('value-quantity', bad), bad).to.throw(OperationOutcomeError, /value-quantity/);
    }
  });

  it('indexes numbers (values and Ranges) and quantities (value, comparator, system, code, unit; Money)', () => {
    const ra = indexEntriesOf({
      resourceType: 'RiskAssessment',
      status: 'final',
      subject: { reference: 'Patient/p' },
      prediction: [{ probabilityDecimal: 0.25 }, { probabilityRange: { low: { value: 0.1 }, high: { value: 0.3 } } }],
    }).filter((e) => e.param === 'probability');
    expect(ra.map((e) => [e.n1, e.n2])).to.deep.equal([
      [0.25, 0.25],
      [0.1, 0.3],
    ]);
    const obs = indexEntriesOf({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'x' },
      valueQuantity: { value: 5.4, comparator: '<', unit: 'milligram', system: 'http://unitsofmeasure.org', code: 'mg' },
    }).filter((e) => e.param === 'value-quantity');
    // In UCUM, also in the canonical unit: 5.4 mg is 0.0054 g.
    expect(obs).to.deep.equal([
      { param: 'value-quantity', n1: -Infinity, n2: 5.4, v1: 'http://unitsofmeasure.org', v2: 'mg', v3: 'milligram', cu: 'g', cn1: -Infinity, cn2: 0.0054, grp: 0 },
    ]);
    const invoice = indexEntriesOf({ resourceType: 'Invoice', status: 'issued', totalNet: { value: 12.5, currency: 'EUR' } }).filter((e) => e.param === 'totalnet');
    expect(invoice).to.deep.equal([{ param: 'totalnet', n1: 12.5, n2: 12.5, v1: 'urn:iso:std:iso:4217', v2: 'EUR', v3: 'EUR', grp: 0 }]);
  });

  it('parses quantity values: number, number|system|code, number||unit; refuses the rest', () => {
    expect(criteriaOf('Observation', 'value-quantity', ['gt5.4|http://unitsofmeasure.org|mg,le2||mg'])).to.deep.equal([
      {
        kind: 'quantity',
        param: 'value-quantity',
        values: [
          { op: 'gt', value: 5.4, lo: 5.35, hi: 5.45, system: 'http://unitsofmeasure.org', code: 'mg', canonical: { unit: 'g', value: 0.0054, lo: 0.00535, hi: 0.00545 } },
          // No system: matched as given, never converted.
          { op: 'le', value: 2, lo: 1.5, hi: 2.5, code: 'mg' },
        ],
      },
    ]);
    for (const bad of ['5|mg', '5|http://unitsofmeasure.org|', 'x|http://unitsofmeasure.org|mg', '5|a|b|c']) {
      expect(() => criteriaOf('Observation', 'value-quantity', [bad]), bad).to.throw(OperationOutcomeError);
    }
    expect(() => criteriaOf('Observation', 'value-quantity:exact', ['5'])).to.throw(OperationOutcomeError, /modifier/);
  });
});

describe('search index: UCUM canonical units', () => {
  const quantity = (q: Record<string, unknown>): IndexEntry | undefined =>
    indexEntriesOf({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: q }).find((e) => e.param === 'value-quantity');

  it('indexes a UCUM quantity whose unit converts by a factor in its base units too, beside the value as given', () => {
    expect(quantity({ value: 5000, system: UCUM, code: 'mg' })).to.deep.include({ n1: 5000, n2: 5000, v2: 'mg', cu: 'g', cn1: 5, cn2: 5 });
    expect(quantity({ value: 0.006, system: UCUM, code: 'kg' })).to.deep.include({ cu: 'g', cn1: 6, cn2: 6 });
    expect(quantity({ value: 72, system: UCUM, code: '/min' })).to.deep.include({ cu: 's-1', cn1: 1.2, cn2: 1.2 });
    expect(quantity({ value: 100, system: UCUM, code: 'mg/dL' })).to.deep.include({ cu: 'g.m-3', cn1: 1000 });
    // Rounded to 15 significant digits: the library's 10*3/uL is 999999999999.9999 m-3, and 3 dg is 0.30000000000000004 g.
    expect(quantity({ value: 1, system: UCUM, code: '10*3/uL' })).to.deep.include({ cu: 'm-3', cn1: 1e12 });
    expect(quantity({ value: 3, system: UCUM, code: 'dg' })).to.deep.include({ cn1: 0.3 });
    // Dimensionless: 50 % is 0.5.
    expect(quantity({ value: 50, system: UCUM, code: '%' })).to.deep.include({ cu: '1', cn1: 0.5 });
  });

  it('leaves a quantity as given when its system is not UCUM or its unit does not convert by a factor', () => {
    for (const q of [
      { value: 5000, unit: 'mg' },
      { value: 5000, system: 'http://example.org/units', code: 'mg' },
      { value: 5, system: UCUM, code: '[IU]/L' },
      { value: 37, system: UCUM, code: 'Cel' },
      { value: 7, system: UCUM, code: '[pH]' },
      { value: 5, system: UCUM, code: 'not-a-unit' },
      { value: 5, system: UCUM, code: 'x'.repeat(300) },
    ]) {
      const e = quantity(q);
      expect(e, JSON.stringify(q)).to.not.have.property('cu');
      expect(e?.n1, JSON.stringify(q)).to.equal(q.value);
    }
  });

  it('compares a search in a UCUM unit that converts in the canonical unit, and any other as given', () => {
    expect(criteriaOf('Observation', 'value-quantity', [`5|${UCUM}|g`])?.[0]).to.deep.include({
      values: [{ op: 'eq', value: 5, lo: 4.5, hi: 5.5, system: UCUM, code: 'g', canonical: { unit: 'g', value: 5, lo: 4.5, hi: 5.5 } }],
    });
    expect(criteriaOf('Observation', 'value-quantity', [`ge5000|${UCUM}|mg`])?.[0]).to.deep.include({
      values: [{ op: 'ge', value: 5000, lo: 4999.5, hi: 5000.5, system: UCUM, code: 'mg', canonical: { unit: 'g', value: 5, lo: 4.9995, hi: 5.0005 } }],
    });
    for (const raw of [`5|${UCUM}|[IU]/L`, `37|${UCUM}|Cel`, '5||mg', '5|http://example.org/units|mg', '5']) {
      const values = (criteriaOf('Observation', 'value-quantity', [raw])?.[0] as unknown as { values: Array<Record<string, unknown>> }).values;
      expect(values[0], raw).to.not.have.property('canonical');
    }
  });
});

describe('search index: the :identifier modifier of reference parameters', () => {
  it("indexes a reference's logical identifier (Reference.identifier) as a token beside its reference, under <param>:identifier", () => {
    const entries = indexEntriesOf({
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'x' },
      subject: { reference: 'Patient/p1', identifier: { system: 'urn:mrn', value: 'A-1' } },
      performer: [{ identifier: { system: 'urn:npi', value: '999' } }, { reference: 'Practitioner/d1' }],
    });
    const of = (param: string): Array<[string, string]> => entries.filter((e) => e.param === param).map((e) => [e.v1, e.v2]);
    expect(of('subject')).to.deep.equal([['Patient/p1', 'p1']]);
    expect(of('subject:identifier')).to.deep.equal([['urn:mrn', 'A-1']]);
    expect(of('patient:identifier')).to.deep.equal([['urn:mrn', 'A-1']]);
    expect(of('performer')).to.deep.equal([['Practitioner/d1', 'd1']]);
    expect(of('performer:identifier')).to.deep.equal([['urn:npi', '999']]);
  });

  it('searches :identifier as a token on those rows, and refuses it on a parameter that is not a reference', () => {
    expect(criteriaOf('Observation', 'subject:identifier', ['urn:mrn|A-1,|B-2', '999'])).to.deep.equal([
      {
        kind: 'token',
        param: 'subject:identifier',
        not: false,
        values: [
          { system: 'urn:mrn', code: 'A-1' },
          { system: '', code: 'B-2' },
        ],
      },
      { kind: 'token', param: 'subject:identifier', not: false, values: [{ code: '999' }] },
    ]);
    expect(() => criteriaOf('Observation', 'code:identifier', ['x'])).to.throw(OperationOutcomeError, /:identifier/);
    expect(() => criteriaOf('Observation', 'subject:identifier', [''])).to.throw(OperationOutcomeError, /empty/);
  });
});

describe('search index: composite parameters', () => {
  const bp = {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '85354-9' }] },
    component: [
      { code: { coding: [{ system: 'http://loinc.org', code: '8480-6' }] }, valueQuantity: { value: 120, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
      { code: { coding: [{ system: 'http://loinc.org', code: '8462-4' }] }, valueQuantity: { value: 80, system: 'http://unitsofmeasure.org', code: 'mm[Hg]' } },
    ],
  };

  it('indexes the components of each element together (one group per element), and only elements with every component', () => {
    const rows = indexEntriesOf(bp).filter((e) => e.param.startsWith('component-code-value-quantity$'));
    expect(rows.map((e) => [e.param, e.v2, e.n1, e.grp])).to.deep.equal([
      ['component-code-value-quantity$0', '8480-6', undefined, rows[0]?.grp],
      ['component-code-value-quantity$1', 'mm[Hg]', 120, rows[0]?.grp],
      ['component-code-value-quantity$0', '8462-4', undefined, rows[2]?.grp],
      ['component-code-value-quantity$1', 'mm[Hg]', 80, rows[2]?.grp],
    ]);
    expect(rows[0]?.grp).to.not.equal(rows[2]?.grp);
    // The Observation itself has no value: code-value-quantity has no element with both components.
    expect(indexEntriesOf(bp).filter((e) => e.param.startsWith('code-value-quantity$'))).to.deep.equal([]);
  });

  it('parses a composite value per component kind, $ between components; refuses a wrong number of components', () => {
    expect(criteriaOf('Observation', 'component-code-value-quantity', ['http://loinc.org|8480-6$gt100'])).to.deep.equal([
      {
        kind: 'composite',
        param: 'component-code-value-quantity',
        values: [
          [
            { kind: 'token', param: 'component-code-value-quantity$0', not: false, values: [{ system: 'http://loinc.org', code: '8480-6' }] },
            { kind: 'quantity', param: 'component-code-value-quantity$1', values: [{ op: 'gt', value: 100, lo: 99.5, hi: 100.5 }] },
          ],
        ],
      },
    ]);
    for (const bad of ['8480-6', '8480-6$gt100$1', '8480-6$', '8480-6$high']) {
      expect(() => criteriaOf('Observation', 'component-code-value-quantity', [bad]), bad).to.throw(OperationOutcomeError, /component-code-value-quantity/);
    }
    expect(() => criteriaOf('Observation', 'code-value-quantity:missing', ['true'])).to.throw(OperationOutcomeError, /modifier/);
  });

  it('leaves out composites it cannot read within one element (%resource) or whose R4 definition is inconsistent', () => {
    expect(criteriaOf('MolecularSequence', 'chromosome-variant-coordinate', ['1$gt1$lt5'])).to.equal(undefined);
    expect(criteriaOf('DocumentReference', 'relationship', ['x$y'])).to.equal(undefined);
    expect(criteriaOf('MolecularSequence', 'chromosome-window-coordinate', ['1$gt1$lt5'])).to.have.length(1);
  });
});

describe('search index: parameters whose elements a resource does not hold are skipped, navigations read directly', () => {
  it('topElementsOf names each term’s first element; anything else is always evaluated', () => {
    expect(topElementsOf('Observation.code')).to.deep.equal(['code']);
    expect(topElementsOf('Observation.value.ofType(Quantity) | Observation.component.value.ofType(Quantity)')).to.deep.equal(['value', 'component']);
    expect(topElementsOf("(Observation.subject.where(reference.startsWith('Patient/')))")).to.deep.equal(['subject']);
    expect(topElementsOf('%resource.code')).to.equal(undefined);
    // A value made from an absent element: always evaluated.
    expect(topElementsOf('Patient.deceased.exists() and Patient.deceased != false')).to.equal(undefined);
  });

  it('gives exactly the entries, in the same order, of evaluating every parameter with the FHIRPath engine, on every official R4 example', function () {
    this.timeout(300_000);
    const dir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
    let compared = 0;
    for (const f of fs.readdirSync(dir).filter((x) => /^[A-Z][A-Za-z]+-.+\.json$/.test(x))) {
      const resource = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
      if (!SUPPORTED_TYPES.has(String(resource.resourceType))) continue;
      let every: IndexEntry[];
      try {
        every = indexEntriesOf(resource, { everyParam: true });
      } catch {
        continue; // an example the engine cannot evaluate (refused at write, see r4-examples.test.ts)
      }
      const key = (e: IndexEntry): string => JSON.stringify(e);
      // In the same order too: a composite's groups are numbered in the order of its elements.
      expect(indexEntriesOf(resource).map(key), f).to.deep.equal(every.map(key));
      compared++;
    }
    expect(compared).to.be.greaterThan(2500);
  });

  it('cuts a text value at INDEX_VALUE_BYTES UTF-8 bytes, never inside a character', () => {
    expect(capIndexValue('short')).to.equal('short');
    const cut = capIndexValue('é'.repeat(INDEX_VALUE_BYTES));
    expect(Buffer.byteLength(cut)).to.equal(INDEX_VALUE_BYTES);
    // 'a' and then 3-byte characters: the cut falls inside one, which is dropped whole.
    const odd = capIndexValue(`ab${'€'.repeat(INDEX_VALUE_BYTES)}`);
    expect(odd).to.equal(`ab${'€'.repeat(Math.floor((INDEX_VALUE_BYTES - 2) / 3))}`);
    expect(odd.includes('\ufffd')).to.equal(false);
  });
});
