/**
 * Search from the spec's SearchParameter definitions: what each version is indexed under (at write
 * time, by evaluating each parameter's FHIRPath expression) and how a query's parameters become
 * criteria on that index. Token, string, reference, date, uri, number, quantity and composite
 * parameters are indexed; special ones are not (a query naming one is refused, never ignored).
 */
import type { Comparator, Criterion, IndexEntry, NumberPrefix, NumberValue, QuantityValue } from './store';
import {
  normalizeDate,
  searchParamsOf,
  type SearchParamType,
  type TypeSearchParam,
  evaluate as evaluateFast,
  evaluateWithEngine,
  tokensOfValue,
  unionTerms,
} from '../model/definitions';
import { OperationOutcomeError } from '../errors';
import { canonicalQuantity } from './ucum';

/** Parameter kinds indexed here. */
export const INDEXED_KINDS: ReadonlySet<string> = new Set(['token', 'string', 'reference', 'date', 'uri', 'number', 'quantity', 'composite']);

/** Kinds a composite's components may have here (a value of each is parsed and matched as its own kind). */
const COMPONENT_KINDS: ReadonlySet<SearchParamType> = new Set(['token', 'string', 'date', 'uri', 'number', 'quantity']);

/** Kept in the version's own columns, not in the index. */
const COLUMN_PARAMS: ReadonlySet<string> = new Set(['_id', '_lastUpdated']);

/** An element path (`Observation.component`): a composite's elements are evaluated in elements of that type. */
const ELEMENT_PATH = /^[A-Z][A-Za-z]+(\.[a-z][A-Za-z]*)*$/;

/**
 * Whether a composite is indexed here: each term of its expression an element path, each component of
 * a kind matched here, read within the element (not `%resource`). Left out (refused if queried):
 * MolecularSequence's coordinates (`%resource`) and DocumentReference `relationship`, whose R4
 * definition pairs a reference parameter with the `code` element.
 */
function compositeIndexed(p: TypeSearchParam): boolean {
  const components = p.components ?? [];
  return (
    components.length >= 2 && components.every((c) => COMPONENT_KINDS.has(c.type) && !c.expression.includes('%')) && unionTerms(p.expression).every((t) => ELEMENT_PATH.test(t))
  );
}

const indexedByType = new Map<string, ReadonlyMap<string, TypeSearchParam>>();

/** The indexed search parameters of a type (the spec's, of an indexed kind), by code. */
export function indexedParamsOf(resourceType: string): ReadonlyMap<string, TypeSearchParam> {
  let out = indexedByType.get(resourceType);
  if (!out) {
    const params = new Map<string, TypeSearchParam>();
    for (const [code, p] of searchParamsOf(resourceType)) {
      if (!INDEXED_KINDS.has(p.type) || COLUMN_PARAMS.has(code)) continue;
      if (p.type === 'composite' && !compositeIndexed(p)) continue;
      params.set(code, p);
    }
    out = params;
    indexedByType.set(resourceType, out);
  }
  return out;
}

/** A term with the arguments of its where(...) filters removed (they only keep values, never make one). */
function withoutFilters(term: string): string | undefined {
  let out = '';
  for (let i = 0; i < term.length; i++) {
    if (term.startsWith('.where(', i)) {
      let depth = 0;
      let j = i + '.where'.length;
      for (; j < term.length; j++) {
        if (term[j] === '(') depth++;
        else if (term[j] === ')' && --depth === 0) break;
      }
      if (depth !== 0) return undefined;
      out += '.where()';
      i = j;
      continue;
    }
    out += term[i];
  }
  return out;
}

/** A navigation: elements, type filters and where() filters only, nothing that can yield a value from an absent element. */
const NAVIGATION = /^\(*\s*[A-Z][A-Za-z]+((\.[a-z][A-Za-z0-9]*)|(\.ofType\([A-Za-z]+\))|(\.where\(\)))+\s*\)*$/;

