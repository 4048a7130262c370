/**
 * `_summary` and `_elements` (FHIR R4 search 3.1.1.5.8–9): a resource cut to the spec's summary
 * elements, to its text, without its text, or to the elements asked for, always with `id`, `meta` and
 * the mandatory and modifier elements (so nothing that changes the meaning of what is kept is dropped),
 * and tagged SUBSETTED. Applied to what the enforcement point has already released, so it never widens
 * a disclosure.
 */
import { OperationOutcomeError } from '../errors';
import { elementOfProperty, elementsOf } from '../model/elements';

export const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' } as const;

export type SummaryMode = 'true' | 'false' | 'text' | 'data' | 'count';

/** What a search returns of each resource: all of it, a summary mode, or the elements named. */
export type Subsetting = { readonly summary: Exclude<SummaryMode, 'false' | 'count'> } | { readonly elements: readonly string[] } | undefined;

const ALWAYS: ReadonlySet<string> = new Set(['resourceType', 'id', 'meta']);

/** `_elements` values: names of top-level elements of the type (`value` for `value[x]`). */
export function elementNames(resourceType: string, raw: readonly string[]): string[] {
  const names = raw.flatMap((r) => r.split(',').map((s) => s.trim())).filter((s) => s !== '');
  if (names.length === 0) throw new OperationOutcomeError('INVALID', 'Search parameter _elements is empty');
  const known = new Set(elementsOf(resourceType).map((e) => e.name));
  for (const n of names) {
    if (!known.has(n)) throw new OperationOutcomeError('INVALID', `Search parameter _elements names ${n}, which is not an element of ${resourceType}`);
  }
  return names;
}

/** The resource cut as asked (a new object; the input is not changed), tagged SUBSETTED; as is when nothing is asked. */
export function subset(resource: Record<string, unknown>, how: Subsetting, kept?: 'match' | 'include'): Record<string, unknown> {
  if (how === undefined) return resource;
  // _elements names elements of the searched type: included resources of other types are returned whole.
  if ('elements' in how && kept === 'include') return resource;
  const type = String(resource.resourceType);
  const keep = (property: string): boolean => {
    if (ALWAYS.has(property)) return true;
    const e = elementOfProperty(type, property);
    if (!e) return false;
    if (e.mandatory || e.modifier) return true;
    if ('elements' in how) return how.elements.includes(e.name);
    if (how.summary === 'true') return e.summary;
    if (how.summary === 'text') return e.name === 'text';
    return e.name !== 'text';
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(resource)) if (keep(k)) out[k] = v;
  const meta = (resource.meta ?? {}) as { tag?: unknown[] };
  out.meta = { ...meta, tag: [...(Array.isArray(meta.tag) ? meta.tag : []), { ...SUBSETTED }] };
  return out;
}
