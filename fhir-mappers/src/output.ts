import type { Bundle, BundleEntry, FhirResource } from 'fhir/r4';
import { MappingError } from './errors';
import { validateResource } from './validate';

/** Options every mapper accepts. */
export interface OutputOptions {
  /**
   * Validate the produced Bundle with validateResource before returning it (default true). A mapper
   * output that is not valid R4 is then a MappingError (UNMAPPABLE) naming the FHIR element, never a
   * Bundle the gateway would have to reject.
   */
  validate?: boolean;
}

/**
 * A PUT under the resource's stable id. `createOnly` adds `ifNoneMatch: "*"` (HTTP If-None-Match: *):
 * create it if the receiver does not hold it yet, never replace what it holds.
 */
export function entryFor(resource: FhirResource & { id: string }, createOnly = false): BundleEntry {
  return {
    fullUrl: `urn:uuid:${resource.id}`,
    resource,
    request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}`, ...(createOnly ? { ifNoneMatch: '*' } : {}) },
  };
}

/** A transaction Bundle of PUTs; resources whose `Type/id` is in `createOnly` are create-only entries. */
export function transaction(resources: ReadonlyArray<FhirResource & { id: string }>, createOnly: ReadonlySet<string> = new Set()): Bundle {
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map((r) => entryFor(r, createOnly.has(`${r.resourceType}/${r.id}`))) };
}

export function checkOutput(bundle: Bundle, options: OutputOptions | undefined): Bundle {
  if (options?.validate === false) return bundle;
  const errors = validateResource(bundle).filter((i) => i.severity === 'error');
  const first = errors[0];
  if (first) {
    throw new MappingError(
      'UNMAPPABLE',
      first.expression,
      `the mapped resource would not be valid FHIR R4 (${first.diagnostics})`,
      errors.map((e) => ({ location: e.expression, message: e.diagnostics })),
    );
  }
  return bundle;
}

export function ref(id: string): { reference: string } {
  return { reference: `urn:uuid:${id}` };
}
