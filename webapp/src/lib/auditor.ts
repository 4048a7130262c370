/**
 * The auditor's search of the access history: what the gateway's `GET /fhir/AuditEvent` filters itself
 * (patient or actor, date range, outcome) goes into the query; what it does not (organization, purpose,
 * break-glass, and the actor when a patient is given too: the search takes one of them) is filtered here,
 * over the pages fetched. Exports are made in the browser: CSV (papaparse, with formula escaping) and a
 * FHIR Bundle of the AuditEvents as the gateway returned them.
 */
import Papa from 'papaparse';
import { type AccessRow, toAccessRow } from './audit';

export interface AuditFilters {
  /** Patient DID (or pseudonym). */
  patient: string;
  /** Actor DID. */
  actor: string;
  /** The actor's organization (MSP id). */
  organization: string;
  /** PurposeOfUse code. */
  purpose: string;
  decision: '' | 'permit' | 'deny';
  /** Dates (YYYY-MM-DD), inclusive. */
  from: string;
  to: string;
  breakGlassOnly: boolean;
}

export const NO_FILTERS: AuditFilters = { patient: '', actor: '', organization: '', purpose: '', decision: '', from: '', to: '', breakGlassOnly: false };

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** The query of the first page: `/AuditEvent?...`. Throws for a filter the gateway would refuse. */
export function searchPath(f: AuditFilters, count = 100): string {
  const q = new URLSearchParams();
  if (f.patient.trim()) q.set('patient', f.patient.trim());
  else if (f.actor.trim()) q.set('agent', f.actor.trim());
  if (f.from) {
    if (!DATE.test(f.from)) throw new Error('The start date must be a date (YYYY-MM-DD).');
    q.append('date', `ge${f.from}T00:00:00.000Z`);
  }
  if (f.to) {
    if (!DATE.test(f.to)) throw new Error('The end date must be a date (YYYY-MM-DD).');
    q.append('date', `le${f.to}T23:59:59.999Z`);
  }
  if (f.from && f.to && f.from > f.to) throw new Error('The start date is after the end date.');
  if (f.decision) q.set('outcome', f.decision === 'permit' ? '0' : '4');
  q.set('_count', String(count));
  return `/AuditEvent?${q.toString()}`;
}

/** Whether a row passes the filters the gateway does not apply. */
export function matches(row: AccessRow, f: AuditFilters): boolean {
  if (f.patient.trim() && f.actor.trim() && row.who !== f.actor.trim()) return false;
  if (f.organization.trim() && row.organization.toLowerCase() !== f.organization.trim().toLowerCase()) return false;
  if (f.purpose && !row.why.split(', ').includes(f.purpose)) return false;
  if (f.breakGlassOnly && !row.breakGlass) return false;
  return true;
}

/** The AuditEvents of the pages fetched that pass the local filters, newest first, each with its row. */
export function selectEvents(events: Array<Record<string, unknown>>, f: AuditFilters): Array<{ event: Record<string, unknown>; row: AccessRow }> {
  return events
    .map((event) => ({ event, row: toAccessRow(event) }))
    .filter((x) => matches(x.row, f))
    .sort((a, b) => (a.row.when < b.row.when ? 1 : a.row.when > b.row.when ? -1 : 0));
}

export const CSV_COLUMNS = [
  'when',
  'decision',
  'breakGlass',
  'actor',
  'organization',
  'gateway',
  'purpose',
  'patient',
  'interaction',
  'resources',
  'outcome',
  'consents',
  'eventId',
  'reviewState',
  'reviewOutcome',
] as const;

/**
 * RFC 4180 CSV with a header row; cells that a spreadsheet would run as a formula are escaped. The last
 * two columns are a break-glass access's review state (`open`, `reviewed`) and latest outcome.
 */
export function toCsv(rows: AccessRow[]): string {
  return Papa.unparse(
    {
      fields: [...CSV_COLUMNS],
      data: rows.map((r) => [
        r.when,
        r.permitted ? 'permit' : 'deny',
        r.breakGlass ? 'yes' : 'no',
        r.who,
        r.organization,
        r.where,
        r.why,
        r.patient,
        r.interaction,
        r.what.join(' '),
        r.outcome,
        r.consents.join(' '),
        r.id,
        // A break-glass access's review: open or reviewed, and the latest outcome; empty for any other access.
        r.review?.state ?? '',
        r.review?.state === 'reviewed' ? (r.review.outcome ?? '') : '',
      ]),
    },
    { escapeFormulae: true, newline: '\r\n' },
  );
}

/** A FHIR R4 Bundle (type collection) of the AuditEvents, as the gateway returned them. */
export function auditBundle(events: Array<Record<string, unknown>>, timestamp: string): Record<string, unknown> {
  return { resourceType: 'Bundle', type: 'collection', timestamp, entry: events.map((resource) => ({ resource })) };
}

export interface DayCount {
  /** YYYY-MM-DD (UTC). */
  day: string;
  total: number;
  denied: number;
  breakGlass: number;
}

/** Accesses per day (UTC), with denials and break-glass, oldest day first; days without access are left out. */
export function perDay(rows: AccessRow[]): DayCount[] {
  const days = new Map<string, DayCount>();
  for (const r of rows) {
    const day = r.when.slice(0, 10);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) continue;
    const d = days.get(day) ?? { day, total: 0, denied: 0, breakGlass: 0 };
    d.total += 1;
    if (!r.permitted) d.denied += 1;
    if (r.breakGlass) d.breakGlass += 1;
    days.set(day, d);
  }
  return [...days.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
}
