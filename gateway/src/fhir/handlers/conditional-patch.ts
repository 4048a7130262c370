/** conditional patch (`PATCH [base]/Type?query`): one match → patched (200); none → 404; several → 412 (resource-service.ts). */
import { conditionalQuery } from './conditional';
import { PATCHED, patchOf } from './patch';
import { asPreferred, bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, withVersion } from './request';

export async function conditionalPatch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const type = req.type ?? '';
  checkIds(type);
  const query = conditionalQuery(req, 'A patch', 'PATCH');
  const who = bind(ctx, req, type, 'update');
  ctx.resources.assertMayWrite(who, 'update', type);
  return asPreferred(req, withVersion(200, await ctx.resources.conditionalPatch(who, type, query, patchOf(req), req.headers?.ifMatch)), PATCHED);
}
