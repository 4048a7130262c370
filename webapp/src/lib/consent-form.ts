/**
 * The consent form's model, its mapping to the FHIR Consent the chaincode accepts (chaincode/src/
 * consent-model.ts: parseConsent), and the same consent in plain words, shown before the patient signs.
 *
 * Form → Consent:
 * - who      → provision.actor: an organization by MSP id (identifier urn:hdx:msp) or a person by DID
 * - what     → provision.class (FHIR resource types, from the data classes and extra types) and
 *              provision.securityLabel (system + code)
 * - why      → provision.purpose (HL7 v3 PurposeOfUse codes)
 * - when     → provision.period (when the permission holds) and provision.dataPeriod (the dates of the
 *              data it covers)
 * - except   → nested provisions of type deny (deny wins: chaincode/README.md, "Consent precedence")
 * No free text (display, text) is sent: the ledger refuses it (no PHI on the ledger).
 */

export const MSP_SYSTEM = 'urn:hdx:msp';
export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const RESOURCE_TYPE_SYSTEM = 'http://hl7.org/fhir/resource-types';
export const CONFIDENTIALITY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const ACT_CODE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';

const HDX_DID = /^did:hdx:[A-Za-z0-9_-]{43}$/;
const MSP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Data classes a patient recognizes, each a set of FHIR resource types. */
export const DATA_CLASSES: ReadonlyArray<{ id: string; label: string; types: readonly string[] }> = [
  { id: 'labs', label: 'Test results and measurements', types: ['Observation', 'DiagnosticReport', 'Specimen'] },
  { id: 'conditions', label: 'Diagnoses and health problems', types: ['Condition'] },
  { id: 'medications', label: 'Medicines', types: ['MedicationRequest', 'MedicationStatement', 'MedicationAdministration', 'MedicationDispense'] },
  { id: 'allergies', label: 'Allergies and intolerances', types: ['AllergyIntolerance'] },
  { id: 'immunizations', label: 'Vaccinations', types: ['Immunization'] },
  { id: 'procedures', label: 'Procedures and operations', types: ['Procedure'] },
  { id: 'visits', label: 'Visits and hospital stays', types: ['Encounter'] },
  { id: 'documents', label: 'Letters and documents', types: ['DocumentReference', 'Composition'] },
  { id: 'demographics', label: 'Personal details (name, birth date, contacts)', types: ['Patient'] },
];

/** Purposes of use (HL7 v3 PurposeOfUse) offered in the form. */
export const PURPOSES: ReadonlyArray<{ code: string; label: string }> = [
  { code: 'TREAT', label: 'treating me' },
  { code: 'CAREMGT', label: 'coordinating my care' },
  { code: 'HPAYMT', label: 'billing and payment' },
  { code: 'HOPERAT', label: 'running the hospital (operations)' },
  { code: 'HRESCH', label: 'health research' },
  { code: 'PUBHLTH', label: 'public health' },
];

/** Sensitivity labels (security labels) offered in the form. */
export const SECURITY_LABELS: ReadonlyArray<{ system: string; code: string; label: string }> = [
  { system: ACT_CODE_SYSTEM, code: 'PSY', label: 'mental health' },
  { system: ACT_CODE_SYSTEM, code: 'HIV', label: 'HIV/AIDS' },
  { system: ACT_CODE_SYSTEM, code: 'ETH', label: 'substance use' },
  { system: ACT_CODE_SYSTEM, code: 'SDV', label: 'sexual and domestic violence' },
  { system: ACT_CODE_SYSTEM, code: 'GDIS', label: 'genetic conditions' },
  { system: CONFIDENTIALITY_SYSTEM, code: 'R', label: 'restricted (marked confidential)' },
  { system: CONFIDENTIALITY_SYSTEM, code: 'V', label: 'very restricted' },
];

export interface Who {
  kind: 'organization' | 'person';
  /** An MSP id (organization) or a did:hdx DID (a practitioner or another person). */
  value: string;
}

/** What a permission or an exception covers; empty lists mean "any". */
export interface Scope {
  /** Ids of DATA_CLASSES. */
  dataClasses: string[];
  /** Further FHIR resource types. */
  resourceTypes: string[];
  /** `system|code` of SECURITY_LABELS (or any label as system|code). */
  securityLabels: string[];
}

export interface ConsentForm {
  who: Who[];
  what: Scope;
  /** PurposeOfUse codes; at least one. */
  why: string[];
  /** When the permission holds (YYYY-MM-DD, inclusive; empty = open). */
  validFrom: string;
  validTo: string;
  /** Dates of the data it covers (YYYY-MM-DD, inclusive; empty = open). */
  dataFrom: string;
  dataTo: string;
  /** What stays closed to them even so. */
  exceptions: Scope[];
}

export function emptyScope(): Scope {
  return { dataClasses: [], resourceTypes: [], securityLabels: [] };
}

export function emptyForm(): ConsentForm {
  return { who: [{ kind: 'organization', value: '' }], what: emptyScope(), why: ['TREAT'], validFrom: '', validTo: '', dataFrom: '', dataTo: '', exceptions: [] };
}

