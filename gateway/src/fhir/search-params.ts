import type { Comparator, DateFilter } from '../store/store';
import { OperationOutcomeError } from './outcome';
import { normalizeDate } from './resource-types';

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

export const RESOURCE_SEARCH_PARAMS = ['_id', '_lastUpdated', 'patient', 'subject', 'code', 'date', '_count', '_getpagesoffset'] as const;

export { ID };
