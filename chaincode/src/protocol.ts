/**
 * The hdx chaincode's wire vocabulary, in one dependency-free module (no fabric-contract-api): its
 * limits, error codes and identifier grammar. The contracts import it, and so does the gateway
 * (`@hdx/chaincode/dist/protocol`), so neither side restates a value the other enforces.
 */

import { createHash } from 'node:crypto';

/** The codes every chaincode error message starts with (`CODE: text`). */
export const ERROR_CODES = ['NOT_FOUND', 'ALREADY_EXISTS', 'CONFLICT', 'UNAUTHENTICATED', 'FORBIDDEN', 'INVALID'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Most anchors in one hdx.record:AnchorBatch / AnchorAndRecord transaction. */
export const MAX_ANCHOR_BATCH = 500;
/** Most patient links in one AnchorBatch / AnchorAndRecord. */
export const MAX_LINKS = 500;
/** Most access entries in one hdx.audit:RecordAccessBatch (and AnchorAndRecord). */
export const MAX_AUDIT_BATCH = 200;
/**
 * Most other patients a record's anchor names beside its patient (`coPatients`): a resource in several
 * patients' compartments is governed by every one of their consents.
 */
export const MAX_CO_PATIENTS = 16;
/**
 * The entryId of the access entry AuthorizeAndRecord writes for the n-th co-patient (n from 1) of the
 * version a request names, beside the request's own entry (entryId): derived, so a replay finds the
 * request of each entry of the transaction, and short whatever the request's entryId.
 */
export function coPatientEntryId(entryId: string, n: number): string {
  return `co${n}-${createHash('sha256').update(entryId).digest('base64url').slice(0, 32)}`;
}

/** Most resources one access entry names. */
export const MAX_RESOURCES_PER_ENTRY = 100;

/** A FHIR resource type. */
export const FHIR_RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
/** FHIR `id` (also used for versionId). */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
/** did:hdx:<RFC 7638 thumbprint, base64url SHA-256 = 43 characters>. */
export const HDX_DID = /^did:hdx:[A-Za-z0-9_-]{43}$/;
/** A custodian's keyed pseudonym of a patient. */
export const PSEUDONYM = /^pseudonym:[0-9a-f]{64}$/;
/** A Fabric MSP id. */
export const MSP_ID = /^[A-Za-z0-9][A-Za-z0-9.\-_]{0,63}$/;

/**
 * The outcomes an auditor records for a break-glass access (hdx.audit:ReviewBreakGlass): codes only,
 * never free text (a note could hold PHI).
 */
export const REVIEW_OUTCOMES = ['justified', 'not-justified', 'needs-follow-up'] as const;
export type ReviewOutcome = (typeof REVIEW_OUTCOMES)[number];
/** The ledger event id of an access entry: `<txId>.<n>`. */
export const AUDIT_EVENT_ID = /^[A-Za-z0-9]{1,128}\.[0-9]{1,6}$/;
