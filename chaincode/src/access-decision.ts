/**
 * Access decisions on the ledger: reads what `evaluateAccess` needs (anchor, actor, organization DIDs,
 * guardians, the patient's consents) and evaluates. Used by hdx.consent:EvaluateAccess,
 * hdx.audit:AuthorizeAndRecord and the record locator. Only non-paginated reads, so it can run in
 * submit transactions.
 */
import type { Context } from 'fabric-contract-api';
import { ACTOR_AUTHS, ActorAuth, DEFAULT_ACTOR_AUTH, effectiveAction } from './actor-rules';
import { callerOf } from './caller';
import { CONSENT_PATIENT_INDEX, ConsentAction, ConsentRecord, PURPOSE_CODE, consentKey, parseConsentAction } from './consent-model';
import { AccessRequest, Decision, EvaluationContext, StoredConsent, evaluateAccess } from './consent-evaluate';
import { invalid, notFound } from './errors';
import { DID_ORG_INDEX, findIdentity } from './identity-model';
import { readState, scanPartial, txEpochSeconds } from './ledger';
import { subjectOf } from './patient-link';
import { Anchor, anchorKey, checkResourceKey, resourceRef } from './record-model';
import {
  FHIR_DATE_TIME,
  FHIR_RESOURCE_TYPE,
  HDX_DID,
  JsonObject,
  MSP_ID,
  PATIENT_REF_RULE,
  SECURITY_LABEL,
  isPatientRef,
  optionalString,
  optionalStringArray,
  rejectUnknownFields,
  requireString,
} from './validate';

export const REQUEST_FIELDS = [
  'patient',
  'actor',
  'actorOrganization',
  'actorAuth',
  'custodian',
  'action',
  'purpose',
  'resourceType',
  'securityLabels',
  'dataDate',
  'resource',
] as const;

/** An access request as sent: either `resource` (an anchored version) or patient + custodian + resourceType. */
export interface AccessRequestInput {
  request: Partial<Omit<AccessRequest, 'action'>> & Pick<AccessRequest, 'actor' | 'actorOrganization' | 'actorAuth' | 'purpose'> & { action?: ConsentAction };
  /** `Type/id/_history/v` when the request names an anchored version. */
  resource?: { resourceType: string; id: string; versionId: string };
}

const RESOURCE_REF = /^([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})\/_history\/([A-Za-z0-9\-.]{1,64})$/;

