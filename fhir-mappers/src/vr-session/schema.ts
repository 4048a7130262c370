/**
 * HDX VR session record, version 1.0.0: what a VR telemedicine platform pushes to
 * `/ingest/vr-session` after (or during) a session. JSON Schema draft-07; `schemaVersion` carries the
 * version so later versions can be told apart. Documented in README.md with the example (example.json).
 *
 * Times: `start` / `end` are RFC 3339 date-times with a time zone. Samples, events and scores are timed
 * by `offsetMs`, milliseconds since `start` (wearables stream relative times; one clock per record).
 * Units: each biometric measure has one canonical UCUM unit (see MEASURES in to-bundle.ts).
 */

export const VR_SESSION_SCHEMA_VERSION = '1.0.0';
export const VR_SESSION_SCHEMA_ID = `https://hdx.example/schemas/vr-session/${VR_SESSION_SCHEMA_VERSION}`;

export const VR_SESSION_TYPES = ['consultation', 'exposure-therapy', 'rehabilitation', 'pain-management', 'training'] as const;
export const VR_SETTINGS = ['remote', 'in-clinic'] as const;
export const VR_MEASURES = ['heart-rate', 'spo2', 'respiratory-rate', 'skin-conductance', 'pain-score'] as const;
export const VR_EVENT_TYPES = [
  'scenario-start',
  'scenario-end',
  'level-change',
  'pause',
  'resume',
  'panic-button',
  'task-complete',
  'calibration',
  'technical-issue',
  'other',
] as const;

/** Limits keep one record bounded (a 3-hour session at 4 Hz is 43,200 samples). */
export const VR_LIMITS = {
  maxSamplesPerStream: 100_000,
  maxStreams: 32,
  maxEvents: 2_000,
  maxScores: 500,
  maxWearables: 16,
  maxDurationMs: 24 * 3_600_000,
  maxTextLength: 20_000,
} as const;

const shortText = { type: 'string', minLength: 1, maxLength: 256, pattern: '\\S' } as const;
const did = { type: 'string', maxLength: 512, pattern: '^did:[a-z0-9]+:[A-Za-z0-9._:%-]+$' } as const;
const uri = { type: 'string', format: 'uri', maxLength: 2048 } as const;
const token = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' } as const;
const offsetMs = { type: 'integer', minimum: 0, maximum: VR_LIMITS.maxDurationMs } as const;
/** a FHIR code: no leading, trailing or double whitespace */
const code = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\s]+( [^\\s]+)*$' } as const;

const identifier = {
  type: 'object',
  additionalProperties: false,
  required: ['system', 'value'],
  properties: {
    system: uri,
    value: { type: 'string', minLength: 1, maxLength: 256, pattern: '^\\S(.*\\S)?$' },
  },
} as const;

const party = {
  type: 'object',
  additionalProperties: false,
  anyOf: [{ required: ['did'] }, { required: ['identifiers'] }],
  properties: {
    did,
    identifiers: { type: 'array', minItems: 1, maxItems: 16, items: identifier },
  },
} as const;

const concept = {
  type: 'object',
  additionalProperties: false,
  required: ['system', 'code'],
  properties: { system: uri, code, display: shortText },
} as const;

export const vrSessionSchema = {
  $id: VR_SESSION_SCHEMA_ID,
  title: 'HDX VR session record',
  type: 'object',
  additionalProperties: false,
  required: ['schemaVersion', 'sessionId', 'patient', 'platform', 'device', 'sessionType', 'setting', 'start'],
  properties: {
    schemaVersion: { type: 'string', const: VR_SESSION_SCHEMA_VERSION },
    sessionId: token,
    patient: party,
    clinician: party,
    platform: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'name', 'version'],
      properties: {
        /** URI naming the platform instance; also the identifier system of its session ids */
        id: uri,
        name: shortText,
        vendor: shortText,
        version: shortText,
      },
    },
    device: {
      type: 'object',
      additionalProperties: false,
      required: ['model', 'firmware'],
      anyOf: [{ required: ['did'] }, { required: ['serialNumber'] }],
      properties: {
        did,
        model: shortText,
        manufacturer: shortText,
        serialNumber: shortText,
        firmware: shortText,
      },
    },
    wearables: {
      type: 'array',
      maxItems: VR_LIMITS.maxWearables,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'model'],
        anyOf: [{ required: ['did'] }, { required: ['serialNumber'] }],
        properties: {
          /** how biometric streams name this sensor */
          key: token,
          did,
          model: shortText,
          manufacturer: shortText,
          serialNumber: shortText,
          firmware: shortText,
        },
      },
    },
    sessionType: { type: 'string', enum: [...VR_SESSION_TYPES] },
    setting: { type: 'string', enum: [...VR_SETTINGS] },
    start: { type: 'string', format: 'date-time' },
    end: { type: 'string', format: 'date-time' },
    biometrics: {
      type: 'array',
      maxItems: VR_LIMITS.maxStreams,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['measure', 'periodMs', 'samples'],
        properties: {
          measure: { type: 'string', enum: [...VR_MEASURES] },
          /** the sensor's sampling interval; samples are placed on this grid */
          periodMs: { type: 'integer', minimum: 1, maximum: 3_600_000 },
          /** `wearables[].key`; the headset when absent */
          sensor: token,
          samples: {
            type: 'array',
            minItems: 1,
            maxItems: VR_LIMITS.maxSamplesPerStream,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['offsetMs', 'value'],
              properties: { offsetMs, value: { type: 'number', minimum: -1e9, maximum: 1e9 } },
            },
          },
        },
      },
    },
    events: {
      type: 'array',
      maxItems: VR_LIMITS.maxEvents,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['offsetMs', 'type'],
        properties: { offsetMs, type: { type: 'string', enum: [...VR_EVENT_TYPES] }, label: shortText },
      },
    },
    scores: {
      type: 'array',
      maxItems: VR_LIMITS.maxScores,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'code', 'value'],
        properties: {
          name: shortText,
          code: concept,
          value: { type: 'number', minimum: -1e9, maximum: 1e9 },
          /** UCUM code, e.g. '{score}' or '%' */
          unit: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[!-~]+$' },
          offsetMs,
        },
      },
    },
    recording: {
      type: 'object',
      additionalProperties: false,
      required: ['url', 'contentType', 'sha256'],
      properties: {
        url: uri,
        contentType: { type: 'string', maxLength: 128, pattern: '^[a-z]+/[A-Za-z0-9.+-]+$' },
        /** SHA-256 of the recording's bytes, lower-case hex */
        sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        sizeBytes: { type: 'integer', minimum: 0, maximum: 2 ** 53 - 1 },
        title: shortText,
      },
    },
    clinicianNotes: { type: 'string', minLength: 1, maxLength: VR_LIMITS.maxTextLength, pattern: '\\S' },
  },
} as const;
