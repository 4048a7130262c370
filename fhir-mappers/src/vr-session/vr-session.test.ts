import { expect } from 'chai';
import type { Bundle, Device, DocumentReference, Encounter, Observation, Procedure, Provenance } from 'fhir/r4';
import { MappingError } from '../errors';
import { validateResource } from '../validate';
import { expectGolden } from '../test-support/golden';
import { expectMappingError } from '../test-support/expect-error';
import { VR_LIMITS } from './schema';
import { TEST_IDS } from '../test-support/ids';
import { type VrMapOptions, parseVrSessionRecord, vrSessionToBundle as mapVr } from './to-bundle';
import type { VrSessionRecord } from './types';
import example from './example.json';

function record(patch: (r: VrSessionRecord) => void = () => undefined): VrSessionRecord {
  const r = structuredClone(example) as VrSessionRecord;
  patch(r);
  return r;
}

type Options = Omit<VrMapOptions, 'ids'> & { ids?: VrMapOptions['ids'] };
/** The mapper under the test custodian's keyed ids (TEST_IDS) unless the options name others. */
function vrSessionToBundle(record: unknown, options?: Options): Bundle {
  return mapVr(record, { ids: TEST_IDS, ...options });
}

function resources<T>(bundle: Bundle, type: string): T[] {
  return (bundle.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type) as T[];
}

function mapValid(r: unknown, options?: Parameters<typeof vrSessionToBundle>[1]): Bundle {
  const b = vrSessionToBundle(r, options);
  expect(validateResource(b)).to.deep.equal([]);
  return b;
}

