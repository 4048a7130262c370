/**
 * Access history entries and their keys. Every key holds the transaction id, so concurrent writers
 * never touch the same key (no MVCC_READ_CONFLICT). Index rows are simple keys
 * `hdx.audit~<index>~<value>~<timeKey>~<txId>` (so a time window is one key range), packed
 * (packed-index.ts): one row per index value and transaction, listing the `.n` suffixes of the event ids
 * of that transaction's entries filed under it. Rows written before packing are
 * `hdx.audit~<index>~<value>~<timeKey>~<eventId>` holding INDEX_MARKER, and are read alike.
 */
import type { Context } from 'fabric-contract-api';
import { ACTOR_AUTHS, ActorAuth, DEFAULT_ACTOR_AUTH } from './actor-rules';
import { PURPOSE_CODE } from './consent-model';
import { invalid } from './errors';
import type { PackedIndex } from './packed-index';
import { MAX_RESOURCES_PER_ENTRY } from './protocol';
import {
  FHIR_INSTANT,
  HDX_DID,
  JsonObject,
  MSP_ID,
  PATIENT_REF_RULE,
  asObject,
  isPatientRef,
  optionalString,
  optionalStringArray,
  rejectUnknownFields,
  requireString,
} from './validate';

export const AUDIT_ACTIONS = ['C', 'R', 'U', 'D', 'E'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  /** `<txId>.<n>`: unique on the ledger. */
  eventId: string;
  /** Transaction time (FHIR instant). */
  recordedAt: string;
  /** When the gateway says the access happened (async mode), else equal to recordedAt. */
  occurredAt: string;
  actor: string;
  actorOrganization: string;
  /** How the actor was authenticated (absent in the input = `delegated`). */
  actorAuth: ActorAuth;
  /**
   * MSP id of the organization that stands behind the actor's identity: the recording (creator) MSP
   * for `did` and `idp`, actorOrganization for `delegated`. Set by the chaincode.
   */
  vouchedBy: string;
  patient: string;
  /** `Type/id` or `Type/id/_history/v`. */
  resources: string[];
  /** FHIR AuditEvent.action: C, R, U, D, E. */
  action: AuditAction;
  /** What the gateway did, e.g. read, search-type, $everything, org-fetch. */
  subtype?: string;
  purpose: string;
  decision: 'permit' | 'deny';
  consents: string[];
  reason?: string;
  breakGlass: boolean;
  /** MSP id of the organization holding the data, when known. */
  custodian?: string;
  /** MSP id of the organization that recorded the entry (the caller). */
  gateway: string;
  /** Transaction id that recorded the entry. */
  txId: string;
  /** The gateway's own id of the entry (outbox id), for idempotent retries. */
  entryId?: string;
  /**
   * Where a gateway decided the access from its ledger view (async audit mode, local decisions): the
   * view's height (blocks applied) at the decision, so the decision can be replayed on that state.
   * Absent when the chaincode decided.
   */
  decidedAt?: DecidedAt;
}

export interface DecidedAt {
  /** The ledger height (number of blocks) the decision's state reflects: a positive integer. */
  height: number;
}

export const AUDIT_KEY = 'hdx.audit';
/** [gateway MSP, entryId] → eventId: makes outbox retries idempotent. */
export const AUDIT_CLIENT_KEY = 'hdx.audit~entry';
export const AUDIT_INDEXES = ['patient', 'actor', 'resource', 'time'] as const;
export type AuditIndex = (typeof AUDIT_INDEXES)[number];

const SEP = '~';
/** The character after SEP: the exclusive end of every key that starts with `prefix~`. */
const AFTER_SEP = '\u007f';

export const MAX_RESOURCES = MAX_RESOURCES_PER_ENTRY;
export const ENTRY_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const RESOURCE_ID = /^[A-Z][A-Za-z]{1,63}\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
const SUBTYPE = /^[A-Za-z0-9$._-]{1,64}$/;

export function auditKey(ctx: Context, eventId: string): string {
  return ctx.stub.createCompositeKey(AUDIT_KEY, [eventId]);
}