export function parseAccessRequest(obj: JsonObject, path: string, extraFields: readonly string[] = []): AccessRequestInput {
  rejectUnknownFields(obj, [...REQUEST_FIELDS, ...extraFields], path);
  const actor = requireString(obj, 'actor', path, HDX_DID, 'must be a did:hdx DID');
  const actorOrganization = requireString(obj, 'actorOrganization', path, MSP_ID, 'must be an MSP id');
  const actorAuth = parseActorAuth(obj, path);
  const purpose = requireString(obj, 'purpose', path, PURPOSE_CODE, 'must be an HL7 v3 PurposeOfUse code');
  const request: AccessRequestInput['request'] = { actor, actorOrganization, actorAuth, purpose };
  if (obj.action !== undefined) request.action = parseConsentAction(obj, path);
  const patient = optionalString(obj, 'patient', path);
  if (patient !== undefined) {
    if (!isPatientRef(patient)) {
      throw invalid(`${path}.patient ${PATIENT_REF_RULE}`);
    }
    request.patient = patient;
  }
  const custodian = optionalString(obj, 'custodian', path, MSP_ID, 'must be an MSP id');
  if (custodian !== undefined) request.custodian = custodian;
  const resourceType = optionalString(obj, 'resourceType', path, FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
  if (resourceType !== undefined) request.resourceType = resourceType;
  const labels = optionalStringArray(obj, 'securityLabels', path, SECURITY_LABEL, 'must be a code or system|code');
  if (labels !== undefined) request.securityLabels = labels;
  const dataDate = optionalString(obj, 'dataDate', path, FHIR_DATE_TIME, 'must be a FHIR dateTime');
  if (dataDate !== undefined) request.dataDate = dataDate;

  const input: AccessRequestInput = { request };
  const resource = optionalString(obj, 'resource', path);
  if (resource !== undefined) {
    const match = RESOURCE_REF.exec(resource);
    if (!match) {
      throw invalid(`${path}.resource must be Type/id/_history/versionId`);
    }
    input.resource = { resourceType: match[1] as string, id: match[2] as string, versionId: match[3] as string };
  } else if (request.patient === undefined || request.custodian === undefined || request.resourceType === undefined) {
    throw invalid(`${path} needs resource, or patient, custodian and resourceType`);
  }
  return input;
}

/** `actorAuth` of a request: did | idp | delegated; absent = delegated (fail safe). */
export function parseActorAuth(obj: JsonObject, path: string): ActorAuth {
  const value = optionalString(obj, 'actorAuth', path) ?? DEFAULT_ACTOR_AUTH;
  if (!(ACTOR_AUTHS as readonly string[]).includes(value)) {
    throw invalid(`${path}.actorAuth must be one of ${ACTOR_AUTHS.join(', ')}`);
  }
  return value as ActorAuth;
}

/** Everything on the ledger an evaluation for one patient and actor needs; read once, reused per resource. */
export interface EvaluationInputs {
  consents: StoredConsent[];
  context: EvaluationContext;
}

/**
 * Reads the actor's identity, its organization's DIDs, and the patient's status, active guardians and
 * consents. `patient` is the decision's subject (a linked pseudonym already replaced by its DID).
 */
export async function loadEvaluationInputs(ctx: Context, patient: string, actor: string, actorOrganization: string): Promise<EvaluationInputs> {
  const submitter = callerOf(ctx).mspId;
  const actorRecord = await findIdentity(ctx, actor);
  const orgRows = await scanPartial(ctx, DID_ORG_INDEX, [actorOrganization]);
  const actorOrganizationDids = orgRows.map((row) => ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '').sort();
  let guardians: string[] = [];
  let patientStatus: EvaluationContext['patientStatus'];
  const consents: StoredConsent[] = [];
  if (HDX_DID.test(patient)) {
    const patientRecord = await findIdentity(ctx, patient);
    patientStatus = patientRecord?.status;
    guardians = patientRecord?.status === 'active' ? await activeGuardians(ctx, patientRecord.guardians) : [];
    for (const row of await scanPartial(ctx, CONSENT_PATIENT_INDEX, [patient])) {
      const id = ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '';
      const record = await readState<ConsentRecord>(ctx, consentKey(ctx, id));
      if (record) {
        consents.push({ id: record.id, status: record.status, consent: record.consent });
      }
    }
  }
  const context: EvaluationContext = {
    now: txEpochSeconds(ctx) * 1000,
    actorOrganizationDids,
    guardians,
    actorIdentity: actorRecord ? { kind: actorRecord.kind, status: actorRecord.status, organization: actorRecord.organization } : undefined,
    submitter,
  };
  if (patientStatus !== undefined) context.patientStatus = patientStatus;
  return { consents, context };
}

/** The guardians whose own DIDs are still active. */
async function activeGuardians(ctx: Context, guardians: string[]): Promise<string[]> {
  const active: string[] = [];
  for (const guardian of guardians) {
    if ((await findIdentity(ctx, guardian))?.status === 'active') {
      active.push(guardian);
    }
  }
  return active;
}

export function decide(request: AccessRequest, inputs: EvaluationInputs): Decision {
  return evaluateAccess(request, inputs.consents, inputs.context);
}

export interface ResolvedDecision extends Decision {
  request: AccessRequest;
  /** `Type/id/_history/v` when the request named an anchored version. */
  resource?: string;
}

/** Resolves a request (anchor facts win; stated ones must agree) and decides it. */
export async function decideAccess(ctx: Context, input: AccessRequestInput, path: string): Promise<ResolvedDecision> {
  const stated = input.request;
  let request: AccessRequest;
  let ref: string | undefined;
  let erased = false;
  if (input.resource) {
    const { resourceType, id, versionId } = input.resource;
    checkResourceKey(resourceType, id, versionId);
    ref = resourceRef(resourceType, id, versionId);
    const anchor = await readState<Anchor>(ctx, anchorKey(ctx, resourceType, id, versionId));
    if (!anchor) {
      throw notFound(`${ref} is not anchored`);
    }
    erased = anchor.tombstone !== undefined;
    // The anchor's pseudonym stands for its linked DID when the custodian linked it.
    const subject = anchor.patient === undefined ? undefined : await subjectOf(ctx, anchor.custodian, anchor.patient);
    const fromAnchor = {
      patient: subject ?? stated.patient ?? '',
      custodian: anchor.custodian,
      resourceType: anchor.resourceType,
    };
    if (stated.patient !== undefined && stated.patient !== fromAnchor.patient && stated.patient !== anchor.patient) {
      throw invalid(`${path}.patient does not match the anchor of ${ref}`);
    }
    for (const field of ['custodian', 'resourceType'] as const) {
      if (stated[field] !== undefined && stated[field] !== fromAnchor[field]) {
        throw invalid(`${path}.${field} does not match the anchor of ${ref}`);
      }
    }
    // The data's date is the anchor's clinical month (never the write time); a stated date must lie in it.
    if (stated.dataDate !== undefined && (anchor.dataMonth === undefined || stated.dataDate.slice(0, 7) !== anchor.dataMonth)) {
      throw invalid(`${path}.dataDate does not match the anchor of ${ref}`);
    }
    const { dataDate: _stated, ...rest } = stated;
    request = {
      ...rest,
      ...fromAnchor,
      action: effectiveAction(stated.action, stated.actorOrganization, fromAnchor.custodian),
      securityLabels: anchor.securityLabels ?? [],
    } as AccessRequest;
    if (anchor.dataMonth !== undefined) {
      request.dataDate = anchor.dataMonth;
    }
  } else {
    request = { securityLabels: [], ...stated, action: effectiveAction(stated.action, stated.actorOrganization, stated.custodian as string) } as AccessRequest;
    if (request.patient !== undefined) {
      request.patient = await subjectOf(ctx, request.custodian, request.patient);
    }
  }
  if (erased) {
    return { decision: 'deny', consents: [], reason: 'resource-erased', breakGlass: request.purpose === 'ETREAT', request, resource: ref as string };
  }
  const inputs = await loadEvaluationInputs(ctx, request.patient, request.actor, request.actorOrganization);
  const decision = decide(request, inputs);
  return ref === undefined ? { ...decision, request } : { ...decision, request, resource: ref };
}