interface Coding {
  system: string;
  code: string;
}

/** The problems of a form, each a sentence naming the field; empty when it can be signed. */
export function formProblems(form: ConsentForm): string[] {
  const problems: string[] = [];
  if (form.who.length === 0) problems.push('Who: name at least one organization or person.');
  form.who.forEach((w, i) => {
    const n = form.who.length > 1 ? ` ${i + 1}` : '';
    if (w.kind === 'organization' && !MSP_ID.test(w.value.trim())) problems.push(`Who${n}: the organization must be its member id, for example Hospital2MSP.`);
    if (w.kind === 'person' && !HDX_DID.test(w.value.trim())) problems.push(`Who${n}: the person must be given by their DID (did:hdx: and 43 characters).`);
  });
  if (form.why.length === 0) problems.push('Why: choose at least one purpose.');
  for (const code of form.why) if (!/^[A-Z]{2,20}$/.test(code)) problems.push(`Why: ${code} is not a purpose-of-use code.`);
  const checkScope = (scope: Scope, where: string): void => {
    for (const id of scope.dataClasses) if (!DATA_CLASSES.some((c) => c.id === id)) problems.push(`${where}: unknown data class ${id}.`);
    for (const t of scope.resourceTypes) if (!RESOURCE_TYPE.test(t)) problems.push(`${where}: "${t}" is not a FHIR resource type (for example Observation).`);
    for (const l of scope.securityLabels) if (!/^[\x21-\x7b\x7d\x7e]{1,512}\|[\x21-\x7e]{1,256}$/.test(l)) problems.push(`${where}: "${l}" is not a label (system|code).`);
  };
  checkScope(form.what, 'What');
  form.exceptions.forEach((e, i) => {
    checkScope(e, `Exception ${i + 1}`);
    if (typesOf(e).length === 0 && e.securityLabels.length === 0) problems.push(`Exception ${i + 1}: choose what stays closed (a kind of data or a sensitivity).`);
  });
  const checkPeriod = (from: string, to: string, what: string): void => {
    if (from !== '' && !validDate(from)) problems.push(`${what}: the start date must be a date (YYYY-MM-DD).`);
    if (to !== '' && !validDate(to)) problems.push(`${what}: the end date must be a date (YYYY-MM-DD).`);
    if (validDate(from) && validDate(to) && from > to) problems.push(`${what}: the start date must not be after the end date.`);
  };
  checkPeriod(form.validFrom, form.validTo, 'When');
  checkPeriod(form.dataFrom, form.dataTo, 'Which dates of data');
  return problems;
}

function validDate(value: string): boolean {
  if (!DATE.test(value)) return false;
  const d = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(value);
}

/** The resource types a scope names: its data classes' types, then the extra types, without repeats. */
export function typesOf(scope: Scope): string[] {
  const types = scope.dataClasses.flatMap((id) => DATA_CLASSES.find((c) => c.id === id)?.types ?? []);
  return [...new Set([...types, ...scope.resourceTypes.map((t) => t.trim())])];
}

function labelCoding(label: string): Coding {
  const bar = label.lastIndexOf('|');
  return { system: label.slice(0, bar), code: label.slice(bar + 1) };
}

/** A FHIR period from two inclusive dates (a date stands for its whole day). */
function period(from: string, to: string): { start?: string; end?: string } | undefined {
  if (from === '' && to === '') return undefined;
  return { ...(from !== '' ? { start: from } : {}), ...(to !== '' ? { end: to } : {}) };
}

function scopeElements(scope: Scope): { class?: Coding[]; securityLabel?: Coding[] } {
  const types = typesOf(scope);
  return {
    ...(types.length > 0 ? { class: types.map((code) => ({ system: RESOURCE_TYPE_SYSTEM, code })) } : {}),
    ...(scope.securityLabels.length > 0 ? { securityLabel: scope.securityLabels.map(labelCoding) } : {}),
  };
}

/**
 * The FHIR Consent for a form (which must have no problems): a permit for who/what/why/when, with each
 * exception as a nested deny. `dateTime` is when it was made (seconds precision, UTC).
 */
export function toFhirConsent(form: ConsentForm, patientDid: string, id: string, now: Date = new Date()): Record<string, unknown> {
  const problems = formProblems(form);
  if (problems.length > 0) throw new Error(problems.join(' '));
  if (!HDX_DID.test(patientDid)) throw new Error('the patient must be a did:hdx DID');
  const validity = period(form.validFrom, form.validTo);
  const dataPeriod = period(form.dataFrom, form.dataTo);
  const provision: Record<string, unknown> = {
    type: 'permit',
    ...(validity ? { period: validity } : {}),
    actor: form.who.map((w) =>
      w.kind === 'organization' ? { reference: { identifier: { system: MSP_SYSTEM, value: w.value.trim() } } } : { reference: { reference: w.value.trim() } },
    ),
    ...scopeElements(form.what),
    purpose: form.why.map((code) => ({ system: PURPOSE_SYSTEM, code })),
    ...(dataPeriod ? { dataPeriod } : {}),
    ...(form.exceptions.length > 0 ? { provision: form.exceptions.map((e) => ({ type: 'deny', ...scopeElements(e) })) } : {}),
  };
  return {
    resourceType: 'Consent',
    id,
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patientDid },
    dateTime: `${now.toISOString().slice(0, 19)}Z`,
    provision,
  };
}

