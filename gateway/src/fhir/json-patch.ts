/**
 * JSON Patch (RFC 6902) on a FHIR resource, for `PATCH [base]/Type/id` with
 * `Content-Type: application/json-patch+json` (http.html#patch), applied with fast-json-patch. The
 * result is an update like any other (validated, If-Match, anchored) — this module only applies the
 * operations. Errors name the operation by index and the reason, never a value or a path's content
 * (either may hold PHI).
 */
import { applyPatch, JsonPatchError, type Operation } from 'fast-json-patch';
import { OperationOutcomeError } from '../errors';

export const JSON_PATCH_MEDIA_TYPE = 'application/json-patch+json';

const OPS: ReadonlySet<string> = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** Why an operation failed, as fast-json-patch names it, in words that carry nothing of the document. */
const REASONS: Readonly<Record<string, string>> = {
  OPERATION_PATH_UNRESOLVABLE: 'its path does not exist in the resource',
  OPERATION_FROM_UNRESOLVABLE: 'its from does not exist in the resource',
  OPERATION_PATH_CANNOT_ADD: 'its path cannot be added to',
  OPERATION_PATH_ILLEGAL_ARRAY_INDEX: 'its path has an illegal array index',
  OPERATION_VALUE_OUT_OF_BOUNDS: 'its array index is out of bounds',
  OPERATION_VALUE_REQUIRED: 'it needs a value',
  OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED: 'its value is not JSON',
  OPERATION_FROM_REQUIRED: 'it needs a from',
  OPERATION_PATH_INVALID: 'its path is not a JSON Pointer',
  OPERATION_OP_INVALID: 'its op is not one of add, remove, replace, move, copy, test',
  OPERATION_NOT_AN_OBJECT: 'it is not an object',
  PROTOTYPE: 'its path names no FHIR element (__proto__, constructor, prototype)',
};

function badOperation(i: number, name: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', `JSON Patch operation ${i}: ${REASONS[name] ?? 'it is not valid'}`);
}

/** The body as a JSON Patch document (an array of operations), or a 400 naming the first bad one. */
export function parseJsonPatch(body: unknown): Operation[] {
  if (!Array.isArray(body) || body.length === 0) throw new OperationOutcomeError('INVALID', 'A JSON Patch body is a non-empty array of operations (RFC 6902)');
  body.forEach((op: unknown, i) => {
    const o = op as { op?: unknown; path?: unknown; from?: unknown } | null;
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw badOperation(i, 'OPERATION_NOT_AN_OBJECT');
    if (typeof o.op !== 'string' || !OPS.has(o.op)) throw badOperation(i, 'OPERATION_OP_INVALID');
    if (typeof o.path !== 'string' || (o.path !== '' && !o.path.startsWith('/'))) throw badOperation(i, 'OPERATION_PATH_INVALID');
    // fast-json-patch bans these too (with a TypeError): no FHIR element has such a name.
    for (const pointer of [o.path, o.from]) if (typeof pointer === 'string' && /\/(__proto__|constructor|prototype)(\/|$)/.test(pointer)) throw badOperation(i, 'PROTOTYPE');
    if ((o.op === 'move' || o.op === 'copy') && (typeof o.from !== 'string' || (o.from !== '' && !o.from.startsWith('/')))) throw badOperation(i, 'OPERATION_FROM_REQUIRED');
    if ((o.op === 'add' || o.op === 'replace' || o.op === 'test') && !('value' in o)) throw badOperation(i, 'OPERATION_VALUE_REQUIRED');
  });
  return body as Operation[];
}

/**
 * The resource with the operations applied (the input is not changed). A failed `test` is a 412 (the
 * resource is not in the state the client expected); an operation that cannot be applied is a 422.
 * The patched resource keeps its resourceType and id (else 400).
 */
export function applyJsonPatch<T extends { resourceType: string; id?: string }>(resource: T, operations: readonly Operation[]): T {
  let patched: T;
  try {
    // validate: each operation checked against the document; no mutation; prototype changes banned.
    patched = applyPatch(structuredClone(resource), operations, true, false, true).newDocument;
  } catch (err) {
    if (!(err instanceof JsonPatchError)) throw err;
    const index = typeof err.index === 'number' ? err.index : 0;
    if (err.name === 'TEST_OPERATION_FAILED') throw new OperationOutcomeError('PRECONDITION_FAILED', `JSON Patch operation ${index}: the test failed; nothing was written`);
    throw new OperationOutcomeError('UNMAPPABLE', `JSON Patch operation ${index} cannot be applied: ${REASONS[err.name] ?? 'it is not valid here'}; nothing was written`);
  }
  if (patched === null || typeof patched !== 'object' || Array.isArray(patched))
    throw new OperationOutcomeError('UNMAPPABLE', 'The JSON Patch does not leave a resource; nothing was written');
  if (patched.resourceType !== resource.resourceType || patched.id !== resource.id) {
    throw new OperationOutcomeError('INVALID', 'A JSON Patch may not change the resourceType or id of the resource');
  }
  return patched;
}
