/**
 * The patient's access history: the gateway's AuditEvents (gateway/src/fhir/audit-events.ts,
 * toAuditEvent) read as rows a person can scan: who, from which organization, through which gateway,
 * when, why, what, permit or deny, break-glass.
 */

import { type ReviewInfo, reviewOf } from './review';
import { arr, obj, str } from './json';

export interface AccessRow {
  id: string;
  /** ISO instant of the access. */
  when: string;
  /** The DID (or id) of the person or system that asked. */
  who: string;
  /** Their organization (MSP id). */
  organization: string;
  /** The gateway (member) that answered. */
  where: string;
  /** PurposeOfUse code. */
  why: string;
  /** What was asked for: `Type/id` references, else the interaction. */
  what: string[];
  interaction: string;
  permitted: boolean;
  /** The gateway's outcome text, e.g. `permit (consent)` or `denied (no-permit)`. */
  outcome: string;
  breakGlass: boolean;
  /** The consents that decided it. */
  consents: string[];
  /** Whose data: the patient's DID (or pseudonym). */
  patient: string;
  /** A break-glass access's review by an auditor (the gateway's break-glass-review extension), when the gateway says. */
  review?: ReviewInfo;
}

function identifierValue(who: unknown): string {
  return str(obj(obj(who).identifier).value) || str(obj(who).reference);
}

/** One AuditEvent as a row. */
export function toAccessRow(event: unknown): AccessRow {
  const e = obj(event);
  const review = reviewOf(event);
  const agents = arr(e.agent).map(obj);
  const requestor = agents.find((a) => a.requestor === true) ?? agents[0] ?? {};
  const processor = agents.find((a) => a.requestor === false) ?? {};
  const security = arr(obj(e.meta).security).map(obj);
  const purpose = arr(e.purposeOfEvent)
    .flatMap((p) => arr(obj(p).coding))
    .map((c) => str(obj(c).code))
    .filter((c) => c !== '');
  const references = arr(e.entity)
    .map((x) => str(obj(obj(x).what).reference))
    .filter((r) => r !== '');
  const interaction = arr(e.subtype)
    .map((s) => str(obj(s).code))
    .filter((c) => c !== '')
    .join(', ');
  return {
    id: str(e.id),
    when: str(obj(e.period).start) || str(e.recorded),
    who: identifierValue(requestor.who),
    organization: identifierValue(processor.who),
    where: identifierValue(obj(e.source).observer),
    why: purpose.join(', '),
    what: references,
    interaction,
    permitted: e.outcome === '0',
    outcome: str(e.outcomeDesc) || (e.outcome === '0' ? 'permit' : 'denied'),
    breakGlass: security.some((s) => s.code === 'ETREAT') || purpose.includes('ETREAT'),
    consents: arr(requestor.policy).map(str),
    patient: arr(e.entity)
      .map((x) => identifierValue(obj(x).what))
      .filter((v) => v !== '' && !v.includes('/'))
      .join(', '),
    ...(review ? { review } : {}),
  };
}

/** The rows of a searchset Bundle of AuditEvents, newest first. */
export function accessRows(bundle: unknown): AccessRow[] {
  const rows = arr(obj(bundle).entry)
    .map((entry) => obj(entry).resource)
    .filter((r) => obj(r).resourceType === 'AuditEvent')
    .map(toAccessRow);
  return rows.sort((a, b) => (a.when < b.when ? 1 : a.when > b.when ? -1 : 0));
}

/** The URL of the next page of a searchset, if any. */
export function nextLink(bundle: unknown): string | undefined {
  const next = arr(obj(bundle).link)
    .map(obj)
    .find((l) => l.relation === 'next');
  return next ? str(next.url) || undefined : undefined;
}
