/**
 * VR session record (schema 1.0.0) → FHIR R4 transaction Bundle. Pure and deterministic: ids are keyed
 * (options.ids, the custodian's secret) from natural keys (platform id + session id + the patient reference,
 * device DID or serial), so the same record always maps to the same resources, and re-sending it updates
 * them (PUT) instead of duplicating; nobody without the secret can derive an id from a key.
 *
 * Produced resources (in this order):
 *  - Encounter: class VR (virtual, `setting: remote`) or AMB (`in-clinic`), type = session type, period,
 *    length, clinician as primary performer, identifier = (platform id, session id)
 *  - Procedure: code = session type, performed period, performer = clinician, usedReference = devices,
 *    note = clinician notes
 *  - Device: the headset (DID, serial, model, firmware), the platform software (id, version), each wearable
 *  - Observation per biometric stream: LOINC code and UCUM unit of the measure, valueSampledData on the
 *    stream's sampling grid (missing slots "E"), components mean / min / max, device = the sensor
 *  - Observation per score (the record's code), and one Observation holding the event log (a component per
 *    event, valueDateTime)
 *  - DocumentReference for the recording (url, content type, size, SHA-256 in an extension: R4
 *    Attachment.hash is SHA-1)
 *  - Provenance: target = all of the above, agents = headset (author), wearables (author), platform
 *    (assembler), entity = the SHA-256 of the record's RFC 8785 canonical JSON
 * Patient and clinician are referenced logically (Reference.identifier: the DID, else the first local
 * identifier), or by the literal references given in options.
 */
import type {
  Bundle,
  CodeableConcept,
  Coding,
  Device,
  DocumentReference,
  Encounter,
  FhirResource,
  Observation,
  ObservationComponent,
  Procedure,
  Provenance,
  Quantity,
  Reference,
} from 'fhir/r4';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { MappingError, guard, type MappingProblem } from '../errors';
import { type StableIds, canonicalJson, sha256Hex } from '../ids';
import { type OutputOptions, checkOutput, ref, transaction } from '../output';
import { EXTENSION, SYSTEM, type Concept, type ObservationCategory } from '../systems';
import { VR_LIMITS, vrSessionSchema } from './schema';
import type { VrBiometricStream, VrDevice, VrMeasure, VrParty, VrSessionRecord, VrSessionType, VrWearable } from './types';

export interface VrMapOptions extends OutputOptions {
  /** The custodian's keyed ids (keyedIds(secret)): no id is a hash of a natural key alone. */
  ids: StableIds;
  /** literal reference to the patient when the gateway has resolved it, e.g. 'Patient/123' */
  patientReference?: string;
  /** literal reference to the clinician, e.g. 'Practitioner/45' */
  clinicianReference?: string;
}

interface MeasureInfo {
  coding: Coding[];
  text: string;
  unit: string;
  unitDisplay: string;
  category: ObservationCategory;
}

