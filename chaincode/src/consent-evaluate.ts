/**
 * Consent evaluation: a pure, deterministic function of the request, the patient's consents and the
 * transaction time. The precedence rules are documented in chaincode/README.md ("Consent precedence").
 */
import { ActorAuth, BREAK_GLASS_KINDS, CUSTODIAN_TREATMENT_KINDS, DELEGABLE_KINDS, ORGANIZATION_ACTOR_KINDS, actionCovers, purposeAllowed } from './actor-rules';
import { ConsentAction, ConsentResource, Coding, Period, Provision, MSP_SYSTEM } from './consent-model';
import type { DidKind, DidStatus } from './identity-model';
import { dateTimeEndMs, dateTimeStartMs } from './validate';

export const BREAK_GLASS_PURPOSE = 'ETREAT';
export const TREATMENT_PURPOSE = 'TREAT';

export interface AccessRequest {
  /** did:hdx or pseudonym of the patient whose data is asked for. */
  patient: string;
  /** DID of the person or system asking. */
  actor: string;
  /** MSP id of the actor's organization. */
  actorOrganization: string;
  /** How the actor was authenticated (see actor-rules.ts). */
  actorAuth: ActorAuth;
  /** MSP id of the organization holding the data. */
  custodian: string;
  action: ConsentAction;
  /** HL7 v3 PurposeOfUse code. */
  purpose: string;
  /** FHIR resource type of the data. */
  resourceType: string;
  /** Security labels of the data: `code` or `system|code`. */
  securityLabels: string[];
  /**
   * Clinical date of the data, when known: a FHIR dateTime of any precision (anchors give the month,
   * `YYYY-MM`). It stands for the whole interval of its precision.
   */
  dataDate?: string;
}

/** The actor's registered identity, as far as the decision needs it. */
export interface ActorIdentity {
  kind: DidKind;
  status: DidStatus;
  /** MSP id that registered the DID. */
  organization: string;
}

export interface EvaluationContext {
  /** Transaction time, ms since the epoch. */
  now: number;
  /** Active organization DIDs registered for the actor's MSP (actors may name an organization by DID). */
  actorOrganizationDids: string[];
  /**
   * Whether the actor's organization was removed from the consortium (hdx.identity:ApproveMemberRemoval):
   * then none of its identities acts, and no provision naming it permits anything. Decisions on the
   * ledger and on a gateway's view always state it (evaluationInputSteps); absent means not removed.
   */
  actorOrganizationRemoved?: boolean;
  /** Active guardians registered for the patient (empty unless the patient's DID is active). */
  guardians: string[];
  /** The actor's registered identity; undefined when the actor DID is not registered. */
  actorIdentity: ActorIdentity | undefined;
  /** MSP id of the organization that submitted the transaction (the creator). */
  submitter: string;
  /** Status of the patient's DID when it is registered: unless `active`, its permits do not permit. */
  patientStatus?: DidStatus;
}

export interface StoredConsent {
  id: string;
  status: 'active' | 'inactive';
  consent: ConsentResource;
}

export type DecisionReason =
  | 'patient-or-guardian'
  | 'consent-deny'
  | 'consent-permit'
  | 'break-glass'
  | 'custodian-treatment'
  | 'no-permit'
  | 'resource-erased'
  | 'actor-unregistered'
  | 'actor-deactivated'
  | 'actor-organization-mismatch'
  | 'actor-organization-removed'
  | 'delegation-not-allowed'
  | 'purpose-not-allowed';

export interface Decision {
  decision: 'permit' | 'deny';
  /** Ids of the consents that decided it (sorted); empty when a default decided. */
  consents: string[];
  reason: DecisionReason;
  /** True for every ETREAT (break-glass) request, whatever the decision. */
  breakGlass: boolean;
}

/**
 * The decision for a resource several patients' consents govern (it is in each one's compartment): a
 * permit only if every one permits (the consents of all of them), else the first refusal.
 */
