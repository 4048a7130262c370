import type { ErrorObject } from 'ajv';
import { type FhirIssue, safeName } from './issue';

/** `/name/0/given` → ['name', 0, 'given'] (JSON pointer, RFC 6901 unescaping). */
export function pointerSegments(pointer: string): Array<string | number> {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((raw) => {
      const s = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^(0|[1-9][0-9]{0,8})$/.test(s) ? Number(s) : s;
    });
}

function expressionOf(root: string, pointer: string): string {
  let out = root;
  for (const s of pointerSegments(pointer)) out += typeof s === 'number' ? `[${s}]` : `.${safeName(s)}`;
  return out;
}

function listValues(values: unknown): string {
  if (!Array.isArray(values)) return '';
  const shown = values.slice(0, 12).map((v) => JSON.stringify(v));
  return values.length > 12 ? `${shown.join(', ')}, … (${values.length} codes)` : shown.join(', ');
}

const JSON_TYPE_NAMES: Readonly<Record<string, string>> = {
  array: 'an array (this element repeats)',
  object: 'a JSON object',
  string: 'a JSON string',
  number: 'a JSON number',
  integer: 'a whole number',
  boolean: 'true or false',
};

/**
 * One ajv error → one issue, or undefined for errors that only summarise others (oneOf/anyOf/if).
 * The instance value is never read: diagnostics come from the schema side only.
 */
export function issueFromAjv(err: ErrorObject, root: string, patternNames: ReadonlyMap<string, string>): FhirIssue | undefined {
  const at = expressionOf(root, err.instancePath);
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'required': {
      const prop = safeName(params['missingProperty']);
      return { severity: 'error', code: 'required', expression: `${at}.${prop}`, diagnostics: `${at}.${prop}: required element is missing` };
    }
    case 'additionalProperties': {
      const prop = safeName(params['additionalProperty']);
      return {
        severity: 'error',
        code: 'structure',
        expression: `${at}.${prop}`,
        diagnostics: `${at}.${prop}: unknown element (not defined in FHIR R4 here)`,
      };
    }
    case 'type': {
      const t = typeof params['type'] === 'string' ? params['type'] : String(params['type']);
      return { severity: 'error', code: 'structure', expression: at, diagnostics: `${at}: must be ${JSON_TYPE_NAMES[t] ?? t}` };
    }
    case 'pattern': {
      const primitive = typeof params['pattern'] === 'string' ? patternNames.get(params['pattern']) : undefined;
      const what = primitive ? `the FHIR ${primitive} format` : 'the required format';
      return { severity: 'error', code: 'value', expression: at, diagnostics: `${at}: value does not conform to ${what}` };
    }
    case 'enum':
      return {
        severity: 'error',
        code: 'value',
        expression: at,
        diagnostics: `${at}: value is not one of the allowed codes (${listValues(params['allowedValues'])})`,
      };
    case 'const':
      return { severity: 'error', code: 'value', expression: at, diagnostics: `${at}: value must be ${JSON.stringify(params['allowedValue'])}` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const cmp = typeof params['comparison'] === 'string' ? params['comparison'] : err.keyword;
      return { severity: 'error', code: 'value', expression: at, diagnostics: `${at}: value must be ${cmp} ${String(params['limit'])}` };
    }
    case 'discriminator': {
      const tagMissing = params['error'] === 'tag';
      if (tagMissing && params['tagValue'] === undefined) return undefined; // reported by 'required'
      return {
        severity: 'error',
        code: 'invalid',
        expression: `${at}.resourceType`,
        diagnostics: tagMissing ? `${at}.resourceType: must be a string naming the resource type` : `${at}.resourceType: not a FHIR R4 resource type`,
      };
    }
    case 'oneOf':
    case 'anyOf':
    case 'if':
      return undefined;
    default:
      return {
        severity: 'error',
        code: 'invalid',
        expression: at,
        diagnostics: `${at}: violates schema rule '${safeName(err.keyword)}'`,
      };
  }
}
