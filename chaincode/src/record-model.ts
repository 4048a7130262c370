/**
 * Record anchors: one entry per FHIR resource version, `Type/id/_history/v`.
 */
import type { Context } from 'fabric-contract-api';
import { invalid } from './errors';
import { unmarshal } from './ledger';
import type { PackedIndex } from './packed-index';
import { MAX_CO_PATIENTS } from './protocol';
import {
  FHIR_ID,
  FHIR_INSTANT,
  FHIR_RESOURCE_TYPE,
  JsonObject,
  PATIENT_REF,
  PATIENT_REF_RULE,
  SECURITY_LABEL,
  asObject,
  checkString,
  isBase64UrlOfLength,
  isPatientRef,
  optionalString,
  optionalStringArray,
  rejectUnknownFields,
  requireString,
} from './validate';

export const COMMITMENT_ALG = 'HMAC-SHA-256';

export interface Commitment {
  alg: typeof COMMITMENT_ALG;
  /** base64url (no padding) of the 32-byte HMAC. */
  value: string;
}

/** What a custodian sends to anchor one resource version. */
export interface AnchorInput {
  resourceType: string;
  id: string;
  versionId: string;
  /** did:hdx:… or pseudonym:<64 hex>. */
  patient: string;
  /**
   * The other patients in whose compartments the resource also is (an Observation whose performer is
   * another patient, a Group of patients): each one's consents govern it as well as `patient`'s. Distinct,
   * never `patient`, at most MAX_CO_PATIENTS.
   */
  coPatients?: string[];
  securityLabels?: string[];
  lastUpdated: string;
  /**
   * Clinical date of the resource coarsened to the month, `YYYY-MM` (never lastUpdated). Consent
   * dataPeriod is matched against it; without it a dataPeriod deny applies and a dataPeriod permit does not.
   */
  dataMonth?: string;
  commitment: Commitment;
}

export interface Tombstone {
  erasedAt: string;
  txId: string;
}

/**
 * The stored anchor. A tombstoned (erased) anchor keeps its key, commitment, custodian, txId and
 * anchoredAt, and loses everything that links it to a patient (`patient`, `coPatients`, `securityLabels`, `lastUpdated`, `dataMonth`).
 */
export interface Anchor {
  resourceType: string;
  id: string;
  versionId: string;
  patient?: string;
  coPatients?: string[];
  securityLabels?: string[];
  lastUpdated?: string;
  dataMonth?: string;
  commitment: Commitment;
  /** MSP id of the organization that anchored it (the caller), never taken from input. */
  custodian: string;
  txId: string;
  anchoredAt: string;
  tombstone?: Tombstone;
}

/** Value of a `patient~resource` index entry: enough for the record locator without reading the anchor. */
export interface LocatorEntry {
  resourceType: string;
  id: string;
  versionId: string;
  custodian: string;
  lastUpdated: string;
  securityLabels?: string[];
  dataMonth?: string;
  /**
   * The other patients whose consents govern this version too (a resource in several compartments):
   * the anchor's patients but the one this index entry is filed under.
   */
  governedWith?: string[];
}

export const ANCHOR_KEY = 'hdx.anchor';
/**
 * patient~resource index, packed (packed-index.ts): one row [patient, custodian, txId] per transaction
 * that anchored versions for the patient, listing their LocatorEntries. Rows written before packing are
 * [patient, custodian, resourceType, id, versionId] holding one LocatorEntry; both shapes sit under the
 * same [patient, custodian] prefix and are read together.
 */
export const PATIENT_RESOURCE_INDEX = 'hdx.anchor~patient';

/**
 * The locator's index: a packed row lists LocatorEntries; a row before packing holds one as its value.
 * A row lists its entries in the order the keys before packing had (resourceType, id, versionId).
 */
