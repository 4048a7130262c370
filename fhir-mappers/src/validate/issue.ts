/** One validation finding. Diagnostics name the element and the rule, never the offending value. */
export interface FhirIssue {
  severity: 'error' | 'warning';
  code: 'invalid' | 'structure' | 'required' | 'value' | 'invariant';
  /** FHIRPath-like location, e.g. `Patient.name[0].given` */
  expression: string;
  diagnostics: string;
}

/** Path segments → FHIRPath-like expression: ['name', 0, 'given'] → `Patient.name[0].given`. */
export function toExpression(root: string, segments: ReadonlyArray<string | number>): string {
  let out = root;
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : `.${s}`;
  return out;
}

const SAFE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A property name or type name taken from the input, made safe to print: element names are schema
 * vocabulary, but an unknown key could be anything (even a patient's name), so only identifier-like
 * names are echoed.
 */
export function safeName(name: unknown): string {
  return typeof name === 'string' && SAFE_NAME.test(name) ? name : '(unrecognized name)';
}

/** The root of expressions: the resource type when it is a plausible type name. */
export function rootName(resource: unknown): string {
  if (typeof resource === 'object' && resource !== null && !Array.isArray(resource)) {
    const rt = (resource as Record<string, unknown>)['resourceType'];
    if (typeof rt === 'string' && /^[A-Z][A-Za-z]{0,63}$/.test(rt)) return rt;
  }
  return 'Resource';
}