function list(items: string[], last = 'and'): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${last} ${items[items.length - 1] ?? ''}`;
}

function labelName(label: string): string {
  const known = SECURITY_LABELS.find((l) => `${l.system}|${l.code}` === label);
  return known ? known.label : `records labelled ${labelCoding(label).code}`;
}

function describeScope(scope: Scope): string {
  const kinds = [...scope.dataClasses.map((id) => DATA_CLASSES.find((c) => c.id === id)?.label.toLowerCase() ?? id), ...scope.resourceTypes.map((t) => `${t.trim()} records`)];
  const labels = list(scope.securityLabels.map(labelName), 'or');
  if (kinds.length === 0) return scope.securityLabels.length > 0 ? `records marked as ${labels}` : 'all my health records';
  return scope.securityLabels.length > 0 ? `${list(kinds)}, only where marked as ${labels}` : list(kinds);
}

function describeWho(w: Who): string {
  return w.kind === 'organization' ? `the staff of ${w.value.trim()}` : `the person with DID ${w.value.trim()}`;
}

function describePeriod(from: string, to: string): string {
  if (from !== '' && to !== '') return `from ${from} to ${to}`;
  if (from !== '') return `from ${from} on`;
  if (to !== '') return `until ${to}`;
  return '';
}

/** The consent in plain words, one sentence a line. */
export function plainWords(form: ConsentForm): string[] {
  const purposes = form.why.map((code) => PURPOSES.find((p) => p.code === code)?.label ?? `purpose ${code}`);
  const who = form.who.length > 0 ? list(form.who.map(describeWho)) : 'anyone';
  const why = purposes.length > 0 ? list(purposes, 'or') : 'any purpose';
  const lines = [`I allow ${who} to see ${describeScope(form.what)}, for ${why}.`];
  const when = describePeriod(form.validFrom, form.validTo);
  lines.push(when ? `This permission holds ${when}.` : 'This permission holds from now until I revoke it.');
  const data = describePeriod(form.dataFrom, form.dataTo);
  lines.push(data ? `It covers only records dated ${data}.` : 'It covers records of any date.');
  for (const e of form.exceptions) lines.push(`Except: ${describeScope(e)} stay closed to them.`);
  lines.push('I can revoke it at any time; every access is recorded on the ledger and shown in my access history.');
  return lines;
}

type Json = Record<string, unknown>;

function objects(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter((v): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)) : [];
}

function codes(value: unknown): Array<{ system: string; code: string }> {
  return objects(value).map((c) => ({ system: typeof c.system === 'string' ? c.system : '', code: typeof c.code === 'string' ? c.code : '' }));
}

function scopeOf(provision: Json): Scope {
  const types = codes(provision.class).map((c) => c.code);
  const dataClasses = DATA_CLASSES.filter((c) => c.types.every((t) => types.includes(t))).map((c) => c.id);
  const covered = new Set(dataClasses.flatMap((id) => DATA_CLASSES.find((c) => c.id === id)?.types ?? []));
  return {
    dataClasses,
    resourceTypes: types.filter((t) => !covered.has(t)),
    securityLabels: codes(provision.securityLabel).map((c) => (c.system ? `${c.system}|${c.code}` : c.code)),
  };
}

function day(value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 10) : '';
}

/**
 * A stored FHIR Consent read back as a form, to show it in plain words (the reverse of toFhirConsent for
 * what the form can express; nested permits inside it are not shown).
 */
export function formFromConsent(consent: unknown): ConsentForm {
  const c = typeof consent === 'object' && consent !== null ? (consent as Json) : {};
  const p = typeof c.provision === 'object' && c.provision !== null ? (c.provision as Json) : {};
  const who: Who[] = objects(p.actor).map((a) => {
    const ref = typeof a.reference === 'object' && a.reference !== null ? (a.reference as Json) : {};
    const identifier = typeof ref.identifier === 'object' && ref.identifier !== null ? (ref.identifier as Json) : undefined;
    return identifier ? { kind: 'organization', value: String(identifier.value ?? '') } : { kind: 'person', value: String(ref.reference ?? '') };
  });
  const period = (typeof p.period === 'object' && p.period !== null ? p.period : {}) as Json;
  const dataPeriod = (typeof p.dataPeriod === 'object' && p.dataPeriod !== null ? p.dataPeriod : {}) as Json;
  return {
    who,
    what: scopeOf(p),
    why: codes(p.purpose).map((x) => x.code),
    validFrom: day(period.start),
    validTo: day(period.end),
    dataFrom: day(dataPeriod.start),
    dataTo: day(dataPeriod.end),
    exceptions: objects(p.provision)
      .filter((x) => x.type === 'deny')
      .map(scopeOf),
  };
}
