/** Reading FHIR JSON the gateway sent without trusting its shape: each reader gives an empty value for anything else. */
export type Json = Record<string, unknown>;

/** An object, or {} for anything that is not one (an array, a string, null). */
export function obj(value: unknown): Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
}

/** An array, or [] for anything else. */
export function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** A string, or '' for anything else. */
export function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
