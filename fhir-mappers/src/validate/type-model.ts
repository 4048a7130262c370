import type { JsonSchema } from './schema';

/** What the schema says about one property of a definition. */
export interface PropInfo {
  /** definition name of the property's type (e.g. 'Reference', 'ResourceList'); undefined for inline primitives */
  type: string | undefined;
  array: boolean;
}

/** Definition → property → type, derived once from the schema so the invariant walker knows what it is looking at. */
export interface TypeModel {
  props: ReadonlyMap<string, ReadonlyMap<string, PropInfo>>;
  /** definition → choice elements (`value[x]`): base name → concrete property names */
  choices: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
}

function refName(s: unknown): string | undefined {
  if (typeof s !== 'object' || s === null) return undefined;
  const ref = (s as Record<string, unknown>)['$ref'];
  return typeof ref === 'string' && ref.startsWith('#/definitions/') ? ref.slice('#/definitions/'.length) : undefined;
}

/**
 * Choice elements are not marked in the JSON schema; their concrete properties share one description,
 * are named base + TypeName (valueQuantity, valueString, ...), never repeat, and each holds the type its
 * name ends with. All conditions are required, so unrelated properties with a common prefix
 * (compareToSourceId / compareToSourceExpression) or a shared description (DeviceRequest.reasonCode, a
 * list of CodeableConcepts, beside reasonReference) are not grouped.
 */
function choiceGroups(properties: Record<string, unknown>): Map<string, string[]> {
  const byDescription = new Map<string, string[]>();
  for (const [name, p] of Object.entries(properties)) {
    if (name.startsWith('_') || typeof p !== 'object' || p === null || (p as Record<string, unknown>)['type'] === 'array') continue;
    const d = (p as Record<string, unknown>)['description'];
    if (typeof d !== 'string') continue;
    const list = byDescription.get(d) ?? [];
    list.push(name);
    byDescription.set(d, list);
  }
  const groups = new Map<string, string[]>();
  for (const names of byDescription.values()) {
    if (names.length < 2) continue;
    let base = names[0] ?? '';
    for (const n of names) while (!n.startsWith(base)) base = base.slice(0, -1);
    while (base.length > 0 && !names.every((n) => /^[A-Z]/.test(n.slice(base.length)))) base = base.slice(0, -1);
    // Each name is base + the type it holds (valueCode holds a code; reasonCode would hold a CodeableConcept).
    const holdsItsType = (n: string): boolean => {
      const t = refName(properties[n]);
      return t === undefined || t.toLowerCase() === n.slice(base.length).toLowerCase();
    };
    if (base.length > 0 && names.every(holdsItsType)) groups.set(base, names);
  }
  return groups;
}

export function buildTypeModel(definitions: Record<string, JsonSchema>): TypeModel {
  const props = new Map<string, Map<string, PropInfo>>();
  const choices = new Map<string, Map<string, string[]>>();
  for (const [defName, def] of Object.entries(definitions)) {
    const properties = def['properties'];
    if (typeof properties !== 'object' || properties === null) continue;
    const map = new Map<string, PropInfo>();
    for (const [name, p] of Object.entries(properties as Record<string, unknown>)) {
      const ps = p as Record<string, unknown>;
      const array = ps['type'] === 'array';
      map.set(name, { type: refName(array ? ps['items'] : ps), array });
    }
    props.set(defName, map);
    const groups = choiceGroups(properties as Record<string, unknown>);
    if (groups.size > 0) choices.set(defName, groups);
  }
  return { props, choices };
}