/** The resource part an index uses: `Type/id` (all versions of a resource together). */
export function resourceOfRef(ref: string): string {
  return ref.split('/').slice(0, 2).join('/');
}

function indexPrefix(index: AuditIndex, value?: string): string {
  return index === 'time' ? `${AUDIT_KEY}${SEP}time` : `${AUDIT_KEY}${SEP}${index}${SEP}${value ?? ''}`;
}

/** The row of an index value for one transaction: every entry of a transaction shares its timeKey. */
export function indexRowKey(index: AuditIndex, value: string | undefined, timeKey: string, txId: string): string {
  return `${indexPrefix(index, value)}${SEP}${timeKey}${SEP}${txId}`;
}

/** Every index row an entry is filed in (break-glass entries also get a key of their own: breakGlassIndexKey). */
export function indexRowKeysOf(entry: AuditEntry, timeKey: string): string[] {
  const resources = [...new Set(entry.resources.map(resourceOfRef))].sort();
  return [
    // An entry about an erased resource may have no patient left to index.
    ...(entry.patient === '' ? [] : [indexRowKey('patient', entry.patient, timeKey, entry.txId)]),
    indexRowKey('actor', entry.actor, timeKey, entry.txId),
    ...resources.map((resource) => indexRowKey('resource', resource, timeKey, entry.txId)),
    indexRowKey('time', undefined, timeKey, entry.txId),
  ];
}

/** An entry's member in its index rows: the `n` of its event id `<txId>.<n>`. */
export function eventNumberOf(entry: Pick<AuditEntry, 'eventId' | 'txId'>): number {
  return Number(entry.eventId.slice(entry.txId.length + 1));
}

/**
 * The access history's indexes: a packed row lists event numbers and its key ends with their
 * transaction id; a key before packing ends with the event id itself.
 */
export const AUDIT_INDEX: PackedIndex<number, string> = {
  member: (rowKey, n) => `${lastPartOf(rowKey)}.${n}`,
  legacyMember: (key) => lastPartOf(key),
};

const BREAK_GLASS_PREFIX = `${AUDIT_KEY}${SEP}breakglass`;

/** The review queue's index key of a break-glass entry: `hdx.audit~breakglass~<timeKey>~<eventId>`. */
export function breakGlassIndexKey(timeKey: string, eventId: string): string {
  return `${BREAK_GLASS_PREFIX}${SEP}${timeKey}${SEP}${eventId}`;
}

/** [start, end) of the break-glass index, optionally limited to a time window [from, to). */
export function breakGlassRange(fromKey?: string, toKey?: string): [string, string] {
  return [`${BREAK_GLASS_PREFIX}${SEP}${fromKey ?? ''}`, toKey === undefined ? `${BREAK_GLASS_PREFIX}${AFTER_SEP}` : `${BREAK_GLASS_PREFIX}${SEP}${toKey}`];
}

/** [start, end) of an index, optionally limited to a time window [from, to). */
export function indexRange(index: AuditIndex, value: string | undefined, fromKey?: string, toKey?: string): [string, string] {
  const prefix = indexPrefix(index, value);
  return [`${prefix}${SEP}${fromKey ?? ''}`, toKey === undefined ? `${prefix}${AFTER_SEP}` : `${prefix}${SEP}${toKey}`];
}

/** The event id that ends a break-glass index key (or an index key before packing). */
export function eventIdOfIndexKey(key: string): string {
  return lastPartOf(key);
}

function lastPartOf(key: string): string {
  return key.slice(key.lastIndexOf(SEP) + 1);
}

