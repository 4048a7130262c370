/**
 * FHIRPath Patch (fhirpatch.html) on a FHIR resource, for `PATCH [base]/Type/id` with
 * `Content-Type: application/fhir+json` and a Parameters body, and for a Bundle's PATCH entry whose
 * resource is such a Parameters. Each `operation` parameter has the parts `type` (add, insert, delete,
 * replace, move), `path` (a FHIRPath expression, evaluated with the `fhirpath` engine on the R4 model),
 * and as its type needs `name`, `value`, `index`, `source`, `destination`. Where a value goes (which
 * JSON property, whether it is a list, the choice type's suffix) comes from the spec's
 * StructureDefinitions (model/element-definitions.ts).
 *
 * The result is an update like any other (validated, If-Match, anchored): this module only applies the
 * operations, in order, to a copy. Errors name the operation by index and the reason, never a value, a
 * path or a name (any of them may hold PHI): a malformed document is a 400, an operation that cannot be
 * applied to this resource a 422.
 */
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4';
import { OperationOutcomeError } from '../errors';
import { childElements, childrenPath, type ElementDefinition, elementOfProperty, isPrimitiveType, typeSuffix } from '../model/element-definitions';

/** A value to put in the resource: a `value[x]` (or `resource`) of a type, or parts naming the elements of a new element. */
export type PatchValue = { readonly type: string; readonly json: unknown } | { readonly parts: ReadonlyArray<{ readonly name: string; readonly value: PatchValue }> };

export type FhirPathOperation = { readonly index: number; readonly path: string } & (
  | { readonly type: 'add'; readonly name: string; readonly value: PatchValue }
  | { readonly type: 'insert'; readonly at: number; readonly value: PatchValue }
  | { readonly type: 'delete' }
  | { readonly type: 'replace'; readonly value: PatchValue }
  | { readonly type: 'move'; readonly source: number; readonly destination: number }
);

type OperationType = FhirPathOperation['type'];

/** The parts each operation type takes (fhirpatch.html), all required. */
const PARTS: Readonly<Record<OperationType, readonly string[]>> = {
  add: ['type', 'path', 'name', 'value'],
  insert: ['type', 'path', 'index', 'value'],
  delete: ['type', 'path'],
  replace: ['type', 'path', 'value'],
  move: ['type', 'path', 'source', 'destination'],
};

