/**
 * A Bundle POSTed to the FHIR base, as the Bundle processing reads it: its fields other than `entry`,
 * how many entries it has, and each entry on demand. Either a parsed body (`bundleSourceOf`), or a large
 * body the transport kept as bytes and framed (http/bundle-frame.ts): there each `entry(i)` is parsed
 * when asked for, a fresh object each time, so a batch never holds more than the entries it is
 * processing, and a transaction never holds its body both as text and as objects.
 */
import { invalidResource, OperationOutcomeError } from '../errors';

export interface BundleSource {
  /** The Bundle's fields other than `entry` (resourceType, type, id, meta, ...). */
  readonly fields: Readonly<Record<string, unknown>>;
  /** How many entries `entry` holds. */
  readonly entryCount: number;
  /** Entry `index` (0-based), parsed; the caller may change it (nobody else holds it after this call). */
  entry(index: number): unknown;
}

const SOURCE = Symbol('hdx.bundle-source');

/** Marks a framed body as a BundleSource (what the transport hands the FHIR layer in place of a parsed body). */
export function asBundleSource(source: BundleSource): BundleSource {
  return Object.assign(source, { [SOURCE]: true });
}

export function isBundleSource(body: unknown): body is BundleSource {
  return typeof body === 'object' && body !== null && (body as Record<symbol, unknown>)[SOURCE] === true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The body of `POST [base]` as a BundleSource: a framed body as it is, a parsed one read in place (its
 * entries are the body's own objects). Anything but a Bundle whose `entry` is an array (or absent) is a
 * 400 naming the problem.
 */
export function bundleSourceOf(body: unknown): BundleSource {
  if (isBundleSource(body)) return body;
  if (!isObject(body) || body.resourceType !== 'Bundle') throw new OperationOutcomeError('INVALID', 'POST to the FHIR base takes a Bundle of type transaction or batch');
  const { entry, ...fields } = body;
  return parsedEntries(fields, entry);
}

/** A Bundle's fields and its parsed `entry` (absent: none) as a BundleSource; anything but an array is a 400. */
export function parsedEntries(fields: Readonly<Record<string, unknown>>, entry: unknown): BundleSource {
  const entries = entry ?? [];
  if (!Array.isArray(entries)) {
    throw invalidResource([{ severity: 'error', code: 'invalid', expression: 'Bundle.entry', diagnostics: 'Bundle.entry must be an array' }], 'Bundle.entry must be an array');
  }
  return asBundleSource({ fields, entryCount: entries.length, entry: (index) => entries[index] });
}
