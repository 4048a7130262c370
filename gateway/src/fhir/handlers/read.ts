/**
 * read (`GET [base]/Type/id`): the current version, through the enforcement point. A conditional read
 * (If-None-Match, If-Modified-Since) is answered 304 with the version only after that read was allowed
 * and recorded: a record the caller may not see is a 404 whatever the headers.
 */
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, notModified, versionOf, withVersion } from './request';

export async function read(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  const resource = await ctx.resources.read(bind(ctx, req, type, 'read'), type, id);
  if (notModified(req, resource)) {
    const version = versionOf(resource);
    return { status: 304, ...(version ? { version } : {}) };
  }
  return withVersion(200, resource);
}