/** LOINC codes and UCUM units per measure. Skin conductance has no LOINC code: HDX code system. */
export const MEASURES: Readonly<Record<VrMeasure, MeasureInfo>> = {
  'heart-rate': {
    coding: [{ system: SYSTEM.loinc, code: '8867-4', display: 'Heart rate' }],
    text: 'Heart rate',
    unit: '/min',
    unitDisplay: 'beats/minute',
    category: 'vital-signs',
  },
  spo2: {
    coding: [
      { system: SYSTEM.loinc, code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' },
      { system: SYSTEM.loinc, code: '2708-6', display: 'Oxygen saturation in Arterial blood' },
    ],
    text: 'Oxygen saturation (pulse oximetry)',
    unit: '%',
    unitDisplay: '%',
    category: 'vital-signs',
  },
  'respiratory-rate': {
    coding: [{ system: SYSTEM.loinc, code: '9279-1', display: 'Respiratory rate' }],
    text: 'Respiratory rate',
    unit: '/min',
    unitDisplay: 'breaths/minute',
    category: 'vital-signs',
  },
  'skin-conductance': {
    coding: [{ system: SYSTEM.hdxVrMeasure, code: 'skin-conductance', display: 'Skin conductance (electrodermal activity)' }],
    text: 'Skin conductance',
    unit: 'uS',
    unitDisplay: 'microsiemens',
    category: 'exam',
  },
  'pain-score': {
    coding: [{ system: SYSTEM.loinc, code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }],
    text: 'Pain severity (0-10)',
    unit: '{score}',
    unitDisplay: 'score',
    category: 'survey',
  },
};

const SESSION_TYPE_DISPLAY: Readonly<Record<VrSessionType, string>> = {
  consultation: 'VR consultation',
  'exposure-therapy': 'VR exposure therapy',
  rehabilitation: 'VR rehabilitation',
  'pain-management': 'VR pain management',
  training: 'VR training',
};

const EVENT_DISPLAY: Readonly<Record<string, string>> = {
  'scenario-start': 'Scenario started',
  'scenario-end': 'Scenario ended',
  'level-change': 'Level changed',
  pause: 'Session paused',
  resume: 'Session resumed',
  'panic-button': 'Panic button pressed',
  'task-complete': 'Task completed',
  calibration: 'Calibration',
  'technical-issue': 'Technical issue',
  other: 'Other event',
};

const CATEGORY_DISPLAY: Readonly<Record<ObservationCategory, string>> = {
  'vital-signs': 'Vital Signs',
  survey: 'Survey',
  exam: 'Exam',
  therapy: 'Therapy',
  laboratory: 'Laboratory',
};

/** Largest number of SampledData slots one stream may span (gaps are written as "E"). */
const MAX_SLOTS = 4 * VR_LIMITS.maxSamplesPerStream;
const UNSIGNED_INT_MAX = 2147483647;

// ---- input validation ----------------------------------------------------------------------------

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (validator === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
    addFormats(ajv, ['date-time', 'uri']);
    validator = ajv.compile(vrSessionSchema);
  }
  return validator;
}

function problemOf(err: ErrorObject): MappingProblem {
  const params = err.params as Record<string, unknown>;
  const at = err.instancePath === '' ? '/' : err.instancePath;
  switch (err.keyword) {
    case 'required':
      return { location: `${err.instancePath}/${String(params['missingProperty'])}`, message: 'required property is missing' };
    case 'additionalProperties': {
      const p = String(params['additionalProperty']);
      const name = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(p) ? p : '(unrecognized name)';
      return { location: `${err.instancePath}/${name}`, message: 'unknown property' };
    }
    case 'enum':
      return { location: at, message: `must be one of ${JSON.stringify(params['allowedValues'])}` };
    case 'const':
      return { location: at, message: `must be ${JSON.stringify(params['allowedValue'])} (unsupported schema version)` };
    case 'format':
      return { location: at, message: `must be a valid ${String(params['format'])}` };
    case 'pattern':
      return { location: at, message: 'does not have the required format' };
    default:
      // ajv's own messages name the rule (type, limits), never the value
      return { location: at, message: err.message ?? `violates '${err.keyword}'` };
  }
}

/** ajv errors → problems; the alternatives of an anyOf ("a DID or identifiers") become one problem. */
function problemsOf(errors: readonly ErrorObject[]): MappingProblem[] {
  const alternatives = new Map<string, string[]>();
  for (const e of errors) {
    if (e.keyword === 'required' && e.schemaPath.includes('/anyOf/')) {
      const list = alternatives.get(e.instancePath) ?? [];
      list.push(String((e.params as Record<string, unknown>)['missingProperty']));
      alternatives.set(e.instancePath, list);
    }
  }
  const out: MappingProblem[] = [];
  for (const e of errors) {
    if (e.schemaPath.includes('/anyOf/')) continue;
    if (e.keyword === 'anyOf') {
      const names = alternatives.get(e.instancePath) ?? [];
      out.push({ location: e.instancePath === '' ? '/' : e.instancePath, message: `needs at least one of: ${names.join(', ')}` });
    } else {
      out.push(problemOf(e));
    }
  }
  return out;
}

/** Validates a VR session record against schema 1.0.0 and its semantic rules. Throws MappingError (INVALID). */
export function parseVrSessionRecord(input: unknown): VrSessionRecord {
  return guard(() => {
    const validate = getValidator();
    if (!validate(input)) {
      const problems = problemsOf(validate.errors ?? []);
      const first = problems[0] ?? { location: '/', message: 'invalid record' };
      throw new MappingError('INVALID', first.location, first.message, problems);
    }
    const record = input as VrSessionRecord;
    checkSemantics(record);
    return record;
  });
}

