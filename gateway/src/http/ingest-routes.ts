/**
 * The ingestion endpoints (mounted at `/ingest`): HTTP in, a mapper, IngestService, HTTP out.
 *
 * - `POST /ingest/hl7v2` (x-application/hl7-v2+er7 or text/plain): hl7v2ToBundleWithWarnings, then ingest;
 *   what the mapper read leniently (a required field left blank) is a warning issue in the outcome of the
 *   response entry it concerns.
 * - `POST /ingest/vr-session` (JSON VR session record): vrSessionToBundle, then ingest.
 * - `POST /ingest/fhir?source=<name>` (a Bundle pushed or pulled from an EHR): ingest.
 *   With `&ehr=<EHR FHIR base URL>` (what `hdx sync` sends) the entries carry the EHR's own ids: the gateway
 *   gives them its keyed local ids and rewrites the references (IngestService.fromEhr).
 *
 * The mappers get the custodian's keyed ids (IngestService.custodianIds): never an unkeyed id.
 *
 * Each answers 200 with a `transaction-response` Bundle, or an OperationOutcome: a mapping error names
 * the segment/field or JSON pointer (400 INVALID, 422 UNMAPPABLE), never a value.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { hl7v2ToBundleWithWarnings, isMappingError, type MappingError, mappingErrorToOperationOutcome, parseVrSessionRecord, vrSessionToBundle } from '@hdx/fhir-mappers';
import type { ScopedCaller } from '../fhir/bundle-service';
import { OperationOutcomeError, type OperationOutcomeIssue } from '../errors';
import { ID } from '../fhir/search-params';
import { type IngestService, SOURCE_NAME } from '../ingest/ingest-service';
import { requireAuth } from '../auth/middleware';
import { jsonBody } from './body';
import { sendResource } from './respond';

const HL7_TYPES = ['x-application/hl7-v2+er7', 'application/hl7-v2', 'text/plain'];

export interface IngestRoutesDeps {
  readonly ingest: IngestService;
  readonly authenticate: RequestHandler;
  /** The caller for one interaction after its scope check, as app.ts makes it. */
  readonly scoped: (req: Request) => ScopedCaller;
  /**
   * Admits a request whose body may be large before it is read (the process's LargeBodyGate, shared
   * with the FHIR base): a VR session record or an EHR Bundle may be tens of MB.
   */
  readonly admitLarge?: RequestHandler;
}

function mappingError(err: MappingError): OperationOutcomeError {
  const outcome = mappingErrorToOperationOutcome(err);
  const first = err.problems[0];
  const message = first ? `${first.location}: ${first.message}` : `${err.location}: the message cannot be mapped`;
  return new OperationOutcomeError(err.code === 'INVALID' ? 'INVALID' : 'UNMAPPABLE', message, outcome.issue as OperationOutcomeIssue[]);
}

/** Runs a mapper; its MappingError becomes a 400/422 OperationOutcome naming the location. */
function mapped<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isMappingError(err)) throw mappingError(err);
    throw err;
  }
}

/** mapped, for a mapping run by CustodianIds.derive (which records the ids it derives once it ends). */
async function mappedAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isMappingError(err)) throw mappingError(err);
    throw err;
  }
}

function send(res: Response, bundle: unknown): void {
  sendResource(res, 200, bundle);
}

function sourceOf(req: Request, fallback: string): string {
  const s = req.query.source;
  if (s === undefined) return fallback;
  if (typeof s !== 'string' || !SOURCE_NAME.test(s)) throw new OperationOutcomeError('INVALID', 'source must be 1 to 64 letters, digits or ._:-');
  return s;
}

/** Who may push data into this gateway (the interaction table still decides each write). */
const INGEST_ROLES: ReadonlySet<string> = new Set(['practitioner', 'system', 'device']);

