/**
 * The top-level elements of each R4 resource type, from the spec's StructureDefinitions
 * (model/element-definitions.ts): which are in the summary, mandatory (min ≥ 1) or modifiers. What
 * `_summary` and `_elements` keep.
 */
import { childElements, type ElementDefinition, elementOfProperty as elementAt } from './element-definitions';

export type ElementInfo = ElementDefinition;

/** The top-level elements of a resource type (empty for a type the spec does not define). */
export function elementsOf(resourceType: string): readonly ElementInfo[] {
  return childElements(resourceType);
}

/** The element a JSON property of a resource belongs to (`valueQuantity` → value, `_birthDate` → birthDate). */
export function elementOfProperty(resourceType: string, property: string): ElementInfo | undefined {
  return elementAt(resourceType, property)?.element;
}