/**
 * The top-level elements an expression reads its values from (each union term's first element after the
 * type: `Observation.value.ofType(Quantity)` → `value`), when every term is a pure navigation; undefined
 * otherwise (`Patient.deceased.exists() and ...` yields `false` from an absent element; `%resource`; a
 * function): then it is always evaluated.
 */
export function topElementsOf(expression: string): readonly string[] | undefined {
  const out: string[] = [];
  for (const term of unionTerms(expression)) {
    const bare = withoutFilters(term.trim());
    const m = bare !== undefined && NAVIGATION.test(bare) ? /^\(*\s*[A-Z][A-Za-z]+\.([a-z][A-Za-z0-9]*)/.exec(bare) : null;
    if (!m?.[1]) return undefined;
    out.push(m[1]);
  }
  return out;
}

const topElements = new Map<string, readonly string[] | undefined>();

/**
 * Whether a resource holds any of these elements at its top level: the element itself, a choice of it
 * (`value` → `valueQuantity`), or a primitive's extension (`_status`). An expression whose elements are all
 * absent selects nothing (FHIRPath reads no value from an absent element), so it need not be evaluated:
 * most of a type's parameters name elements a given resource does not have.
 */
function mayHold(keys: readonly string[], elements: readonly string[] | undefined): boolean {
  if (elements === undefined) return true;
  for (const raw of keys) {
    const key = raw.startsWith('_') ? raw.slice(1) : raw;
    for (const e of elements) {
      if (key === e || (key.startsWith(e) && key.length > e.length && /[A-Z]/.test(key.charAt(e.length)))) return true;
    }
  }
  return false;
}

function elementsOf(expression: string): readonly string[] | undefined {
  if (!topElements.has(expression)) topElements.set(expression, topElementsOf(expression));
  return topElements.get(expression);
}

/** Lower case, without diacritics: how string parameters match by default. */
export function normalizeString(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .trim();
}

/** The string parts of a value (a string, or a HumanName, Address, ... whose string elements count). */
function stringsOf(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(stringsOf);
  if (v && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .filter(([k]) => !['extension', 'id', 'period', 'use', 'type'].includes(k))
      .flatMap(([, x]) => stringsOf(x));
  }
  return [];
}

/** The end of a date-like value's range, as an exclusive upper bound in the normalized ordering. */
const OPEN = '\uffff';

/** [low, high) of a date-like value (date, dateTime, instant, Period, Timing events): one range each. */
function dateRanges(v: unknown): Array<[string, string]> {
  if (typeof v === 'string') {
    if (!/^\d{4}/.test(v)) return [];
    const n = normalizeDate(v);
    return [[n, `${n}${OPEN}`]];
  }
  if (v && typeof v === 'object') {
    const o = v as { start?: unknown; end?: unknown; event?: unknown };
    if (Array.isArray(o.event)) return o.event.flatMap(dateRanges);
    if (typeof o.start === 'string' || typeof o.end === 'string') {
      const lo = typeof o.start === 'string' ? normalizeDate(o.start) : '';
      const hi = typeof o.end === 'string' ? `${normalizeDate(o.end)}${OPEN}` : OPEN;
      return [[lo, hi]];
    }
  }
  return [];
}

/** `Type/id` of a reference (history and this server's base stripped), and its id. */
function referenceParts(ref: string): { ref: string; id: string } {
  const bare = ref.replace(/\/_history\/[^/]+$/, '');
  const m = /([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(bare);
  return m?.[1] && m[2] ? { ref: `${m[1]}/${m[2]}`, id: m[2] } : { ref: bare, id: bare };
}

type Entry = Omit<IndexEntry, 'param' | 'grp'>;

/** [low, high] of a number: the value, or a Range's low and high (open ends ±Infinity). */
function numberBounds(v: unknown): [number, number] | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return [v, v];
  if (v && typeof v === 'object' && ('low' in v || 'high' in v)) {
    const r = v as { low?: { value?: unknown }; high?: { value?: unknown } };
    const lo = typeof r.low?.value === 'number' ? r.low.value : -Infinity;
    const hi = typeof r.high?.value === 'number' ? r.high.value : Infinity;
    return lo === -Infinity && hi === Infinity ? undefined : [lo, hi];
  }
  return undefined;
}

/**
 * A quantity entry with its canonical form (store/ucum.ts) when its system is UCUM and its unit converts.
 * It reads the entry's system, code and [n1, n2] only, so the migration that added the canonical columns
 * computes them from the stored rows alike (sqlite-store.ts, pg-store.ts).
 */
export function withCanonical(e: Entry): Entry {
  const c = e.n1 !== undefined && e.n2 !== undefined ? canonicalQuantity(e.v1, e.v2, [e.n1, e.n2]) : undefined;
  return c ? { ...e, cu: c.unit, cn1: c.values[0] ?? e.n1, cn2: c.values[1] ?? e.n2 } : e;
}

/**
 * A quantity's entry: its value as [n1, n2] (a comparator `<` or `>` opens one end), system, code and
 * unit; a Money's currency as code and unit (system ISO 4217); a Range's low and high (in the unit of its
 * low, or of its high when it has no low). In a UCUM unit that converts, also in the canonical unit.
 */
function quantityEntry(v: unknown): Entry | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const q = v as { value?: unknown; comparator?: unknown; system?: unknown; code?: unknown; unit?: unknown; currency?: unknown; low?: unknown; high?: unknown };
  const text = (x: unknown): string => (typeof x === 'string' ? x : '');
  if ('low' in q || 'high' in q) {
    const bounds = numberBounds(q);
    const unitOf = (q.low ?? q.high) as { system?: unknown; code?: unknown; unit?: unknown } | undefined;
    return bounds ? withCanonical({ n1: bounds[0], n2: bounds[1], v1: text(unitOf?.system), v2: text(unitOf?.code), v3: text(unitOf?.unit) }) : undefined;
  }
  if (typeof q.value !== 'number' || !Number.isFinite(q.value)) return undefined;
  const x = q.value;
  const [n1, n2] = q.comparator === '<' || q.comparator === '<=' ? [-Infinity, x] : q.comparator === '>' || q.comparator === '>=' ? [x, Infinity] : [x, x];
  if (typeof q.currency === 'string') return { n1, n2, v1: 'urn:iso:std:iso:4217', v2: q.currency, v3: q.currency };
  return withCanonical({ n1, n2, v1: text(q.system), v2: text(q.code), v3: text(q.unit) });
}

/** The index entries (without the parameter) of one value of a parameter of a kind. */
function entriesOfValue(kind: SearchParamType, v: unknown): Entry[] {
  switch (kind) {
    case 'token':
      return tokensOfValue(v).map((t) => {
        const bar = t.indexOf('|');
        return { v1: t.slice(0, bar), v2: t.slice(bar + 1) };
      });
    case 'string':
      return stringsOf(v)
        .filter((x) => x.trim() !== '')
        .map((x) => ({ v1: normalizeString(x), v2: x }));
    case 'reference': {
      const ref = v && typeof v === 'object' ? (v as { reference?: unknown }).reference : typeof v === 'string' ? v : undefined;
      if (typeof ref !== 'string') return [];
      const parts = referenceParts(ref);
      return [{ v1: parts.ref, v2: parts.id }];
    }
    case 'date':
      return dateRanges(v).map(([lo, hi]) => ({ v1: lo, v2: hi }));
    case 'number': {
      const b = numberBounds(v);
      return b ? [{ v1: '', v2: '', n1: b[0], n2: b[1] }] : [];
    }
    case 'quantity': {
      const e = quantityEntry(v);
      return e ? [e] : [];
    }
    case 'uri':
      return typeof v === 'string' ? [{ v1: v, v2: '' }] : [];
    default:
      return [];
  }
}

/**
 * The longest text value the index keeps, in UTF-8 bytes: longer ones are cut (at a character boundary).
 * A value and the search for it are cut alike (sql-search.ts), so a long value still matches; two values
 * alike in their first INDEX_VALUE_BYTES bytes are alike to the search (HAPI FHIR indexes 200 characters).
 * The limit keeps an index row within PostgreSQL's b-tree maximum (2,704 bytes), so both stores take any
 * resource: a ValueSet's 5 kB description is searchable by its start, never a 500.
 */
export const INDEX_VALUE_BYTES = 1000;

export function capIndexValue(s: string): string {
  if (s.length * 3 <= INDEX_VALUE_BYTES || Buffer.byteLength(s) <= INDEX_VALUE_BYTES) return s;
  const cut = Buffer.from(s).subarray(0, INDEX_VALUE_BYTES).toString('utf8');
  // A character cut in half decodes as U+FFFD: drop it.
  return cut.endsWith('\ufffd') && !s.startsWith(cut) ? cut.slice(0, -1) : cut;
}

/**
 * Every index entry of a version's content: one per value of each indexed parameter of its type. A
 * parameter whose elements the resource does not hold is skipped, and pure navigations are read without
 * the FHIRPath engine (model/navigation.ts); `everyParam` evaluates every parameter with the engine, as
 * indexing did before both: the test that they change nothing.
 */
export function indexEntriesOf(resource: Record<string, unknown>, options: { everyParam?: boolean } = {}): IndexEntry[] {
  const entries = new Map<string, IndexEntry>();
  const evaluate = options.everyParam === true ? evaluateWithEngine : evaluateFast;
  const add = (param: string, raw: Entry, grp = 0): void => {
    const v1 = capIndexValue(raw.v1);
    const v2 = capIndexValue(raw.v2);
    const v3 = raw.v3 !== undefined ? capIndexValue(raw.v3) : undefined;
    const full: IndexEntry = v3 !== undefined ? { param, ...raw, v1, v2, v3, grp } : { param, ...raw, v1, v2, grp };
    // One entry per distinct key (the texts length-prefixed, so no two keys run together; numbers as
    // JSON writes them: none, Infinity and NaN alike); a later one with the same key replaces it in place.
    entries.set(`${param}|${String(grp)}|${numberKey(raw.n1)}|${numberKey(raw.n2)}|${String(v1.length)}:${v1}|${String(v2.length)}:${v2}|${v3 ?? ''}`, full);
  };
  let grp = 0;
  const keys = Object.keys(resource);
  for (const [code, p] of indexedParamsOf(String(resource.resourceType))) {
    if (options.everyParam !== true && !mayHold(keys, elementsOf(p.expression))) continue;
    if (p.type === 'composite') {
      // One group per element the composite's expression selects, each component read within it; an
      // element lacking a component can match no value of the composite and is left out.
      for (const term of unionTerms(p.expression)) {
        for (const element of evaluate(resource, term)) {
          if (!element || typeof element !== 'object') continue;
          const parts = (p.components ?? []).map((c) => evaluate(element as Record<string, unknown>, c.expression, term).flatMap((v) => entriesOfValue(c.type, v)));
          if (parts.some((entriesOfPart) => entriesOfPart.length === 0)) continue;
          grp++;
          parts.forEach((entriesOfPart, i) => {
            for (const e of entriesOfPart) add(`${code}$${String(i)}`, e, grp);
          });
        }
      }
      continue;
    }
    for (const v of evaluate(resource, p.expression)) {
      for (const e of entriesOfValue(p.type, v)) add(code, e);
      // A Reference's logical identifier, for the :identifier modifier (subject:identifier=sys|123).
      if (p.type === 'reference' && v && typeof v === 'object') for (const e of entriesOfValue('token', (v as { identifier?: unknown }).identifier)) add(identifierParam(code), e);
    }
  }
  return [...entries.values()];
}

/** A number of an index entry's key, as JSON writes it (`null` for none, Infinity and NaN). */
function numberKey(n: number | undefined): string {
  return n !== undefined && Number.isFinite(n) ? String(n) : 'null';
}

/** The index entries of a version's references' logical identifiers only (the migration that added them). */
export function referenceIdentifierEntries(resource: Record<string, unknown>): IndexEntry[] {
  return indexEntriesOf(resource).filter((e) => e.param.endsWith(':identifier'));
}

function fail(param: string, rule: string): never {
  throw new OperationOutcomeError('INVALID', `Search parameter ${param} ${rule}`);
}

/** Where the index keeps the logical identifiers (Reference.identifier) of a reference parameter's values, as tokens. */
export function identifierParam(code: string): string {
  return `${code}:identifier`;
}

/** A token as searched: `system|code`, `|code` (no system), `code` (any system) or `system|` (any code). */
function tokenValue(v: string): { system?: string; code?: string } {
  const bar = v.indexOf('|');
  if (bar < 0) return { code: v };
  const system = v.slice(0, bar);
  const c = v.slice(bar + 1);
  return c === '' ? { system } : { system, code: c };
}

const DATE = /^(eq|ne|gt|lt|ge|le)?(\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?)?)?)$/;