export function ingestRoutes(deps: IngestRoutesDeps): express.Router {
  const { ingest, authenticate, scoped } = deps;
  const admitLarge: RequestHandler = deps.admitLarge ?? ((_req, _res, next) => next());
  const router = express.Router();
  router.use(authenticate);
  // Before any body is read (up to 64 MB): ingestion is for this organization's writers only.
  router.use((req: Request, _res: Response, next: NextFunction) => {
    const auth = requireAuth(req);
    next(
      INGEST_ROLES.has(auth.role) && auth.actorAuth !== 'delegated'
        ? undefined
        : new OperationOutcomeError('FORBIDDEN', `A ${auth.role} may not ingest records (systems, devices and practitioners of this organization do)`),
    );
  });

  router.post('/hl7v2', express.raw({ type: HL7_TYPES, limit: '4mb' }), async (req, res) => {
    if (!req.is(HL7_TYPES) || !Buffer.isBuffer(req.body)) {
      throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'Send the HL7 v2 message (ER7) with Content-Type: x-application/hl7-v2+er7 or text/plain');
    }
    const custodian = ingest.custodianIds();
    const { bundle, warnings } = await mappedAsync(() => custodian.derive(() => hl7v2ToBundleWithWarnings(new Uint8Array(req.body as Buffer), { ids: custodian.ids })));
    send(res, (await ingest.ingest(scoped(req), sourceOf(req, 'hl7v2'), bundle, warnings)).bundle);
  });

  router.post('/vr-session', admitLarge, jsonBody({ types: ['application/json'], limit: '64mb' }), async (req, res) => {
    if (!req.is('application/json')) throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'Send the VR session record as application/json');
    const custodian = ingest.custodianIds();
    const record = mapped(() => parseVrSessionRecord(req.body));
    // The session's patient must be a Patient held here: given as ?patient=Patient/<id>, else by DID.
    const given = req.query.patient;
    let patientId: string | undefined;
    if (given !== undefined) {
      const id = typeof given === 'string' ? given.replace(/^Patient\//, '') : '';
      if (!ID.test(id)) throw new OperationOutcomeError('INVALID', 'patient must be Patient/<id>');
      patientId = id;
    } else if (record.patient.did) {
      patientId = await ingest.patientByDid(record.patient.did);
    }
    if (patientId === undefined) {
      throw new OperationOutcomeError(
        'UNMAPPABLE',
        "/patient: the session's patient is not a Patient held here (link the patient's DID to a Patient, or give ?patient=Patient/<id>)",
      );
    }
    const bundle = await mappedAsync(() => custodian.derive(() => vrSessionToBundle(record, { ids: custodian.ids, patientReference: `Patient/${patientId}` })));
    send(res, (await ingest.ingest(scoped(req), sourceOf(req, `vr:${record.platform.name}`.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 64)), bundle)).bundle);
  });

  router.post('/fhir', admitLarge, jsonBody({ limit: '32mb' }), async (req, res) => {
    if (!req.is(['application/json', 'application/fhir+json'])) throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'Send the Bundle as application/fhir+json');
    if (req.query.source === undefined) throw new OperationOutcomeError('INVALID', 'Name the source: POST /ingest/fhir?source=<name>');
    const ehr = req.query.ehr;
    if (ehr !== undefined && typeof ehr !== 'string') throw new OperationOutcomeError('INVALID', 'ehr must be one URL');
    const body: unknown = ehr === undefined ? req.body : await ingest.fromEhr(ehr, req.body);
    send(res, (await ingest.ingest(scoped(req), sourceOf(req, ''), body)).bundle);
  });

  router.all('/{*rest}', (req: Request, _res: Response, next: NextFunction) => {
    // The path is not echoed: it may hold an id (and the message goes to the log).
    next(
      new OperationOutcomeError(
        'NOT_FOUND',
        `${req.method === 'POST' ? 'This' : `${req.method} on this`} path is not an ingestion route (POST /ingest/hl7v2, /ingest/vr-session, /ingest/fhir)`,
      ),
    );
  });
  return router;
}
