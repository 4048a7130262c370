/**
 * The staff view (a practitioner with their DID key in this browser) and the patient's list of access
 * requests:
 *
 * - `GET /fhir/Patient/$access-check`: whether the key holder would be permitted to read one type of a
 *   patient's records held by one member, for one purpose, and why in plain words. The gateway decides it
 *   at patient level for the token's DID, so the answer says nothing of whether records exist.
 * - `POST /fhir/Patient/$request-access`: asks the patient for access (on the ledger; codes only), at the
 *   practitioner's own organization's gateway.
 * - `GET /fhir/Patient/$access-requests?patient=`: the patient's (or a ward's) open requests, each with
 *   whether a consent now permits it; `formFromRequest` prefills the consent form from one.
 */
import { type AppConfig, fhirRequest } from './api';
import { type ConsentForm, emptyForm, PURPOSES } from './consent-form';
import type { PatientKey } from './keys';

const HDX_DID = /^did:hdx:[A-Za-z0-9_-]{43}$/;
const MSP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const PURPOSE = /^[A-Z]{2,20}$/;

/** Purposes a practitioner asks for (break-glass needs no request). */
export const STAFF_PURPOSES: ReadonlyArray<{ code: string; label: string }> = [
  { code: 'TREAT', label: 'treatment' },
  { code: 'CAREMGT', label: 'care coordination' },
  { code: 'HPAYMT', label: 'billing and payment' },
  { code: 'HOPERAT', label: 'hospital operations' },
  { code: 'HRESCH', label: 'health research' },
  { code: 'PUBHLTH', label: 'public health' },
];

export interface AccessQuestion {
  patient: string;
  purpose: string;
  resourceType: string;
  /** The member holding the records (member id, e.g. Hospital1MSP). */
  custodian: string;
}

/** The problems of a question, each a sentence naming the field; empty when it can be asked. */
export function questionProblems(q: AccessQuestion): string[] {
  const problems: string[] = [];
  if (!HDX_DID.test(q.patient.trim())) problems.push('Patient: give the patient’s DID (did:hdx: and 43 characters).');
  if (!PURPOSE.test(q.purpose)) problems.push('Purpose: choose a purpose.');
  if (!RESOURCE_TYPE.test(q.resourceType.trim())) problems.push('Record type: give a FHIR resource type, for example Observation.');
  if (!MSP_ID.test(q.custodian.trim())) problems.push('Held by: give the member id of the hospital holding the records, for example Hospital1MSP.');
  return problems;
}

export interface AccessAnswer {
  permitted: boolean;
  reason: string;
  explanation: string;
  breakGlassAvailable?: boolean;
}

type Part = { name?: unknown; valueBoolean?: unknown; valueCode?: unknown; valueString?: unknown; valueDateTime?: unknown; part?: unknown };

function partsOf(value: unknown): Part[] {
  const list = typeof value === 'object' && value !== null ? (value as { parameter?: unknown; part?: unknown }) : {};
  const parts = list.parameter ?? list.part;
  return Array.isArray(parts) ? parts.filter((p): p is Part => typeof p === 'object' && p !== null) : [];
}

function value(part: Part | undefined): unknown {
  return part?.valueBoolean ?? part?.valueCode ?? part?.valueString ?? part?.valueDateTime;
}

/** The gateway's `$access-check` Parameters → the answer shown. */
export function parseAccessAnswer(body: unknown): AccessAnswer {
  const parts = partsOf(body);
  const get = (name: string): unknown => value(parts.find((p) => p.name === name));
  const permitted = get('permitted');
  const explanation = get('explanation');
  if (typeof permitted !== 'boolean' || typeof explanation !== 'string')
    throw new Error('The gateway’s answer is not an access check (Parameters with permitted and explanation).');
  const glass = get('breakGlassAvailable');
  return { permitted, reason: String(get('reason') ?? ''), explanation, ...(typeof glass === 'boolean' ? { breakGlassAvailable: glass } : {}) };
}

