/**
 * Search by number, quantity and composite parameters (HTTP, fake ledger): the spec's prefixes, the
 * implicit range of the precision given for eq, a quantity's system|code or unit; a composite's
 * components met by one element.
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
const UCUM = 'http://unitsofmeasure.org';
const LOINC = 'http://loinc.org';

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  await ledger.registerDid({ did: DR, kind: 'practitioner' });
  const { app } = testApp({ store, ledger });
  const post = poster(app, staff);
  const get = (query: string) =>
    request(app)
      .get(`/fhir/${query}`)
      .set(...staff);
  const ids = async (query: string): Promise<string[]> => {
    const res = await get(query);
    expect(res.status, `${query}: ${JSON.stringify(res.body)}`).to.equal(200);
    return ((res.body.entry ?? []) as Array<{ resource: { id: string } }>).map((e) => e.resource.id).sort();
  };
  const patient = await post({ resourceType: 'Patient', name: [{ family: 'Kinds' }] });
  return { app, post, get, ids, patient };
}

describe('search by number and quantity (HTTP, fake ledger)', () => {
  it('number: prefixes, the precision range of eq, Ranges', async () => {
    const { post, ids, patient } = await setup();
    const risk = (probability: Record<string, unknown>) =>
      post({ resourceType: 'RiskAssessment', status: 'final', subject: { reference: `Patient/${patient}` }, prediction: [probability] });
    const low = await risk({ probabilityDecimal: 0.2 });
    const mid = await risk({ probabilityDecimal: 0.25 });
    const high = await risk({ probabilityDecimal: 0.8 });
    const range = await risk({ probabilityRange: { low: { value: 0.4 }, high: { value: 0.6 } } });
    const all = [low, mid, high, range].sort();
    // eq: within the range of the precision given (0.2 → [0.15, 0.25), 0.25 → [0.245, 0.255), 0.3 → [0.25, 0.35))
    expect(await ids('RiskAssessment?probability=0.2')).to.deep.equal([low]);
    expect(await ids('RiskAssessment?probability=0.25')).to.deep.equal([mid]);
    expect(await ids('RiskAssessment?probability=0.3')).to.deep.equal([mid]);
    expect(await ids('RiskAssessment?probability=0.250')).to.deep.equal([mid]);
    // a Range matches eq only when the precision range holds all of it
    expect(await ids('RiskAssessment?probability=eq1')).to.deep.equal([high]);
    expect(await ids('RiskAssessment?probability=eq0.5')).to.deep.equal([]);
    expect(await ids('RiskAssessment?probability=5e-1')).to.deep.equal([]);
    expect(await ids('RiskAssessment?probability=0')).to.deep.equal([low, mid].sort());
    expect(await ids('RiskAssessment?probability=ne0.2')).to.deep.equal([mid, high, range].sort());
    expect(await ids('RiskAssessment?probability=gt0.25')).to.deep.equal([high, range].sort());
    expect(await ids('RiskAssessment?probability=ge0.25')).to.deep.equal([mid, high, range].sort());
    expect(await ids('RiskAssessment?probability=lt0.25')).to.deep.equal([low]);
    expect(await ids('RiskAssessment?probability=le0.25')).to.deep.equal([low, mid].sort());
    // A Range is greater than 0.5 in part: gt matches, sa (all of it after) does not.
    expect(await ids('RiskAssessment?probability=gt0.5')).to.deep.equal([high, range].sort());
    expect(await ids('RiskAssessment?probability=sa0.5')).to.deep.equal([high]);
    expect(await ids('RiskAssessment?probability=eb0.5')).to.deep.equal([low, mid].sort());
    // ap: within 10% of the value
    expect(await ids('RiskAssessment?probability=ap0.22')).to.deep.equal([low]);
    expect(await ids('RiskAssessment?probability=ap0.75')).to.deep.equal([high]);
    expect(await ids('RiskAssessment?probability=ap0.5')).to.deep.equal([range]);
    // commas OR, repeats AND
    expect(await ids('RiskAssessment?probability=0.2,0.8')).to.deep.equal([low, high].sort());
    expect(await ids('RiskAssessment?probability=gt0.1&probability=lt0.5')).to.deep.equal([low, mid, range].sort());
    expect(await ids('RiskAssessment?probability:missing=false')).to.deep.equal(all);
  });

  it('quantity: value with system|code, with a code or unit, or alone', async () => {
    const { post, ids, patient } = await setup();
    const obs = (valueQuantity: Record<string, unknown>) =>
      post({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '2345-7' }] }, subject: { reference: `Patient/${patient}` }, valueQuantity });
    const mg = await obs({ value: 5.5, unit: 'mg', system: UCUM, code: 'mg' });
    const small = await obs({ value: 5.4, unit: 'milligram', system: UCUM, code: 'mg' });
    const grams = await obs({ value: 6, unit: 'g', system: UCUM, code: 'g' });
    const local = await obs({ value: 7, unit: 'mg' });
    const under = await obs({ value: 3, comparator: '<', unit: 'mg', system: UCUM, code: 'mg' });
    // 6 g is more than 5.4 mg (UCUM units convert: below).
    expect(await ids(`Observation?value-quantity=gt5.4|${UCUM}|mg`)).to.deep.equal([mg, grams].sort());
    expect(await ids(`Observation?value-quantity=5.4|${UCUM}|mg`)).to.deep.equal([small]);
    // 5 means [4.5, 5.5)
    expect(await ids(`Observation?value-quantity=5|${UCUM}|mg`)).to.deep.equal([small]);
    expect(await ids(`Observation?value-quantity=ge5|${UCUM}|g`)).to.deep.equal([grams]);
    // ||unit matches the code or the unit, in any system
    expect(await ids('Observation?value-quantity=gt5||mg')).to.deep.equal([local, mg, small].sort());
    expect(await ids('Observation?value-quantity=gt5||milligram')).to.deep.equal([small]);
    // the number alone: any unit
    expect(await ids('Observation?value-quantity=ge5.5')).to.deep.equal([grams, local, mg].sort());
    // a comparator in the data is an open range: `<3` is less than 2 in part, never more than 3
    expect(await ids(`Observation?value-quantity=lt2|${UCUM}|mg`)).to.deep.equal([under]);
    expect(await ids(`Observation?value-quantity=gt3|${UCUM}|mg`)).to.deep.equal([mg, small, grams].sort());
    // Encounter.length (Duration), Invoice.totalnet (Money: currency as the code)
    const enc = await post({
      resourceType: 'Encounter',
      status: 'finished',
      class: { code: 'AMB' },
      subject: { reference: `Patient/${patient}` },
      length: { value: 45, system: UCUM, code: 'min' },
    });
    expect(await ids(`Encounter?length=gt30|${UCUM}|min`)).to.deep.equal([enc]);
    expect(await ids(`Encounter?length=gt30|${UCUM}|h`)).to.deep.equal([]);
    const inv = await post({ resourceType: 'Invoice', status: 'issued', subject: { reference: `Patient/${patient}` }, totalNet: { value: 120.5, currency: 'EUR' } });
    expect(await ids('Invoice?totalnet=120.5||EUR')).to.deep.equal([inv]);
    expect(await ids('Invoice?totalnet=lt100||EUR')).to.deep.equal([]);
  });

  it('quantity in a UCUM unit: compared in canonical units (5 g finds 5000 mg), prefixes on canonical values; other units as given', async () => {
    const { post, ids, patient } = await setup();
    const obs = (valueQuantity: Record<string, unknown>, code = '2345-7') =>
      post({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code }] }, subject: { reference: `Patient/${patient}` }, valueQuantity });
    const mg5000 = await obs({ value: 5000, unit: 'mg', system: UCUM, code: 'mg' });
    const g5 = await obs({ value: 5, unit: 'g', system: UCUM, code: 'g' });
    const kg = await obs({ value: 0.006, unit: 'kg', system: UCUM, code: 'kg' });
    const g4 = await obs({ value: 4, unit: 'g', system: UCUM, code: 'g' });
    const under = await obs({ value: 3, comparator: '<', unit: 'g', system: UCUM, code: 'g' });
    const local = await obs({ value: 5000, unit: 'mg' });
    const iu = await obs({ value: 5, unit: 'IU/L', system: UCUM, code: '[IU]/L' });
    const celsius = await obs({ value: 37, unit: 'C', system: UCUM, code: 'Cel' }, '8310-5');
    // eq: the precision range, converted (5 g is [4.5, 5.5) g; 5000 mg is [4999.5, 5000.5) mg).
    expect(await ids(`Observation?value-quantity=5|${UCUM}|g`)).to.deep.equal([mg5000, g5].sort());
    expect(await ids(`Observation?value-quantity=5000|${UCUM}|mg`)).to.deep.equal([mg5000, g5].sort());
    expect(await ids(`Observation?value-quantity=0.005|${UCUM}|kg`)).to.deep.equal([mg5000, g5].sort());
    expect(await ids(`Observation?value-quantity=5|${UCUM}|kg`)).to.deep.equal([]);
    // Prefixes compare canonical values.
    expect(await ids(`Observation?value-quantity=gt4.5|${UCUM}|g`)).to.deep.equal([mg5000, g5, kg].sort());
    expect(await ids(`Observation?value-quantity=ge5500|${UCUM}|mg`)).to.deep.equal([kg]);
    expect(await ids(`Observation?value-quantity=le5|${UCUM}|g`)).to.deep.equal([mg5000, g5, g4, under].sort());
    expect(await ids(`Observation?value-quantity=lt1000|${UCUM}|mg`)).to.deep.equal([under]);
    expect(await ids(`Observation?value-quantity=sa4000|${UCUM}|mg`)).to.deep.equal([mg5000, g5, kg].sort());
    expect(await ids(`Observation?value-quantity=ap5|${UCUM}|g`)).to.deep.equal([mg5000, g5].sort());
    expect(await ids(`Observation?value-quantity=ne5|${UCUM}|g`)).to.deep.equal([kg, g4, under].sort());
    // Another dimension matches nothing; commas OR across units.
    expect(await ids(`Observation?value-quantity=5|${UCUM}|mL`)).to.deep.equal([]);
    expect(await ids(`Observation?value-quantity=4|${UCUM}|g,6000|${UCUM}|mg`)).to.deep.equal([g4, kg].sort());
    // In a composite's component too.
    expect(await ids(`Observation?code-value-quantity=${LOINC}|2345-7$5000|${UCUM}|mg`)).to.deep.equal([mg5000, g5].sort());
    // Without a system, in another system, or in a unit UCUM does not convert by a factor: as given, exactly as before.
    expect(await ids('Observation?value-quantity=5000||mg')).to.deep.equal([mg5000, local].sort());
    expect(await ids('Observation?value-quantity=5||g')).to.deep.equal([g5]);
    expect(await ids(`Observation?value-quantity=5|${UCUM}|[IU]/L`)).to.deep.equal([iu]);
    expect(await ids(`Observation?value-quantity=5000|${UCUM}|m[IU]/L`)).to.deep.equal([]);
    expect(await ids(`Observation?value-quantity=37|${UCUM}|Cel`)).to.deep.equal([celsius]);
    expect(await ids(`Observation?value-quantity=310.15|${UCUM}|K`)).to.deep.equal([]);
    expect(await ids(`Observation?value-quantity=5|${UCUM}|not-a-unit`)).to.deep.equal([]);
  });

  it('refuses bad numbers and quantities with an OperationOutcome naming the parameter', async () => {
    const { get } = await setup();
    for (const q of [
      'RiskAssessment?probability=high',
      'RiskAssessment?probability=gt',
      'RiskAssessment?probability=xx0.5',
      'RiskAssessment?probability:exact=0.5',
      'Observation?value-quantity=5|mg',
      `Observation?value-quantity=5|${UCUM}|`,
      'Observation?value-quantity=',
    ]) {
      const res = await get(q);
      expect(res.status, q).to.equal(400);
      expect(res.body.resourceType, q).to.equal('OperationOutcome');
      expect(JSON.stringify(res.body), q).to.match(/probability|value-quantity/);
    }
  });
});

describe('search by composite parameters (HTTP, fake ledger)', () => {
  it('code-value-quantity, component-code-value-quantity, combo and code-value-concept: the components of one element', async () => {
    const { post, ids, get, patient } = await setup();
    const mmHg = (value: number) => ({ value, system: UCUM, code: 'mm[Hg]' });
    const coding = (code: string) => ({ coding: [{ system: LOINC, code }] });
    const bp = (systolic: number, diastolic: number) =>
      post({
        resourceType: 'Observation',
        status: 'final',
        code: coding('85354-9'),
        subject: { reference: `Patient/${patient}` },
        component: [
          { code: coding('8480-6'), valueQuantity: mmHg(systolic) },
          { code: coding('8462-4'), valueQuantity: mmHg(diastolic) },
        ],
      });
    const high = await bp(150, 95);
    const normal = await bp(118, 76);
    // Diastolic 105 but systolic 95: no one component has code 8480-6 and a value over 100.
    const crossed = await bp(95, 105);
    const systolicAlone = await post({
      resourceType: 'Observation',
      status: 'final',
      code: coding('8480-6'),
      subject: { reference: `Patient/${patient}` },
      valueQuantity: mmHg(130),
    });
    const smoker = await post({
      resourceType: 'Observation',
      status: 'final',
      code: coding('72166-2'),
      subject: { reference: `Patient/${patient}` },
      valueCodeableConcept: { coding: [{ system: 'http://snomed.info/sct', code: '449868002' }] },
    });

    expect(await ids(`Observation?code-value-quantity=${LOINC}|8480-6$gt100`)).to.deep.equal([systolicAlone]);
    expect(await ids(`Observation?component-code-value-quantity=${LOINC}|8480-6$gt100`)).to.deep.equal([high, normal].sort());
    expect(await ids(`Observation?component-code-value-quantity=${LOINC}|8480-6$gt140|${UCUM}|mm[Hg]`)).to.deep.equal([high]);
    expect(await ids(`Observation?component-code-value-quantity=8462-4$ge100`)).to.deep.equal([crossed]);
    expect(await ids(`Observation?component-code-value-quantity=${LOINC}|8480-6$lt100`)).to.deep.equal([crossed]);
    // commas OR, repeats AND (each met by some component)
    expect(await ids(`Observation?component-code-value-quantity=8480-6$gt140,8462-4$lt80`)).to.deep.equal([high, normal].sort());
    expect(await ids(`Observation?component-code-value-quantity=8480-6$gt140&component-code-value-quantity=8462-4$gt90`)).to.deep.equal([high]);
    // combo: the Observation's own code and value, or a component's
    expect(await ids(`Observation?combo-code-value-quantity=8480-6$gt125`)).to.deep.equal([high, systolicAlone].sort());
    expect(await ids(`Observation?code-value-concept=${LOINC}|72166-2$http://snomed.info/sct|449868002`)).to.deep.equal([smoker]);
    expect(await ids(`Observation?code-value-concept=${LOINC}|72166-2$http://snomed.info/sct|8517006`)).to.deep.equal([]);

    // date and string components
    const dated = await post({
      resourceType: 'Observation',
      status: 'final',
      code: coding('21112-8'),
      subject: { reference: `Patient/${patient}` },
      valueDateTime: '2024-05-06T07:00:00Z',
    });
    const noted = await post({ resourceType: 'Observation', status: 'final', code: coding('8251-1'), subject: { reference: `Patient/${patient}` }, valueString: 'Mild headache' });
    expect(await ids(`Observation?code-value-date=${LOINC}|21112-8$2024-05`)).to.deep.equal([dated]);
    expect(await ids(`Observation?code-value-date=${LOINC}|21112-8$lt2024-05`)).to.deep.equal([]);
    expect(await ids(`Observation?code-value-string=8251-1$mild`)).to.deep.equal([noted]);
    expect(await ids(`Observation?code-value-string=21112-8$mild`)).to.deep.equal([]);

    for (const q of ['Observation?code-value-quantity=8480-6', 'Observation?code-value-quantity=8480-6$gt100$x', 'Observation?code-value-quantity=8480-6$tall']) {
      const res = await get(q);
      expect(res.status, q).to.equal(400);
      expect(JSON.stringify(res.body), q).to.contain('code-value-quantity');
    }
  });
});
