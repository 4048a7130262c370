/**
 * create (`POST [base]/Type`) and conditional create (`If-None-Exist`, or a Bundle entry's
 * `ifNoneExist`): none matches → created (201); one matches → nothing written, that one named, not
 * disclosed (200 with an OperationOutcome); several → 412.
 */
import { asPreferred, bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest, located, needsJson } from './request';

const CREATED = 'The resource was created: its Location and ETag name it';

/** The query part of an If-None-Exist header (`Patient?identifier=x` and `identifier=x` alike). */
export function ifNoneExistQuery(header: string): string {
  return header.replace(/^[^?]*\?/, '');
}

export async function create(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const type = req.type ?? '';
  checkIds(type);
  needsJson(req);
  const ifNoneExist = req.headers?.ifNoneExist;
  if (ifNoneExist !== undefined) {
    const outcome = await ctx.resources.conditionalCreate(bind(ctx, req, type, 'create'), type, req.body, ifNoneExist);
    if ('existing' in outcome) {
      // One match: nothing written; named, not disclosed (read it to see it, through consent).
      const { id, versionId } = outcome.existing;
      return {
        status: 200,
        info: {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'information', code: 'duplicate', diagnostics: 'If-None-Exist matched an existing resource: nothing was written' }],
        },
        version: { versionId: String(versionId) },
        location: `${type}/${id}/_history/${versionId}`,
      };
    }
    return asPreferred(req, located(201, type, outcome.created), CREATED);
  }
  return asPreferred(req, located(201, type, await ctx.resources.create(bind(ctx, req, type, 'create'), type, req.body)), CREATED);
}
