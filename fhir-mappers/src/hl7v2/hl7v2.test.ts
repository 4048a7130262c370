import { expect } from 'chai';
import type { Bundle, DiagnosticReport, Encounter, Observation, Patient } from 'fhir/r4';
import { validateResource } from '../validate';
import { expectGolden, readTestData } from '../test-support/golden';
import { expectMappingError } from '../test-support/expect-error';
import { TEST_IDS } from '../test-support/ids';
import { type Hl7MapOptions, hl7v2ToBundle as mapHl7 } from './index';

type Options = Omit<Hl7MapOptions, 'ids'> & { ids?: Hl7MapOptions['ids'] };
/** The mapper under the test custodian's keyed ids (TEST_IDS) unless the options name others. */
function hl7v2ToBundle(message: string | Uint8Array, options?: Options): Bundle {
  return mapHl7(message, { ids: TEST_IDS, ...options });
}

const MSH_ADT = 'MSH|^~\\&|APP|FAC^1.2.3.4^ISO|HDX|HDX|20240101120000+0100||ADT^A01|CTRL-1|P|2.5.1';
const MSH_ORU = 'MSH|^~\\&|LAB|FAC^1.2.3.4^ISO|HDX|HDX|20240101120000+0100||ORU^R01|CTRL-2|P|2.5.1';
const PID = 'PID|1||MRN-1^^^FAC&1.2.3.4.5&ISO^MR||Doe^Jane||19800101|F';
const PV1 = 'PV1|1|I|||||||||||||||||V-1^^^FAC&1.2.3.4.6&ISO^VN';
const OBR = 'OBR|1|P-1|F-1^LAB|24331-1^Lipid panel^LN|||20240101110000+0100';

/** OBX with value in OBX-5, units in OBX-6 and the result status in OBX-11. */
function obx(setId: string, type: string, code: string, value: string, units: string, status: string): string {
  return ['OBX', setId, type, code, '', value, units, '', '', '', '', status].join('|');
}

function msg(...segments: string[]): string {
  return segments.join('\r');
}

function resources<T>(bundle: Bundle, type: string): T[] {
  return (bundle.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type) as T[];
}

function mapValid(text: string, options?: Parameters<typeof hl7v2ToBundle>[1]): Bundle {
  const bundle = hl7v2ToBundle(text, options);
  expect(validateResource(bundle)).to.deep.equal([]);
  return bundle;
}

describe('hl7v2ToBundle: golden files (each output is valid R4)', () => {
  const cases: Array<[string, Parameters<typeof hl7v2ToBundle>[1]]> = [
    ['adt-a01', undefined],
    ['adt-a04', { timeZone: '+01:00' }],
    ['adt-a08', undefined],
    ['oru-r01', undefined],
  ];
  for (const [name, options] of cases) {
    it(name, () => {
      const bundle = mapValid(readTestData('hl7v2', `${name}.hl7`), options);
      expectGolden(`hl7v2-${name}`, bundle);
      expect(hl7v2ToBundle(readTestData('hl7v2', `${name}.hl7`), options)).to.deep.equal(bundle);
    });
  }

  it('maps every message about the same patient to the same Patient id', () => {
    const a04 = resources<Patient>(hl7v2ToBundle(readTestData('hl7v2', 'adt-a04.hl7')), 'Patient')[0];
    const a08 = resources<Patient>(hl7v2ToBundle(readTestData('hl7v2', 'adt-a08.hl7')), 'Patient')[0];
    expect(a04?.id).to.be.a('string');
    expect(a04?.id).to.equal(a08?.id);
    const a01 = resources<Patient>(hl7v2ToBundle(readTestData('hl7v2', 'adt-a01.hl7')), 'Patient')[0];
    const oru = resources<Patient>(hl7v2ToBundle(readTestData('hl7v2', 'oru-r01.hl7')), 'Patient')[0];
    expect(a01?.id).to.equal(oru?.id);
  });
});

