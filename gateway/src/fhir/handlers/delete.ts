/** delete (`DELETE [base]/Type/id`): a deletion version; deleting what is not there succeeds too (204). */
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

export async function deleteResource(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  await ctx.resources.delete(bind(ctx, req, type, 'delete'), type, id, req.headers?.ifMatch);
  return { status: 204 };
}
