import type { AccessQuery, AuditEntry, LedgerClient, ReviewState } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../errors';
import { reviewExtension, type ReviewStateCode } from './break-glass-review';

const URI = 'urn:ietf:rfc:3986';
/** The AuditEvent extension carrying the ledger's event id `<txId>.<n>` of the access entry. */
export const LEDGER_EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';
const MSP = 'urn:hdx:msp';
const PSEUDONYM = 'urn:hdx:pseudonym';

const REST_INTERACTIONS = new Set(['read', 'vread', 'update', 'delete', 'history-instance', 'history-type', 'create', 'search-type']);

function identifierOf(ref: string): { system: string; value: string } {
  if (ref.startsWith('did:')) return { system: URI, value: ref };
  if (ref.startsWith('pseudonym:')) return { system: PSEUDONYM, value: ref.slice('pseudonym:'.length) };
  return { system: MSP, value: ref };
}

/**
 * The AuditEvent id of a ledger event id (`<txId>.<n>`: 64 hex characters, a dot, the entry's index in
 * its transaction), within FHIR's 64 characters: the transaction id cut to leave room for `.<n>`, so the
 * entries of one transaction (a RecordAccessBatch holds up to 200) keep distinct ids. Cutting the index
 * instead gave every entry of a batch the same id, and a client keeping one resource per id (the web
 * app's history did) showed one access of the batch and hid the others.
 */
export function auditEventId(eventId: string): string {
  const safe = eventId.replace(/[^A-Za-z0-9\-.]/g, '-');
  if (safe.length <= 64) return safe;
  const dot = safe.lastIndexOf('.');
  const suffix = dot > 0 && safe.length - dot <= 16 ? safe.slice(dot) : '';
  return `${safe.slice(0, 64 - suffix.length)}${suffix}`;
}

/**
 * One access-history entry of the ledger as a FHIR R4 AuditEvent; `review`, for a break-glass entry,
 * its review state on the ledger (the extension break-glass-review: break-glass-review.ts).
 */
export function toAuditEvent(e: AuditEntry, review?: ReviewState): Record<string, unknown> {
  const subtype = e.subtype ?? (e.action === 'R' ? 'read' : 'update');
  return {
    resourceType: 'AuditEvent',
    id: auditEventId(e.eventId),
    // The ledger's own event id (66+ characters: a FHIR id holds 64) is what GET
    // /fhir/AuditEvent/<eventId>/$receipt and $review take.
    extension: [{ url: LEDGER_EVENT_ID_EXTENSION, valueString: e.eventId }, ...(e.breakGlass && review ? [reviewExtension(review)] : [])],
    ...(e.breakGlass ? { meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT', display: 'break-glass: flagged for review' }] } } : {}),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [
      REST_INTERACTIONS.has(subtype)
        ? { system: 'http://hl7.org/fhir/restful-interaction', code: subtype }
        : { system: 'https://hdx.example/fhir/CodeSystem/disclosure', code: subtype },
    ],
    action: e.action,
    period: { start: e.occurredAt, end: e.occurredAt },
    recorded: e.recordedAt,
    outcome: e.decision === 'permit' ? '0' : '4',
    outcomeDesc: e.decision === 'permit' ? `permit (${e.reason ?? 'recorded'})` : `denied (${e.reason ?? 'no-permit'})`,
    purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-PurposeOfUse', code: e.purpose }] }],
    agent: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser', display: 'human user' }] },
        who: { identifier: identifierOf(e.actor) },
        requestor: true,
        // The consents that decided it (absent when a default rule decided).
        ...(e.consents.length > 0 ? { policy: e.consents.map((c) => `Consent/${c}`) } : {}),
      },
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'dataprocessor', display: 'data processor' }] },
        who: { identifier: identifierOf(e.actorOrganization) },
        requestor: false,
      },
    ],
    source: {
      observer: { identifier: identifierOf(e.gateway) },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    entity: [
      ...(e.patient
        ? [
            {
              what: { identifier: identifierOf(e.patient) },
              type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' },
              role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' },
            },
          ]
        : []),
      ...e.resources.map((r) => ({
        what: { reference: r },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      })),
    ],
  };
}

export interface AuditSearch {
  patient?: string;
  agent?: string;
  entity?: string;
  from?: string;
  to?: string;
  action?: string;
  outcome?: string;
  /** The break-glass review queue: break-glass entries in these review states (open, reviewed). */
  reviewStates?: ReviewStateCode[];
  count: number;
  bookmark: string;
}

/** The ledger's access history, for the patient (their own), the actor (their own actions) and auditors (all). */
export class AuditService {
  constructor(private readonly ledger: LedgerClient) {}

  async search(requester: string | undefined, q: AuditSearch): Promise<{ events: Record<string, unknown>[]; bookmark: string }> {
    const selectors = [q.patient, q.agent, q.entity].filter((x) => x !== undefined);
    if (q.reviewStates !== undefined) {
      if (selectors.length > 0)
        throw new OperationOutcomeError(
          'INVALID',
          'Search parameter review-state (the break-glass review queue) combines with date, action and outcome, not with patient, agent or entity',
        );
      return this.#queue(requester, q, q.reviewStates);
    }
    if (selectors.length > 1) throw new OperationOutcomeError('INVALID', 'Search AuditEvent by at most one of patient, agent and entity');
    const query: AccessQuery = {
      ...(q.patient ? { patient: q.patient } : {}),
      ...(q.agent ? { actor: q.agent } : {}),
      ...(q.entity ? { resource: q.entity } : {}),
      ...(q.from ? { from: q.from } : {}),
      ...(q.to ? { to: q.to } : {}),
      pageSize: q.count,
      ...(q.bookmark ? { bookmark: q.bookmark } : {}),
      ...(requester ? { requester } : {}),
    };
    const page = await this.ledger.queryAccess(query);
    const entries = page.entries.filter(
      (e) => (q.action === undefined || e.action === q.action) && (q.outcome === undefined || (e.decision === 'permit' ? '0' : '4') === q.outcome),
    );
    return { events: entries.map((e) => toAuditEvent(e, page.reviews?.[e.eventId])), bookmark: page.bookmark };
  }

  /** The break-glass entries in the review states asked (both: every break-glass entry), oldest first. */
  async #queue(requester: string | undefined, q: AuditSearch, states: ReviewStateCode[]): Promise<{ events: Record<string, unknown>[]; bookmark: string }> {
    const page = await this.ledger.queryBreakGlass({
      ...(states.length === 1 ? { state: states[0] } : {}),
      ...(q.from ? { from: q.from } : {}),
      ...(q.to ? { to: q.to } : {}),
      pageSize: q.count,
      ...(q.bookmark ? { bookmark: q.bookmark } : {}),
      ...(requester ? { requester } : {}),
    });
    const entries = page.entries.filter(
      ({ entry: e }) => (q.action === undefined || e.action === q.action) && (q.outcome === undefined || (e.decision === 'permit' ? '0' : '4') === q.outcome),
    );
    return { events: entries.map(({ entry, review }) => toAuditEvent(entry, review)), bookmark: page.bookmark };
  }
}