describe('hl7v2ToBundle: ADT', () => {
  it('keeps identifiers with their assigning authority and type, names, gender, birth date', () => {
    const b = mapValid(msg(MSH_ADT, PID, PV1));
    const p = resources<Patient>(b, 'Patient')[0];
    expect(p?.identifier?.[0]).to.deep.equal({
      system: 'urn:oid:1.2.3.4.5',
      value: 'MRN-1',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
    });
    expect(p?.name).to.deep.equal([{ family: 'Doe', given: ['Jane'] }]);
    expect(p?.gender).to.equal('female');
    expect(p?.birthDate).to.equal('1980-01-01');
    const e = resources<Encounter>(b, 'Encounter')[0];
    expect(e?.class.code).to.equal('IMP');
    expect(e?.status).to.equal('in-progress');
    expect(e?.subject?.reference).to.equal(`urn:uuid:${p?.id ?? ''}`);
    expect(b.entry?.[0]?.request).to.deep.equal({ method: 'PUT', url: `Patient/${p?.id ?? ''}` });
  });

  it('falls back to MSH-4 as assigning authority, and to the configured system for a namespace', () => {
    const noAuthority = 'PID|1||MRN-1^^^^MR';
    const p = resources<Patient>(mapValid(msg(MSH_ADT, noAuthority, PV1)), 'Patient')[0];
    expect(p?.identifier?.[0]?.system).to.equal('urn:oid:1.2.3.4');
    const ns = 'PID|1||MRN-1^^^CITYHOSP^MR';
    const q = resources<Patient>(mapValid(msg(MSH_ADT, ns, PV1), { authoritySystems: { CITYHOSP: 'https://city.example/mrn' } }), 'Patient')[0];
    expect(q?.identifier?.[0]?.system).to.equal('https://city.example/mrn');
  });

  it('A08 without PV1 gives only a Patient; PV1-2 N gives no Encounter; discharge finishes the Encounter', () => {
    const a08 = MSH_ADT.replace('ADT^A01', 'ADT^A08');
    expect(resources(mapValid(msg(a08, PID)), 'Encounter')).to.have.length(0);
    expect(resources(mapValid(msg(MSH_ADT, PID, 'PV1|1|N')), 'Encounter')).to.have.length(0);
    const discharged = `${PV1}|||||||||||||||||||||||||20240101080000+0100|20240102100000+0100`;
    const e = resources<Encounter>(mapValid(msg(MSH_ADT, PID, discharged)), 'Encounter')[0];
    expect(e?.status).to.equal('finished');
    expect(e?.period).to.deep.equal({ start: '2024-01-01T08:00:00+01:00', end: '2024-01-02T10:00:00+01:00' });
  });

  it('times without a zone are kept at date precision unless a time zone is configured', () => {
    const pv1 = `${PV1}|||||||||||||||||||||||||202401010800`;
    expect(resources<Encounter>(mapValid(msg(MSH_ADT, PID, pv1)), 'Encounter')[0]?.period?.start).to.equal('2024-01-01');
    expect(resources<Encounter>(mapValid(msg(MSH_ADT, PID, pv1), { timeZone: 'Z' }), 'Encounter')[0]?.period?.start).to.equal('2024-01-01T08:00:00Z');
  });

  it('gives precise errors for missing or malformed data', () => {
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT.replace('ADT^A01', 'ADT^A03'), PID, PV1)), 'UNMAPPABLE', 'MSH-9', /ADT\^A03 is not supported/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT.replace('ADT^A01', 'ADT'), PID, PV1)), 'INVALID', 'MSH-9');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT.replace('CTRL-1', ''), PID, PV1)), 'INVALID', 'MSH-10');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT.replace('2.5.1', '3.0'), PID, PV1)), 'UNMAPPABLE', 'MSH-12');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT.replace('|2.5.1', ''), PID, PV1)), 'INVALID', 'MSH-12');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PV1)), 'INVALID', 'PID');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, 'PID|1||', PV1)), 'INVALID', 'PID-3');
    const noFacility = MSH_ADT.replace('FAC^1.2.3.4^ISO', '');
    expectMappingError(() => hl7v2ToBundle(msg(noFacility, 'PID|1||M1', PV1)), 'INVALID', 'PID-3.4');
    expectMappingError(() => hl7v2ToBundle(msg(noFacility, 'PID|1||M1^^^A~M2', PV1)), 'INVALID', 'PID-3(2).4');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID.replace('|F', '|X'), PV1)), 'INVALID', 'PID-8');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID.replace('19800101', '19800231'), PV1)), 'INVALID', 'PID-7', /day out of range/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID.replace('19800101', 'yesterday'), PV1)), 'INVALID', 'PID-7');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID)), 'INVALID', 'PV1');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, 'PV1|1')), 'INVALID', 'PV1-2');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, 'PV1|1|Q')), 'UNMAPPABLE', 'PV1-2');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, `${PV1}|||||||||||||||||||||||||202401010800+1500`), { timeZone: 'Z' }), 'INVALID', 'PV1-44', /offset/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, `${PV1}|||||||||||||||||||||||||202401010800`), { timeZone: 'CET' }), 'INVALID', 'options.timeZone');
  });

  it('error messages do not contain the values of the message', () => {
    const secret = 'Zyx-SECRET';
    const attempts = [
      () => hl7v2ToBundle(msg(MSH_ADT, `PID|1||${secret}^^^^MR||Doe||${secret}|F`, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT, `PID|1||M1||${secret}||19800101|${secret}`, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT.replace('ADT^A01', `${secret}^A01`), PID, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT, PID, `PV1|1|${secret}`)),
    ];
    for (const attempt of attempts) {
      const err = (() => {
        try {
          attempt();
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(Error);
      expect(err?.message).not.to.include('SECRET');
      expect(JSON.stringify(err)).not.to.include('SECRET');
    }
  });
});

describe('hl7v2ToBundle: truncated messages', () => {
  it('names what is missing where the message was cut', () => {
    const adt = readTestData('hl7v2', 'adt-a01.hl7');
    const oru = readTestData('hl7v2', 'oru-r01.hl7');
    const cut = (text: string, marker: string, keep: number): string => text.slice(0, text.indexOf(marker) + keep);
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'HOSP1^', 5)), 'INVALID', 'MSH-9');
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'ADT^A01^ADT_A01|MSG', 19)), 'INVALID', 'MSH-12');
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'PID|', 14)), 'INVALID', 'PV1');
    expectMappingError(() => hl7v2ToBundle(cut(oru, 'OBX|1|NM|2093-3', 20)), 'INVALID', 'OBX-11');
    expectMappingError(() => hl7v2ToBundle(cut(oru, 'OBR|1|', 12)), 'INVALID', 'OBR-4');
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'MSH|', 6)), 'INVALID', 'MSH-2', /truncated/);
  });
});

