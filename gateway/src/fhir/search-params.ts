import type { Comparator, Criterion, DateFilter, SortKey } from '../store/store';
import { governedByPatientReference, inPatientCompartment, normalizeDate, searchParamsOf, SUPPORTED_TYPES } from '../model/definitions';
import { OperationOutcomeError } from '../errors';
import { criteriaOf, indexedParamsOf } from '../store/search-index';

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 100;

/** The raw query: each parameter with all its values (repeats kept). */
export type RawQuery = Record<string, string[]>;

export function rawQuery(query: Record<string, unknown>): RawQuery {
  const out: RawQuery = {};
  for (const [k, v] of Object.entries(query)) {
    out[k] = (Array.isArray(v) ? v : [v]).map(String);
  }
  return out;
}

const DATE = /^(eq|ne|gt|lt|ge|le)?(\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?)?)?)$/;
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function fail(param: string, rule: string): never {
  throw new OperationOutcomeError('INVALID', `Search parameter ${param} ${rule}`);
}

export function dateFilters(param: string, values: readonly string[] | undefined): DateFilter[] | undefined {
  if (!values) return undefined;
  return values.map((v) => {
    const m = DATE.exec(v);
    if (!m?.[2]) fail(param, 'must be a FHIR date or dateTime with an optional prefix eq|ne|gt|lt|ge|le (e.g. ge2024-01-01)');
    if (m[2].includes('T') && !m[5]) fail(param, 'needs a time zone when it gives a time');
    return { op: (m[1] ?? 'eq') as Comparator, value: normalizeDate(m[2]) };
  });
}

export function single(q: RawQuery, param: string): string | undefined {
  const v = q[param];
  if (!v) return undefined;
  if (v.length > 1) fail(param, 'may be given only once');
  return v[0];
}

export function count(q: RawQuery): number {
  const c = single(q, '_count');
  if (c === undefined) return DEFAULT_COUNT;
  const n = Number(c);
  if (!Number.isInteger(n) || n < 0) fail('_count', 'must be a whole number');
  return Math.min(n, MAX_COUNT);
}

export function offset(q: RawQuery): number {
  const o = single(q, '_getpagesoffset');
  if (o === undefined) return 0;
  const n = Number(o);
  if (!Number.isInteger(n) || n < 0 || n > 100_000) fail('_getpagesoffset', 'must be a whole number');
  return n;
}

/** Comma-separated values (OR), from one occurrence only. */
export function list(q: RawQuery, param: string, pattern?: RegExp, rule?: string): string[] | undefined {
  const v = single(q, param);
  if (v === undefined) return undefined;
  const values = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (values.length === 0) fail(param, 'is empty');
  if (pattern) for (const x of values) if (!pattern.test(x)) fail(param, rule ?? 'has an invalid value');
  return values;
}

/** Refuses parameters this server does not support: ignoring one would silently widen a search. */
export function assertKnown(q: RawQuery, known: readonly string[]): void {
  for (const k of Object.keys(q)) {
    if (!known.includes(k)) throw new OperationOutcomeError('INVALID', `Search parameter ${k} is not supported here (supported: ${known.join(', ')})`);
  }
}

/** Parameters every type takes besides its own: the version's columns, paging, includes and what the result holds. */
export const COMMON_SEARCH_PARAMS = ['_id', '_lastUpdated', '_count', '_getpagesoffset', '_include', '_revinclude', '_sort', '_total', '_summary', '_elements'] as const;

/**
 * `_sort=a,-b`: `_id`, `_lastUpdated` or an indexed parameter of the type (not a composite), `-` for
 * descending; ties (and no `_sort`) by lastUpdated, then id, so paging is stable.
 */
export function sortKeys(resourceType: string, q: RawQuery): SortKey[] | undefined {
  const values = list(q, '_sort');
  if (!values) return undefined;
  return values.map((v): SortKey => {
    const descending = v.startsWith('-');
    const param = descending ? v.slice(1) : v;
    if (param === '_id') return { param, on: 'id', descending };
    if (param === '_lastUpdated') return { param, on: 'lastUpdated', descending };
    const p = indexedParamsOf(resourceType).get(param);
    if (!p || p.type === 'composite')
      fail('_sort', `names ${param}, which is not a parameter of ${resourceType} this server sorts by (_id, _lastUpdated or a parameter of the type that is not composite)`);
    return { param, on: p.type === 'token' ? 'v2' : p.type === 'number' || p.type === 'quantity' ? 'n1' : 'v1', descending };
  });
}

