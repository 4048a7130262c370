/** `Patient/:id/$everything`: the patient's records the caller may see, as a searchset Bundle. */
import { searchset } from '../bundle';
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

export async function everything(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const id = req.id ?? '';
  checkIds('Patient', id);
  const resources = await ctx.resources.everything(bind(ctx, req, 'Patient', 'read'), id);
  return { status: 200, resource: searchset({ baseUrl: ctx.baseUrl, path: `/Patient/${id}/$everything`, query: {}, resources, total: resources.length }) };
}