/** Values of one occurrence: comma-separated (OR), `\,` an escaped comma. */
function orValues(param: string, raw: string): string[] {
  const values = raw
    .split(/(?<!\\),/)
    .map((s) => s.replace(/\\,/g, ',').trim())
    .filter((s) => s !== '');
  if (values.length === 0) fail(param, 'is empty');
  return values;
}

const NUMBER = /^(eq|ne|gt|lt|ge|le|sa|eb|ap)?([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d{1,3}))?$/;

/**
 * A number as searched, with the range its precision implies: `100` → [99.5, 100.5), `5.40` → [5.395,
 * 5.405), `1e2` → [50, 150). The bounds are computed in decimal (BigInt) and then read as doubles, so
 * they meet stored values exactly where the decimal does.
 */
export function parseNumber(param: string, raw: string): NumberValue {
  const m = NUMBER.exec(raw);
  if (!m?.[3]) fail(param, 'must be a decimal number with an optional prefix eq|ne|gt|lt|ge|le|sa|eb|ap (e.g. gt5.4)');
  const [, prefix, sign = '', whole, fraction = '', exponent = '0'] = m;
  const digits = BigInt(`${sign}${whole}${fraction}`);
  const scale = fraction.length - Number(exponent);
  const at = (n: bigint, s: number): number => Number(`${n.toString()}e${String(-s)}`);
  const value = at(digits, scale);
  if (!Number.isFinite(value)) fail(param, 'is out of range');
  return { op: (prefix ?? 'eq') as NumberPrefix, value, lo: at(digits * 10n - 5n, scale + 1), hi: at(digits * 10n + 5n, scale + 1) };
}