/** `_total=none|estimate|accurate`: whether the Bundle says the total (both counts are exact here: consent is evaluated for every candidate). */
export function totalWanted(q: RawQuery): boolean {
  const t = single(q, '_total');
  if (t !== undefined && !['none', 'estimate', 'accurate'].includes(t)) fail('_total', 'must be none, estimate or accurate');
  return t !== 'none';
}

/** `_summary=true|false|text|data|count`. */
export function summaryMode(q: RawQuery): 'true' | 'false' | 'text' | 'data' | 'count' | undefined {
  const v = single(q, '_summary');
  if (v === undefined) return undefined;
  if (v !== 'true' && v !== 'false' && v !== 'text' && v !== 'data' && v !== 'count') fail('_summary', 'must be true, false, text, data or count');
  return v;
}

/**
 * `_include=Source:param[:Target]` (Source the searched type) or `_revinclude=Source:param[:Target]` (Target
 * the searched type); with `:iterate`, also applied to what was included (Source, or Target, any type).
 */
export interface IncludeSpec {
  readonly reverse: boolean;
  readonly source: string;
  readonly param: string;
  readonly target?: string;
  /** `_include:iterate` / `_revinclude:iterate`: applied to the included resources too, not only to the matches. */
  readonly iterate: boolean;
}

/** The include parameters a search takes (R4's `:iterate`; `:recurse` is STU3's and refused). */
const INCLUDE_KEYS = [
  ['_include', false, false],
  ['_include:iterate', false, true],
  ['_revinclude', true, false],
  ['_revinclude:iterate', true, true],
] as const;

/** The reference parameters of a type (those an include may name), by code. */
function referenceParamsOf(resourceType: string): Array<{ code: string; target: readonly string[] }> {
  return [...indexedParamsOf(resourceType).values()].filter((p) => p.type === 'reference').map((p) => ({ code: p.code, target: p.target }));
}

/**
 * `_include:iterate=*` and `_revinclude:iterate=*`: every reference parameter of every type held here,
 * a `_revinclude` one per type it may refer to (so a round looks up only the parameters that may point at
 * the types it starts from). The same for every search: built once.
 */
let everyReference: { readonly include: readonly IncludeSpec[]; readonly revinclude: readonly IncludeSpec[] } | undefined;
function everyReferenceSpecs(reverse: boolean): readonly IncludeSpec[] {
  everyReference ??= {
    include: [...SUPPORTED_TYPES].flatMap((source) => referenceParamsOf(source).map((p) => ({ reverse: false, source, param: p.code, iterate: true }))),
    revinclude: [...SUPPORTED_TYPES].flatMap((source) =>
      referenceParamsOf(source).flatMap((p) => p.target.filter((t) => SUPPORTED_TYPES.has(t)).map((target) => ({ reverse: true, source, param: p.code, target, iterate: true }))),
    ),
  };
  return reverse ? everyReference.revinclude : everyReference.include;
}

/**
 * `*` as the parameter (search.html#include): every reference parameter. `_include=*` is every
 * reference parameter of the type searched; `_revinclude=*` every reference parameter of any type that
 * may refer to the type searched; `Type:*[:Target]` every reference parameter of Type (that may refer
 * to Target, or for a `_revinclude` without `:iterate`, to the type searched). With `:iterate` a bare
 * `*` is every reference parameter of whatever type each round starts from (everyReferenceSpecs).
 */
function wildcardSpecs(key: string, resourceType: string, value: string, reverse: boolean, iterate: boolean): IncludeSpec[] {
  if (value === '*') {
    if (iterate) return [...everyReferenceSpecs(reverse)];
    if (!reverse) return referenceParamsOf(resourceType).map((p) => ({ reverse, source: resourceType, param: p.code, iterate }));
    return [...SUPPORTED_TYPES].flatMap((source) =>
      referenceParamsOf(source)
        .filter((p) => p.target.includes(resourceType))
        .map((p) => ({ reverse, source, param: p.code, target: resourceType, iterate })),
    );
  }
  const [source = '', , target, ...more] = value.split(':');
  if (more.length > 0 || !SUPPORTED_TYPES.has(source)) fail(key, 'must be *, Type:* or Type:parameter[:TargetType], a reference parameter of that type');
  if (!iterate && !reverse && source !== resourceType) fail(key, `must name a parameter of ${resourceType}, the type searched (or be _include:iterate)`);
  if (!iterate && reverse && target !== undefined && target !== resourceType) fail(key, `must target ${resourceType}, the type searched (or be _revinclude:iterate)`);
  const to = target ?? (reverse && !iterate ? resourceType : undefined);
  const params = referenceParamsOf(source).filter((p) => to === undefined || p.target.includes(to));
  if (target !== undefined && params.length === 0) fail(key, 'names a target type no reference parameter of that type refers to');
  return params.map((p) => ({ reverse, source, param: p.code, ...(to !== undefined ? { target: to } : {}), iterate }));
}

