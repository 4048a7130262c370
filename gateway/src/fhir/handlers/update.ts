/** update (`PUT [base]/Type/id`): a new version of a resource that is there (no update-as-create); If-Match applies. */
import { asPreferred, bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, needsJson, withVersion } from './request';

export async function update(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  needsJson(req);
  const updated = await ctx.resources.update(bind(ctx, req, type, 'update'), type, id, req.body, req.headers?.ifMatch);
  return asPreferred(req, withVersion(200, updated), 'The resource was updated: its ETag names the new version');
}