function instant(value: string, location: string): number {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new MappingError('INVALID', location, 'not a representable date-time');
  return ms;
}

function checkSemantics(r: VrSessionRecord): void {
  const start = instant(r.start, '/start');
  let maxOffset: number = VR_LIMITS.maxDurationMs;
  if (r.end !== undefined) {
    const end = instant(r.end, '/end');
    if (end < start) throw new MappingError('INVALID', '/end', 'end is before start');
    if (end - start > VR_LIMITS.maxDurationMs) throw new MappingError('INVALID', '/end', 'session longer than 24 hours');
    maxOffset = end - start;
  }
  const keys = new Set<string>();
  (r.wearables ?? []).forEach((w, i) => {
    if (keys.has(w.key)) throw new MappingError('INVALID', `/wearables/${i}/key`, 'duplicate wearable key');
    keys.add(w.key);
  });
  (r.biometrics ?? []).forEach((s, i) => {
    if (s.sensor !== undefined && !keys.has(s.sensor)) {
      throw new MappingError('INVALID', `/biometrics/${i}/sensor`, 'sensor does not name a wearable');
    }
    checkStream(s, `/biometrics/${i}`, maxOffset);
  });
  (r.events ?? []).forEach((e, i) => {
    if (e.offsetMs > maxOffset) throw new MappingError('INVALID', `/events/${i}/offsetMs`, 'event after the end of the session');
  });
  (r.scores ?? []).forEach((s, i) => {
    if (s.offsetMs !== undefined && s.offsetMs > maxOffset) {
      throw new MappingError('INVALID', `/scores/${i}/offsetMs`, 'score after the end of the session');
    }
  });
}

function checkStream(s: VrBiometricStream, at: string, maxOffset: number): void {
  let previous = -1;
  let previousSlot = -1;
  const first = s.samples[0]?.offsetMs ?? 0;
  s.samples.forEach((sample, j) => {
    const loc = `${at}/samples/${j}`;
    if (sample.offsetMs > maxOffset) throw new MappingError('INVALID', `${loc}/offsetMs`, 'sample after the end of the session');
    if (sample.offsetMs <= previous) throw new MappingError('INVALID', `${loc}/offsetMs`, 'samples must be in strictly increasing time order');
    const slot = Math.round((sample.offsetMs - first) / s.periodMs);
    if (slot === previousSlot) {
      throw new MappingError('INVALID', `${loc}/offsetMs`, 'two samples fall in the same sampling period (periodMs too large for the samples)');
    }
    if (slot >= MAX_SLOTS) throw new MappingError('UNMAPPABLE', `${loc}/offsetMs`, `stream spans more than ${MAX_SLOTS} sampling periods`);
    previous = sample.offsetMs;
    previousSlot = slot;
  });
}

// ---- mapping -------------------------------------------------------------------------------------

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function concept(system: string, code: string, display: string, text?: string): CodeableConcept {
  const cc: CodeableConcept = { coding: [{ system, code, display }] };
  if (text !== undefined) cc.text = text;
  return cc;
}

function quantity(value: number, unit: string, unitDisplay: string): Quantity {
  return { value, unit: unitDisplay, system: SYSTEM.ucum, code: unit };
}

function partyReference(party: VrParty | undefined, literal: string | undefined, type: 'Patient' | 'Practitioner'): Reference | undefined {
  if (literal !== undefined) return { reference: literal, type };
  if (party === undefined) return undefined;
  if (party.did !== undefined) return { type, identifier: { system: SYSTEM.uri, value: party.did } };
  const id = party.identifiers?.[0];
  return id ? { type, identifier: { system: id.system, value: id.value } } : undefined;
}

function deviceKey(d: { did?: string; manufacturer?: string; model: string; serialNumber?: string }): string {
  return d.did ?? `${d.manufacturer ?? ''}|${d.model}|${d.serialNumber ?? ''}`;
}