/** Asks the gateway, with the key holder's own token (the gateway decides for the token's DID only). */
export async function checkAccess(config: AppConfig, key: PatientKey, q: AccessQuestion): Promise<AccessAnswer> {
  const query = new URLSearchParams({ patient: q.patient.trim(), purpose: q.purpose, resourceType: q.resourceType.trim(), custodian: q.custodian.trim() });
  return parseAccessAnswer(await fhirRequest(config, key, 'user/Patient.read', 'GET', `/Patient/$access-check?${query.toString()}`));
}

/** The Parameters of `$request-access`: codes only, never a message. */
export function requestParameters(q: Pick<AccessQuestion, 'patient' | 'purpose'> & { resourceTypes: readonly string[] }): Record<string, unknown> {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'patient', valueString: q.patient.trim() },
      { name: 'purpose', valueCode: q.purpose },
      ...[...new Set(q.resourceTypes.map((t) => t.trim()))].map((t) => ({ name: 'resourceType', valueCode: t })),
    ],
  };
}

/** Sends an access request to the patient (the ledger keeps it; a repeat replaces it). */
export async function requestAccess(config: AppConfig, key: PatientKey, q: AccessQuestion): Promise<void> {
  await fhirRequest(config, key, 'user/Patient.read', 'POST', '/Patient/$request-access', {
    type: 'application/fhir+json',
    text: JSON.stringify(requestParameters({ patient: q.patient, purpose: q.purpose, resourceTypes: [q.resourceType] })),
  });
}

/** One access request as the patient's list shows it. */
export interface RequestRow {
  requester: string;
  requesterOrganization: string;
  purpose: string;
  resourceTypes: string[];
  requestedAt: string;
  /** Whether a consent of the patient now permits every type of it. */
  permitted: boolean;
}

/** The gateway's `$access-requests` Parameters → rows (a part it cannot read is left out). */
export function parseRequests(body: unknown): RequestRow[] {
  const rows: RequestRow[] = [];
  for (const p of partsOf(body)) {
    if (p.name !== 'request') continue;
    const parts = partsOf(p);
    const get = (name: string): unknown => value(parts.find((x) => x.name === name));
    const requester = get('requester');
    const requesterOrganization = get('requesterOrganization');
    const purpose = get('purpose');
    const requestedAt = get('requestedAt');
    if (typeof requester !== 'string' || typeof requesterOrganization !== 'string' || typeof purpose !== 'string' || typeof requestedAt !== 'string') continue;
    rows.push({
      requester,
      requesterOrganization,
      purpose,
      resourceTypes: parts.filter((x) => x.name === 'resourceType').map((x) => String(value(x))),
      requestedAt,
      permitted: get('permitted') === true,
    });
  }
  return rows;
}

/** The open access requests of `patient` (the key holder, or a ward of theirs). */
export async function listRequests(config: AppConfig, key: PatientKey, patient: string = key.did): Promise<RequestRow[]> {
  return parseRequests(await fhirRequest(config, key, 'patient/Patient.read', 'GET', `/Patient/$access-requests?patient=${encodeURIComponent(patient)}`));
}

export function purposeLabel(code: string): string {
  return STAFF_PURPOSES.find((p) => p.code === code)?.label ?? PURPOSES.find((p) => p.code === code)?.label ?? code;
}

/** One request in a sentence: who asks, for what, why. */
export function requestSentence(row: RequestRow): string {
  return `${row.requester} of ${row.requesterOrganization} asks to see your ${row.resourceTypes.join(', ')} records, for ${purposeLabel(row.purpose)} (${row.purpose}).`;
}

/**
 * The consent form answering a request: that practitioner (by DID), those types, that purpose. The
 * patient still reviews it in plain words and signs it (or changes it).
 */
export function formFromRequest(row: RequestRow): ConsentForm {
  return {
    ...emptyForm(),
    who: [{ kind: 'person', value: row.requester }],
    what: { dataClasses: [], resourceTypes: [...row.resourceTypes], securityLabels: [] },
    why: [row.purpose],
  };
}
