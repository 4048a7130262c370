import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import pino, { type Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { ScopeAction } from '../auth/scopes';
import { requireAuth } from '../auth/middleware';
import type { AuthContext } from '../auth/types';
import { wwwAuthenticateOf } from '../auth/errors';
import type { Config } from '../config';
import { bindCaller, type Caller, type RelationDeps } from '../fhir/policy';
import type { AuditService } from '../fhir/audit-events';
import { capabilityStatement } from '../fhir/capability';
import type { ConsentService } from '../fhir/consent-service';
import { OperationOutcomeError } from '../errors';
import type { ResourceService } from '../fhir/resource-service';
import { ID } from '../fhir/search-params';
import type { LedgerClient } from '../ledger/ledger-client';
import type { ResourceStore } from '../store/store';
import type { Metrics } from '../metrics';
import type { ErasureService } from '../fhir/erasure';
import type { ExchangeService } from '../exchange/exchange-service';
import { IngestService } from '../ingest/ingest-service';
import { ingestRoutes } from './ingest-routes';
import { registerFhirRoutes } from './fhir-routes';
import { registerAuditRoutes } from './audit-routes';
import { registerStaffRoutes } from './staff-routes';
import { didRoutes } from './did-routes';
import { registerConsentRoutes, registerSignedRevocation } from './consent-routes';
import { FHIR_JSON, sendResource } from './respond';
import type { LedgerViewHealth } from '../view/local-decisions';
import { framedJsonBody, JSON_MEDIA_TYPES, jsonBody } from './body';
import { JSON_PATCH_MEDIA_TYPE } from '../fhir/json-patch';
import { MERGE_PATCH_MEDIA_TYPE } from '../fhir/merge-patch';
import type { CustodianIds } from '../store/custodian-ids';
import { createRateLimiters, type RateLimitOptions } from './rate-limit';
import type { ExportService } from '../fhir/operations/export';
import { exportRoutes } from './export-routes';
import { smartConfiguration } from '../auth/smart-configuration';
import { defaultWebappDir, webappRoutes } from './app-routes';
import type { ReceiptSource } from '../audit/receipt';
import type { BlockSource } from '../view/ledger-view';
import { LargeBodyGate } from './large-body-gate';

export interface AppDeps {
  readonly config: Pick<Config, 'baseUrl' | 'mspId'>;
  readonly log: Logger;
  readonly resources: ResourceService;
  readonly consents: ConsentService;
  readonly audit: AuditService;
  readonly ledger: LedgerClient;
  readonly store: ResourceStore;
  /** The built patient web app served at /app (default: webapp/dist of this checkout). */
  readonly webappDir?: string;
  /** Verifies the bearer token and sets `req.auth`, or passes a 401 OperationOutcomeError on. */
  readonly authenticate: RequestHandler;
  /** Exchange between members (GET /fhir/Patient/$exchange); not offered when absent. */
  readonly exchange?: ExchangeService;
  /** Admission of large bodies (default: two at a time over 5 MB, eight waiting). */
  readonly largeBodies?: LargeBodyGate;
  /** Patient erasure (POST /fhir/Patient/:id/$erase); not offered when absent. */
  readonly erasure?: ErasureService;
  /** Prometheus metrics served at /metrics; none when absent. */
  readonly metrics?: Metrics;
  /** The async audit mode's outbox, reported by /healthz (`checks.outbox`); none in sync mode. */
  readonly outbox?: { health(): Promise<{ ok: boolean; pending: number; error?: string }> };
  readonly version?: string;
  /** The custodian's keyed ids for ingestion (HL7 v2, VR, EHR sync); ingestion of mapped data is refused without it. */
  readonly ids?: CustodianIds;
  /** Binds staff DIDs registered here to their identity-provider subject (see subjectLink). */
  readonly subjectLinkSecret?: Buffer;
  /** `iss` of this organization's identity provider (the subject link covers it). */
  readonly idpIssuer?: string;
  /** Per-identity and per-address request limits (defaults: see rate-limit.ts). */
  readonly rateLimits?: RateLimitOptions;
  /** Bulk Data $export jobs; the export routes answer that it is not offered when absent. */
  readonly exports?: ExportService;
  /** The ledger view, reported by /healthz (`checks.view`: height, lag, freshness and who decides); none when HDX_VIEW=off. */
  readonly ledgerView?: { health(): LedgerViewHealth };
  /**
   * The organization's peer's committed blocks (and the chaincode's namespace): feeds the live access
   * notifications (GET /fhir/AuditEvent/$stream); not offered when absent.
   */
  readonly blocks?: { readonly source: BlockSource; readonly namespace: string; readonly heartbeatMs?: number };
  /**
   * This organization's peer's blocks by transaction and number, and access entries as a requester may
   * see them: audit receipts (GET /fhir/AuditEvent/:eventId/$receipt); not offered when absent.
   */
  readonly receipts?: { readonly source: ReceiptSource; readonly channel: string; readonly chaincode: string };
}

const DID = HDX_DID;

/** The caller bound to this request for one interaction on one type (scope, kind and purpose checked: policy.ts). */
function caller(req: Request, ownMsp: string, resourceType: string, action: ScopeAction): Caller {
  return bindCaller(requireAuth(req), ownMsp, resourceType, action);
}

/** Known words of this server's URL paths; any other segment (an id, a DID) is logged as `:id`. */
const PATH_WORD = /^(|[A-Z][A-Za-z]{1,63}|\$[a-z-]{1,32}|_history|_search|fhir|did|ingest|metadata|healthz|metrics|hl7v2|vr-session)$/;

/** The request path without ids: resource ids and DIDs can be derived from patient identifiers (PHI). */
export function loggablePath(url: string): string {
  return (url.split('?')[0] ?? '')
    .split('/')
    .map((seg) => (PATH_WORD.test(seg) ? seg : ':id'))
    .join('/');
}

/** Largest body anyone else may send to /fhir, as body-parser reads it (5 MiB), and in bytes. */
const COMMON_BODY_LIMIT = '5mb';
const COMMON_BODY_BYTES = 5 * 1024 * 1024;

/** Largest body the custodian's own practitioners, systems and admins may POST or PUT (a transaction of a whole patient's export). */
export const FEED_BODY_LIMIT = '64mb';

/** The custodian's own practitioner, system or admin (not another member's user, not one acting through an organization). */
function isOwnFeed(auth: AuthContext | undefined, ownMsp: string): boolean {
  if (!auth || !['practitioner', 'system', 'admin'].includes(auth.role)) return false;
  return (auth.organization ?? ownMsp) === ownMsp && auth.actorAuth !== 'delegated' && auth.viaOrganization === undefined;
}

/** The Express app: adapts HTTP to the FHIR services; every error becomes an OperationOutcome. */
export function createApp(deps: AppDeps): express.Express {
  const { config, log, resources, consents, audit, ledger, store, authenticate } = deps;
  const base = config.baseUrl;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'extended');

  app.use(
    pinoHttp({
      logger: log,
      genReqId: (_req, res) => {
        const id = randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      // Path only: query strings can carry PHI (search parameters); bodies are never logged.
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, path: loggablePath(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
        // Our own errors are already explained (and PHI-free): code and message, no stack.
        err: (err: Error) => (err instanceof OperationOutcomeError ? { type: err.code, message: err.message } : pino.stdSerializers.err(err)),
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    }),
  );

  const metrics = deps.metrics;
  if (metrics) {
    app.use((req, res, next) => {
      const end = metrics.httpDuration.startTimer();
      res.on('finish', () => {
        // The route pattern, never the concrete path (ids are unbounded label values).
        const route = req.route ? `${req.baseUrl}${String((req.route as { path: string }).path)}` : 'unmatched';
        end({ method: req.method, route });
        metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      });
      next();
    });
    app.get('/metrics', async (_req, res) => {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  }

  app.get('/healthz', async (_req, res) => {
    const checks: Record<string, { ok: boolean; ms?: number; pending?: number; error?: string } | LedgerViewHealth> = {};
    const t0 = Date.now();
    try {
      await store.ping();
      checks.store = { ok: true };
    } catch {
      checks.store = { ok: false, error: 'store unavailable' };
    }
    try {
      await ledger.ping();
      checks.ledger = { ok: true, ms: Date.now() - t0 };
    } catch (err) {
      // The detail goes to the log only: /healthz answers anyone.
      log.warn({ err }, 'health check: ledger unavailable');
      checks.ledger = { ok: false, error: 'ledger unavailable' };
    }
    if (deps.outbox) checks.outbox = await deps.outbox.health();
    if (deps.ledgerView) checks.view = deps.ledgerView.health();
    const ok = Object.values(checks).every((c) => c.ok);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks });
  });

  // Everything below is rate limited: per address before authentication, per identity after it.
  const limits = createRateLimiters(deps.rateLimits ?? {});
  app.use(limits.beforeAuth);

  // The patient's web app (static files; it uses /fhir like any client): app-routes.ts.
  app.use('/app', webappRoutes({ dir: deps.webappDir ?? defaultWebappDir(), fhirBaseUrl: base, mspId: config.mspId }));

  // SMART discovery: public, like the CapabilityStatement (what tokens and scopes this server accepts).
  const smart = smartConfiguration({ baseUrl: base, idpIssuer: deps.idpIssuer });
  app.get(['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration'], (_req, res) => {
    res.status(200).type('application/json').send(JSON.stringify(smart));
  });

  // DIDs: W3C DID resolution from the ledger, registration and off-boarding by admins (did-routes.ts).
  const relation: RelationDeps = { resolve: (d) => ledger.resolveDid(d), holdsPatient: async (d) => (await store.patientByDid(d)) !== undefined };
  app.use('/did', didRoutes({ ...deps, relation, afterAuth: limits.afterAuth }));

  // --- FHIR ---
  const fhir = express.Router();
  fhir.get('/metadata', (_req, res) => sendResource(res, 200, capabilityStatement(base, deps.version ?? '0.1.0')));
  const joseBody = express.text({ type: 'application/jose', limit: '256kb' });
  const consentDeps = { consents, relation, baseUrl: base, mspId: config.mspId };
  // A patient-signed revocation, which needs no bearer token (consent-routes.ts).
  registerSignedRevocation(fhir, consentDeps, joseBody);
  // Authenticate first: nobody gets a body parsed (up to 5 MB) without a valid token. What the
  // custodian's own staff or feeds POST or PUT (a transaction, a document Bundle) may be as large as a
  // real EHR export (Synthea's largest patient bundle is 19 MB); anyone else's is held to the common limit.
  const commonBody = jsonBody({ limit: COMMON_BODY_LIMIT, types: [...JSON_MEDIA_TYPES, JSON_PATCH_MEDIA_TYPE, MERGE_PATCH_MEDIA_TYPE] });
  // A Bundle POSTed to the base over the common limit is framed, not parsed whole (http/bundle-frame.ts):
  // a batch's entries are then read and processed a window at a time, a transaction's one at a time.
  const feedBody = framedJsonBody({
    limit: FEED_BODY_LIMIT,
    types: [...JSON_MEDIA_TYPES],
    frameOver: COMMON_BODY_BYTES,
    frames: (req) => req.method === 'POST' && req.path === '/',
  });
  // Such a body's bytes are held while it is processed: a few at a time per process (large-body-gate.ts).
  const largeBodies = deps.largeBodies ?? new LargeBodyGate({ thresholdBytes: COMMON_BODY_BYTES });
  fhir.use(
    authenticate,
    limits.afterAuth,
    (req, res, next) => {
      if ((req.method === 'POST' || req.method === 'PUT') && isOwnFeed(req.auth, config.mspId)) largeBodies.admit(req, res, () => feedBody(req, res, next));
      else commonBody(req, res, next);
    },
    joseBody,
  );
  // Bulk Data $export (system, Patient, Group), its status URL and files: fhir/operations/export.ts.
  fhir.use(exportRoutes({ exports: deps.exports, baseUrl: base, mspId: config.mspId }));

  // Consent: on the ledger, changed only with the patient's signature (consent-routes.ts).
  registerConsentRoutes(fhir, consentDeps);

  // AuditEvent: the ledger's access history, its live stream, receipts and break-glass reviews (audit-routes.ts).
  registerAuditRoutes(fhir, {
    audit,
    ledger,
    log,
    baseUrl: base,
    mspId: config.mspId,
    patientRef: resolvePatientParam,
    ...(deps.blocks ? { blocks: deps.blocks } : {}),
    ...(deps.receipts ? { receipts: deps.receipts } : {}),
  });

  /** patient=<DID> | Patient/<local id> | <local id> → the patient reference used on the ledger. */
  async function resolvePatientParam(value: string): Promise<string> {
    if (DID.test(value) || /^pseudonym:[0-9a-f]{64}$/.test(value)) return value;
    const id = value.startsWith('Patient/') ? value.slice('Patient/'.length) : value;
    if (!ID.test(id) || !(await store.readCurrent('Patient', id)))
      throw new OperationOutcomeError('INVALID', 'Search parameter patient must be a patient DID or a Patient held by this server');
    return resources.patientRef(id);
  }

  // The staff view: why a read would be denied, and access requests to the patient (staff-routes.ts).
  registerStaffRoutes(fhir, { ledger, mspId: config.mspId });

  // The FHIR interactions and operations: adapters over the transport-free handlers (fhir/handlers/).
  registerFhirRoutes(fhir, {
    resources,
    store,
    baseUrl: base,
    mspId: config.mspId,
    log,
    ...(deps.exchange ? { exchange: deps.exchange } : {}),
    ...(deps.erasure ? { erasure: deps.erasure } : {}),
  });

  fhir.all('/{*rest}', (req) => {
    throw new OperationOutcomeError('UNSUPPORTED', `${req.method} ${req.baseUrl}${req.path} is not supported by this server (see /fhir/metadata)`);
  });

  app.use('/fhir', fhir);
  // Ingestion (HL7 v2, VR session records, EHR Bundles): idempotent upserts, anchored in batches.
  const ingest = new IngestService({ resources, store, log, baseUrl: base, ...(deps.ids ? { ids: deps.ids } : {}) });
  app.use('/ingest', ingestRoutes({ ingest, authenticate, scoped: (req) => (type, action) => caller(req, config.mspId, type, action), admitLarge: largeBodies.admit }));
  app.use((req: Request) => {
    throw new OperationOutcomeError('NOT_FOUND', `${req.method} ${req.path} is not a route of this server`);
  });

  // Every error leaves as an OperationOutcome; internals stay in the log.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = asOutcomeError(err, String(req.id));
    metrics?.errors.inc({ code: e.code });
    if (e.code === 'INTERNAL') req.log.error({ err: (err as { cause?: unknown }).cause ?? err }, 'internal error');
    // The request log gets the code and an id-free message: ids and DIDs can name a patient.
    res.err = loggableError(e);
    if (res.headersSent) return;
    const challenge = wwwAuthenticateOf(err);
    if (challenge) res.setHeader('WWW-Authenticate', challenge);
    res.status(e.status).type(FHIR_JSON).send(JSON.stringify(e.outcome));
  });
  return app;
}