function deviceResource(ids: StableIds, d: VrDevice | VrWearable, type: Concept): Device & { id: string } {
  const identifier = [];
  if (d.did !== undefined) identifier.push({ system: SYSTEM.uri, value: d.did });
  const device: Device & { id: string } = {
    resourceType: 'Device',
    id: ids.id('Device', deviceKey(d)),
    status: 'active',
    type: concept(type.system, type.code, type.display),
    deviceName: [{ name: d.model, type: 'model-name' }],
    modelNumber: d.model,
  };
  if (identifier.length > 0) device.identifier = identifier;
  if (d.manufacturer !== undefined) device.manufacturer = d.manufacturer;
  if (d.serialNumber !== undefined) device.serialNumber = d.serialNumber;
  if (d.firmware !== undefined) device.version = [{ type: { text: 'firmware' }, value: d.firmware }];
  return device;
}

function platformResource(ids: StableIds, p: VrSessionRecord['platform']): Device & { id: string } {
  const device: Device & { id: string } = {
    resourceType: 'Device',
    id: ids.id('Device/platform', p.id),
    identifier: [{ system: SYSTEM.uri, value: p.id }],
    status: 'active',
    type: concept(SYSTEM.hdxDeviceType, 'vr-platform', 'VR telemedicine platform (software)'),
    deviceName: [{ name: p.name, type: 'user-friendly-name' }],
    version: [{ type: { text: 'software' }, value: p.version }],
  };
  if (p.vendor !== undefined) device.manufacturer = p.vendor;
  return device;
}

function formatSample(v: number): string {
  // SampledData decimals: plain notation for the magnitudes the schema allows (|v| ≤ 1e9)
  const s = String(v);
  return /e/i.test(s) ? v.toFixed(20).replace(/0+$/, '').replace(/\.$/, '') : s;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

interface Ctx {
  record: VrSessionRecord;
  ids: StableIds;
  /** platform id, session id, the patient reference (canonical JSON) */
  key: readonly string[];
  startMs: number;
  subject: Reference;
  encounter: Reference;
  status: Observation['status'];
}

function category(c: ObservationCategory): CodeableConcept[] {
  return [concept(SYSTEM.observationCategory, c, CATEGORY_DISPLAY[c])];
}

function streamObservation(ctx: Ctx, s: VrBiometricStream, occurrence: number, device: Reference): Observation & { id: string } {
  const m = MEASURES[s.measure];
  const first = s.samples[0]?.offsetMs ?? 0;
  const last = s.samples.at(-1)?.offsetMs ?? first;
  const slots: string[] = [];
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const sample of s.samples) {
    const slot = Math.round((sample.offsetMs - first) / s.periodMs);
    while (slots.length < slot) slots.push('E');
    slots.push(formatSample(sample.value));
    sum += sample.value;
    min = Math.min(min, sample.value);
    max = Math.max(max, sample.value);
  }
  const stat = (code: string, display: string, value: number): ObservationComponent => ({
    code: concept(SYSTEM.hdxVrStatistic, code, display, `${m.text}, ${display.toLowerCase()}`),
    valueQuantity: quantity(round(value), m.unit, m.unitDisplay),
  });
  return {
    resourceType: 'Observation',
    id: ctx.ids.id('vr-session/Observation/stream', ...ctx.key, s.measure, s.sensor ?? '', String(occurrence)),
    status: ctx.status,
    category: category(m.category),
    code: { coding: m.coding, text: m.text },
    subject: ctx.subject,
    encounter: ctx.encounter,
    effectivePeriod: { start: iso(ctx.startMs + first), end: iso(ctx.startMs + last) },
    device,
    valueSampledData: {
      origin: quantity(0, m.unit, m.unitDisplay),
      period: s.periodMs,
      dimensions: 1,
      data: slots.join(' '),
    },
    component: [stat('mean', 'Mean', sum / s.samples.length), stat('minimum', 'Minimum', min), stat('maximum', 'Maximum', max)],
  };
}

