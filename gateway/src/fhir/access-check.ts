/**
 * The staff view (issue 12), transport-free: "why was my read denied" and "ask the patient for access".
 *
 * `$access-check` answers, for the CALLER (actor, organization and actorAuth from the verified token),
 * whether a read of one resource type of one patient, held by one member, for one purpose would be
 * permitted, decided at PATIENT level by the chaincode's own decision (hdx.consent:EvaluateAccess with
 * patient, custodian and resourceType, never a record). It reads no record, so it cannot tell whether a
 * record (or how many) exists; and every reason about the patient's consents collapses to one ("no
 * consent of this patient permits ..."): an explicit deny, no permit, a suspended patient and an
 * unregistered DID read alike. Reasons about the actor itself (its DID, organization, role) are told.
 *
 * Access requests (`$request-access`, `$access-requests`) go on the ledger (hdx.consent:RequestAccess):
 * codes only, one open request per requester, patient and purpose.
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';
import type { AccessRequestInput, AccessRequestRecord, Decision, EvaluateRequest, LedgerClient } from '../ledger/ledger-client';
import { mapLimit } from '../util/concurrency';

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const PURPOSE = /^[A-Z]{2,20}$/;
const MSP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Most resource types one request names (the chaincode's limit). */
export const MAX_REQUEST_TYPES = 20;

/** What the staff view says about a decision: the chaincode's reasons, with every reason about the patient's consents as one. */
export type CheckReason =
  | 'consent-permits'
  | 'custodian-treatment'
  | 'break-glass'
  | 'no-consent'
  | 'actor-unregistered'
  | 'actor-inactive'
  | 'actor-organization-mismatch'
  | 'actor-organization-removed'
  | 'delegation-not-allowed'
  | 'purpose-not-allowed';

/** Words for the purposes a practitioner usually states; others are named by their code. */
const PURPOSE_WORDS: Readonly<Record<string, string>> = {
  TREAT: 'treatment',
  ETREAT: 'an emergency (break-glass)',
  CAREMGT: 'care coordination',
  HPAYMT: 'billing and payment',
  HOPERAT: 'hospital operations',
  HRESCH: 'health research',
  PUBHLTH: 'public health',
};

export function purposeWords(code: string): string {
  const words = PURPOSE_WORDS[code];
  return words === undefined ? code : `${words} (${code})`;
}

/** The question, as the caller asks it (the actor is never taken from it). */
export interface AccessQuestion {
  patient: string;
  purpose: string;
  resourceType: string;
  /** The member holding the records asked about (default: this gateway's). */
  custodian: string;
}

/** The caller of the staff view: a practitioner or a member system with a DID, as the token says. */
export interface StaffActor {
  did: string;
  organization: string;
  actorAuth: NonNullable<EvaluateRequest['actorAuth']>;
  /** Whether the caller's kind may break the glass (a practitioner). */
  mayBreakGlass: boolean;
}

/** Only practitioners and member systems ask; a patient, an auditor, an admin or a device gets 403. */
export function staffActor(auth: AuthContext, ownMsp: string, what: string): StaffActor {
  if (auth.role !== 'practitioner' && auth.role !== 'system') {
    throw new OperationOutcomeError('FORBIDDEN', `${what} is for practitioners and member systems`);
  }
  if (!auth.did) throw new OperationOutcomeError('FORBIDDEN', `${what} is decided for a registered DID (claim hdx_did)`);
  return { did: auth.did, organization: auth.organization ?? ownMsp, actorAuth: auth.actorAuth, mayBreakGlass: auth.role === 'practitioner' };
}

function one(query: Readonly<Record<string, readonly string[]>>, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (v.length !== 1) throw new OperationOutcomeError('INVALID', `Parameter ${name} must be given once`);
  return v[0];
}

const CHECK_HOW = 'Ask GET /fhir/Patient/$access-check?patient=<patient DID>&purpose=<PurposeOfUse code>&resourceType=<FHIR type>[&custodian=<member id>]';