/** A resource reference, DID or pseudonym in a message, as the log must not hold them. */
const IDS_IN_TEXT = /\b([A-Z][A-Za-z]{1,63})\/[A-Za-z0-9\-.]{1,64}(\/_history\/[A-Za-z0-9\-.]{1,64})?|did:hdx:[A-Za-z0-9_-]{43}|pseudonym:[0-9a-f]{64}/g;

export function redactIds(text: string): string {
  return text.replace(IDS_IN_TEXT, (m, type: string | undefined) => (type ? `${type}/:id` : m.startsWith('did:') ? 'did:hdx:…' : 'pseudonym:…'));
}

/** What the request log records of an error: its code and a message without ids, no stack. */
function loggableError(e: OperationOutcomeError): Error {
  const logged = new Error(redactIds(e.message));
  logged.name = e.code;
  delete logged.stack;
  return logged;
}

/** Body-parser failures carry a `type`; anything unexpected becomes INTERNAL, naming only the request id. */
function asOutcomeError(err: unknown, requestId: string): OperationOutcomeError {
  if (err instanceof OperationOutcomeError && err.code !== 'INTERNAL') return err;
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  if (type === 'entity.too.large') return new OperationOutcomeError('TOO_LARGE', 'The request body is too large');
  if (type === 'entity.parse.failed') return new OperationOutcomeError('INVALID', 'The request body is not valid JSON');
  if (typeof type === 'string') return new OperationOutcomeError('INVALID', 'The request body could not be read');
  const what = err instanceof OperationOutcomeError ? err.message : 'Internal error';
  return new OperationOutcomeError('INTERNAL', `${what}; quote request id ${requestId} to the operator`);
}