/** The _include and _revinclude of a query, `:iterate` or not: reference parameters of the types named, or `*` for every one (wildcardSpecs). */
export function includeSpecs(resourceType: string, q: RawQuery): IncludeSpec[] {
  const specs: IncludeSpec[] = [];
  for (const [key, reverse, iterate] of INCLUDE_KEYS) {
    for (const raw of q[key] ?? []) {
      for (const value of raw.split(',').map((v) => v.trim())) {
        const [source = '', param = '', target, ...more] = value.split(':');
        if (value === '*' || param === '*') {
          specs.push(...wildcardSpecs(key, resourceType, value, reverse, iterate));
          continue;
        }
        const p = indexedParamsOf(source).get(param);
        if (more.length > 0 || p?.type !== 'reference') fail(key, 'must be *, Type:* or Type:parameter[:TargetType], a reference parameter of that type');
        // Without :iterate an include starts from the matches only: it must name the type searched.
        if (!iterate && !reverse && source !== resourceType) fail(key, `must name a parameter of ${resourceType}, the type searched (or be _include:iterate)`);
        if (!iterate && reverse && target !== undefined && target !== resourceType) fail(key, `must target ${resourceType}, the type searched (or be _revinclude:iterate)`);
        if (target !== undefined && !p.target.includes(target)) fail(key, `names a target type the parameter does not refer to`);
        specs.push({ reverse, source, param, ...(target !== undefined ? { target } : {}), iterate });
      }
    }
  }
  const known: readonly string[] = INCLUDE_KEYS.map(([k]) => k);
  for (const k of Object.keys(q)) if ((k.startsWith('_include:') || k.startsWith('_revinclude:')) && !known.includes(k)) fail(k, 'is not supported (:iterate is)');
  return specs;
}

/**
 * Whether `patient` / `subject` of a type name the patient whose consents govern its records (searched
 * on that, and a patient DID accepted): the type defines the parameter and its records are a patient's.
 */
export function patientParam(resourceType: string, code: string): boolean {
  // Patient?patient=<id or DID>: the Patient itself (HDX's, kept from before the spec's parameters).
  if (resourceType === 'Patient') return code === 'patient';
  return (code === 'patient' || code === 'subject') && searchParamsOf(resourceType).has(code) && (inPatientCompartment(resourceType) || governedByPatientReference(resourceType));
}

