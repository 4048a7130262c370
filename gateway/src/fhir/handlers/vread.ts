/** vread (`GET [base]/Type/id/_history/vid`): one version, through the enforcement point. */
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, withVersion } from './request';

export async function vread(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id, vid] = [req.type ?? '', req.id ?? '', req.versionId ?? ''];
  checkIds(type, id, vid);
  return withVersion(200, await ctx.resources.vread(bind(ctx, req, type, 'read'), type, id, vid));
}