describe('hl7v2ToBundle: ORU^R01', () => {
  it('maps OBR to DiagnosticReport and OBX to Observations with codes, units and statuses kept', () => {
    const b = mapValid(readTestData('hl7v2', 'oru-r01.hl7'));
    const report = resources<DiagnosticReport>(b, 'DiagnosticReport')[0];
    const obs = resources<Observation>(b, 'Observation');
    expect(obs).to.have.length(5);
    expect(report?.result?.map((r) => r.reference)).to.deep.equal(obs.map((o) => `urn:uuid:${o.id ?? ''}`));
    expect(report?.code.coding?.[0]).to.deep.include({ system: 'http://loinc.org', code: '24331-1' });
    expect(report?.status).to.equal('final');
    const [chol, trig, comment, appearance, hdl] = obs;
    expect(chol?.valueQuantity).to.deep.equal({ value: 212, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' });
    expect(chol?.interpretation?.[0]?.coding?.[0]?.code).to.equal('H');
    expect(chol?.referenceRange?.[0]?.high?.value).to.equal(200);
    expect(chol?.note).to.deep.equal([{ text: 'Fasting sample' }]);
    expect(trig?.valueQuantity?.comparator).to.equal('<');
    expect(trig?.referenceRange?.[0]).to.deep.include({ text: '0-150' });
    expect(comment?.valueString).to.equal('Sample slightly lipemic.\nRepeat advised.');
    expect(appearance?.status).to.equal('preliminary');
    expect(appearance?.valueCodeableConcept?.coding?.[0]?.system).to.equal('https://hdx.example/fhir/CodeSystem/hl7v2-local/99LAB');
    expect(hdl?.status).to.equal('cancelled');
    expect(hdl?.dataAbsentReason?.coding?.[0]?.code).to.equal('not-performed');
    expect(chol?.encounter?.identifier?.value).to.equal('V-2024-777');
  });

  it('maps SN ranges and ratios, dates and times, and several patients', () => {
    const b = mapValid(
      msg(
        MSH_ORU,
        PID,
        OBR,
        obx('1', 'SN', 'X1^Range^LN', '^10^-^20', 'mg', 'F'),
        obx('2', 'SN', 'X2^Titer^LN', '^1^:^128', '', 'F'),
        obx('3', 'DT', 'X3^Date^LN', '20240102', '', 'F'),
        obx('4', 'TM', 'X4^Time^LN', '0830', '', 'F'),
        'PID|1||MRN-2^^^FAC&1.2.3.4.5&ISO^MR',
        'OBR|1||F-2^LAB|X^Other^LN',
        obx('1', 'NM', 'X5^Count^LN', '+7.50', '{cells}^^UCUM', 'F'),
      ),
    );
    const obs = resources<Observation>(b, 'Observation');
    expect(obs[0]?.valueRange).to.deep.equal({ low: { value: 10, unit: 'mg' }, high: { value: 20, unit: 'mg' } });
    expect(obs[1]?.valueRatio).to.deep.equal({ numerator: { value: 1 }, denominator: { value: 128 } });
    expect(obs[2]?.valueDateTime).to.equal('2024-01-02');
    expect(obs[3]?.valueTime).to.equal('08:30:00');
    expect(obs[4]?.valueQuantity?.value).to.equal(7.5);
    expect(resources(b, 'Patient')).to.have.length(2);
    expect(resources<DiagnosticReport>(b, 'DiagnosticReport').map((r) => r.subject?.reference)).to.have.members(
      resources<Patient>(b, 'Patient').map((p) => `urn:uuid:${p.id ?? ''}`),
    );
  });

  it('gives distinct stable ids to repeated codes in one order', () => {
    const b = mapValid(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'), obx('2', 'NM', 'X^A^LN', '2', '', 'F')));
    const ids = resources<Observation>(b, 'Observation').map((o) => o.id);
    expect(new Set(ids).size).to.equal(2);
  });

  it('gives precise errors for malformed results', () => {
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, obx('1', 'NM', 'X^A^LN', '1', '', 'F'))), 'INVALID', 'OBX', /before any OBR/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, OBR)), 'INVALID', 'OBR', /before any PID/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, 'OBR|1|P-1|F-1')), 'INVALID', 'OBR-4');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', '', '1', '', 'F'))), 'INVALID', 'OBX-3');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', ''))), 'INVALID', 'OBX-11');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'Q'))), 'INVALID', 'OBX-11');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'ED', 'X^A^LN', '^AP^^Base64^AAAA', '', 'F'))), 'UNMAPPABLE', 'OBX-2', /ED is not supported/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', '', 'X^A^LN', '1', '', 'F'))), 'INVALID', 'OBX-2');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'), obx('2', 'NM', 'X^B^LN', 'one', '', 'F'))), 'INVALID', 'OBX[2]-5');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '9'.repeat(400), '', 'F'))), 'INVALID', 'OBX-5', /out of range/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1~2', '', 'F'))), 'UNMAPPABLE', 'OBX-5');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'SN', 'X^A^LN', '<>^5', '', 'F'))), 'UNMAPPABLE', 'OBX-5.1');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'TM', 'X^A^LN', '0830+0100', '', 'F'))), 'UNMAPPABLE', 'OBX-5');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, ['OBR', '1', 'P-1', 'F-1', 'X^A^LN', ...Array<string>(20).fill(''), 'Q'].join('|'))), 'INVALID', 'OBR-25');
  });
});
