import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import { criteriaOf, indexEntriesOf, parseNumber } from './search-index';

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
    expect(obs).to.deep.equal([{ param: 'value-quantity', n1: -Infinity, n2: 5.4, v1: 'http://unitsofmeasure.org', v2: 'mg', v3: 'milligram', grp: 0 }]);
    const invoice = indexEntriesOf({ resourceType: 'Invoice', status: 'issued', totalNet: { value: 12.5, currency: 'EUR' } }).filter((e) => e.param === 'totalnet');
    expect(invoice).to.deep.equal([{ param: 'totalnet', n1: 12.5, n2: 12.5, v1: 'urn:iso:std:iso:4217', v2: 'EUR', v3: 'EUR', grp: 0 }]);
  });

  it('parses quantity values: number, number|system|code, number||unit; refuses the rest', () => {
    expect(criteriaOf('Observation', 'value-quantity', ['gt5.4|http://unitsofmeasure.org|mg,le2||mg'])).to.deep.equal([
      {
        kind: 'quantity',
        param: 'value-quantity',
        values: [
          { op: 'gt', value: 5.4, lo: 5.35, hi: 5.45, system: 'http://unitsofmeasure.org', code: 'mg' },
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