export function allOf(decisions: readonly Decision[]): Decision {
  const breakGlass = decisions.some((d) => d.breakGlass);
  const refusal = decisions.find((d) => d.decision !== 'permit');
  if (refusal) return { ...refusal, breakGlass };
  const first = decisions[0];
  if (!first) throw new Error('allOf needs at least one decision');
  const consents = [...new Set(decisions.flatMap((d) => d.consents))].sort();
  return { decision: 'permit', consents, reason: first.reason, breakGlass };
}

type Outcome = 'permit' | 'deny' | undefined;

function withinPeriod(ms: number, period: Period): boolean {
  if (period.start !== undefined && ms < dateTimeStartMs(period.start)) {
    return false;
  }
  return !(period.end !== undefined && ms >= dateTimeEndMs(period.end));
}

function labelMatches(label: Coding, requested: string): boolean {
  const bar = requested.lastIndexOf('|');
  const code = bar < 0 ? requested : requested.slice(bar + 1);
  const system = bar < 0 ? undefined : requested.slice(0, bar);
  return label.code === code && (label.system === undefined || system === undefined || label.system === system);
}

/** Whether the actor is one an organization-wide provision covers (staff and systems, not patients). */
function actsForOrganization(c: EvaluationContext): boolean {
  return c.actorIdentity !== undefined && ORGANIZATION_ACTOR_KINDS.includes(c.actorIdentity.kind);
}

/** Whether every criterion of one provision (not its children) covers the request. */
export function provisionMatches(p: Provision, r: AccessRequest, c: EvaluationContext): boolean {
  if (p.period && !withinPeriod(c.now, p.period)) {
    return false;
  }
  if (
    p.actor &&
    !p.actor.some(({ reference }) =>
      reference.reference !== undefined
        ? reference.reference === r.actor || (actsForOrganization(c) && c.actorOrganizationDids.includes(reference.reference))
        : actsForOrganization(c) && reference.identifier?.system === MSP_SYSTEM && reference.identifier.value === r.actorOrganization,
    )
  ) {
    return false;
  }
  if (p.action && !p.action.some((concept) => concept.coding.some((coding) => actionCovers(coding.code, r.action)))) {
    return false;
  }
  if (r.purpose === BREAK_GLASS_PURPOSE && p.type === 'deny') {
    // Break-glass is refused only by a deny that names ETREAT explicitly.
    if (!p.purpose?.some((coding) => coding.code === BREAK_GLASS_PURPOSE)) {
      return false;
    }
  } else if (p.purpose && !p.purpose.some((coding) => coding.code === r.purpose)) {
    return false;
  }
  if (p.class && !p.class.some((coding) => coding.code === r.resourceType)) {
    return false;
  }
  if (p.securityLabel && !p.securityLabel.some((label) => r.securityLabels.some((requested) => labelMatches(label, requested)))) {
    return false;
  }
  if (p.dataPeriod && !dataPeriodMatches(p.type, p.dataPeriod, r.dataDate)) {
    return false;
  }
  return true;
}

/**
 * The data's date is an interval (a month for anchors). A deny covers it when the interval meets the
 * period; a permit only when the whole interval lies inside it. Unknown date: a deny applies, a permit
 * does not (fail safe).
 */
export function dataPeriodMatches(type: Provision['type'], period: Period, dataDate: string | undefined): boolean {
  if (dataDate === undefined) {
    return type === 'deny';
  }
  const start = dateTimeStartMs(dataDate);
  const end = dateTimeEndMs(dataDate);
  const periodStart = period.start === undefined ? -Infinity : dateTimeStartMs(period.start);
  const periodEnd = period.end === undefined ? Infinity : dateTimeEndMs(period.end);
  return type === 'deny' ? start < periodEnd && end > periodStart : start >= periodStart && end <= periodEnd;
}