function scoreObservations(ctx: Ctx, period: { start: string; end?: string }): Array<Observation & { id: string }> {
  const seen = new Map<string, number>();
  return (ctx.record.scores ?? []).map((s) => {
    const k = `${s.code.system}|${s.code.code}`;
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    const coding: Coding = { system: s.code.system, code: s.code.code };
    if (s.code.display !== undefined) coding.display = s.code.display;
    const value: Quantity = { value: s.value };
    if (s.unit !== undefined) Object.assign(value, { unit: s.unit, system: SYSTEM.ucum, code: s.unit });
    const obs: Observation & { id: string } = {
      resourceType: 'Observation',
      id: ctx.ids.id('vr-session/Observation/score', ...ctx.key, s.code.system, s.code.code, String(n)),
      status: ctx.status,
      category: category('survey'),
      code: { coding: [coding], text: s.name },
      subject: ctx.subject,
      encounter: ctx.encounter,
      valueQuantity: value,
    };
    if (s.offsetMs !== undefined) obs.effectiveDateTime = iso(ctx.startMs + s.offsetMs);
    else obs.effectivePeriod = period;
    return obs;
  });
}

function eventLog(ctx: Ctx, period: { start: string; end?: string }, device: Reference): Array<Observation & { id: string }> {
  const events = ctx.record.events ?? [];
  if (events.length === 0) return [];
  return [
    {
      resourceType: 'Observation',
      id: ctx.ids.id('vr-session/Observation/events', ...ctx.key),
      status: ctx.status,
      category: category('therapy'),
      code: concept(SYSTEM.hdxVrEvent, 'event-log', 'VR session event log'),
      subject: ctx.subject,
      encounter: ctx.encounter,
      effectivePeriod: period,
      device,
      component: events.map((e) => ({
        code: concept(SYSTEM.hdxVrEvent, e.type, EVENT_DISPLAY[e.type] ?? e.type, e.label),
        valueDateTime: iso(ctx.startMs + e.offsetMs),
      })),
    },
  ];
}

function recordingDocument(ctx: Ctx, period: { start: string; end?: string }, headset: Reference, dateMs: number): Array<DocumentReference & { id: string }> {
  const rec = ctx.record.recording;
  if (rec === undefined) return [];
  const attachment: NonNullable<DocumentReference['content'][number]['attachment']> = {
    extension: [{ url: EXTENSION.attachmentSha256, valueString: rec.sha256 }],
    contentType: rec.contentType,
    url: rec.url,
  };
  // R4 Attachment.size is an unsignedInt (32-bit): larger recordings go without a size
  if (rec.sizeBytes !== undefined && rec.sizeBytes <= UNSIGNED_INT_MAX) attachment.size = rec.sizeBytes;
  if (rec.title !== undefined) attachment.title = rec.title;
  return [
    {
      resourceType: 'DocumentReference',
      id: ctx.ids.id('vr-session/DocumentReference', ...ctx.key),
      status: 'current',
      type: concept(SYSTEM.hdxVrDocument, 'vr-session-recording', 'VR session recording'),
      subject: ctx.subject,
      date: iso(dateMs),
      author: [headset],
      content: [{ attachment }],
      context: { encounter: [ctx.encounter], period },
    },
  ];
}

