/**
 * Consent evaluation: a pure, deterministic function of the request, the patient's consents and the
 * transaction time. The precedence rules are documented in chaincode/README.md ("Consent precedence").
 */
import { ConsentAction, ConsentResource, Coding, Period, Provision, MSP_SYSTEM } from './consent-model';
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
  /** MSP id of the organization holding the data. */
  custodian: string;
  action: ConsentAction;
  /** HL7 v3 PurposeOfUse code. */
  purpose: string;
  /** FHIR resource type of the data. */
  resourceType: string;
  /** Security labels of the data: `code` or `system|code`. */
  securityLabels: string[];
  /** Date of the data (FHIR instant or dateTime), when known. */
  dataDate?: string;
}

export interface EvaluationContext {
  /** Transaction time, ms since the epoch. */
  now: number;
  /** Active organization DIDs registered for the actor's MSP (actors may name an organization by DID). */
  actorOrganizationDids: string[];
  /** Guardians registered for the patient. */
  guardians: string[];
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
  | 'actor-deactivated'
  | 'actor-organization-mismatch';

export interface Decision {
  decision: 'permit' | 'deny';
  /** Ids of the consents that decided it (sorted); empty when a default decided. */
  consents: string[];
  reason: DecisionReason;
  /** True for every ETREAT (break-glass) request, whatever the decision. */
  breakGlass: boolean;
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

/** Whether every criterion of one provision (not its children) covers the request. */
export function provisionMatches(p: Provision, r: AccessRequest, c: EvaluationContext): boolean {
  if (p.period && !withinPeriod(c.now, p.period)) {
    return false;
  }
  if (p.actor && !p.actor.some(({ reference }) =>
    reference.reference !== undefined
      ? reference.reference === r.actor || c.actorOrganizationDids.includes(reference.reference)
      : reference.identifier?.system === MSP_SYSTEM && reference.identifier.value === r.actorOrganization)) {
    return false;
  }
  if (p.action && !p.action.some((concept) => concept.coding.some((coding) => coding.code === r.action))) {
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
  if (p.dataPeriod) {
    // Fail safe when the data's date is unknown: a deny applies, a permit does not.
    if (r.dataDate === undefined) {
      return p.type === 'deny';
    }
    if (!withinPeriod(dateTimeStartMs(r.dataDate), p.dataPeriod)) {
      return false;
    }
  }
  return true;
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
  if (r.actor === r.patient || c.guardians.includes(r.actor)) {
    return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass };
  }
  const denies: string[] = [];
  const permits: string[] = [];
  for (const stored of [...consents].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (stored.status !== 'active' || stored.consent.patient.reference !== r.patient) {
      continue;
    }
    const outcome = evaluateProvision(stored.consent.provision, r, c);
    if (outcome === 'deny') denies.push(stored.id);
    if (outcome === 'permit') permits.push(stored.id);
  }
  if (denies.length > 0) {
    return { decision: 'deny', consents: denies, reason: 'consent-deny', breakGlass };
  }
  if (permits.length > 0) {
    return { decision: 'permit', consents: permits, reason: 'consent-permit', breakGlass };
  }
  if (breakGlass) {
    return { decision: 'permit', consents: [], reason: 'break-glass', breakGlass };
  }
  if (r.purpose === TREATMENT_PURPOSE && r.actorOrganization === r.custodian) {
    return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass };
  }
  return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass };
}
