/**
 * The patch formats of `PATCH [base]/Type/id` (http.html#patch): JSON Patch (RFC 6902,
 * json-patch.ts), JSON Merge Patch (RFC 7396, merge-patch.ts) and FHIRPath Patch (a Parameters,
 * fhirpath-patch.ts). A patch is parsed (400 when
 * malformed) before the record is looked at, and applied to its current version afterwards.
 */
import type { Operation } from 'fast-json-patch';
import { OperationOutcomeError } from '../errors';
import { applyFhirPathPatch, type FhirPathOperation, parseFhirPathPatch } from './fhirpath-patch';
import { applyJsonPatch, JSON_PATCH_MEDIA_TYPE, parseJsonPatch } from './json-patch';
import { applyMergePatch, parseMergePatch } from './merge-patch';

export type PatchDocument =
  | { readonly format: 'json-patch'; readonly operations: readonly Operation[] }
  | { readonly format: 'merge-patch'; readonly patch: Readonly<Record<string, unknown>> }
  | { readonly format: 'fhirpath-patch'; readonly operations: readonly FhirPathOperation[] };

/** A JSON Patch document (`application/json-patch+json`). */
export function jsonPatch(body: unknown): PatchDocument {
  return { format: 'json-patch', operations: parseJsonPatch(body) };
}

/** A JSON Merge Patch document (`application/merge-patch+json`). */
export function mergePatch(body: unknown): PatchDocument {
  return { format: 'merge-patch', patch: parseMergePatch(body) };
}

/** A FHIRPath Patch (`application/fhir+json`, a Parameters); a JSON Patch array sent as FHIR JSON is a 415 naming its media type. */
export function fhirPathPatch(body: unknown): PatchDocument {
  if (Array.isArray(body))
    throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', `Send a JSON Patch as ${JSON_PATCH_MEDIA_TYPE}; as FHIR JSON a patch is a FHIRPath Patch Parameters`);
  return { format: 'fhirpath-patch', operations: parseFhirPathPatch(body) };
}

/** The resource with the patch applied (the input is not changed). */
export function applyPatch<T extends { resourceType: string; id?: string }>(resource: T, patch: PatchDocument): T {
  switch (patch.format) {
    case 'json-patch':
      return applyJsonPatch(resource, patch.operations);
    case 'merge-patch':
      return applyMergePatch(resource, patch.patch);
    case 'fhirpath-patch':
      return applyFhirPathPatch(resource, patch.operations);
  }
}
