import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import pino, { type Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config';
import { capabilityStatement } from '../fhir/capability';
import { OperationOutcomeError } from '../fhir/outcome';
import type { ResourceService } from '../fhir/resource-service';
import type { LedgerClient } from '../ledger/ledger-client';
import type { ResourceStore } from '../store/store';

export interface AppDeps {
  readonly config: Pick<Config, 'baseUrl'>;
  readonly log: Logger;
  readonly resources: ResourceService;
  readonly ledger: LedgerClient;
  readonly store: ResourceStore;
  readonly version?: string;
}

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

function sendResource(res: Response, status: number, resource: Record<string, unknown>): void {
  res.status(status).type(FHIR_JSON).send(JSON.stringify(resource));
}

function meta(resource: Record<string, unknown>): { versionId: string; lastUpdated: string } {
  const m = resource.meta as { versionId: string; lastUpdated: string };
  return m;
}

function checkIds(type: string, id?: string, vid?: string): void {
  if (!TYPE.test(type)) throw new OperationOutcomeError('UNSUPPORTED', 'Unknown resource type in the URL');
  if (id !== undefined && !ID.test(id)) throw new OperationOutcomeError('INVALID', 'The resource id in the URL is not a valid FHIR id');
  if (vid !== undefined && !/^[0-9]{1,9}$/.test(vid)) throw new OperationOutcomeError('INVALID', 'The version id in the URL is not valid');
}

/** The Express app: adapts HTTP to the FHIR services; every error becomes an OperationOutcome. */
export function createApp(deps: AppDeps): express.Express {
  const { config, log, resources, ledger, store } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(
    pinoHttp({
      logger: log,
      genReqId: (req, res) => {
        const id = randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      // Path only: query strings can carry PHI (search parameters); bodies are never logged.
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, path: req.url.split('?')[0] }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
        // Our own errors are already explained (and PHI-free): code and message, no stack.
        err: (err: Error) => (err instanceof OperationOutcomeError ? { type: err.code, message: err.message } : pino.stdSerializers.err(err)),
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    }),
  );

  app.get('/healthz', async (_req, res) => {
    const checks: Record<string, { ok: boolean; ms?: number; error?: string }> = {};
    const t0 = Date.now();
    try {
      store.ping();
      checks.store = { ok: true };
    } catch {
      checks.store = { ok: false, error: 'store unavailable' };
    }
    try {
      await ledger.ping();
      checks.ledger = { ok: true, ms: Date.now() - t0 };
    } catch (err) {
      checks.ledger = { ok: false, error: err instanceof Error ? err.message : 'ledger unavailable' };
    }
    const ok = Object.values(checks).every((c) => c.ok);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks });
  });

  const fhir = express.Router();
  fhir.use(express.json({ type: ['application/json', 'application/fhir+json'], limit: '5mb', strict: true }));

  fhir.get('/metadata', (_req, res) => sendResource(res, 200, capabilityStatement(config.baseUrl, deps.version ?? '0.1.0')));

  fhir.post('/:type', async (req: Request<{ type: string }>, res) => {
    const { type } = req.params;
    checkIds(type);
    if (!req.is(['application/json', 'application/fhir+json'])) {
      throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'Send the resource as application/fhir+json');
    }
    const created = await resources.create(type, req.body);
    const m = meta(created);
    res.setHeader('Location', `${config.baseUrl}/${type}/${String(created.id)}/_history/${m.versionId}`);
    res.setHeader('ETag', `W/"${m.versionId}"`);
    res.setHeader('Last-Modified', new Date(m.lastUpdated).toUTCString());
    sendResource(res, 201, created);
  });

  fhir.get('/:type/:id', async (req: Request<{ type: string; id: string }>, res) => {
    checkIds(req.params.type, req.params.id);
    const resource = await resources.read(req.params.type, req.params.id);
    const m = meta(resource);
    res.setHeader('ETag', `W/"${m.versionId}"`);
    res.setHeader('Last-Modified', new Date(m.lastUpdated).toUTCString());
    sendResource(res, 200, resource);
  });

  fhir.get('/:type/:id/_history/:vid', async (req: Request<{ type: string; id: string; vid: string }>, res) => {
    checkIds(req.params.type, req.params.id, req.params.vid);
    const resource = await resources.vread(req.params.type, req.params.id, req.params.vid);
    const m = meta(resource);
    res.setHeader('ETag', `W/"${m.versionId}"`);
    res.setHeader('Last-Modified', new Date(m.lastUpdated).toUTCString());
    sendResource(res, 200, resource);
  });

  fhir.all('/{*rest}', (req) => {
    throw new OperationOutcomeError('UNSUPPORTED', `${req.method} ${req.baseUrl}${req.path} is not supported by this server (see /fhir/metadata)`);
  });

  app.use('/fhir', fhir);
  app.use((req: Request) => {
    throw new OperationOutcomeError('NOT_FOUND', `${req.method} ${req.path} is not a route of this server`);
  });

  // Every error leaves as an OperationOutcome; internals stay in the log.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = asOutcomeError(err, String(req.id));
    if (e.code === 'INTERNAL') req.log.error({ err: (err as { cause?: unknown }).cause ?? err }, 'internal error');
    res.err = e;
    if (res.headersSent) return;
    res.status(e.status).type(FHIR_JSON).send(JSON.stringify(e.outcome));
  });
  return app;
}

/** Body-parser failures carry a `type`; anything unexpected becomes INTERNAL, naming only the request id. */
function asOutcomeError(err: unknown, requestId: string): OperationOutcomeError {
  if (err instanceof OperationOutcomeError && err.code !== 'INTERNAL') return err;
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  if (type === 'entity.too.large') return new OperationOutcomeError('TOO_LARGE', 'The request body is larger than 5 MB');
  if (type === 'entity.parse.failed') return new OperationOutcomeError('INVALID', 'The request body is not valid JSON');
  if (typeof type === 'string') return new OperationOutcomeError('INVALID', 'The request body could not be read');
  const what = err instanceof OperationOutcomeError ? err.message : 'Internal error';
  return new OperationOutcomeError('INTERNAL', `${what}; quote request id ${requestId} to the operator`);
}
