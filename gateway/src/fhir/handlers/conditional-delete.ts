/** conditional delete (`DELETE [base]/Type?query`): none → 204, nothing to delete; one → deleted; several → 412. */
import { conditionalQuery } from './conditional';
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

export async function conditionalDelete(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const type = req.type ?? '';
  checkIds(type);
  const query = conditionalQuery(req, 'A delete', 'DELETE');
  await ctx.resources.conditionalDelete(bind(ctx, req, type, 'delete'), type, query, req.headers?.ifMatch);
  return { status: 204 };
}
