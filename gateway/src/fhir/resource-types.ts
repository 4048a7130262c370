/**
 * The clinical resource types this gateway holds, and for each: where its patient reference is (the
 * patient compartment, which decides whose consent governs it), its clinical date (`date` search) and its
 * main code (`code` search).
 */
export interface TypeInfo {
  /** Element(s) holding `Reference(Patient)`, in order of preference. Empty for Patient itself. */
  readonly patientPaths: readonly string[];
  /** Elements that may hold the clinical date, first present wins. */
  readonly datePaths: readonly string[];
  /** Element holding the CodeableConcept searched by `code`. */
  readonly codePath?: string;
}

export const RESOURCE_TYPES: Readonly<Record<string, TypeInfo>> = {
  Patient: { patientPaths: [], datePaths: ['birthDate'] },
  Observation: { patientPaths: ['subject'], datePaths: ['effectiveDateTime', 'effectivePeriod.start', 'effectiveInstant', 'issued'], codePath: 'code' },
  Encounter: { patientPaths: ['subject'], datePaths: ['period.start'], codePath: 'type' },
  Condition: { patientPaths: ['subject'], datePaths: ['onsetDateTime', 'recordedDate'], codePath: 'code' },
  Procedure: { patientPaths: ['subject'], datePaths: ['performedDateTime', 'performedPeriod.start'], codePath: 'code' },
  DiagnosticReport: { patientPaths: ['subject'], datePaths: ['effectiveDateTime', 'effectivePeriod.start', 'issued'], codePath: 'code' },
  MedicationRequest: { patientPaths: ['subject'], datePaths: ['authoredOn'], codePath: 'medicationCodeableConcept' },
  AllergyIntolerance: { patientPaths: ['patient'], datePaths: ['recordedDate', 'onsetDateTime'], codePath: 'code' },
  Immunization: { patientPaths: ['patient'], datePaths: ['occurrenceDateTime', 'recorded'], codePath: 'vaccineCode' },
  DocumentReference: { patientPaths: ['subject'], datePaths: ['date'], codePath: 'type' },
};

export const SUPPORTED_TYPES: ReadonlySet<string> = new Set(Object.keys(RESOURCE_TYPES));

function at(resource: unknown, dotted: string): unknown {
  let v: unknown = resource;
  for (const part of dotted.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The local Patient id a resource refers to (`Patient/<id>`), or undefined when it names none. */
export function patientReferenceOf(resource: Record<string, unknown>, info: TypeInfo): string | undefined {
  for (const p of info.patientPaths) {
    const ref = at(resource, `${p}.reference`);
    if (typeof ref === 'string') {
      const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref);
      return m?.[1] ?? `!${ref}`;
    }
  }
  return undefined;
}

/** FHIR date or dateTime normalized for comparison: dates as given, date-times in UTC ISO form. */
export function normalizeDate(value: string): string {
  if (!value.includes('T')) return value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? value : new Date(t).toISOString();
}

export function clinicalDateOf(resource: Record<string, unknown>, info: TypeInfo): string | null {
  for (const p of info.datePaths) {
    const v = at(resource, p);
    if (typeof v === 'string') return normalizeDate(v);
  }
  return null;
}

/** `system|code` tokens of the main code (`|code` when a coding has no system). */
export function codeTokensOf(resource: Record<string, unknown>, info: TypeInfo): string[] {
  if (!info.codePath) return [];
  const raw = at(resource, info.codePath);
  const concepts = Array.isArray(raw) ? raw : [raw];
  const tokens: string[] = [];
  for (const cc of concepts) {
    const codings = cc && typeof cc === 'object' ? (cc as { coding?: unknown }).coding : undefined;
    if (!Array.isArray(codings)) continue;
    for (const c of codings) {
      if (c && typeof c === 'object' && typeof (c as { code?: unknown }).code === 'string') {
        const system = (c as { system?: unknown }).system;
        tokens.push(`${typeof system === 'string' ? system : ''}|${(c as { code: string }).code}`.replace(/\s/g, ''));
      }
    }
  }
  return [...new Set(tokens)].sort();
}
