/**
 * Property tests: over generated and mutated inputs, a mapper either returns a Bundle that is valid R4,
 * or throws a MappingError with a real location (never 'internal', never another error type).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Bundle } from 'fhir/r4';
import { MappingError } from './errors';
import { type Hl7MapOptions, type MappingWarning, hl7v2ToBundleWithWarnings } from './hl7v2';
import { readTestData } from './test-support/golden';
import { validateResource } from './validate';
import { TEST_IDS } from './test-support/ids';
import { vrSessionToBundle as mapVr } from './vr-session/to-bundle';
import type { VrSessionRecord } from './vr-session/types';
import example from './vr-session/example.json';

/** Maps and checks the warnings: a position in the message, a table 0357 condition, a resource of the Bundle. */
const hl7v2ToBundle = (m: string | Uint8Array, o?: Omit<Hl7MapOptions, 'ids'>): Bundle => {
  const { bundle, warnings } = hl7v2ToBundleWithWarnings(m, { ids: TEST_IDS, ...o });
  const urls = new Set((bundle.entry ?? []).map((e) => e.request?.url));
  for (const w of warnings as MappingWarning[]) {
    expect(w.location).to.match(/^[A-Z][A-Z0-9]{2}(\[\d+\])?(-\d+(\(\d+\))?(\.\d+)*)?$/);
    expect(w.condition).to.be.oneOf(['100', '101', '103']);
    if (w.resource !== undefined) expect(urls).to.include(w.resource);
  }
  return bundle;
};
const vrSessionToBundle = (r: unknown): Bundle => mapVr(r, { ids: TEST_IDS });

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 200);

type Outcome = { ok: true; bundle: Bundle } | { ok: false; error: MappingError };

function outcome(fn: () => Bundle): Outcome {
  try {
    return { ok: true, bundle: fn() };
  } catch (e) {
    if (!(e instanceof MappingError)) throw new Error(`not a MappingError: ${String(e)}`, { cause: e });
    return { ok: false, error: e };
  }
}

function assertWellBehaved(o: Outcome): void {
  if (o.ok) {
    expect(validateResource(o.bundle).filter((i) => i.severity === 'error')).to.deep.equal([]);
  } else {
    expect(o.error.location, o.error.message).not.to.equal('internal');
    expect(o.error.code).to.be.oneOf(['INVALID', 'UNMAPPABLE']);
  }
}

const HL7_SAMPLES = ['adt-a01.hl7', 'adt-a04.hl7', 'adt-a08.hl7', 'oru-r01.hl7'].map((f) => readTestData('hl7v2', f));
const SPECIAL = fc.constantFrom('|', '^', '~', '\\', '&', '\r', '\n', '"', '#', ' ', '\u00e9', '\u00a0', '\u0000', '\uFFFD', '9', 'X', '.');

/** One edit of a message: truncate, replace, insert, delete a segment, duplicate a segment. */
const edit = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: SPECIAL }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 12 }), SPECIAL) }),
  fc.record({ kind: fc.constant('drop-segment' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('dup-segment' as const), at: fc.nat() }),
);

type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function applyEdit(text: string, e: Edit): string {
  const at = text.length === 0 ? 0 : e.at % text.length;
  const segments = text.split('\r');
  const s = segments.length === 0 ? 0 : e.at % segments.length;
  switch (e.kind) {
    case 'truncate':
      return text.slice(0, at);
    case 'replace':
      return text.slice(0, at) + e.text + text.slice(at + 1);
    case 'insert':
      return text.slice(0, at) + e.text + text.slice(at);
    case 'drop-segment':
      return segments.filter((_, i) => i !== s).join('\r');
    case 'dup-segment':
      return [...segments.slice(0, s + 1), segments[s] ?? '', ...segments.slice(s + 1)].join('\r');
  }
}

describe('property: HL7 v2 mapping never misbehaves', () => {
  it('on mutated real messages', () => {
    fc.assert(
      fc.property(fc.constantFrom(...HL7_SAMPLES), fc.array(edit, { minLength: 1, maxLength: 4 }), (sample, edits) => {
        const text = edits.reduce(applyEdit, sample.replace(/\r?\n/g, '\r'));
        assertWellBehaved(outcome(() => hl7v2ToBundle(text, { timeZone: 'Z' })));
      }),
      { numRuns: RUNS },
    );
  });

  it('on arbitrary text and bytes after an MSH prefix', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 200 }), (s, bytes) => {
        assertWellBehaved(outcome(() => hl7v2ToBundle(s)));
        assertWellBehaved(outcome(() => hl7v2ToBundle(`MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\r${s}`)));
        assertWellBehaved(outcome(() => hl7v2ToBundle(Buffer.concat([Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||'), bytes]))));
      }),
      { numRuns: RUNS },
    );
  });

  it('on generated messages with arbitrary field content', () => {
    const text = fc.string({ maxLength: 20 }).map((s) => s.replace(/[|^~\\&\r\n]/g, ''));
    const valueType = fc.constantFrom('NM', 'SN', 'ST', 'TX', 'FT', 'CWE', 'CE', 'DT', 'DTM', 'TM', 'ED', '');
    fc.assert(
      fc.property(
        fc.record({
          mrn: text,
          family: text,
          given: text,
          birth: fc.oneof(text, fc.integer({ min: 1000_01_01, max: 2999_12_31 }).map(String)),
          sex: fc.constantFrom('M', 'F', 'O', 'U', 'X', ''),
          klass: fc.constantFrom('I', 'O', 'E', 'N', 'U', 'Z', ''),
          type: valueType,
          value: fc.oneof(text, fc.double({ noNaN: false }).map(String), fc.integer().map(String)),
          units: text,
          status: fc.constantFrom('F', 'P', 'C', 'X', 'Q', ''),
        }),
        (f) => {
          const adt = [
            'MSH|^~\\&|APP|FAC^1.2.3^ISO|HDX|HDX|20240101||ADT^A01|1|P|2.5',
            `PID|1||${f.mrn}^^^^MR||${f.family}^${f.given}||${f.birth}|${f.sex}`,
            `PV1|1|${f.klass}`,
          ].join('\r');
          assertWellBehaved(outcome(() => hl7v2ToBundle(adt)));
          const oru = [
            'MSH|^~\\&|LAB|FAC^1.2.3^ISO|HDX|HDX|20240101||ORU^R01|2|P|2.5',
            `PID|1||${f.mrn}`,
            'OBR|1||F1|X^Panel^LN',
            ['OBX', '1', f.type, 'X^Test^LN', '', f.value, f.units, '', '', '', '', f.status].join('|'),
          ].join('\r');
          assertWellBehaved(outcome(() => hl7v2ToBundle(oru)));
        },
      ),
      { numRuns: RUNS },
    );
  });
});

