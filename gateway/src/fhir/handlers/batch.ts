/**
 * batch and transaction (`POST [base]` with a Bundle): bundle-service.ts processes the entries; a
 * batch's reads, searches and conditional writes go through the handlers of this folder.
 */
import { BundleService } from '../bundle-service';
import { type FhirContext, type FhirOutcome, type FhirRequest, needsJson } from './request';

export async function batch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  needsJson(req);
  return { status: 200, resource: await new BundleService({ context: ctx }).process(req.auth, req.body) };
}
