/**
 * Search from the spec's SearchParameter definitions: what each version is indexed under (at write
 * time, by evaluating each parameter's FHIRPath expression) and how a query's parameters become
 * criteria on that index. Token, string, reference, date and uri parameters are indexed; number,
 * quantity, composite and special ones are not yet (a query naming one is refused, never ignored).
 */
import type { Comparator, Criterion, IndexEntry } from './store';
import { normalizeDate, searchParamsOf, type TypeSearchParam, evaluate, tokensOfValue } from '../model/definitions';
import { OperationOutcomeError } from '../errors';

/** Parameter kinds indexed here. */
export const INDEXED_KINDS: ReadonlySet<string> = new Set(['token', 'string', 'reference', 'date', 'uri']);

/** Kept in the version's own columns, not in the index. */
const COLUMN_PARAMS: ReadonlySet<string> = new Set(['_id', '_lastUpdated']);

/** The indexed search parameters of a type (the spec's, of an indexed kind), by code. */
export function indexedParamsOf(resourceType: string): Map<string, TypeSearchParam> {
  const out = new Map<string, TypeSearchParam>();
  for (const [code, p] of searchParamsOf(resourceType)) if (INDEXED_KINDS.has(p.type) && !COLUMN_PARAMS.has(code)) out.set(code, p);
  return out;
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

/** Every index entry of a version's content: one per value of each indexed parameter of its type. */
export function indexEntriesOf(resource: Record<string, unknown>): IndexEntry[] {
  const entries = new Map<string, IndexEntry>();
  const add = (param: string, v1: string, v2: string): void => {
    entries.set(`${param}\u0000${v1}\u0000${v2}`, { param, v1, v2 });
  };
  for (const [code, p] of indexedParamsOf(String(resource.resourceType))) {
    for (const v of evaluate(resource, p.expression)) {
      if (p.type === 'token') {
        for (const t of tokensOfValue(v)) {
          const bar = t.indexOf('|');
          add(code, t.slice(0, bar), t.slice(bar + 1));
        }
      } else if (p.type === 'string') {
        for (const s of stringsOf(v)) if (s.trim() !== '') add(code, normalizeString(s), s);
      } else if (p.type === 'reference') {
        const ref = v && typeof v === 'object' ? (v as { reference?: unknown }).reference : typeof v === 'string' ? v : undefined;
        if (typeof ref === 'string') {
          const parts = referenceParts(ref);
          add(code, parts.ref, parts.id);
        }
      } else if (p.type === 'date') {
        for (const [lo, hi] of dateRanges(v)) add(code, lo, hi);
      } else if (typeof v === 'string') {
        add(code, v, '');
      }
    }
  }
  return [...entries.values()];
}

function fail(param: string, rule: string): never {
  throw new OperationOutcomeError('INVALID', `Search parameter ${param} ${rule}`);
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

/**
 * The criteria of one query parameter of the type's indexed parameters (`code`, `code:not`,
 * `name:exact`, `date`, ...). Repeats are AND, commas OR. Undefined when the type has no such
 * parameter (the caller refuses it).
 */
export function criteriaOf(resourceType: string, key: string, occurrences: readonly string[]): Criterion[] | undefined {
  const [code = '', modifier, ...more] = key.split(':');
  const p = indexedParamsOf(resourceType).get(code);
  if (!p || more.length > 0) return undefined;
  if (modifier === 'missing') {
    return occurrences.map((v) => {
      if (v !== 'true' && v !== 'false') fail(key, 'must be true or false');
      return { kind: 'missing', param: code, missing: v === 'true' };
    });
  }
  const allowed: Record<string, readonly string[]> = { token: ['not'], string: ['exact', 'contains'], reference: [], date: [], uri: [] };
  if (modifier !== undefined && !(allowed[p.type] ?? []).includes(modifier)) fail(key, `: the modifier :${modifier} is not supported for a ${p.type} parameter here`);
  return occurrences.map((raw): Criterion => {
    const values = p.type === 'date' ? [raw] : orValues(key, raw);
    switch (p.type) {
      case 'token':
        return {
          kind: 'token',
          param: code,
          not: modifier === 'not',
          values: values.map((v) => {
            const bar = v.indexOf('|');
            if (bar < 0) return { code: v };
            const system = v.slice(0, bar);
            const c = v.slice(bar + 1);
            return c === '' ? { system } : { system, code: c };
          }),
        };
      case 'string':
        return {
          kind: 'string',
          param: code,
          match: modifier === 'exact' ? 'exact' : modifier === 'contains' ? 'contains' : 'start',
          values: modifier === 'exact' ? values : values.map(normalizeString),
        };
      case 'reference':
        return {
          kind: 'reference',
          param: code,
          values: values.map((v) => {
            if (!v.includes('/')) return { id: v };
            const parts = referenceParts(v);
            return { ref: parts.ref };
          }),
        };
      case 'date': {
        const m = DATE.exec(raw);
        if (!m?.[2]) fail(key, 'must be a FHIR date or dateTime with an optional prefix eq|ne|gt|lt|ge|le (e.g. ge2024-01-01)');
        if (m[2].includes('T') && !m[5]) fail(key, 'needs a time zone when it gives a time');
        return { kind: 'date', param: code, op: (m[1] ?? 'eq') as Comparator, value: normalizeDate(m[2]) };
      }
      default:
        return { kind: 'uri', param: code, values };
    }
  });
}
