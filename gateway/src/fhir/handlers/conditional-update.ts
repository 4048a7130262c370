/**
 * conditional update (`PUT [base]/Type?query`, a Bundle's `PUT Type?query`): no match → created with a
 * server id (201), one → that resource updated (200), several → 412 (resource-service.ts).
 */
import { conditionalQuery } from './conditional';
import { asPreferred, bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, located, needsJson, withVersion } from './request';

export async function conditionalUpdate(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const type = req.type ?? '';
  checkIds(type);
  const query = conditionalQuery(req, 'An update', 'PUT');
  needsJson(req);
  // It may create: the caller needs the scopes of both, before anything is matched.
  bind(ctx, req, type, 'create');
  const outcome = await ctx.resources.conditionalUpdate(bind(ctx, req, type, 'update'), type, query, req.body, req.headers?.ifMatch);
  return outcome.created
    ? asPreferred(req, located(201, type, outcome.resource), 'The resource was created: its Location and ETag name it')
    : asPreferred(req, withVersion(200, outcome.resource), 'The resource was updated: its ETag names the new version');
}
