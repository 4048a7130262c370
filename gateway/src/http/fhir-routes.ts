/**
 * The FHIR interactions over HTTP: each route turns the express request into a FhirRequest, calls its
 * handler (fhir/handlers/) and writes the FhirOutcome back. Nothing here decides access, reads
 * parameters or chooses a status.
 */
import type { Request, Response, Router } from 'express';
import { requireAuth } from '../auth/middleware';
import * as handlers from '../fhir/handlers';
import { type BodyFormat, type FhirContext, type FhirOutcome, type FhirRequest, ifNoneExistQuery } from '../fhir/handlers';
import { JSON_PATCH_MEDIA_TYPE } from '../fhir/json-patch';
import { MERGE_PATCH_MEDIA_TYPE } from '../fhir/merge-patch';
import { rawQuery } from '../fhir/search-params';
import { sendResource, sendStreamedBundle } from './respond';

type Handler = (ctx: FhirContext, req: FhirRequest) => Promise<FhirOutcome>;
type Params = { type?: string; id?: string; vid?: string };

/** What the Content-Type says the body is. */
function bodyFormat(req: Request): BodyFormat {
  if (req.is(['application/json', 'application/fhir+json'])) return 'fhir-json';
  if (req.is(MERGE_PATCH_MEDIA_TYPE)) return 'merge-patch';
  return req.is(JSON_PATCH_MEDIA_TYPE) ? 'json-patch' : 'other';
}

/** express request → FhirRequest. */
export function fhirRequest(req: Request<Params>): FhirRequest {
  const at = req.originalUrl.indexOf('?');
  const ifMatch = req.get('if-match');
  const ifNoneExist = req.get('if-none-exist');
  const prefer = req.get('prefer');
  const ifNoneMatch = req.get('if-none-match');
  const ifModifiedSince = req.get('if-modified-since');
  return {
    auth: requireAuth(req),
    ...(req.params.type !== undefined ? { type: req.params.type } : {}),
    ...(req.params.id !== undefined ? { id: req.params.id } : {}),
    ...(req.params.vid !== undefined ? { versionId: req.params.vid } : {}),
    query: rawQuery(req.query),
    queryString: at < 0 ? '' : req.originalUrl.slice(at + 1),
    headers: {
      ...(ifMatch !== undefined ? { ifMatch } : {}),
      ...(ifNoneExist !== undefined ? { ifNoneExist: ifNoneExistQuery(ifNoneExist) } : {}),
      ...(prefer !== undefined ? { prefer } : {}),
      ...(ifNoneMatch !== undefined ? { ifNoneMatch } : {}),
      ...(ifModifiedSince !== undefined ? { ifModifiedSince } : {}),
    },
    body: req.body as unknown,
    bodyFormat: bodyFormat(req),
  };
}

/**
 * FhirOutcome → the response: status, Location, ETag, Last-Modified and the resource (or
 * OperationOutcome); a Bundle whose entries come one at a time is sent as they come.
 */
export async function sendOutcome(res: Response, ctx: Pick<FhirContext, 'baseUrl' | 'log'>, out: FhirOutcome): Promise<void> {
  if (out.location !== undefined) res.setHeader('Location', `${ctx.baseUrl}/${out.location}`);
  if (out.version) res.setHeader('ETag', `W/"${out.version.versionId}"`);
  if (out.version?.lastUpdated !== undefined) res.setHeader('Last-Modified', new Date(out.version.lastUpdated).toUTCString());
  const body = out.resource ?? out.info;
  if (out.entries !== undefined) await sendStreamedBundle(res, out.status, out.resource ?? {}, out.entries, ctx.log);
  else if (body === undefined) res.status(out.status).end();
  else sendResource(res, out.status, body);
}

/**
 * Registers the FHIR interactions and operations on `fhir` (after the Consent, AuditEvent and
 * Patient operations of app.ts, which these patterns would otherwise take), in the order that keeps
 * `_history`, `$verify` and `$everything` from being read as ids.
 */
export function registerFhirRoutes(fhir: Router, ctx: FhirContext): void {
  const route =
    (handler: Handler) =>
    async (req: Request<Params>, res: Response): Promise<void> => {
      await sendOutcome(res, ctx, await handler(ctx, fhirRequest(req)));
    };
  fhir.get('/Patient/$exchange', route(handlers.exchange));
  fhir.post('/Patient/:id/$erase', route(handlers.erase));
  fhir.get('/Patient/:id/$everything', route(handlers.everything));
  fhir.get('/:type/:id/$verify', route(handlers.verify));
  // History of every type the caller may read (registered before /:type, which would take `_history` for a type).
  fhir.get('/_history', route(handlers.historySystem));
  fhir.get('/:type/_history', route(handlers.historyType));
  fhir.get('/:type/:id/_history/:vid', route(handlers.vread));
  fhir.get('/:type/:id/_history', route(handlers.historyInstance));
  fhir.get('/:type/:id', route(handlers.read));
  fhir.get('/:type', route(handlers.search));
  // Bundle transaction (all or nothing, one ledger transaction) and batch (each entry on its own).
  fhir.post('/', route(handlers.batch));
  fhir.post('/:type', route(handlers.create));
  fhir.put('/:type/:id', route(handlers.update));
  fhir.put('/:type', route(handlers.conditionalUpdate));
  fhir.delete('/:type', route(handlers.conditionalDelete));
  fhir.patch('/:type/:id', route(handlers.patch));
  fhir.patch('/:type', route(handlers.conditionalPatch));
  fhir.delete('/:type/:id', route(handlers.deleteResource));
}