/** `[prefix]number`, `number|system|code` or `number||code-or-unit`. */
function parseQuantity(param: string, raw: string): QuantityValue {
  const parts = raw.split('|');
  if (parts.length !== 1 && parts.length !== 3) fail(param, 'must be [prefix]number, [prefix]number|system|code or [prefix]number||unit');
  const n = parseNumber(param, parts[0] ?? '');
  const [, system = '', code = ''] = parts;
  if (parts.length === 1) return n;
  if (code === '') fail(param, 'names a system without a code (number|system|code)');
  // A UCUM unit that converts is compared in its canonical unit (5|http://unitsofmeasure.org|g finds 5000 mg).
  const c = canonicalQuantity(system, code, [n.value, n.lo, n.hi]);
  const canonical = c ? { unit: c.unit, value: c.values[0] ?? n.value, lo: c.values[1] ?? n.lo, hi: c.values[2] ?? n.hi } : undefined;
  return { ...n, ...(system !== '' ? { system } : {}), code, ...(canonical ? { canonical } : {}) };
}

/** One value (no OR) of a parameter of a kind, as a criterion: a composite's component. */
function componentCriterion(param: string, key: string, kind: SearchParamType, raw: string): Criterion {
  if (raw === '') fail(key, 'has an empty component');
  switch (kind) {
    case 'token': {
      return { kind: 'token', param, not: false, values: [tokenValue(raw)] };
    }
    case 'string':
      return { kind: 'string', param, match: 'start', values: [normalizeString(raw)] };
    case 'date':
      return { kind: 'date', param, ...parseDate(key, raw) };
    case 'number':
      return { kind: 'number', param, values: [parseNumber(key, raw)] };
    case 'quantity':
      return { kind: 'quantity', param, values: [parseQuantity(key, raw)] };
    default:
      return { kind: 'uri', param, values: [raw] };
  }
}

