/** patch (`PATCH [base]/Type/id`): a JSON Patch (RFC 6902) of the current version, written as an update. */
import { OperationOutcomeError } from '../../errors';
import { JSON_PATCH_MEDIA_TYPE } from '../json-patch';
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, withVersion } from './request';

export async function patch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  if (req.bodyFormat !== 'json-patch')
    throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', `Send the patch as ${JSON_PATCH_MEDIA_TYPE} (RFC 6902); FHIRPath Patch is not supported`);
  return withVersion(200, await ctx.resources.patch(bind(ctx, req, type, 'update'), type, id, req.body, req.headers?.ifMatch));
}