/** Regular expressions from the client would run on the server (matches, replaceMatches): not evaluated. */
const REGEX_FUNCTIONS = /\b(matches|replaceMatches|matchesFull)\s*\(/;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function malformed(i: number, why: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', `FHIRPath Patch operation ${i}: ${why}`);
}

function cannotApply(i: number, why: string): OperationOutcomeError {
  return new OperationOutcomeError('UNMAPPABLE', `FHIRPath Patch operation ${i} cannot be applied: ${why}; nothing was written`);
}

/** `valueDateTime` → dateTime, `valueHumanName` → HumanName: the type a `value[x]` property names. */
function typeOfValueKey(key: string): string {
  const suffix = key.slice('value'.length);
  const primitive = `${suffix.charAt(0).toLowerCase()}${suffix.slice(1)}`;
  return childElements(primitive).length > 0 && isPrimitiveType(primitive) ? primitive : suffix;
}

/** A parameter's (or part's) value: its one `value[x]`, its `resource`, or its parts. */
function parseValue(p: Json, i: number, depth: number): PatchValue {
  if (depth > 32) throw malformed(i, 'its value nests too deep');
  const keys = Object.keys(p).filter((k) => k.startsWith('value') || k.startsWith('_value') || k === 'resource' || k === 'part');
  if (keys.some((k) => k.startsWith('_value'))) throw malformed(i, 'extensions on a primitive value (_value[x]) are not supported');
  if (keys.length !== 1) throw malformed(i, 'its value must be one value[x], a resource or parts');
  const key = keys[0] as string;
  if (key === 'resource') {
    if (!isObject(p.resource) || typeof p.resource.resourceType !== 'string') throw malformed(i, 'its value resource is not a resource');
    return { type: 'Resource', json: p.resource };
  }
  if (key === 'part') {
    if (!Array.isArray(p.part) || p.part.length === 0) throw malformed(i, 'its value parts must be a non-empty list');
    return {
      parts: p.part.map((q: unknown) => {
        if (!isObject(q) || typeof q.name !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(q.name)) throw malformed(i, 'each part of its value needs the name of an element');
        return { name: q.name, value: parseValue(q, i, depth + 1) };
      }),
    };
  }
  return { type: typeOfValueKey(key), json: p[key] };
}

const compiled = new Map<string, (resource: unknown) => unknown[]>();

/** The path, compiled once (a syntax error is a 400). Nodes keep where they are in the resource (resolveInternalTypes: false). */
function compilePath(path: string, i: number): void {
  if (compiled.has(path)) return;
  if (REGEX_FUNCTIONS.test(path)) throw malformed(i, 'its path uses a regular-expression function, which this server does not evaluate');
  try {
    // trace() would write the values it meets to the console: sent nowhere instead.
    const fn = fhirpath.compile(path, r4model, { resolveInternalTypes: false, traceFn: () => undefined });
    compiled.set(path, (resource: unknown) => fn(resource) as unknown[]);
  } catch {
    throw malformed(i, 'its path is not a valid FHIRPath expression');
  }
  if (compiled.size > 1000) compiled.delete(compiled.keys().next().value as string);
}

/** The body as a FHIRPath Patch (a Parameters of `operation` parameters), or a 400 naming the first bad operation. */
export function parseFhirPathPatch(body: unknown): FhirPathOperation[] {
  if (!isObject(body) || body.resourceType !== 'Parameters') throw new OperationOutcomeError('INVALID', 'A FHIRPath Patch body is a Parameters resource (fhirpatch.html)');
  const params = body.parameter;
  if (!Array.isArray(params) || params.length === 0) throw new OperationOutcomeError('INVALID', 'A FHIRPath Patch holds at least one operation parameter');
  return params.map((raw: unknown, i): FhirPathOperation => {
    if (!isObject(raw) || raw.name !== 'operation' || !Array.isArray(raw.part)) throw malformed(i, 'each parameter must be an operation with parts');
    const parts = new Map<string, Json>();
    for (const part of raw.part as unknown[]) {
      if (!isObject(part) || typeof part.name !== 'string') throw malformed(i, 'each part needs a name');
      if (parts.has(part.name)) throw malformed(i, 'a part is given twice');
      parts.set(part.name, part);
    }
    const type = parts.get('type')?.valueCode;
    if (typeof type !== 'string' || !(type in PARTS)) throw malformed(i, 'its type must be add, insert, delete, replace or move');
    const wanted = PARTS[type as OperationType];
    for (const name of parts.keys()) if (!wanted.includes(name)) throw malformed(i, `a ${type} operation takes the parts ${wanted.join(', ')} only`);
    for (const name of wanted) if (!parts.has(name)) throw malformed(i, `a ${type} operation needs a ${name}`);
    const path = parts.get('path')?.valueString;
    if (typeof path !== 'string' || path.trim() === '') throw malformed(i, 'its path must be a valueString holding a FHIRPath expression');
    compilePath(path, i);
    const integer = (name: string): number => {
      const v = parts.get(name)?.valueInteger;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw malformed(i, `its ${name} must be a valueInteger of 0 or more`);
      return v;
    };
    const value = (): PatchValue => parseValue(parts.get('value') as Json, i, 0);
    switch (type as OperationType) {
      case 'add': {
        const name = parts.get('name')?.valueString;
        if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw malformed(i, 'its name must be a valueString naming an element');
        return { index: i, type: 'add', path, name, value: value() };
      }
      case 'insert':
        return { index: i, type: 'insert', path, at: integer('index'), value: value() };
      case 'delete':
        return { index: i, type: 'delete', path };
      case 'replace':
        return { index: i, type: 'replace', path, value: value() };
      case 'move':
        return { index: i, type: 'move', path, source: integer('source'), destination: integer('destination') };
    }
  });
}

/** Where a selected element is: its parent object, its JSON property and index, and its definition there. */
interface Location {
  readonly parent: Json;
  readonly key: string;
  readonly index: number | null;
  /** The path of the parent's elements (`Patient`, `Patient.contact`, `HumanName`). */
  readonly owner: string;
  readonly element: ElementDefinition;
  readonly type: string | undefined;
}

/** A node the engine returns with resolveInternalTypes: false. */
interface EngineNode {
  readonly data: unknown;
  readonly parentResNode: EngineNode | null;
  readonly propName: string | null;
  readonly index: number | null;
}

function isNode(v: unknown): v is EngineNode {
  return isObject(v) && 'parentResNode' in v && 'propName' in v && 'data' in v;
}

/** The path of the elements of a value, of an element of a type (a resource's own type for `Resource`). */
function ownerOf(element: ElementDefinition, type: string | undefined, value: unknown): string | undefined {
  if (type === 'Resource' && isObject(value) && typeof value.resourceType === 'string') return value.resourceType;
  return childrenPath(element, type);
}

/** The JSON property of `parent` the engine's `propName` is (a choice element's name plus the suffix of the type it holds). */
function propertyOf(owner: string, parent: Json, propName: string): { key: string; element: ElementDefinition; type: string | undefined } | undefined {
  const direct = elementOfProperty(owner, propName);
  if (direct && (propName in parent || `_${propName}` in parent)) return { key: propName, ...direct };
  const element = childElements(owner).find((e) => e.choice && e.name === propName);
  const type = element?.types.find((t) => `${propName}${typeSuffix(t)}` in parent || `_${propName}${typeSuffix(t)}` in parent);
  return element && type !== undefined ? { key: `${propName}${typeSuffix(type)}`, element, type } : undefined;
}

/** The companion `_key` of a primitive (its id and extensions), aligned with `key` when both are lists. */
function companion(parent: Json, key: string): unknown {
  return parent[`_${key}`];
}

class Patcher {
  readonly #doc: Json;
  readonly #i: number;

  constructor(doc: Json, i: number) {
    this.#doc = doc;
    this.#i = i;
  }

  /** The elements of the resource the path selects, each located (the resource itself: null). */
  select(path: string): Array<Location | null> {
    let result: unknown[];
    try {
      result = (compiled.get(path) as (r: unknown) => unknown[])(this.#doc);
    } catch {
      // The engine's message quotes what it met: never passed on.
      throw cannotApply(this.#i, 'its path cannot be evaluated on the resource');
    }
    return result.map((n) => this.#locate(n));
  }

  #locate(n: unknown): Location | null {
    if (!isNode(n)) throw cannotApply(this.#i, 'its path selects something that is not an element of the resource');
    const chain: EngineNode[] = [];
    for (let at: EngineNode | null = n; at !== null; at = at.parentResNode) chain.unshift(at);
    const [root, ...steps] = chain;
    if (root?.data !== this.#doc || root.propName !== null) throw cannotApply(this.#i, 'its path selects something that is not an element of the resource');
    if (steps.length === 0) return null;
    let holder: Json = this.#doc;
    let owner = String(this.#doc.resourceType);
    for (const [s, step] of steps.entries()) {
      const prop = step.propName === null ? undefined : propertyOf(owner, holder, step.propName);
      if (!prop) throw cannotApply(this.#i, 'its path selects something that is not an element of the resource');
      const location: Location = { parent: holder, key: prop.key, index: step.index, owner, element: prop.element, type: prop.type };
      if (s === steps.length - 1) return location;
      const value = this.#valueAt(location);
      // Below a primitive (its extension, its id): its companion `_key` object holds them.
      const next = isObject(value) ? value : step.index === null ? companion(holder, prop.key) : (companion(holder, prop.key) as unknown[] | undefined)?.[step.index];
      const nextOwner = ownerOf(prop.element, prop.type, value);
      if (!isObject(next) || nextOwner === undefined) throw cannotApply(this.#i, 'its path selects something that is not an element of the resource');
      holder = next;
      owner = nextOwner;
    }
    return null;
  }

  #valueAt(l: Location): unknown {
    const v = l.parent[l.key];
    return l.index === null ? v : Array.isArray(v) ? (v as unknown[])[l.index] : undefined;
  }

  /** Exactly one element (the resource itself not allowed). */
  one(path: string, what: string): Location {
    const found = this.select(path);
    if (found.length === 0) throw cannotApply(this.#i, 'its path selects no element');
    if (found.length > 1) throw cannotApply(this.#i, `its path selects several elements; ${what}`);
    const [l] = found;
    if (!l) throw cannotApply(this.#i, 'its path selects the resource itself');
    return l;
  }

  /** The whole list a path selects (`Patient.identifier`): its parent and property; an empty list is found through its parent (`Patient`). */
  list(path: string): { parent: Json; key: string; owner: string; element: ElementDefinition; length: number } {
    const found = this.select(path);
    if (found.length === 0) {
      const m = /^(.+)\.([A-Za-z][A-Za-z0-9]*)$/.exec(path.trim());
      if (m?.[1] !== undefined && m[2] !== undefined) {
        compilePath(m[1], this.#i);
        const parents = this.select(m[1]);
        const [p] = parents;
        if (parents.length === 1) {
          const parent = p === null ? this.#doc : this.#valueAt(p as Location);
          const owner = p === null || p === undefined ? String(this.#doc.resourceType) : ownerOf(p.element, p.type, parent);
          const element = owner === undefined ? undefined : elementOfProperty(owner, m[2]);
          if (isObject(parent) && owner !== undefined && element?.element.repeating === true && !element.element.choice)
            return { parent, key: m[2], owner, element: element.element, length: 0 };
        }
      }
      throw cannotApply(this.#i, 'its path selects no list');
    }
    const first = found[0];
    if (!first || first.index === null) throw cannotApply(this.#i, 'its path does not select a list');
    const all = first.parent[first.key] as unknown[];
    if (found.some((l) => l === null || l.parent !== first.parent || l.key !== first.key) || found.length !== all.length)
      throw cannotApply(this.#i, 'its path does not select a whole list');
    return { parent: first.parent, key: first.key, owner: first.owner, element: first.element, length: all.length };
  }

  /** The JSON of a value for an element (and the JSON property it takes there: a choice's name plus the value's type). */
  json(value: PatchValue, element: ElementDefinition, name: string, depth = 0): { key: string; json: unknown } {
    if ('json' in value) {
      if (element.choice) {
        const type = element.types.find((t) => t === value.type);
        if (type === undefined) throw cannotApply(this.#i, 'its value is not of a type the element takes');
        return { key: `${element.name}${typeSuffix(type)}`, json: structuredClone(value.json) };
      }
      return { key: name, json: structuredClone(value.json) };
    }
    // Parts: a new element of a backbone or data type, each part one of its elements.
    const [type] = element.types;
    const owner = element.types.length === 1 ? childrenPath(element, type) : undefined;
    if (owner === undefined || (type !== undefined && isPrimitiveType(type))) throw cannotApply(this.#i, 'its value parts do not fit the element');
    const out: Json = {};
    for (const part of value.parts) {
      const child = childElements(owner).find((e) => e.name === part.name) ?? elementOfProperty(owner, part.name)?.element;
      if (!child) throw cannotApply(this.#i, 'a part of its value names no element there');
      if (depth > 32) throw cannotApply(this.#i, 'its value nests too deep');
      const { key, json } = this.json(part.value, child, part.name, depth + 1);
      if (child.repeating) out[key] = [...((out[key] as unknown[] | undefined) ?? []), ...(Array.isArray(json) ? json : [json])];
      else if (key in out) throw cannotApply(this.#i, 'its value gives a single element twice');
      else out[key] = json;
    }
    return { key: name, json: out };
  }
}

/** Removes item `index` of a list property and of its companion `_key` list (an emptied list is pruned after). */
function spliceOut(parent: Json, key: string, index: number): void {
  (parent[key] as unknown[]).splice(index, 1);
  const extra = companion(parent, key);
  if (Array.isArray(extra)) extra.splice(index, 1);
}

/** Inserts at `index` of a list property, keeping its companion `_key` list aligned. */
function spliceIn(parent: Json, key: string, index: number, value: unknown): void {
  const list = (parent[key] ??= []) as unknown[];
  list.splice(index, 0, value);
  const extra = companion(parent, key);
  if (Array.isArray(extra)) extra.splice(index, 0, null);
}

/** An object or list left with nothing in it (in a companion list, null items are nothing). */
function empty(v: unknown, companion: boolean): boolean {
  return (isObject(v) && Object.keys(v).length === 0) || (Array.isArray(v) && v.every((x) => companion && x === null));
}

/**
 * Removes what a deletion left empty under `value`: FHIR JSON has no empty objects or lists. In a
 * primitive list's companion (`_given`) an emptied item becomes null, keeping the two lists aligned; in
 * any other list it is removed.
 */
function prune(value: Json): void {
  for (const [k, v] of Object.entries(value)) {
    const companionList = k.startsWith('_');
    if (isObject(v)) prune(v);
    else if (Array.isArray(v)) {
      for (const x of v) if (isObject(x)) prune(x);
      value[k] = companionList ? v.map((x) => (empty(x, true) ? null : x)) : v.filter((x) => !(isObject(x) && empty(x, false)));
    }
    if (empty(value[k], companionList)) Reflect.deleteProperty(value, k);
  }
}

/**
 * The resource with the operations applied, in order (the input is not changed). An operation that
 * cannot be applied to this resource is a 422; the patched resource keeps its resourceType and id (else
 * 400).
 */
export function applyFhirPathPatch<T extends { resourceType: string; id?: string }>(resource: T, operations: readonly FhirPathOperation[]): T {
  const doc = structuredClone(resource) as unknown as Json;
  for (const op of operations) {
    const p = new Patcher(doc, op.index);
    switch (op.type) {
      case 'add': {
        const found = p.select(op.path);
        if (found.length !== 1) throw cannotApply(op.index, found.length === 0 ? 'its path selects no element' : 'its path selects several elements; add needs one');
        const [l] = found;
        const target = l === null || l === undefined ? doc : l.parent[l.key];
        const at = l === null || l === undefined ? target : l.index === null ? target : (target as unknown[])[l.index];
        const owner = l === null || l === undefined ? String(doc.resourceType) : ownerOf(l.element, l.type, at);
        if (!isObject(at) || owner === undefined) throw cannotApply(op.index, 'its path selects a primitive value, which takes no element');
        const element = childElements(owner).find((e) => e.name === op.name) ?? elementOfProperty(owner, op.name)?.element;
        if (!element) throw cannotApply(op.index, 'its name is not an element there');
        const { key, json } = p.json(op.value, element, op.name);
        if (element.repeating) {
          spliceIn(at, key, Array.isArray(at[key]) ? (at[key] as unknown[]).length : 0, json);
        } else {
          const taken = element.choice ? element.types.some((t) => `${element.name}${typeSuffix(t)}` in at) : key in at;
          if (taken) throw cannotApply(op.index, 'the element already has a value (replace it instead)');
          at[key] = json;
        }
        break;
      }
      case 'insert': {
        const list = p.list(op.path);
        if (op.at > list.length) throw cannotApply(op.index, 'its index is beyond the end of the list');
        spliceIn(list.parent, list.key, op.at, p.json(op.value, list.element, list.key).json);
        break;
      }
      case 'delete': {
        const found = p.select(op.path);
        if (found.length === 0) break;
        if (found.length > 1) throw cannotApply(op.index, 'its path selects several elements; only one can be deleted');
        const [l] = found;
        if (!l) throw cannotApply(op.index, 'its path selects the resource itself');
        if (l.index !== null) spliceOut(l.parent, l.key, l.index);
        else {
          Reflect.deleteProperty(l.parent, l.key);
          Reflect.deleteProperty(l.parent, `_${l.key}`);
        }
        // FHIR JSON has no empty objects or lists: what the deletion emptied goes too (`_birthDate` of its last extension).
        prune(doc);
        break;
      }
      case 'replace': {
        const l = p.one(op.path, 'replace needs one');
        const { key, json } = p.json(op.value, l.element, l.key);
        if (l.index !== null) {
          (l.parent[l.key] as unknown[])[l.index] = json;
        } else {
          // A choice may change type (valueString → valueQuantity); a primitive keeps its id and extensions (`_key`).
          if (key !== l.key) {
            Reflect.deleteProperty(l.parent, l.key);
            Reflect.deleteProperty(l.parent, `_${l.key}`);
          }
          l.parent[key] = json;
        }
        break;
      }
      case 'move': {
        const list = p.list(op.path);
        if (op.source >= list.length || op.destination >= list.length) throw cannotApply(op.index, 'its source or destination is beyond the end of the list');
        const extra = companion(list.parent, list.key);
        const moved = (list.parent[list.key] as unknown[]).splice(op.source, 1)[0];
        (list.parent[list.key] as unknown[]).splice(op.destination, 0, moved);
        if (Array.isArray(extra)) extra.splice(op.destination, 0, extra.splice(op.source, 1)[0] ?? null);
        break;
      }
    }
  }
  if (doc.resourceType !== resource.resourceType || doc.id !== resource.id)
    throw new OperationOutcomeError('INVALID', 'A FHIRPath Patch may not change the resourceType or id of the resource');
  return doc as unknown as T;
}
