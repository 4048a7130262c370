/**
 * patch (`PATCH [base]/Type/id`): a JSON Patch (RFC 6902, `application/json-patch+json`), a JSON Merge
 * Patch (RFC 7396, `application/merge-patch+json`) or a FHIRPath Patch (a Parameters,
 * `application/fhir+json`) of the current version, written as an update.
 */
import { OperationOutcomeError } from '../../errors';
import { JSON_PATCH_MEDIA_TYPE } from '../json-patch';
import { MERGE_PATCH_MEDIA_TYPE } from '../merge-patch';
import { fhirPathPatch, jsonPatch, mergePatch, type PatchDocument } from '../patch-document';
import { asPreferred, bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, withVersion } from './request';

export const PATCHED = 'The resource was patched: its ETag names the new version';

/** The request's patch, by its media type: 415 for any other. */
export function patchOf(req: FhirRequest): PatchDocument {
  if (req.bodyFormat === 'json-patch') return jsonPatch(req.body);
  if (req.bodyFormat === 'merge-patch') return mergePatch(req.body);
  if (req.bodyFormat === 'fhir-json') return fhirPathPatch(req.body);
  throw new OperationOutcomeError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Send the patch as ${JSON_PATCH_MEDIA_TYPE} (JSON Patch, RFC 6902), ${MERGE_PATCH_MEDIA_TYPE} (JSON Merge Patch, RFC 7396) or application/fhir+json (a FHIRPath Patch Parameters)`,
  );
}

export async function patch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  const who = bind(ctx, req, type, 'update');
  // Who may not make the write is told so before its patch is read.
  ctx.resources.assertMayWrite(who, 'update', type);
  return asPreferred(req, withVersion(200, await ctx.resources.patch(who, type, id, patchOf(req), req.headers?.ifMatch)), PATCHED);
}