function parseDate(key: string, raw: string): { op: Comparator; value: string } {
  const m = DATE.exec(raw);
  if (!m?.[2]) fail(key, 'must be a FHIR date or dateTime with an optional prefix eq|ne|gt|lt|ge|le (e.g. ge2024-01-01)');
  if (m[2].includes('T') && !m[5]) fail(key, 'needs a time zone when it gives a time');
  return { op: (m[1] ?? 'eq') as Comparator, value: normalizeDate(m[2]) };
}

/**
 * The criteria of one query parameter of the type's indexed parameters (`code`, `code:not`,
 * `name:exact`, `date`, `value-quantity`, `code-value-quantity`, ...). Repeats are AND, commas OR; a
 * composite's components are separated by `$`. Undefined when the type has no such parameter (the
 * caller refuses it).
 */
export function criteriaOf(resourceType: string, key: string, occurrences: readonly string[]): Criterion[] | undefined {
  const [code = '', modifier, ...more] = key.split(':');
  const p = indexedParamsOf(resourceType).get(code);
  if (!p || more.length > 0) return undefined;
  if (modifier === 'missing' && p.type !== 'composite') {
    return occurrences.map((v) => {
      if (v !== 'true' && v !== 'false') fail(key, 'must be true or false');
      return { kind: 'missing', param: code, missing: v === 'true' };
    });
  }
  const allowed: Record<string, readonly string[]> = { token: ['not'], string: ['exact', 'contains'], reference: ['identifier'] };
  if (modifier !== undefined && !(allowed[p.type] ?? []).includes(modifier)) fail(key, `: the modifier :${modifier} is not supported for a ${p.type} parameter here`);
  return occurrences.map((raw): Criterion => {
    const values = p.type === 'date' ? [raw] : orValues(key, raw);
    switch (p.type) {
      case 'token':
        return {
          kind: 'token',
          param: code,
          not: modifier === 'not',
          values: values.map(tokenValue),
        };
      case 'string':
        return {
          kind: 'string',
          param: code,
          match: modifier === 'exact' ? 'exact' : modifier === 'contains' ? 'contains' : 'start',
          values: modifier === 'exact' ? values : values.map(normalizeString),
        };
      case 'reference':
        // :identifier: the references' logical identifiers (Reference.identifier), as a token; never the referenced resource's.
        if (modifier === 'identifier') return { kind: 'token', param: identifierParam(code), not: false, values: values.map(tokenValue) };
        return {
          kind: 'reference',
          param: code,
          values: values.map((v) => {
            if (!v.includes('/')) return { id: v };
            const parts = referenceParts(v);
            return { ref: parts.ref };
          }),
        };
      case 'date':
        return { kind: 'date', param: code, ...parseDate(key, raw) };
      case 'number':
        return { kind: 'number', param: code, values: values.map((v) => parseNumber(key, v)) };
      case 'quantity':
        return { kind: 'quantity', param: code, values: values.map((v) => parseQuantity(key, v)) };
      case 'composite': {
        const components = p.components ?? [];
        return {
          kind: 'composite',
          param: code,
          values: values.map((v) => {
            const parts = v.split('$');
            if (parts.length !== components.length) fail(key, `takes ${String(components.length)} components separated by $ (e.g. http://loinc.org|8480-6$gt100)`);
            return parts.map((part, i) => componentCriterion(`${code}$${String(i)}`, key, components[i]?.type ?? 'special', part));
          }),
        };
      }
      default:
        return { kind: 'uri', param: code, values };
    }
  });
}
