/**
 * Access requests: a practitioner asks a patient for access (hdx.consent:RequestAccess); the patient (or
 * a guardian) sees the request at any member's gateway (hdx.consent:ListAccessRequests) and may answer it
 * with a consent of their own. A request grants nothing: only a consent signed by the patient does.
 *
 * - Submitted by the requester's own organization (a gateway identity of the requester's MSP, or the
 *   practitioner's own Fabric identity with `hdx.did`): the requester must be an ACTIVE PRACTITIONER DID
 *   registered by the submitting MSP. Never an admin, never another member for someone else's staff.
 * - Codes only: patient DID, requester DID and organization, purpose (HL7 v3 PurposeOfUse), resource types.
 *   No free text (a message could carry PHI).
 * - One open request per requester, patient and purpose: the key `hdx.accessrequest` [patient, requester,
 *   purpose] is overwritten by a repeated request (the latest types and time win), so a requester cannot
 *   flood a patient's list.
 * - The patient DID is not looked up: a request for an unregistered or non-patient DID is stored like
 *   any other (nobody will list it), so the answer tells the requester nothing about the DID.
 */
import type { Context } from 'fabric-contract-api';
import { purposeAllowed } from './actor-rules';
import { Caller, hasRole } from './caller';
import { PURPOSE_CODE } from './consent-model';
import { forbidden, invalid } from './errors';
import { findIdentity } from './identity-model';
import { marshal, scanPartial, txInstant, unmarshal, writeState } from './ledger';
import { FHIR_RESOURCE_TYPE, HDX_DID, JsonObject, checkString, optionalStringArray, rejectUnknownFields, requireString } from './validate';

export const ACCESS_REQUEST_KEY = 'hdx.accessrequest';
export const ACCESS_REQUEST_EVENT = 'hdx.accessrequest';
/** Most resource types one request names. */
export const MAX_REQUEST_TYPES = 20;

/** One open access request, as stored. */
export interface AccessRequestRecord {
  patient: string;
  /** The practitioner DID asking. */
  requester: string;
  /** The requester's organization (MSP id), the submitter. */
  requesterOrganization: string;
  /** HL7 v3 PurposeOfUse code. */
  purpose: string;
  /** FHIR resource types asked for, sorted, no duplicates. */
  resourceTypes: string[];
  /** Transaction time of the (latest) request. */
  requestedAt: string;
  txId: string;
}

export function accessRequestKey(ctx: Context, patient: string, requester: string, purpose: string): string {
  return ctx.stub.createCompositeKey(ACCESS_REQUEST_KEY, [patient, requester, purpose]);
}

/** `{patient, requester, purpose, resourceTypes}`, checked (codes only). */
export function parseAccessRequestInput(obj: JsonObject): Pick<AccessRequestRecord, 'patient' | 'requester' | 'purpose' | 'resourceTypes'> {
  rejectUnknownFields(obj, ['patient', 'requester', 'purpose', 'resourceTypes'], 'accessRequest');
  const patient = requireString(obj, 'patient', 'accessRequest', HDX_DID, 'must be a did:hdx DID');
  const requester = requireString(obj, 'requester', 'accessRequest', HDX_DID, 'must be a did:hdx DID');
  const purpose = requireString(obj, 'purpose', 'accessRequest', PURPOSE_CODE, 'must be an HL7 v3 PurposeOfUse code');
  if (purpose === 'ETREAT') {
    throw invalid('accessRequest.purpose ETREAT is break-glass, which needs no request (it is recorded and reviewed)');
  }
  if (!purposeAllowed('practitioner', purpose)) {
    throw invalid(`accessRequest.purpose ${purpose} is not a purpose a practitioner may state`);
  }
  const types = optionalStringArray(obj, 'resourceTypes', 'accessRequest', FHIR_RESOURCE_TYPE, 'must be a FHIR resource type', MAX_REQUEST_TYPES);
  if (types === undefined || types.length === 0) {
    throw invalid(`accessRequest.resourceTypes must list 1 to ${MAX_REQUEST_TYPES} FHIR resource types`);
  }
  if (patient === requester) {
    throw invalid('accessRequest.patient must not be the requester');
  }
  return { patient, requester, purpose, resourceTypes: [...new Set(types)].sort() };
}

/** Checks and stores one request; returns the stored record. */
export async function requestAccess(ctx: Context, caller: Caller, obj: JsonObject): Promise<AccessRequestRecord> {
  if (!hasRole(caller, 'gateway') && caller.did === undefined) {
    throw forbidden("an access request is submitted by the requester's own gateway (or their own Fabric identity), never by an admin");
  }
  const input = parseAccessRequestInput(obj);
  if (caller.did !== undefined && caller.did !== input.requester) {
    throw forbidden('a caller with its own DID submits only its own requests');
  }
  const requester = await findIdentity(ctx, input.requester);
  if (!requester || requester.kind !== 'practitioner' || requester.status !== 'active' || requester.organization !== caller.mspId) {
    // One answer for every case: the submitter learns nothing it does not know of its own staff.
    throw forbidden(`accessRequest.requester must be an active practitioner DID registered by ${caller.mspId}`);
  }
  const record: AccessRequestRecord = { ...input, requesterOrganization: caller.mspId, requestedAt: txInstant(ctx), txId: ctx.stub.getTxID() };
  // The same requester, patient and purpose: the open request is replaced (no flood).
  await writeState(ctx, accessRequestKey(ctx, input.patient, input.requester, input.purpose), record);
  // The event names the patient (a pseudonymous DID, as consent events do) so their app can be told.
  ctx.stub.setEvent(ACCESS_REQUEST_EVENT, marshal({ patient: record.patient, requesterOrganization: record.requesterOrganization, txId: record.txId }));
  return record;
}

/** A patient's open requests, latest first. */
export async function listAccessRequests(ctx: Context, patient: string): Promise<AccessRequestRecord[]> {
  checkString(patient, 'patient', HDX_DID, 'must be a did:hdx DID');
  const rows = await scanPartial(ctx, ACCESS_REQUEST_KEY, [patient]);
  return rows
    .map((row) => unmarshal<AccessRequestRecord>(row.value))
    .sort((a, b) => (a.requestedAt < b.requestedAt ? 1 : a.requestedAt > b.requestedAt ? -1 : a.txId < b.txId ? 1 : -1));
}
