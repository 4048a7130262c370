/** read (`GET [base]/Type/id`): the current version, through the enforcement point. */
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, withVersion } from './request';

export async function read(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  return withVersion(200, await ctx.resources.read(bind(ctx, req, type, 'read'), type, id));
}