export const LOCATOR_INDEX: PackedIndex<LocatorEntry, LocatorEntry> = {
  member: (_rowKey, entry) => entry,
  legacyMember: (_key, value) => unmarshal<LocatorEntry>(value),
  compare: (a, b) => {
    const [x, y] = [locatorOrder(a), locatorOrder(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  },
};

/** A locator entry's place in key order, as its own composite key before packing sorted it. */
function locatorOrder(entry: LocatorEntry): string {
  return `${entry.resourceType}\u0000${entry.id}\u0000${entry.versionId}\u0000`;
}

const ANCHOR_FIELDS = ['resourceType', 'id', 'versionId', 'patient', 'coPatients', 'securityLabels', 'lastUpdated', 'dataMonth', 'commitment'] as const;

/** `YYYY-MM`, a real month. */
export const DATA_MONTH = /^[0-9]{4}-(0[1-9]|1[0-2])$/;

export function resourceRef(resourceType: string, id: string, versionId: string): string {
  return `${resourceType}/${id}/_history/${versionId}`;
}

export function anchorKey(ctx: Context, resourceType: string, id: string, versionId: string): string {
  return ctx.stub.createCompositeKey(ANCHOR_KEY, [resourceType, id, versionId]);
}

/** The locator row of the versions a transaction (`txId`) anchored for a patient: derivable from each anchor. */
export function patientRowKey(ctx: Context, patient: string, custodian: string, txId: string): string {
  return ctx.stub.createCompositeKey(PATIENT_RESOURCE_INDEX, [patient, custodian, txId]);
}

/** The locator key of one version as written before packing (erasure still removes such keys). */
export function legacyPatientIndexKey(ctx: Context, anchor: { patient: string; custodian: string; resourceType: string; id: string; versionId: string }): string {
  return ctx.stub.createCompositeKey(PATIENT_RESOURCE_INDEX, [anchor.patient, anchor.custodian, anchor.resourceType, anchor.id, anchor.versionId]);
}

export function checkResourceKey(resourceType: string, id: string, versionId: string): void {
  checkString(resourceType, 'resourceType', FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
  checkString(id, 'id', FHIR_ID, 'must be a FHIR id');
  checkString(versionId, 'versionId', FHIR_ID, 'must be a FHIR id');
}

export function parseCommitment(value: unknown, path: string): Commitment {
  const commitment = asObject(value, path);
  rejectUnknownFields(commitment, ['alg', 'value'], path);
  if (commitment.alg !== COMMITMENT_ALG) {
    throw invalid(`${path}.alg must be ${COMMITMENT_ALG}`);
  }
  const digest = requireString(commitment, 'value', path);
  if (!isBase64UrlOfLength(digest, 32)) {
    throw invalid(`${path}.value must be base64url (no padding) of 32 bytes`);
  }
  return { alg: COMMITMENT_ALG, value: digest };
}

export function parseAnchorInput(value: unknown, path: string): AnchorInput {
  const obj: JsonObject = asObject(value, path);
  rejectUnknownFields(obj, ANCHOR_FIELDS, path);
  const resourceType = requireString(obj, 'resourceType', path, FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
  const id = requireString(obj, 'id', path, FHIR_ID, 'must be a FHIR id');
  const versionId = requireString(obj, 'versionId', path, FHIR_ID, 'must be a FHIR id');
  const patient = requireString(obj, 'patient', path);
  if (!isPatientRef(patient)) {
    throw invalid(`${path}.patient ${PATIENT_REF_RULE}`);
  }
  const coPatients = optionalStringArray(obj, 'coPatients', path, PATIENT_REF, PATIENT_REF_RULE, MAX_CO_PATIENTS);
  if (coPatients !== undefined && coPatients.length === 0) {
    throw invalid(`${path}.coPatients must name at least one patient when present`);
  }
  if (coPatients?.includes(patient)) {
    throw invalid(`${path}.coPatients must not repeat ${path}.patient`);
  }
  const securityLabels = optionalStringArray(obj, 'securityLabels', path, SECURITY_LABEL, 'must be a code or system|code (printable ASCII, no spaces)');
  const lastUpdated = requireString(obj, 'lastUpdated', path, FHIR_INSTANT, 'must be a FHIR instant');
  const commitment = parseCommitment(obj.commitment, `${path}.commitment`);
  const dataMonth = optionalString(obj, 'dataMonth', path, DATA_MONTH, 'must be YYYY-MM (the clinical month of the resource)');
  const input: AnchorInput = { resourceType, id, versionId, patient, lastUpdated, commitment };
  if (coPatients !== undefined) {
    input.coPatients = coPatients;
  }
  if (securityLabels !== undefined) {
    input.securityLabels = securityLabels;
  }
  if (dataMonth !== undefined) {
    input.dataMonth = dataMonth;
  }
  return input;
}

export function sameCommitment(a: Commitment, b: Commitment): boolean {
  return a.alg === b.alg && a.value === b.value;
}

/** Every patient whose consents govern an anchored version: its patient, then its co-patients. */
export function governingPatients(anchor: Pick<Anchor, 'patient' | 'coPatients'>): string[] {
  return anchor.patient === undefined ? [] : [anchor.patient, ...(anchor.coPatients ?? [])];
}

/** The locator entry of an anchor filed under one of its patients (`filedUnder`). */
export function toLocatorEntry(anchor: Anchor, filedUnder: string | undefined = anchor.patient): LocatorEntry {
  const entry: LocatorEntry = {
    resourceType: anchor.resourceType,
    id: anchor.id,
    versionId: anchor.versionId,
    custodian: anchor.custodian,
    lastUpdated: anchor.lastUpdated ?? '',
  };
  if (anchor.securityLabels !== undefined) {
    entry.securityLabels = anchor.securityLabels;
  }
  if (anchor.dataMonth !== undefined) {
    entry.dataMonth = anchor.dataMonth;
  }
  const others = governingPatients(anchor).filter((p) => p !== filedUnder);
  if (anchor.coPatients !== undefined && others.length > 0) {
    entry.governedWith = others;
  }
  return entry;
}