/** Reads `$access-check`'s query; every problem is a 400 naming it. */
export function parseAccessQuestion(query: Readonly<Record<string, readonly string[]>>, ownMsp: string): AccessQuestion {
  for (const name of Object.keys(query)) {
    if (!['patient', 'purpose', 'resourceType', 'custodian'].includes(name)) throw new OperationOutcomeError('INVALID', `Unknown parameter ${name}. ${CHECK_HOW}`);
  }
  const patient = one(query, 'patient');
  if (patient === undefined || !HDX_DID.test(patient)) throw new OperationOutcomeError('INVALID', `Parameter patient must be a patient DID (did:hdx:…). ${CHECK_HOW}`);
  const purpose = one(query, 'purpose');
  if (purpose === undefined || !PURPOSE.test(purpose))
    throw new OperationOutcomeError('INVALID', `Parameter purpose must be an HL7 v3 PurposeOfUse code such as TREAT. ${CHECK_HOW}`);
  const resourceType = one(query, 'resourceType');
  if (resourceType === undefined || !RESOURCE_TYPE.test(resourceType))
    throw new OperationOutcomeError('INVALID', `Parameter resourceType must be a FHIR resource type such as Observation. ${CHECK_HOW}`);
  const custodian = one(query, 'custodian') ?? ownMsp;
  if (!MSP_ID.test(custodian)) throw new OperationOutcomeError('INVALID', `Parameter custodian must be a member id such as Hospital1MSP. ${CHECK_HOW}`);
  return { patient, purpose, resourceType, custodian };
}

/** The chaincode's reason, as the staff view may tell it: nothing about which consent, nor deny from no permit. */
export function checkReason(decision: Pick<Decision, 'decision' | 'reason'>): CheckReason {
  const reason: string = decision.reason;
  switch (reason) {
    case 'actor-unregistered':
    case 'actor-organization-mismatch':
    case 'actor-organization-removed':
    case 'delegation-not-allowed':
    case 'purpose-not-allowed':
      return reason;
    case 'actor-deactivated':
      return 'actor-inactive';
    case 'custodian-treatment':
    case 'break-glass':
      return decision.decision === 'permit' ? reason : 'no-consent';
    default:
      // consent-permit; consent-deny, no-permit, an erased or unknown patient: all about the patient's consents.
      return decision.decision === 'permit' ? 'consent-permits' : 'no-consent';
  }
}

/** The answer in plain words. */
export function explain(reason: CheckReason, q: AccessQuestion, actor: StaffActor): string {
  const what = `${q.resourceType} records held by ${q.custodian} for ${purposeWords(q.purpose)}`;
  switch (reason) {
    case 'consent-permits':
      return `Permitted: a consent of this patient permits you or ${actor.organization} to read ${what}.`;
    case 'custodian-treatment':
      return `Permitted: the staff of ${q.custodian} may read its own records for treatment.`;
    case 'break-glass':
      return `Permitted as break-glass: reading ${what} is recorded, flagged and reviewed by an auditor, and the patient sees it.`;
    case 'no-consent':
      return `Not permitted: no consent of this patient permits you or ${actor.organization} to read ${what}. You can ask the patient for access.`;
    case 'actor-unregistered':
      return 'Not permitted: your DID is not registered on the ledger.';
    case 'actor-inactive':
      return 'Not permitted: your DID is suspended or deactivated. Ask your organization.';
    case 'actor-organization-mismatch':
      return `Not permitted: your DID is not registered by ${actor.organization}, or this way of signing in is not accepted here for it.`;
    case 'actor-organization-removed':
      return `Not permitted: ${actor.organization} was removed from the consortium.`;
    case 'delegation-not-allowed':
      return 'Not permitted: an organization may act only for its own practitioners.';
    case 'purpose-not-allowed':
      return `Not permitted: your role may not state the purpose ${purposeWords(q.purpose)}.`;
  }
}

/** The staff view's answer, as a FHIR Parameters resource. */
export interface AccessCheck {
  permitted: boolean;
  reason: CheckReason;
  explanation: string;
  /** Only when not permitted for another purpose than ETREAT and the caller may break the glass. */
  breakGlassAvailable?: boolean;
}

/** Decides the question for the caller at patient level (the chaincode's EvaluateAccess); records nothing. */
export async function checkAccess(ledger: Pick<LedgerClient, 'evaluateAccess'>, actor: StaffActor, q: AccessQuestion): Promise<AccessCheck> {
  const decision = await ledger.evaluateAccess({
    actor: actor.did,
    actorOrganization: actor.organization,
    actorAuth: actor.actorAuth,
    purpose: q.purpose,
    patient: q.patient,
    custodian: q.custodian,
    resourceType: q.resourceType,
    securityLabels: [],
  });
  const reason = checkReason(decision);
  const permitted = decision.decision === 'permit';
  const out: AccessCheck = { permitted, reason, explanation: explain(reason, q, actor) };
  // The role's rule, not the patient's: a patient may refuse break-glass, which only a try (recorded) tells.
  if (!permitted && q.purpose !== 'ETREAT' && reason === 'no-consent') out.breakGlassAvailable = actor.mayBreakGlass;
  return out;
}