// ---- VR session records ----------------------------------------------------------------------------

const START = Date.parse('2024-05-14T09:30:00Z');
const safeText = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => /\S/.test(s));

const streamArb = fc
  .record({
    measure: fc.constantFrom('heart-rate', 'spo2', 'respiratory-rate', 'skin-conductance', 'pain-score' as const),
    periodMs: fc.integer({ min: 1, max: 10_000 }),
    slots: fc.uniqueArray(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 60 }),
    values: fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }), { minLength: 60, maxLength: 60 }),
  })
  .map(({ measure, periodMs, slots, values }) => ({
    measure,
    periodMs,
    samples: [...slots].sort((a, b) => a - b).map((slot, i) => ({ offsetMs: slot * periodMs, value: values[i] ?? 0 })),
  }));

const recordArb = fc.record({
  sessionId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
  sessionType: fc.constantFrom('consultation', 'exposure-therapy', 'rehabilitation', 'pain-management', 'training' as const),
  setting: fc.constantFrom('remote', 'in-clinic' as const),
  model: safeText,
  firmware: safeText,
  notes: fc.option(safeText, { nil: undefined }),
  streams: fc.array(streamArb, { maxLength: 4 }),
  events: fc.array(
    fc.record({ offsetMs: fc.integer({ min: 0, max: 5_000_000 }), type: fc.constantFrom('pause', 'resume', 'other' as const), label: fc.option(safeText, { nil: undefined }) }),
    { maxLength: 5 },
  ),
  durationMs: fc.option(fc.integer({ min: 5_000_000, max: 20_000_000 }), { nil: undefined }),
});

describe('property: VR session mapping', () => {
  it('maps every generated valid record to valid R4, deterministically', () => {
    fc.assert(
      fc.property(recordArb, (g) => {
        const r: VrSessionRecord = {
          schemaVersion: '1.0.0',
          sessionId: g.sessionId,
          patient: { did: 'did:hdx:abc123' },
          platform: { id: 'https://vr.example/p', name: 'P', version: '1' },
          device: { serialNumber: 'SN-1', model: g.model, firmware: g.firmware },
          sessionType: g.sessionType,
          setting: g.setting,
          start: new Date(START).toISOString(),
          biometrics: g.streams,
          events: g.events.map((e) => (e.label === undefined ? { offsetMs: e.offsetMs, type: e.type } : e)),
        };
        if (g.durationMs !== undefined) r.end = new Date(START + g.durationMs).toISOString();
        if (g.notes !== undefined) r.clinicianNotes = g.notes;
        const o = outcome(() => vrSessionToBundle(r));
        if (!o.ok) expect.fail(`valid record rejected: ${o.error.message}`);
        assertWellBehaved(o);
        expect(vrSessionToBundle(r)).to.deep.equal(o.bundle);
      }),
      { numRuns: Math.max(50, Math.floor(RUNS / 2)) },
    );
  });

  it('never misbehaves on mutated records', () => {
    const paths = fc.array(
      fc.oneof(fc.constantFrom('patient', 'device', 'biometrics', 'samples', 'start', 'end', 'events', 'scores', 'recording', 'value', 'offsetMs', 'did'), fc.nat({ max: 10 })),
      { minLength: 1, maxLength: 4 },
    );
    const junk = fc.oneof(fc.anything({ maxDepth: 2 }), fc.constant(undefined), fc.double(), fc.string({ maxLength: 10 }));
    fc.assert(
      fc.property(paths, junk, (path, value) => {
        const r = structuredClone(example) as unknown as Record<string, unknown>;
        let node: unknown = r;
        for (const key of path.slice(0, -1)) {
          const next = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[String(key)] : undefined;
          if (typeof next !== 'object' || next === null) break;
          node = next;
        }
        if (typeof node === 'object' && node !== null) (node as Record<string, unknown>)[String(path.at(-1))] = value;
        assertWellBehaved(outcome(() => vrSessionToBundle(r)));
      }),
      { numRuns: RUNS },
    );
  });
});