describe('vrSessionToBundle', () => {
  it('maps the documented example to the golden Bundle, valid R4', () => {
    expectGolden('vr-session-example', mapValid(example));
  });

  it('is deterministic: same record, same Bundle; ids do not depend on key order', () => {
    const a = vrSessionToBundle(example);
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reverseKeys)
        : typeof v === 'object' && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reverseKeys(x)]),
            )
          : v;
    const shuffled = reverseKeys(example);
    expect(Object.keys(shuffled as object)[0]).to.equal('clinicianNotes');
    expect(vrSessionToBundle(shuffled)).to.deep.equal(a);
    expect(vrSessionToBundle(record())).to.deep.equal(a);
  });

  it('produces the expected resources, linked by urn:uuid, as idempotent PUTs', () => {
    const b = mapValid(example);
    expect(b.type).to.equal('transaction');
    expect((b.entry ?? []).map((e) => e.resource?.resourceType)).to.deep.equal([
      'Encounter',
      'Procedure',
      'Device',
      'Device',
      'Device',
      'Observation',
      'Observation',
      'Observation',
      'Observation',
      'Observation',
      'Observation',
      'Observation',
      'Observation',
      'DocumentReference',
      'Provenance',
    ]);
    for (const e of b.entry ?? []) {
      expect(e.fullUrl).to.equal(`urn:uuid:${e.resource?.id ?? ''}`);
      expect(e.request).to.deep.equal({ method: 'PUT', url: `${e.resource?.resourceType ?? ''}/${e.resource?.id ?? ''}` });
    }
    const enc = resources<Encounter>(b, 'Encounter')[0];
    expect(enc?.class).to.deep.equal({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR', display: 'virtual' });
    expect(enc?.period).to.deep.equal({ start: '2024-05-14T07:30:00.000Z', end: '2024-05-14T08:15:00.000Z' });
    expect(enc?.length?.value).to.equal(45);
    expect(enc?.subject).to.deep.equal({ type: 'Patient', identifier: { system: 'urn:ietf:rfc:3986', value: example.patient.did } });
    const proc = resources<Procedure>(b, 'Procedure')[0];
    expect(proc?.code?.coding?.[0]?.code).to.equal('exposure-therapy');
    expect(proc?.note?.[0]?.text).to.equal(example.clinicianNotes);
  });

  it('maps streams to SampledData with LOINC codes, UCUM units, gaps as E and summary components', () => {
    const b = mapValid(example);
    const obs = resources<Observation>(b, 'Observation');
    const hr = obs.find((o) => o.code.coding?.[0]?.code === '8867-4');
    expect(hr?.valueSampledData).to.deep.equal({
      origin: { value: 0, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
      period: 1000,
      dimensions: 1,
      data: '72 74 79 88 95 101 E 90 84 80',
    });
    expect(hr?.component?.map((c) => [c.code.coding?.[0]?.code, c.valueQuantity?.value])).to.deep.equal([
      ['mean', 84.778],
      ['minimum', 72],
      ['maximum', 101],
    ]);
    expect(hr?.category?.[0]?.coding?.[0]?.code).to.equal('vital-signs');
    const strap = resources<Device>(b, 'Device').find((d) => d.serialNumber === 'C7A1B2C3');
    expect(hr?.device?.reference).to.equal(`urn:uuid:${strap?.id ?? ''}`);
    const codes = obs.map((o) => o.code.coding?.[0]?.code);
    expect(codes).to.include.members(['8867-4', '59408-5', '9279-1', 'skin-conductance', '72514-3', 'suds-pre', 'suds-post', 'event-log']);
    const spo2 = obs.find((o) => o.code.coding?.[0]?.code === '59408-5');
    expect(spo2?.valueSampledData?.origin.code).to.equal('%');
    const events = obs.find((o) => o.code.coding?.[0]?.code === 'event-log');
    expect(events?.component?.map((c) => c.code.coding?.[0]?.code)).to.deep.equal(['scenario-start', 'level-change', 'panic-button', 'scenario-end']);
    expect(events?.component?.[0]?.valueDateTime).to.equal('2024-05-14T07:31:00.000Z');
  });

  it('records the recording and its SHA-256, and a Provenance naming the devices and the record hash', () => {
    const b = mapValid(example);
    const doc = resources<DocumentReference>(b, 'DocumentReference')[0];
    const att = doc?.content[0]?.attachment;
    expect(att?.url).to.equal(example.recording.url);
    expect(att?.size).to.equal(example.recording.sizeBytes);
    expect(att?.extension?.[0]?.valueString).to.equal(example.recording.sha256);
    const prov = resources<Provenance>(b, 'Provenance')[0];
    const others = (b.entry ?? []).filter((e) => e.resource?.resourceType !== 'Provenance').map((e) => e.fullUrl);
    expect(prov?.target.map((t) => t.reference)).to.deep.equal(others);
    const headset = resources<Device>(b, 'Device').find((d) => d.identifier?.[0]?.value === example.device.did);
    expect(prov?.agent[0]?.who.reference).to.equal(`urn:uuid:${headset?.id ?? ''}`);
    expect(prov?.entity?.[0]?.what.identifier?.value).to.match(/^[0-9a-f]{64}$/);
    const changed = vrSessionToBundle(record((r) => (r.clinicianNotes = 'Other note.')));
    const hash = (x: Bundle): string | undefined => resources<Provenance>(x, 'Provenance')[0]?.entity?.[0]?.what.identifier?.value;
    expect(hash(changed)).not.to.equal(hash(b));
  });

  it('handles a minimal in-clinic, unfinished session and literal references from options', () => {
    const minimal = {
      schemaVersion: '1.0.0',
      sessionId: 's1',
      patient: { identifiers: [{ system: 'urn:oid:1.2.3', value: 'MRN-1' }] },
      platform: { id: 'https://vr.example/p', name: 'P', version: '1' },
      device: { serialNumber: 'SN1', model: 'M', firmware: '1.0' },
      sessionType: 'rehabilitation',
      setting: 'in-clinic',
      start: '2024-01-01T10:00:00Z',
    };
    const b = mapValid(minimal, { patientReference: 'Patient/123' });
    const enc = resources<Encounter>(b, 'Encounter')[0];
    expect(enc?.class.code).to.equal('AMB');
    expect(enc?.status).to.equal('in-progress');
    expect(enc?.subject).to.deep.equal({ reference: 'Patient/123', type: 'Patient' });
    expect(resources(b, 'Observation')).to.have.length(0);
    expect(resources(b, 'DocumentReference')).to.have.length(0);
  });

  it('leaves out an Attachment.size that R4 cannot hold (unsignedInt)', () => {
    const b = mapValid(record((r) => r.recording && (r.recording.sizeBytes = 5_000_000_000)));
    expect(resources<DocumentReference>(b, 'DocumentReference')[0]?.content[0]?.attachment.size).to.equal(undefined);
  });

  it('gives stable ids: same session → same ids; other session → other ids; same device → same Device id', () => {
    const a = vrSessionToBundle(example);
    const b = vrSessionToBundle(record((r) => (r.sessionId = 'vrs-2024-000124')));
    const ids = (x: Bundle): string[] => (x.entry ?? []).map((e) => e.resource?.id ?? '');
    expect(ids(a)).to.deep.equal(ids(vrSessionToBundle(example)));
    const shared = ids(a).filter((id) => ids(b).includes(id));
    expect(shared).to.have.members(resources<Device>(a, 'Device').map((d) => d.id));
  });
});

describe('vrSessionToBundle: invalid records', () => {
  it('names the JSON pointer of schema violations, without values', () => {
    const err = expectMappingError(() => vrSessionToBundle(record((r) => (r.start = 'yesterday at noon'))), 'INVALID', '/start', /date-time/);
    expect(err.message).not.to.include('noon');
    expectMappingError(() => vrSessionToBundle(record((r) => ((r as unknown as Record<string, unknown>)['sessionType'] = 'karaoke'))), 'INVALID', '/sessionType');
    expectMappingError(() => vrSessionToBundle(record((r) => delete (r as Partial<VrSessionRecord>).device)), 'INVALID', '/device', /required/);
    expectMappingError(() => vrSessionToBundle(record((r) => (r.patient = {}))), 'INVALID', '/patient', /did, identifiers/);
    expectMappingError(() => vrSessionToBundle(record((r) => ((r as unknown as Record<string, unknown>)['schemaVersion'] = '2.0.0'))), 'INVALID', '/schemaVersion');
    const extra = expectMappingError(() => vrSessionToBundle({ ...example, 'Jane Doe': 1 }), 'INVALID', '/(unrecognized name)');
    expect(extra.message).not.to.include('Jane');
    expectMappingError(
      () => vrSessionToBundle(record((r) => r.biometrics?.[0]?.samples.splice(3, 1, { offsetMs: 3000, value: Number.NaN }))),
      'INVALID',
      '/biometrics/0/samples/3/value',
    );
    for (const bad of [null, 42, 'x', [], {}]) expect(() => vrSessionToBundle(bad)).to.throw(MappingError);
  });

  it('checks what the schema cannot: times, order, sensors, slots', () => {
    expectMappingError(() => vrSessionToBundle(record((r) => (r.end = '2024-05-14T09:00:00+02:00'))), 'INVALID', '/end', /before start/);
    expectMappingError(() => vrSessionToBundle(record((r) => (r.end = '2024-05-16T09:00:00+02:00'))), 'INVALID', '/end', /24 hours/);
    expectMappingError(
      () => vrSessionToBundle(record((r) => r.biometrics?.[0]?.samples.splice(3, 0, { offsetMs: 1000, value: 1 }))),
      'INVALID',
      '/biometrics/0/samples/3/offsetMs',
      /increasing/,
    );
    expectMappingError(
      () => vrSessionToBundle(record((r) => r.biometrics?.[0]?.samples.splice(3, 0, { offsetMs: 2100, value: 1 }))),
      'INVALID',
      '/biometrics/0/samples/3/offsetMs',
      /same sampling period/,
    );
    expectMappingError(
      () => vrSessionToBundle(record((r) => r.biometrics?.[1]?.samples.push({ offsetMs: 3_000_000, value: 1 }))),
      'INVALID',
      '/biometrics/1/samples/3/offsetMs',
      /after the end/,
    );
    expectMappingError(() => vrSessionToBundle(record((r) => r.biometrics?.[0] && (r.biometrics[0].sensor = 'nope'))), 'INVALID', '/biometrics/0/sensor');
    expectMappingError(() => vrSessionToBundle(record((r) => r.wearables?.push({ ...r.wearables[0]!, serialNumber: 'X' }))), 'INVALID', '/wearables/1/key');
    expectMappingError(() => vrSessionToBundle(record((r) => r.events?.push({ offsetMs: 9_000_000, type: 'other' }))), 'INVALID', '/events/4/offsetMs');
    expectMappingError(
      () =>
        vrSessionToBundle(
          record((r) => {
            delete r.end;
            r.biometrics = [
              {
                measure: 'heart-rate',
                periodMs: 1,
                samples: [
                  { offsetMs: 0, value: 1 },
                  { offsetMs: 10_000_000, value: 2 },
                ],
              },
            ];
          }),
        ),
      'UNMAPPABLE',
      '/biometrics/0/samples/1/offsetMs',
    );
  });

  it('rejects huge records at their limits', () => {
    const samples = Array.from({ length: VR_LIMITS.maxSamplesPerStream + 1 }, (_, i) => ({ offsetMs: i, value: 1 }));
    expectMappingError(() => vrSessionToBundle(record((r) => (r.biometrics = [{ measure: 'heart-rate', periodMs: 1, samples }]))), 'INVALID', '/biometrics/0/samples');
    expectMappingError(() => vrSessionToBundle(record((r) => (r.clinicianNotes = 'x'.repeat(VR_LIMITS.maxTextLength + 1)))), 'INVALID', '/clinicianNotes');
    expectMappingError(() => vrSessionToBundle(record((r) => r.scores?.[0] && (r.scores[0].value = 1e300))), 'INVALID', '/scores/0/value');
  });

  it('parseVrSessionRecord returns the typed record when valid', () => {
    expect(parseVrSessionRecord(example).sessionId).to.equal(example.sessionId);
  });
});