export function accessCheckParameters(check: AccessCheck): Record<string, unknown> {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'permitted', valueBoolean: check.permitted },
      { name: 'reason', valueCode: check.reason },
      { name: 'explanation', valueString: check.explanation },
      ...(check.breakGlassAvailable !== undefined ? [{ name: 'breakGlassAvailable', valueBoolean: check.breakGlassAvailable }] : []),
    ],
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const REQUEST_HOW =
  'Send a Parameters resource with patient (valueString: the patient DID), purpose (valueCode: a PurposeOfUse code such as TREAT) and resourceType (valueCode, once per type, 1 to 20): codes only, no message';

/** Reads `$request-access`'s Parameters body (the requester is the caller, never the body); every problem is a 400. */
export function parseRequestParameters(body: unknown, requester: string): AccessRequestInput {
  if (!isObject(body) || body.resourceType !== 'Parameters' || !Array.isArray(body.parameter)) {
    throw new OperationOutcomeError('INVALID', `The body must be a FHIR Parameters resource. ${REQUEST_HOW}`);
  }
  let patient: string | undefined;
  let purpose: string | undefined;
  const types: string[] = [];
  for (const [i, p] of (body.parameter as unknown[]).entries()) {
    if (!isObject(p) || typeof p.name !== 'string') throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] must have a name`);
    const value = p.name === 'patient' ? p.valueString : p.valueCode;
    if (typeof value !== 'string') throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] (${p.name}) has no value. ${REQUEST_HOW}`);
    if (p.name === 'patient' && patient === undefined) patient = value;
    else if (p.name === 'purpose' && purpose === undefined) purpose = value;
    else if (p.name === 'resourceType') types.push(value);
    else throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] (${p.name}) is not taken here. ${REQUEST_HOW}`);
  }
  if (patient === undefined || !HDX_DID.test(patient)) throw new OperationOutcomeError('INVALID', `patient must be a patient DID (did:hdx:…). ${REQUEST_HOW}`);
  if (purpose === undefined || !PURPOSE.test(purpose)) throw new OperationOutcomeError('INVALID', `purpose must be a PurposeOfUse code such as TREAT. ${REQUEST_HOW}`);
  if (purpose === 'ETREAT') throw new OperationOutcomeError('INVALID', 'Break-glass (ETREAT) needs no request: it is recorded and reviewed');
  if (types.length === 0 || types.length > MAX_REQUEST_TYPES) throw new OperationOutcomeError('INVALID', `Name 1 to ${MAX_REQUEST_TYPES} resource types. ${REQUEST_HOW}`);
  for (const t of types) if (!RESOURCE_TYPE.test(t)) throw new OperationOutcomeError('INVALID', `resourceType ${JSON.stringify(t)} is not a FHIR resource type`);
  if (patient === requester) throw new OperationOutcomeError('INVALID', 'A practitioner does not ask themself for access');
  return { patient, requester, purpose, resourceTypes: [...new Set(types)].sort() };
}

/** Whether a consent of the patient now permits a request, for each of its types (the chaincode's decision). */
export async function permittedNow(ledger: Pick<LedgerClient, 'evaluateAccess'>, r: AccessRequestRecord): Promise<boolean> {
  const decisions = await mapLimit(r.resourceTypes, 4, (resourceType) =>
    ledger.evaluateAccess({
      actor: r.requester,
      actorOrganization: r.requesterOrganization,
      actorAuth: 'did',
      // A disclosure to the requester: the custodian-treatment default does not count, only a consent.
      action: 'disclose',
      purpose: r.purpose,
      patient: r.patient,
      custodian: r.requesterOrganization,
      resourceType,
      securityLabels: [],
    }),
  );
  return decisions.every((d) => d.decision === 'permit' && d.reason === 'consent-permit');
}

/** One request as a part of the `$access-requests` Parameters. */
export function requestPart(r: AccessRequestRecord, permitted: boolean): Record<string, unknown> {
  return {
    name: 'request',
    part: [
      { name: 'requester', valueString: r.requester },
      { name: 'requesterOrganization', valueString: r.requesterOrganization },
      { name: 'purpose', valueCode: r.purpose },
      ...r.resourceTypes.map((t) => ({ name: 'resourceType', valueCode: t })),
      { name: 'requestedAt', valueDateTime: r.requestedAt },
      { name: 'permitted', valueBoolean: permitted },
    ],
  };
}
