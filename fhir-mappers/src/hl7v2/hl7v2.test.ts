import { expect } from 'chai';
import type { Bundle, DiagnosticReport, Encounter, Observation, Patient } from 'fhir/r4';
import { type MappingError, hl7ConditionOf } from '../errors';
import { validateResource } from '../validate';
import { expectGolden, readTestData } from '../test-support/golden';
import { expectMappingError } from '../test-support/expect-error';
import { TEST_IDS } from '../test-support/ids';
import { type Hl7MapOptions, type Hl7MappingResult, hl7v2ToBundle as mapHl7, hl7v2ToBundleWithWarnings } from './index';

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

/** The mapper with its warnings; the Bundle must be valid R4 (the validator the mappers use). */
function mapWarned(text: string, options?: Options): Hl7MappingResult {
  const result = hl7v2ToBundleWithWarnings(text, { ids: TEST_IDS, ...options });
  expect(validateResource(result.bundle)).to.deep.equal([]);
  return result;
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
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PV1)), 'INVALID', 'PID');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, 'PID|1||', PV1)), 'INVALID', 'PID-3');
    const noFacility = MSH_ADT.replace('FAC^1.2.3.4^ISO', '');
    expectMappingError(() => hl7v2ToBundle(msg(noFacility, 'PID|1||M1', PV1)), 'INVALID', 'PID-3.4');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID.replace('19800101', '19800231'), PV1)), 'INVALID', 'PID-7', /day out of range/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID.replace('19800101', 'yesterday'), PV1)), 'INVALID', 'PID-7');
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, `${PV1}|||||||||||||||||||||||||202401010800+1500`), { timeZone: 'Z' }), 'INVALID', 'PV1-44', /offset/);
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ADT, PID, `${PV1}|||||||||||||||||||||||||202401010800`), { timeZone: 'CET' }), 'INVALID', 'options.timeZone');
  });

  it('error messages do not contain the values of the message', () => {
    const secret = 'Zyx-SECRET';
    const attempts = [
      () => hl7v2ToBundle(msg(MSH_ADT, `PID|1||${secret}^^^^MR||Doe||${secret}|F`, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT, `PID|1||M1||${secret}||19800101|${secret}|||||||||||||||||||||${secret}`, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT.replace('ADT^A01', `${secret}^A01`), PID, PV1)),
      () => hl7v2ToBundle(msg(MSH_ADT, PID, ['PV1', '1', secret, ...Array<string>(41).fill(''), secret].join('|'))),
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
    const cut = (text: string, marker: string, keep: number): string => text.slice(0, text.indexOf(marker) + keep);
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'HOSP1^', 5)), 'INVALID', 'MSH-9');
    // cut after MSH-10: no version (read as v2, warned), then no PID (refused)
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'ADT^A01^ADT_A01|MSG', 19)), 'INVALID', 'PID');
    expectMappingError(() => hl7v2ToBundle(cut(adt, 'MSH|', 6)), 'INVALID', 'MSH-2', /truncated/);
  });

  it('maps what a cut message still holds and names, as warnings, what it lacks', () => {
    const adt = readTestData('hl7v2', 'adt-a01.hl7');
    const oru = readTestData('hl7v2', 'oru-r01.hl7');
    const cut = (text: string, marker: string, keep: number): string => text.slice(0, text.indexOf(marker) + keep);
    const rules = (text: string): string[] => mapWarned(text).warnings.map((w) => `${w.location} ${w.rule}`);
    expect(rules(cut(adt, 'PID|', 14))).to.deep.equal(['PID-5 patient-name-missing', 'PV1 visit-segment-missing']);
    expect(rules(cut(oru, 'OBX|1|NM|2093-3', 20))).to.deep.equal(['OBX-11 result-status-missing']);
    expect(rules(cut(oru, 'OBR|1|', 12))).to.deep.equal(['OBR-4 service-identifier-missing', 'OBR-7 observation-time-missing', 'OBR-25 order-status-missing']);
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
    expectMappingError(() => hl7v2ToBundle(msg(MSH_ORU, PID, OBR, obx('1', 'NM', '', '1', '', 'F'))), 'INVALID', 'OBX-3');
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

describe('hl7v2ToBundleWithWarnings: fields real senders leave blank', () => {
  /** `location condition rule` of each warning, and each warning's resource is an entry of the Bundle. */
  function warned(result: Hl7MappingResult): string[] {
    const urls = new Set((result.bundle.entry ?? []).map((e) => e.request?.url));
    for (const w of result.warnings) if (w.resource !== undefined) expect(urls, w.rule).to.include(w.resource);
    return result.warnings.map((w) => `${w.location} ${w.condition} ${w.rule}`);
  }
  const FULL_OBR = ['OBR', '1', 'P-1', 'F-1^LAB', '24331-1^Lipid panel^LN', '', '', '20240101110000+0100', ...Array<string>(17).fill(''), 'F'].join('|');

  it('complete messages give no warnings', () => {
    for (const name of ['adt-a01', 'adt-a04', 'adt-a08', 'oru-r01']) expect(warned(mapWarned(readTestData('hl7v2', `${name}.hl7`))), name).to.deep.equal([]);
    expect(warned(mapWarned(msg(MSH_ORU, PID, FULL_OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'))))).to.deep.equal([]);
  });

  it('OBX-11 missing: Observation.status unknown (R4 observation-status), the report derived as unknown', () => {
    const r = mapWarned(msg(MSH_ORU, PID, FULL_OBR.replace(/\|F$/, ''), obx('1', 'NM', 'X^A^LN', '1', '', 'F'), obx('2', 'NM', 'X^B^LN', '2', '', '')));
    const obs = resources<Observation>(r.bundle, 'Observation');
    expect(obs.map((o) => o.status)).to.deep.equal(['final', 'unknown']);
    expect(obs[1]?.valueQuantity?.value).to.equal(2);
    expect(resources<DiagnosticReport>(r.bundle, 'DiagnosticReport')[0]?.status).to.equal('unknown');
    expect(warned(r)).to.deep.equal(['OBX[2]-11 101 result-status-missing', 'OBR-25 101 order-status-missing']);
    expect(r.warnings[0]?.resource).to.equal(`Observation/${obs[1]?.id ?? ''}`);
    // with every result final the derived report status is final (as before)
    const f = mapWarned(msg(MSH_ORU, PID, FULL_OBR.replace(/\|F$/, ''), obx('1', 'NM', 'X^A^LN', '1', '', 'F')));
    expect(resources<DiagnosticReport>(f.bundle, 'DiagnosticReport')[0]?.status).to.equal('final');
    // an empty value and no status: unknown, with a dataAbsentReason
    const empty = resources<Observation>(mapWarned(msg(MSH_ORU, PID, FULL_OBR, obx('1', 'NM', 'X^A^LN', '', '', ''))).bundle, 'Observation')[0];
    expect(empty?.status).to.equal('unknown');
    expect(empty?.dataAbsentReason?.coding?.[0]?.code).to.equal('unknown');
  });

  it('OBR-4 missing: DiagnosticReport.code carries data-absent-reason; the results keep their codes', () => {
    const r = mapWarned(msg(MSH_ORU, PID, FULL_OBR.replace('24331-1^Lipid panel^LN', ''), obx('1', 'NM', 'X^A^LN', '1', '', 'F')));
    const report = resources<DiagnosticReport>(r.bundle, 'DiagnosticReport')[0];
    expect(report?.code).to.deep.equal({ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] });
    expect(resources<Observation>(r.bundle, 'Observation')[0]?.code.coding?.[0]?.code).to.equal('X');
    expect(warned(r)).to.deep.equal(['OBR-4 101 service-identifier-missing']);
  });

  it('OBR-7 missing: no effective time, except where OBX-14 gives one', () => {
    const withTime = [...obx('2', 'NM', 'X^B^LN', '2', '', 'F').split('|'), '', '', '20240101103000+0100'].join('|');
    const r = mapWarned(msg(MSH_ORU, PID, FULL_OBR.replace('20240101110000+0100', ''), obx('1', 'NM', 'X^A^LN', '1', '', 'F'), withTime));
    const obs = resources<Observation>(r.bundle, 'Observation');
    expect(obs.map((o) => o.effectiveDateTime)).to.deep.equal([undefined, '2024-01-01T10:30:00+01:00']);
    expect(resources<DiagnosticReport>(r.bundle, 'DiagnosticReport')[0]?.effectiveDateTime).to.equal(undefined);
    expect(warned(r)).to.deep.equal(['OBR-7 101 observation-time-missing']);
    // OBX-14 missing with OBR-7 given is the standard's way to say "the order's time": no warning
    expect(resources<Observation>(mapWarned(msg(MSH_ORU, PID, FULL_OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'))).bundle, 'Observation')[0]?.effectiveDateTime).to.equal(
      '2024-01-01T11:00:00+01:00',
    );
  });

  it('OBR-2 and OBR-3 missing: the report is keyed by the message, and the warning says a correction cannot replace it', () => {
    const r = mapWarned(msg(MSH_ORU, PID, FULL_OBR.replace('|P-1|F-1^LAB|', '|||'), obx('1', 'NM', 'X^A^LN', '1', '', 'F')));
    expect(resources<DiagnosticReport>(r.bundle, 'DiagnosticReport')[0]?.identifier).to.equal(undefined);
    expect(warned(r)).to.deep.equal(['OBR-3 101 order-number-missing']);
  });

  it('PID-5 missing: Patient without name; PID-8 outside table 0001: Patient without gender', () => {
    const r = mapWarned(msg(MSH_ADT, 'PID|1||MRN-1^^^FAC&1.2.3.4.5&ISO^MR||||19800101|Q', PV1));
    const p = resources<Patient>(r.bundle, 'Patient')[0];
    expect(p?.name).to.equal(undefined);
    expect(p?.gender).to.equal(undefined);
    expect(p?.birthDate).to.equal('1980-01-01');
    expect(warned(r)).to.deep.equal(['PID-5 101 patient-name-missing', 'PID-8 103 sex-not-in-table']);
    // PID-8 empty is optional in v2.5.1: left out without a warning
    expect(warned(mapWarned(msg(MSH_ADT, PID.replace('|F', '|'), PV1)))).to.deep.equal([]);
  });

  it('a further PID-3 identifier without assigning authority is left out; the Patient id stays that of the first', () => {
    const noFacility = MSH_ADT.replace('FAC^1.2.3.4^ISO', '');
    const r = mapWarned(msg(noFacility, 'PID|1||M1^^^A&1.2.3.9&ISO~M2||Doe', PV1));
    const p = resources<Patient>(r.bundle, 'Patient')[0];
    expect(p?.identifier?.map((i) => i.value)).to.deep.equal(['M1']);
    expect(p?.id).to.equal(resources<Patient>(mapWarned(msg(noFacility, 'PID|1||M1^^^A&1.2.3.9&ISO||Doe', PV1)).bundle, 'Patient')[0]?.id);
    expect(warned(r)).to.deep.equal(['PID-3(2).4 101 patient-identifier-without-authority']);
  });

  it('PV1 missing from A01/A04: the Patient alone; PV1-2 missing or outside table 0004: class UNK', () => {
    const a04 = mapWarned(msg(MSH_ADT.replace('ADT^A01', 'ADT^A04'), PID));
    expect(resources(a04.bundle, 'Encounter')).to.have.length(0);
    expect(resources(a04.bundle, 'Patient')).to.have.length(1);
    expect(warned(a04)).to.deep.equal(['PV1 100 visit-segment-missing']);
    const unk = { system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor', code: 'UNK', display: 'unknown' };
    for (const [klass, expected] of [
      ['', 'PV1-2 101 patient-class-missing'],
      ['Q', 'PV1-2 103 patient-class-not-in-table'],
    ] as const) {
      const r = mapWarned(msg(MSH_ADT, PID, PV1.replace('|I|', `|${klass}|`)));
      const e = resources<Encounter>(r.bundle, 'Encounter')[0];
      expect(e?.class).to.deep.equal(unk);
      expect(e?.identifier?.[0]?.value).to.equal('V-1');
      expect(warned(r)).to.deep.equal([expected]);
    }
  });

  it('MSH-12 missing: read as HL7 v2', () => {
    const r = mapWarned(msg(MSH_ADT.replace('|2.5.1', ''), PID, PV1));
    expect(resources(r.bundle, 'Patient')).to.have.length(1);
    expect(warned(r)).to.deep.equal(['MSH-12 101 version-missing']);
    expect(r.warnings[0]?.resource).to.equal(undefined);
  });

  it('warnings name positions and rules, never values', () => {
    const secret = 'Zyx-SECRET';
    const noFacility = MSH_ADT.replace('FAC^1.2.3.4^ISO', '');
    const r = mapWarned(msg(noFacility, `PID|1||M1^^^FAC&1.2.3.4.5&ISO~${secret}^^^^MR||||19800101|${secret}`, PV1.replace('|I|', `|${secret}|`)));
    expect(r.warnings.map((w) => w.rule)).to.deep.equal(['patient-identifier-without-authority', 'patient-name-missing', 'sex-not-in-table', 'patient-class-not-in-table']);
    expect(JSON.stringify(r.warnings)).not.to.include('SECRET');
  });

  it('still refuses what cannot be mapped safely, with its table 0357 condition', () => {
    const noFacility = MSH_ADT.replace('FAC^1.2.3.4^ISO', '');
    const cases: Array<[string, MappingError['code'], string, string]> = [
      [msg(MSH_ADT, PV1), 'INVALID', 'PID', '100'],
      [msg(MSH_ADT, 'PID|1||', PV1), 'INVALID', 'PID-3', '101'],
      [msg(noFacility, 'PID|1||M1', PV1), 'INVALID', 'PID-3.4', '101'],
      [msg(MSH_ADT.replace('CTRL-1', ''), PID, PV1), 'INVALID', 'MSH-10', '101'],
      [msg(MSH_ADT.replace('ADT^A01', 'ADT^A03'), PID, PV1), 'UNMAPPABLE', 'MSH-9', '201'],
      [msg(MSH_ADT.replace('ADT^A01', 'ORM^O01'), PID, PV1), 'UNMAPPABLE', 'MSH-9', '200'],
      [msg(MSH_ADT.replace('2.5.1', '3.0'), PID, PV1), 'UNMAPPABLE', 'MSH-12', '203'],
      [msg(MSH_ADT, PID.replace('19800101', 'yesterday'), PV1), 'INVALID', 'PID-7', '102'],
      [msg(MSH_ORU, PID, obx('1', 'NM', 'X^A^LN', '1', '', 'F')), 'INVALID', 'OBX', '100'],
      [msg(MSH_ORU, PID, OBR, obx('1', 'NM', '', '1', '', 'F')), 'INVALID', 'OBX-3', '101'],
      [msg(MSH_ORU, PID, OBR, obx('1', '', 'X^A^LN', '1', '', 'F')), 'INVALID', 'OBX-2', '101'],
      [msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', 'one', '', 'F')), 'INVALID', 'OBX-5', '102'],
      [msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'Q')), 'INVALID', 'OBX-11', '103'],
      [msg(MSH_ORU, PID, ['OBR', '1', 'P-1', 'F-1', 'X^A^LN', ...Array<string>(20).fill(''), 'Q'].join('|')), 'INVALID', 'OBR-25', '103'],
      [msg(MSH_ORU, PID, OBR, obx('1', 'ED', 'X^A^LN', '^AP^^Base64^AAAA', '', 'F')), 'UNMAPPABLE', 'OBX-2', '207'],
    ];
    for (const [text, code, loc, condition] of cases) expect(hl7ConditionOf(expectMappingError(() => hl7v2ToBundle(text), code, loc)), loc).to.equal(condition);
  });
});

describe('hl7v2ToBundle: order numbers in the ORC', () => {
  it('takes the filler and placer order numbers from the ORC before the OBR when OBR-2/3 are blank', () => {
    const obrOnly = msg(MSH_ORU, PID, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'));
    const orcOnly = msg(MSH_ORU.replace('CTRL-2', 'CTRL-3'), PID, 'ORC|RE|P-1|F-1^LAB', OBR.replace('|P-1|F-1^LAB|', '|||'), obx('1', 'NM', 'X^A^LN', '1', '', 'F'));
    const a = resources<DiagnosticReport>(mapWarned(obrOnly).bundle, 'DiagnosticReport')[0];
    const b = mapWarned(orcOnly);
    const report = resources<DiagnosticReport>(b.bundle, 'DiagnosticReport')[0];
    expect(report?.identifier?.map((i) => [i.type?.coding?.[0]?.code, i.value])).to.deep.equal([
      ['FILL', 'F-1'],
      ['PLAC', 'P-1'],
    ]);
    // the same order, so the same report (a correction in a later message replaces it)
    expect(report?.id).to.equal(a?.id);
    expect(b.warnings.map((w) => w.rule)).to.not.include('order-number-missing');
    // an ORC belongs to the OBR after it only
    const second = msg(
      MSH_ORU,
      PID,
      'ORC|RE|P-1|F-1^LAB',
      OBR,
      obx('1', 'NM', 'X^A^LN', '1', '', 'F'),
      'OBR|2|||X^B^LN|||20240101110000+0100',
      obx('1', 'NM', 'X^B^LN', '1', '', 'F'),
    );
    expect(mapWarned(second).warnings.map((w) => `${w.location} ${w.rule}`)).to.include('OBR[2]-3 order-number-missing');
  });
});

describe('hl7v2ToBundleWithWarnings: a visit number without assigning authority', () => {
  const noFacility = (m: string): string => m.replace('FAC^1.2.3.4^ISO', '');
  const pid = 'PID|1||MRN-1^^^FAC&1.2.3.4.5&ISO^MR||Doe^Jane';
  const pv1 = 'PV1|1|I|||||||||||||||||V-1';

  it('in a result message: the results are not linked to the visit, with a warning', () => {
    const r = mapWarned(noFacility(msg(MSH_ORU, pid, pv1, OBR, obx('1', 'NM', 'X^A^LN', '1', '', 'F'))));
    expect(resources<Observation>(r.bundle, 'Observation')[0]?.encounter).to.equal(undefined);
    expect(r.warnings.map((w) => `${w.location} ${w.condition} ${w.rule}`)).to.include('PV1-19.4 101 visit-number-without-authority');
  });

  it('in an ADT message it is the Encounter identity: refused', () => {
    expect(hl7ConditionOf(expectMappingError(() => hl7v2ToBundle(noFacility(msg(MSH_ADT, pid, pv1))), 'INVALID', 'PV1-19.4'))).to.equal('101');
  });
});