/** The sortable time key (as `txTimeKey`) of a FHIR instant, in UTC. */
export function timeKeyOf(instant: string): string {
  const ms = Date.parse(instant);
  if (!Number.isFinite(ms)) {
    throw invalid('time must be a FHIR instant');
  }
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}000000Z`;
}

/** What a gateway states about one access (the chaincode adds eventId, times, gateway, txId). */
export type AuditInput = Omit<AuditEntry, 'eventId' | 'recordedAt' | 'occurredAt' | 'gateway' | 'txId' | 'vouchedBy'> & { occurredAt?: string };

const ENTRY_FIELDS = [
  'actor',
  'actorOrganization',
  'actorAuth',
  'patient',
  'resources',
  'action',
  'subtype',
  'purpose',
  'decision',
  'consents',
  'reason',
  'breakGlass',
  'custodian',
  'occurredAt',
  'entryId',
  'decidedAt',
] as const;

export function parseAuditInput(value: unknown, path: string): AuditInput {
  const obj: JsonObject = asObject(value, path);
  rejectUnknownFields(obj, ENTRY_FIELDS, path);
  const actor = requireString(obj, 'actor', path, HDX_DID, 'must be a did:hdx DID');
  const actorOrganization = requireString(obj, 'actorOrganization', path, MSP_ID, 'must be an MSP id');
  const patient = requireString(obj, 'patient', path);
  if (!isPatientRef(patient)) {
    throw invalid(`${path}.patient ${PATIENT_REF_RULE}`);
  }
  const resources = optionalStringArray(obj, 'resources', path, RESOURCE_ID, 'must be Type/id or Type/id/_history/v', MAX_RESOURCES) ?? [];
  const action = requireString(obj, 'action', path) as AuditAction;
  if (!AUDIT_ACTIONS.includes(action)) {
    throw invalid(`${path}.action must be one of ${AUDIT_ACTIONS.join(', ')}`);
  }
  const purpose = requireString(obj, 'purpose', path, PURPOSE_CODE, 'must be an HL7 v3 PurposeOfUse code');
  if (obj.decision !== 'permit' && obj.decision !== 'deny') {
    throw invalid(`${path}.decision must be permit or deny`);
  }
  if (typeof obj.breakGlass !== 'boolean') {
    throw invalid(`${path}.breakGlass must be a boolean`);
  }
  const consents = optionalStringArray(obj, 'consents', path, /^[A-Za-z0-9\-.]{1,64}$/, 'must be a consent id') ?? [];
  const actorAuth = optionalString(obj, 'actorAuth', path) ?? DEFAULT_ACTOR_AUTH;
  if (!(ACTOR_AUTHS as readonly string[]).includes(actorAuth)) {
    throw invalid(`${path}.actorAuth must be one of ${ACTOR_AUTHS.join(', ')}`);
  }
  const input: AuditInput = {
    actor,
    actorOrganization,
    actorAuth: actorAuth as ActorAuth,
    patient,
    resources,
    action,
    purpose,
    decision: obj.decision,
    consents,
    breakGlass: obj.breakGlass,
  };
  const subtype = optionalString(obj, 'subtype', path, SUBTYPE, 'must be a short code');
  if (subtype !== undefined) input.subtype = subtype;
  const reason = optionalString(obj, 'reason', path, /^[a-z0-9-]{1,64}$/, 'must be a decision reason code');
  if (reason !== undefined) input.reason = reason;
  const custodian = optionalString(obj, 'custodian', path, MSP_ID, 'must be an MSP id');
  if (custodian !== undefined) input.custodian = custodian;
  const occurredAt = optionalString(obj, 'occurredAt', path, FHIR_INSTANT, 'must be a FHIR instant');
  if (occurredAt !== undefined) input.occurredAt = occurredAt;
  const entryId = optionalString(obj, 'entryId', path, ENTRY_ID, 'must be 1 to 128 characters [A-Za-z0-9._:-]');
  if (entryId !== undefined) input.entryId = entryId;
  if (obj.decidedAt !== undefined) input.decidedAt = parseDecidedAt(obj.decidedAt, `${path}.decidedAt`);
  return input;
}

/** `decidedAt`: exactly `{ height }`, a positive safe integer (a view that decided has applied block 0). */
export function parseDecidedAt(value: unknown, path: string): DecidedAt {
  const obj = asObject(value, path);
  rejectUnknownFields(obj, ['height'], path);
  const height = obj.height;
  if (typeof height !== 'number' || !Number.isSafeInteger(height) || height < 1) {
    throw invalid(`${path}.height must be a positive integer`);
  }
  return { height };
}