function mapRecord(r: VrSessionRecord, options: VrMapOptions): Bundle {
  const startMs = Date.parse(r.start);
  const endMs = r.end === undefined ? undefined : Date.parse(r.end);
  const period: { start: string; end?: string } = { start: iso(startMs) };
  if (endMs !== undefined) period.end = iso(endMs);
  const subject = partyReference(r.patient, options?.patientReference, 'Patient');
  if (subject === undefined) throw new MappingError('INVALID', '/patient', 'patient needs a DID or an identifier');
  // The patient is part of the key: a patient admitted again after erasure (a new Patient id) gets new ids.
  const key = [r.platform.id, r.sessionId, canonicalJson(subject)];
  const { ids } = options;
  const clinician = partyReference(r.clinician, options?.clinicianReference, 'Practitioner');

  const headset = deviceResource(ids, r.device, { system: SYSTEM.hdxDeviceType, code: 'vr-headset', display: 'VR headset' });
  const platform = platformResource(ids, r.platform);
  const wearables = new Map<string, Device & { id: string }>();
  for (const w of r.wearables ?? []) {
    wearables.set(w.key, deviceResource(ids, w, { system: SYSTEM.hdxDeviceType, code: 'wearable-sensor', display: 'Wearable biometric sensor' }));
  }
  const devices = [headset, platform, ...wearables.values()];

  const encounterId = ids.id('vr-session/Encounter', ...key);
  const ctx: Ctx = { record: r, ids, key, startMs, subject, encounter: ref(encounterId), status: endMs === undefined ? 'preliminary' : 'final' };

  const encounter: Encounter & { id: string } = {
    resourceType: 'Encounter',
    id: encounterId,
    identifier: [{ system: r.platform.id, value: r.sessionId }],
    status: endMs === undefined ? 'in-progress' : 'finished',
    class: r.setting === 'remote' ? { system: SYSTEM.actCode, code: 'VR', display: 'virtual' } : { system: SYSTEM.actCode, code: 'AMB', display: 'ambulatory' },
    type: [concept(SYSTEM.hdxVrSessionType, r.sessionType, SESSION_TYPE_DISPLAY[r.sessionType])],
    subject,
    period,
  };
  if (clinician) encounter.participant = [{ type: [concept(SYSTEM.participationType, 'PPRF', 'primary performer')], individual: clinician }];
  if (endMs !== undefined) encounter.length = { value: round((endMs - startMs) / 60_000), unit: 'min', system: SYSTEM.ucum, code: 'min' };

  const procedure: Procedure & { id: string } = {
    resourceType: 'Procedure',
    id: ids.id('vr-session/Procedure', ...key),
    identifier: [{ system: r.platform.id, value: r.sessionId }],
    status: endMs === undefined ? 'in-progress' : 'completed',
    code: concept(SYSTEM.hdxVrSessionType, r.sessionType, SESSION_TYPE_DISPLAY[r.sessionType]),
    subject,
    encounter: ctx.encounter,
    performedPeriod: period,
    usedReference: [ref(headset.id), ...[...wearables.values()].map((w) => ref(w.id))],
  };
  if (clinician) procedure.performer = [{ actor: clinician }];
  if (r.clinicianNotes !== undefined) procedure.note = [{ text: r.clinicianNotes }];

  const occurrences = new Map<string, number>();
  const streams = (r.biometrics ?? []).map((s) => {
    const k = `${s.measure}|${s.sensor ?? ''}`;
    const n = (occurrences.get(k) ?? 0) + 1;
    occurrences.set(k, n);
    const sensor = s.sensor === undefined ? headset : wearables.get(s.sensor);
    return streamObservation(ctx, s, n, ref((sensor ?? headset).id));
  });
  const observations = [...streams, ...scoreObservations(ctx, period), ...eventLog(ctx, period, ref(headset.id))];
  const documents = recordingDocument(ctx, period, ref(headset.id), endMs ?? startMs);

  const targets: Array<FhirResource & { id: string }> = [encounter, procedure, ...devices, ...observations, ...documents];
  const provenance: Provenance & { id: string } = {
    resourceType: 'Provenance',
    id: ids.id('vr-session/Provenance', ...key),
    target: targets.map((t) => ref(t.id)),
    occurredPeriod: period,
    recorded: iso(endMs ?? startMs),
    agent: [
      { type: concept(SYSTEM.provenanceParticipantType, 'author', 'Author'), who: ref(headset.id) },
      ...[...wearables.values()].map((w) => ({ type: concept(SYSTEM.provenanceParticipantType, 'author', 'Author'), who: ref(w.id) })),
      { type: concept(SYSTEM.provenanceParticipantType, 'assembler', 'Assembler'), who: ref(platform.id) },
    ],
    entity: [
      {
        role: 'source',
        what: { identifier: { system: SYSTEM.hdxRecordSha256, value: sha256Hex(canonicalJson(r)) }, display: 'VR session record (SHA-256 of its RFC 8785 canonical JSON)' },
      },
    ],
  };
  return transaction([...targets, provenance]);
}

/**
 * Maps a VR session record to a FHIR R4 transaction Bundle. The record is validated first (schema
 * 1.0.0 and semantic rules); every failure is a MappingError naming the JSON pointer of the problem.
 */
export function vrSessionToBundle(record: unknown, options: VrMapOptions): Bundle {
  return guard(() => checkOutput(mapRecord(parseVrSessionRecord(record), options), options));
}
