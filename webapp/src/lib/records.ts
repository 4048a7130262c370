/**
 * The patient's records at this member, as the page lists them: the Patients the patient's token may
 * see (their own and their wards', by the gateway's compartment rule), each one's `$everything`, and for
 * each record its `$verify` (does the stored version match its anchor on the ledger). Everything goes
 * through /fhir with the patient's own tokens (purpose PATRQT), so the gateway's enforcement point
 * decides what is shown and records each access on the ledger.
 */

import { arr, type Json, obj, str } from './json';

/** The DID identifier system of a Patient (gateway DID_IDENTIFIER_SYSTEM). */
export const DID_SYSTEM = 'urn:ietf:rfc:3986';

export interface RecordRow {
  /** `Type/id`. */
  ref: string;
  type: string;
  id: string;
  version: string;
  /** What it is, in words from the record itself (code text or display), else its type. */
  what: string;
  /** Its value, when it has a simple one. */
  value: string;
  /** The clinically relevant date (effective, issued, recorded...), else when it was stored. */
  when: string;
  /** Who recorded or performed it, as the record names them (display, else reference). */
  from: string;
}

function codeText(c: unknown): string {
  const cc = obj(c);
  return (
    str(cc.text) ||
    arr(cc.coding)
      .map((x) => str(obj(x).display) || str(obj(x).code))
      .find((t) => t !== '') ||
    ''
  );
}

function refText(r: unknown): string {
  const ref = obj(r);
  return str(ref.display) || str(ref.reference) || str(obj(ref.identifier).value);
}

const CODE_FIELDS = ['code', 'vaccineCode', 'medicationCodeableConcept', 'type', 'category'] as const;
const DATE_FIELDS = ['effectiveDateTime', 'occurrenceDateTime', 'performedDateTime', 'onsetDateTime', 'authoredOn', 'recordedDate', 'issued', 'date'] as const;
const PERIOD_FIELDS = ['effectivePeriod', 'performedPeriod', 'period'] as const;
const WHO_FIELDS = ['performer', 'author', 'recorder', 'asserter', 'requester', 'participant', 'serviceProvider', 'managingOrganization'] as const;

function valueOf(r: Json): string {
  const q = obj(r.valueQuantity);
  if (typeof q.value === 'number') return `${q.value}${str(q.unit) ? ` ${str(q.unit)}` : ''}`;
  if (typeof r.valueString === 'string') return r.valueString;
  if (r.valueCodeableConcept) return codeText(r.valueCodeableConcept);
  if (typeof r.valueBoolean === 'boolean') return r.valueBoolean ? 'yes' : 'no';
  return '';
}

/** One resource as a row. */
export function toRecordRow(resource: unknown): RecordRow {
  const r = obj(resource);
  const type = str(r.resourceType);
  const id = str(r.id);
  const meta = obj(r.meta);
  let what = '';
  for (const f of CODE_FIELDS) {
    const v = r[f];
    what = Array.isArray(v) ? (v.map(codeText).find((t) => t !== '') ?? '') : codeText(v);
    if (what) break;
  }
  if (!what && type === 'Patient') what = 'Your registration at this member';
  let when = '';
  for (const f of DATE_FIELDS) if (!when) when = str(r[f]);
  for (const f of PERIOD_FIELDS) if (!when) when = str(obj(r[f]).start);
  let from = '';
  for (const f of WHO_FIELDS) {
    if (from) break;
    const v = r[f];
    from = Array.isArray(v) ? (v.map((x) => refText(obj(x).individual ?? x)).find((t) => t !== '') ?? '') : refText(v);
  }
  return { ref: `${type}/${id}`, type, id, version: str(meta.versionId), what: what || type, value: valueOf(r), when: when || str(meta.lastUpdated), from };
}

/** The resources of a searchset Bundle. */
export function resourcesOf(bundle: unknown): Json[] {
  return arr(obj(bundle).entry)
    .map((e) => obj(obj(e).resource))
    .filter((r) => str(r.resourceType) !== '' && str(r.resourceType) !== 'OperationOutcome');
}

/** The DID a Patient is linked to (its DID identifier), if any. */
export function patientDid(patient: unknown): string {
  const id = arr(obj(patient).identifier)
    .map(obj)
    .find((i) => str(i.system) === DID_SYSTEM && str(i.value).startsWith('did:'));
  return id ? str(id.value) : '';
}

export interface Verification {
  verified: boolean;
  reason: string;
  custodian: string;
  transaction: string;
  anchoredAt: string;
}

/** The Parameters of `$verify`. */
export function toVerification(parameters: unknown): Verification {
  const p = new Map(arr(obj(parameters).parameter).map((x) => [str(obj(x).name), obj(x)]));
  return {
    verified: p.get('verified')?.valueBoolean === true,
    reason: str(p.get('reason')?.valueString),
    custodian: str(p.get('custodian')?.valueString),
    transaction: str(p.get('transaction')?.valueString),
    anchoredAt: str(p.get('anchoredAt')?.valueInstant),
  };
}

/** Rows grouped by type (types in alphabetical order, Patient first), newest first within a type. */
export function groupByType(rows: RecordRow[]): Array<{ type: string; rows: RecordRow[] }> {
  const groups = new Map<string, RecordRow[]>();
  for (const r of rows) groups.set(r.type, [...(groups.get(r.type) ?? []), r]);
  return [...groups.entries()]
    .sort(([a], [b]) => (a === 'Patient' ? -1 : b === 'Patient' ? 1 : a.localeCompare(b)))
    .map(([type, list]) => ({ type, rows: list.sort((x, y) => (x.when < y.when ? 1 : x.when > y.when ? -1 : 0)) }));
}