/** Why the actor's identity refuses the request before any consent is read, or undefined. */
export function actorRefusal(r: AccessRequest, c: EvaluationContext): DecisionReason | undefined {
  const actor = c.actorIdentity;
  if (!actor) {
    return 'actor-unregistered';
  }
  if (actor.status !== 'active') {
    return 'actor-deactivated';
  }
  if (actor.organization !== r.actorOrganization) {
    return 'actor-organization-mismatch';
  }
  if (c.actorOrganizationRemoved === true && actor.kind !== 'patient') {
    // A departed member: its staff, systems and organization act nowhere, whatever a consent names. A
    // patient it registered is not its agent: the patient's right to their own records and their say
    // over them do not end because the hospital that first registered their DID left.
    return 'actor-organization-removed';
  }
  if (r.actorAuth === 'idp' && r.actorOrganization !== c.submitter) {
    // An identity provider vouches only for its own organization's users, through its own gateway.
    return 'actor-organization-mismatch';
  }
  if (r.actorAuth === 'delegated' && !DELEGABLE_KINDS.includes(actor.kind)) {
    return 'delegation-not-allowed';
  }
  if (!purposeAllowed(actor.kind, r.purpose)) {
    return 'purpose-not-allowed';
  }
  return undefined;
}

/**
 * The outcome of one provision tree: undefined when the provision does not match; otherwise the
 * combined outcome of its matching nested provisions (deny wins among siblings) or, when none of
 * them matches, its own type. The most specific matching provision decides.
 */
export function evaluateProvision(p: Provision, r: AccessRequest, c: EvaluationContext): Outcome {
  if (!provisionMatches(p, r, c)) {
    return undefined;
  }
  const nested = (p.provision ?? []).map((child) => evaluateProvision(child, r, c));
  if (nested.includes('deny')) {
    return 'deny';
  }
  if (nested.includes('permit')) {
    return 'permit';
  }
  return p.type;
}

/** Deterministic access decision (see README, "Consent precedence"). */
export function evaluateAccess(r: AccessRequest, consents: StoredConsent[], c: EvaluationContext): Decision {
  const breakGlass = r.purpose === BREAK_GLASS_PURPOSE;
  const refusal = actorRefusal(r, c);
  if (refusal) {
    return { decision: 'deny', consents: [], reason: refusal, breakGlass };
  }
  const kind = (c.actorIdentity as ActorIdentity).kind;
  const selfAuthenticated = r.actorAuth === 'did' || r.actorAuth === 'idp';
  if (kind === 'patient' && selfAuthenticated && (r.actor === r.patient || c.guardians.includes(r.actor))) {
    return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass };
  }
  // A suspended (or deactivated) patient's permits stop permitting; their denies still apply.
  const permitsCount = c.patientStatus === undefined || c.patientStatus === 'active';
  const denies: string[] = [];
  const permits: string[] = [];
  for (const stored of [...consents].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (stored.status !== 'active' || stored.consent.patient.reference !== r.patient) {
      continue;
    }
    const outcome = evaluateProvision(stored.consent.provision, r, c);
    if (outcome === 'deny') denies.push(stored.id);
    if (outcome === 'permit' && permitsCount) permits.push(stored.id);
  }
  if (denies.length > 0) {
    return { decision: 'deny', consents: denies, reason: 'consent-deny', breakGlass };
  }
  if (permits.length > 0) {
    return { decision: 'permit', consents: permits, reason: 'consent-permit', breakGlass };
  }
  if (breakGlass && BREAK_GLASS_KINDS.includes(kind)) {
    return { decision: 'permit', consents: [], reason: 'break-glass', breakGlass };
  }
  if (r.purpose === TREATMENT_PURPOSE && r.actorOrganization === r.custodian && CUSTODIAN_TREATMENT_KINDS.includes(kind) && selfAuthenticated) {
    return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass };
  }
  return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass };
}
