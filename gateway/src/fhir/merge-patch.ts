/**
 * JSON Merge Patch (RFC 7396) on a FHIR resource, for `PATCH [base]/Type/id` with
 * `Content-Type: application/merge-patch+json`, applied with json-merge-patch. The patch is a JSON
 * object shaped like the resource: a member with a value replaces (an object merges into an object,
 * anything else, a list included, replaces whole), a member that is `null` removes the element. The
 * result is an update like any other (validated, If-Match, anchored): this module only applies it.
 * Errors never name a value or a member (either may hold PHI).
 */
import { apply } from 'json-merge-patch';
import { OperationOutcomeError } from '../errors';

export const MERGE_PATCH_MEDIA_TYPE = 'application/merge-patch+json';

/** Member names no FHIR element has, refused rather than skipped (json-merge-patch stops at them). */
const BANNED = new Set(['__proto__', 'constructor', 'prototype']);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Whether any object in the value (not inside a list, which replaces whole and is validated as part of the result) has a banned member. */
function hasBannedMember(value: unknown): boolean {
  if (!isObject(value)) return false;
  return Object.keys(value).some((k) => BANNED.has(k) || hasBannedMember(value[k]));
}

/** The body as a merge patch: a non-empty JSON object (a whole document that is no object would replace the resource: use PUT). */
export function parseMergePatch(body: unknown): Record<string, unknown> {
  if (!isObject(body) || Object.keys(body).length === 0)
    throw new OperationOutcomeError('INVALID', 'A JSON Merge Patch body is a non-empty JSON object naming the elements to change (RFC 7396)');
  if (hasBannedMember(body)) throw new OperationOutcomeError('INVALID', 'The JSON Merge Patch names a member that is no FHIR element (__proto__, constructor, prototype)');
  return body;
}

/** The resource with the merge patch applied (the input is not changed); it keeps its resourceType and id (else 400). */
export function applyMergePatch<T extends { resourceType: string; id?: string }>(resource: T, patch: Readonly<Record<string, unknown>>): T {
  const patched = apply(structuredClone(resource), structuredClone(patch)) as T;
  if (patched.resourceType !== resource.resourceType || patched.id !== resource.id) {
    throw new OperationOutcomeError('INVALID', 'A JSON Merge Patch may not change the resourceType or id of the resource');
  }
  return patched;
}
