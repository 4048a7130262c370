/**
 * For unit tests only: the ingestion routes with an IngestService that holds the custodian's keyed ids,
 * mounted in front of an app made by createApp (which serves everything else, /fhir reads included).
 * The caller is bound as createApp binds it (bindCaller(requireAuth(req), ...)). Once createApp passes
 * CustodianIds to its own IngestService, tests can use createApp alone.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { requireAuth } from '../auth/middleware';
import { OperationOutcomeError } from '../fhir/outcome';
import { bindCaller } from '../fhir/policy';
import type { IngestService } from './ingest-service';
import { ingestRoutes } from './routes';

export function withIngestRoutes(app: express.Express, deps: { ingest: IngestService; authenticate: RequestHandler; mspId: string }): express.Express {
  const outer = express();
  outer.use('/ingest', ingestRoutes({ ingest: deps.ingest, authenticate: deps.authenticate, scoped: (req) => (type, action) => bindCaller(requireAuth(req), deps.mspId, type, action) }));
  outer.use('/ingest', (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
    const e =
      err instanceof OperationOutcomeError && err.code !== 'INTERNAL'
        ? err
        : typeof type === 'string'
          ? new OperationOutcomeError(type === 'entity.too.large' ? 'TOO_LARGE' : 'INVALID', 'The request body could not be read')
          : new OperationOutcomeError('INTERNAL', `Internal error: ${String(err)}`);
    res.status(e.status).type('application/fhir+json; charset=utf-8').send(JSON.stringify(e.outcome));
  });
  outer.use(app);
  return outer;
}
