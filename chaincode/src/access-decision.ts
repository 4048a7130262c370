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
import { AccessRequest, Decision, EvaluationContext, StoredConsent, allOf, evaluateAccess } from './consent-evaluate';
import { invalid, notFound } from './errors';
import { DID_ORG_INDEX, IdentityRecord, findIdentity } from './identity-model';
import { readState, scanPartial, txEpochSeconds } from './ledger';
import { findRemoval, isRemoved } from './member-model';
import { PatientLink, findLink } from './patient-link';
import { Anchor, anchorKey, checkResourceKey, resourceRef } from './record-model';
import {
  FHIR_DATE_TIME,
  FHIR_RESOURCE_TYPE,
  HDX_DID,
  JsonObject,
  MSP_ID,
  PATIENT_REF_RULE,
  PSEUDONYM,
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
 * One piece of ledger state a decision reads. The decision below is written ONCE, as a generator that
 * yields these queries: the chaincode answers them from its stub (asynchronously), a gateway from its
 * ledger view (synchronously, so a whole decision reads one consistent view height). Both run the same
 * rules on the same facts; only where the facts come from differs.
 */
export type FactQuery =
  | { readonly fact: 'anchor'; readonly resourceType: string; readonly id: string; readonly versionId: string }
  | { readonly fact: 'link'; readonly custodian: string; readonly pseudonym: string }
  | { readonly fact: 'identity'; readonly did: string }
  | { readonly fact: 'organizationDids'; readonly mspId: string }
  | { readonly fact: 'organizationRemoved'; readonly mspId: string }
  | { readonly fact: 'consents'; readonly patient: string };

/** The answer to each query: the record as the chaincode stores it (undefined when absent). */
export interface FactAnswers {
  anchor: Anchor | undefined;
  link: PatientLink | undefined;
  identity: IdentityRecord | undefined;
  /** The DIDs under the organization's `hdx.did~org` index, sorted. */
  organizationDids: string[];
  /** Whether the organization was removed from the consortium (`hdx.member` [MSP id] with status `removed`). */
  organizationRemoved: boolean;
  /** The patient's consent records (under `hdx.consent~patient`), in id order. */
  consents: StoredConsent[];
}

/** A decision in steps: yields what it needs to read, returns its result. */
export type DecisionSteps<T> = Generator<FactQuery, T, unknown>;

function* ask<K extends FactQuery['fact']>(query: Extract<FactQuery, { fact: K }>): DecisionSteps<FactAnswers[K]> {
  return (yield query) as FactAnswers[K];
}

/** Runs decision steps against an asynchronous fact source (the chaincode's stub). */
export async function runAsync<T>(steps: DecisionSteps<T>, answer: (query: FactQuery) => Promise<unknown>): Promise<T> {
  let next = steps.next();
  while (!next.done) next = steps.next(await answer(next.value));
  return next.value;
}

/** Runs decision steps against a synchronous fact source (a gateway's ledger view) in one turn. */
export function runSync<T>(steps: DecisionSteps<T>, answer: (query: FactQuery) => unknown): T {
  let next = steps.next();
  while (!next.done) next = steps.next(answer(next.value));
  return next.value;
}

/** The key of a fact query (every field, in a fixed order): what the chaincode's and a view's memos of facts are keyed by. */
export function factKey(query: FactQuery): string {
  switch (query.fact) {
    case 'anchor':
      return `anchor\u0000${query.resourceType}\u0000${query.id}\u0000${query.versionId}`;
    case 'link':
      return `link\u0000${query.custodian}\u0000${query.pseudonym}`;
    case 'identity':
      return `identity\u0000${query.did}`;
    case 'organizationDids':
      return `organizationDids\u0000${query.mspId}`;
    case 'organizationRemoved':
      return `organizationRemoved\u0000${query.mspId}`;
    case 'consents':
      return `consents\u0000${query.patient}`;
  }
}

/**
 * Facts already read in a transaction, by its stub: a Fabric read sees the committed state only (never
 * the transaction's own writes), so a fact read twice in one transaction is the same answer, and the
 * decisions of one AuthorizeAndRecordBatch (a gateway's group commit: often one actor reading one
 * patient's records) read each identity, organization and consent list once, not once per request.
 */
const factsRead = new WeakMap<object, Map<string, Promise<unknown>>>();

/** The chaincode's answers: read from the world state through the stub (each fact once per transaction). */
export function stubFacts(ctx: Context): (query: FactQuery) => Promise<unknown> {
  let memo = factsRead.get(ctx.stub);
  if (!memo) {
    memo = new Map();
    factsRead.set(ctx.stub, memo);
  }
  const read = readFact(ctx);
  const cache = memo;
  return (query) => {
    const key = factKey(query);
    let answer = cache.get(key);
    if (!answer) {
      answer = read(query);
      cache.set(key, answer);
      // A failed read is not kept: the transaction fails with it anyway.
      answer.catch(() => cache.delete(key));
    }
    return answer;
  };
}

function readFact(ctx: Context): (query: FactQuery) => Promise<unknown> {
  return async (query) => {
    switch (query.fact) {
      case 'anchor':
        return readState<Anchor>(ctx, anchorKey(ctx, query.resourceType, query.id, query.versionId));
      case 'link':
        return findLink(ctx, query.custodian, query.pseudonym);
      case 'identity':
        return findIdentity(ctx, query.did);
      case 'organizationDids': {
        const rows = await scanPartial(ctx, DID_ORG_INDEX, [query.mspId]);
        return rows.map((row) => ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '').sort();
      }
      case 'organizationRemoved':
        return isRemoved(await findRemoval(ctx, query.mspId));
      case 'consents': {
        const consents: StoredConsent[] = [];
        for (const row of await scanPartial(ctx, CONSENT_PATIENT_INDEX, [query.patient])) {
          const id = ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '';
          const record = await readState<ConsentRecord>(ctx, consentKey(ctx, id));
          if (record) consents.push(storedConsent(record));
        }
        return consents;
      }
    }
  };
}

/** What evaluation keeps of a consent record. */
export function storedConsent(record: ConsentRecord): StoredConsent {
  return { id: record.id, status: record.status, consent: record.consent };
}

/** When and by whom a decision is made: the transaction's time and creator MSP (a gateway: now, itself). */
export interface DecisionClock {
  /** ms since the epoch. */
  readonly now: number;
  /** MSP id of the organization asking (the transaction's creator). */
  readonly submitter: string;
}

/**
 * Steps reading the actor's identity, its organization's DIDs and whether that organization was removed
 * from the consortium, and the patient's status, active
 * guardians and consents. `patient` is the decision's subject (a linked pseudonym already replaced by its DID).
 */
export function* evaluationInputSteps(patient: string, actor: string, actorOrganization: string, clock: DecisionClock): DecisionSteps<EvaluationInputs> {
  const actorRecord = yield* ask<'identity'>({ fact: 'identity', did: actor });
  const actorOrganizationDids = yield* ask<'organizationDids'>({ fact: 'organizationDids', mspId: actorOrganization });
  const actorOrganizationRemoved = yield* ask<'organizationRemoved'>({ fact: 'organizationRemoved', mspId: actorOrganization });
  const guardians: string[] = [];
  let patientStatus: EvaluationContext['patientStatus'];
  let consents: StoredConsent[] = [];
  if (HDX_DID.test(patient)) {
    const patientRecord = yield* ask<'identity'>({ fact: 'identity', did: patient });
    patientStatus = patientRecord?.status;
    if (patientRecord?.status === 'active') {
      // The guardians whose own DIDs are still active.
      for (const guardian of patientRecord.guardians) {
        if ((yield* ask<'identity'>({ fact: 'identity', did: guardian }))?.status === 'active') guardians.push(guardian);
      }
    }
    consents = yield* ask<'consents'>({ fact: 'consents', patient });
  }
  const context: EvaluationContext = {
    now: clock.now,
    actorOrganizationDids,
    actorOrganizationRemoved,
    guardians,
    actorIdentity: actorRecord ? { kind: actorRecord.kind, status: actorRecord.status, organization: actorRecord.organization } : undefined,
    submitter: clock.submitter,
  };
  if (patientStatus !== undefined) context.patientStatus = patientStatus;
  return { consents, context };
}

/** The transaction's clock: its timestamp and creator MSP. */
export function txClock(ctx: Context): DecisionClock {
  return { now: txEpochSeconds(ctx) * 1000, submitter: callerOf(ctx).mspId };
}

/** evaluationInputSteps read from the world state. */
export async function loadEvaluationInputs(ctx: Context, patient: string, actor: string, actorOrganization: string): Promise<EvaluationInputs> {
  return runAsync(evaluationInputSteps(patient, actor, actorOrganization, txClock(ctx)), stubFacts(ctx));
}

export function decide(request: AccessRequest, inputs: EvaluationInputs): Decision {
  return evaluateAccess(request, inputs.consents, inputs.context);
}

export interface ResolvedDecision extends Decision {
  request: AccessRequest;
  /**
   * The other patients whose consents decided it too (a version in several patients' compartments, its
   * anchor's coPatients, each linked pseudonym replaced by its DID), beside `request.patient`.
   */
  coPatients?: string[];
  /** `Type/id/_history/v` when the request named an anchored version. */
  resource?: string;
}

/** The patient a decision is about: the linked DID of a custodian's pseudonym, else the reference itself. */
function* subjectSteps(custodian: string, patient: string): DecisionSteps<string> {
  if (!PSEUDONYM.test(patient)) return patient;
  return (yield* ask<'link'>({ fact: 'link', custodian, pseudonym: patient }))?.did ?? patient;
}

/**
 * Resolves a request (anchor facts win; stated ones must agree) and decides it: THE access decision,
 * run by hdx.consent:EvaluateAccess and hdx.audit:AuthorizeAndRecord on the world state, and by a
 * gateway deciding locally on its ledger view.
 */
export function* decideAccessSteps(input: AccessRequestInput, path: string, clock: DecisionClock): DecisionSteps<ResolvedDecision> {
  const stated = input.request;
  let request: AccessRequest;
  let ref: string | undefined;
  let erased = false;
  const coPatients: string[] = [];
  if (input.resource) {
    const { resourceType, id, versionId } = input.resource;
    checkResourceKey(resourceType, id, versionId);
    ref = resourceRef(resourceType, id, versionId);
    const anchor = yield* ask<'anchor'>({ fact: 'anchor', resourceType, id, versionId });
    if (!anchor) {
      throw notFound(`${ref} is not anchored`);
    }
    erased = anchor.tombstone !== undefined;
    // The anchor's pseudonym stands for its linked DID when the custodian linked it.
    const subject = anchor.patient === undefined ? undefined : yield* subjectSteps(anchor.custodian, anchor.patient);
    for (const other of anchor.coPatients ?? []) coPatients.push(yield* subjectSteps(anchor.custodian, other));
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
      request.patient = yield* subjectSteps(request.custodian, request.patient);
    }
  }
  if (erased) {
    return { decision: 'deny', consents: [], reason: 'resource-erased', breakGlass: request.purpose === 'ETREAT', request, resource: ref as string };
  }
  const inputs = yield* evaluationInputSteps(request.patient, request.actor, request.actorOrganization, clock);
  let decision = decide(request, inputs);
  // In several patients' compartments: each one's consents must permit it (in the anchor's order).
  for (const other of coPatients) {
    const otherInputs = yield* evaluationInputSteps(other, request.actor, request.actorOrganization, clock);
    decision = allOf([decision, decide({ ...request, patient: other }, otherInputs)]);
  }
  const resolved: ResolvedDecision = ref === undefined ? { ...decision, request } : { ...decision, request, resource: ref };
  if (coPatients.length > 0) resolved.coPatients = coPatients;
  return resolved;
}

/** decideAccessSteps on the world state, at the transaction's time. */
export async function decideAccess(ctx: Context, input: AccessRequestInput, path: string): Promise<ResolvedDecision> {
  return runAsync(decideAccessSteps(input, path, txClock(ctx)), stubFacts(ctx));
}