/** The search parameters a type takes here (CapabilityStatement), with their kinds. */
export function supportedSearchParams(resourceType: string): Array<{ name: string; type: string }> {
  return [
    { name: '_id', type: 'token' },
    { name: '_lastUpdated', type: 'date' },
    ...(resourceType === 'Patient' ? [{ name: 'patient', type: 'reference' }] : []),
    ...[...indexedParamsOf(resourceType).values()].map((p) => ({ name: p.code, type: p.type })),
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The most levels a chained parameter may have (`a.b.c.d.name`: four). */
export const MAX_CHAIN_LEVELS = 4;

/**
 * A chained parameter (`subject.name=peter`, `subject:Patient.name=peter`, `patient.identifier=sys|x`,
 * `subject:Patient.general-practitioner:Practitioner.name=x`, `result.subject.name=x`), of up to
 * MAX_CHAIN_LEVELS levels: the searched type's reference parameter, the intermediate levels (each the
 * types reached and their reference parameter leading on), and per type of the last level the criteria
 * on it. Every type listed leads to the criteria (types that cannot are left out).
 */
export interface ChainSpec {
  /** The query parameter (`subject.general-practitioner.name`), named in refusals. */
  readonly key: string;
  /** The searched type's reference parameter. */
  readonly param: string;
  /** The levels between the searched type and the last, outermost first (none for a one-level chain). */
  readonly hops: ReadonlyArray<{ readonly types: readonly string[]; readonly param: string }>;
  /** The last level: each type reached and its criteria. */
  readonly targets: ReadonlyArray<{ readonly type: string; readonly criteria: readonly Criterion[] }>;
}

/** The most `_has` nested in one another (`_has:A:p:_has:B:q:_has:C:r:code`: three). */
export const MAX_HAS_LEVELS = 3;

/**
 * A reverse chain (`_has:Observation:patient:code=1234-5`): resources of `source` whose `param` references
 * the searched one and that meet the criteria, or (a chain as the last part,
 * `_has:Observation:patient:encounter.status=finished`) whose chained parameter is met, or (a `_has` as
 * the last part, `_has:Observation:patient:_has:DiagnosticReport:result:code=x`) that are themselves
 * referenced as the nested `_has` of `source` says.
 */
export interface HasSpec {
  /** The query parameter (`_has:Observation:patient:code`; the whole of it for a nested one), named in refusals. */
  readonly key: string;
  readonly source: string;
  readonly param: string;
  /** Criteria on `source` itself (none when `chain` or `has` is given). */
  readonly criteria: readonly Criterion[];
  /** A chained parameter of `source` (`encounter.status`), resolved as a chain of a search of `source` is. */
  readonly chain?: ChainSpec;
  /** A `_has` of `source` (`_has:DiagnosticReport:result:code`), resolved as a search of `source`'s `_has` is. */
  readonly has?: HasSpec;
}

/** Whether a key is a chained parameter (`ref.param`, `ref:Type.param`). */
function isChain(key: string): boolean {
  return !key.startsWith('_') && key.includes('.');
}

/** The targets of a type's reference parameter (only `typed` when given) that are held here; none when it is not a reference parameter. */
function referenceTargets(type: string, code: string, typed: string | undefined): string[] {
  const p = indexedParamsOf(type).get(code);
  if (p?.type !== 'reference') return [];
  return p.target.filter((t) => (typed === undefined || t === typed) && SUPPORTED_TYPES.has(t));
}

/**
 * A chained parameter `key` of resourceType; `name` is the query parameter named in refusals (the whole
 * `_has:…` for a chain inside a `_has`), `maxLevels` the levels it may have.
 */
function chainSpec(resourceType: string, key: string, values: readonly string[], name = key, maxLevels = MAX_CHAIN_LEVELS): ChainSpec {
  const segments = key.split('.');
  const last = segments.pop() ?? '';
  if (last === '') fail(name, 'ends without the parameter searched (e.g. subject.name)');
  if (segments.length > maxLevels) fail(name, `chains ${String(segments.length)} levels: at most ${String(maxLevels)} here`);
  // Forward: the reference parameter of each level and the types it reaches (level 0 is the searched type).
  const links: Array<{ code: string; typed: string | undefined }> = [];
  const reached: string[][] = [[resourceType]];
  for (const [i, segment] of segments.entries()) {
    const [code = '', typed, ...more] = segment.split(':');
    const from = reached[i] ?? [];
    const isReference = from.some((t) => indexedParamsOf(t).get(code)?.type === 'reference');
    if (i === 0 && (!isReference || more.length > 0)) fail(name, `must chain from a reference parameter of ${resourceType} (e.g. subject.name, subject:Patient.name)`);
    if (!isReference || more.length > 0) fail(name, `chains through ${segment}, which is not a reference parameter of ${from.join(', ')}`);
    const types = [...new Set(from.flatMap((t) => referenceTargets(t, code, typed)))];
    if (types.length === 0) fail(name, typed !== undefined ? `names a type ${code} does not refer to` : `chains through ${code}, which refers to no type held here`);
    links.push({ code, typed });
    reached.push(types);
  }
  const n = links.length;
  const targets = (reached[n] ?? []).flatMap((type) => {
    const criteria = criteriaOf(type, last, values);
    return criteria ? [{ type, criteria }] : [];
  });
  if (targets.length === 0) fail(name, `names ${last.split(':')[0] ?? last}, which no type ${links[n - 1]?.code ?? ''} refers to takes here`);
  // Backward: keep at each level only the types whose parameter leads to a type kept at the next.
  const kept: string[][] = [];
  kept[n] = targets.map((t) => t.type);
  for (let i = n - 1; i >= 1; i--) {
    const link = links[i];
    const next = new Set(kept[i + 1]);
    kept[i] = (reached[i] ?? []).filter((t) => link !== undefined && referenceTargets(t, link.code, link.typed).some((x) => next.has(x)));
    if (kept[i]?.length === 0) fail(name, `leads to no ${last.split(':')[0] ?? last} through ${segments.slice(0, i + 1).join('.')}`);
  }
  const hops = links.slice(1).map((link, i) => ({ types: kept[i + 1] ?? [], param: link.code }));
  return { key: name, param: links[0]?.code ?? '', hops, targets };
}

/**
 * A `_has` of resourceType; `name` is the query parameter named in refusals (the whole of it for a nested
 * one), `depth` how many `_has` it is in (1: none). Each `_has` is a level: with a chain or the `_has`
 * nested in it as its last part, at most MAX_CHAIN_LEVELS levels in all, and at most MAX_HAS_LEVELS `_has`.
 */
function hasSpec(resourceType: string, key: string, values: readonly string[], name = key, depth = 1): HasSpec {
  const [, source = '', param = '', ...rest] = key.split(':');
  const chained = rest.join(':');
  const p = indexedParamsOf(source).get(param);
  if (p?.type !== 'reference' || !p.target.includes(resourceType) || chained === '')
    fail(name, `must be _has:Type:parameter:searchparameter, where parameter is a reference of Type to ${resourceType} (e.g. _has:Observation:patient:code)`);
  if (chained.startsWith('_has:')) {
    // A _has of the source type (search.html#has): resolved first, then the sources it points at.
    if (depth >= MAX_HAS_LEVELS) fail(name, `nests _has ${String(depth + 1)} levels deep: at most ${String(MAX_HAS_LEVELS)} here`);
    return { key: name, source, param, criteria: [], has: hasSpec(source, chained, values, name, depth + 1) };
  }
  // A chain as the last part: of at most MAX_CHAIN_LEVELS levels with the _has's own.
  if (isChain(chained)) return { key: name, source, param, criteria: [], chain: chainSpec(source, chained, values, name, MAX_CHAIN_LEVELS - depth) };
  const criteria = criteriaOf(source, chained, values);
  if (!criteria) fail(name, `names ${chained}, which ${source} does not take here`);
  return { key: name, source, param, criteria };
}

/** The chained parameters of a query (up to MAX_CHAIN_LEVELS levels), each refused with a 400 if it is not one the types take. */
export function chainSpecs(resourceType: string, q: RawQuery): ChainSpec[] {
  return Object.entries(q)
    .filter(([key]) => isChain(key))
    .map(([key, values]) => chainSpec(resourceType, key, values));
}

/**
 * The `_has` parameters of a query (its last part a parameter of the source type, a chain from it, or a
 * `_has` of it, up to MAX_HAS_LEVELS deep), each refused with a 400 if it is not one the types take.
 * Each occurrence is its own reverse chain: `_has:Observation:patient:code=A&_has:Observation:patient:code=B`
 * finds patients with an Observation coded A and one coded B.
 */
export function hasSpecs(resourceType: string, q: RawQuery): HasSpec[] {
  return Object.entries(q)
    .filter(([key]) => key.startsWith('_has:'))
    .flatMap(([key, values]) => values.map((v) => hasSpec(resourceType, key, [v])));
}

/** Whether a query parameter is one the type takes here (common, patient, include, chain, _has, or an indexed SearchParameter). */
function knownParam(resourceType: string, key: string): boolean {
  if ((COMMON_SEARCH_PARAMS as readonly string[]).includes(key) || patientParam(resourceType, key) || key.startsWith('_include:') || key.startsWith('_revinclude:')) return true;
  if (isChain(key) || key.startsWith('_has:')) {
    // Known when its parameters are (a bad value is still refused when the search parses it).
    try {
      if (isChain(key)) chainSpec(resourceType, key, []);
      else hasSpec(resourceType, key, []);
      return true;
    } catch {
      return false;
    }
  }
  return indexedParamsOf(resourceType).has(key.split(':')[0] ?? key);
}

/**
 * `Prefer: handling=lenient` (FHIR R4 search 3.1.1.5): the query without the parameters the type does not
 * take, so they are ignored (and left out of the Bundle's self link) instead of refused. Strict is the default.
 */
export function lenientQuery(resourceType: string, q: RawQuery, prefer: string | undefined): RawQuery {
  if (!prefer || !/(^|[;,\s])handling\s*=\s*lenient\b/i.test(prefer)) return q;
  return Object.fromEntries(Object.entries(q).filter(([key]) => knownParam(resourceType, key)));
}

/** A query's criteria on the search index; every parameter not known for the type is refused. */
export function searchCriteria(resourceType: string, q: RawQuery): Criterion[] {
  const criteria: Criterion[] = [];
  for (const [key, values] of Object.entries(q)) {
    if ((COMMON_SEARCH_PARAMS as readonly string[]).includes(key) || patientParam(resourceType, key) || key.startsWith('_include:') || key.startsWith('_revinclude:')) continue;
    // Chains and _has are resolved by the search itself (through the enforcement point): chainSpecs, hasSpecs.
    if (isChain(key) || key.startsWith('_has:')) continue;
    const found = criteriaOf(resourceType, key, values);
    if (!found) {
      throw new OperationOutcomeError(
        'INVALID',
        `Search parameter ${key} is not supported for ${resourceType} here (see the CapabilityStatement at /metadata for the parameters of each type)`,
      );
    }
    criteria.push(...found);
  }
  return criteria;
}

export { ID };
