/**
 * The HTTP adapter of Bulk Data `$export` (fhir/operations/export.ts does the work): kick-off at the
 * system, Patient and Group levels, the status URL (poll, DELETE) and the output files. Mounted on the
 * FHIR router after authentication, so every one of these requests carries a verified token.
 */
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import express, { type Request, type Response, type Router } from 'express';
import { requireAuth } from '../auth/middleware';
import { informational, OperationOutcomeError } from '../errors';
import { type ExportLevel, type ExportService, NDJSON, ownerOf } from '../fhir/operations/export';
import { bindCaller } from '../fhir/policy';
import { dateFilters, ID, list, rawQuery, single } from '../fhir/search-params';
import { FHIR_JSON } from './respond';

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const KICK_OFF_PARAMS = ['_outputFormat', '_type', '_since'];

export interface ExportRoutesDeps {
  /** Not configured → every export route answers that the operation is not offered. */
  readonly exports: ExportService | undefined;
  /** This gateway's FHIR base URL. */
  readonly baseUrl: string;
  readonly mspId: string;
}

export function exportRoutes(deps: ExportRoutesDeps): Router {
  const router = express.Router();
  const service = (): ExportService => {
    if (!deps.exports) throw new OperationOutcomeError('UNSUPPORTED', 'Bulk Data $export is not offered by this server');
    return deps.exports;
  };

  const kickOff = (level: ExportLevel) => async (req: Request<{ id?: string }>, res: Response) => {
    const jobs = service();
    if (level === 'group' && !ID.test(String(req.params.id))) throw new OperationOutcomeError('INVALID', 'The Group id in the URL is not a valid FHIR id');
    if (!/(^|[;,\s])respond-async\b/i.test(req.get('prefer') ?? '')) {
      throw new OperationOutcomeError('INVALID', '$export runs asynchronously: send the header Prefer: respond-async');
    }
    const q = rawQuery(req.query);
    const unknown = Object.keys(q).filter((k) => !KICK_OFF_PARAMS.includes(k));
    if (unknown.length > 0) {
      // Ignoring one (_typeFilter, _elements, patient, includeAssociatedData) would export more than asked.
      throw new OperationOutcomeError('INVALID', `$export parameter ${unknown.join(', ')} is not supported here (supported: ${KICK_OFF_PARAMS.join(', ')})`);
    }
    const types = list(q, '_type', TYPE, 'must be resource types');
    const since = dateFilters('_since', q._since)?.map((f) => {
      if (f.op !== 'eq' || !f.value.includes('T')) throw new OperationOutcomeError('INVALID', '_since must be an instant (e.g. 2026-01-01T00:00:00Z)');
      return f.value;
    })[0];
    const outputFormat = single(q, '_outputFormat');
    const auth = requireAuth(req);
    const id = await jobs.kickOff((type) => bindCaller(auth, deps.mspId, type, 'search'), ownerOf(auth), {
      level,
      ...(level === 'group' ? { groupId: String(req.params.id) } : {}),
      ...(types ? { types } : {}),
      ...(since ? { since } : {}),
      ...(outputFormat !== undefined ? { outputFormat } : {}),
      requestUrl: `${deps.baseUrl}${req.url}`,
    });
    res.setHeader('Content-Location', jobs.statusUrl(id));
    res
      .status(202)
      .type(FHIR_JSON)
      .send(JSON.stringify(informational('The export has started: poll the URL in Content-Location')));
  };

  router.post(['/$export', '/Patient/$export', '/Group/:id/$export'], () => {
    throw new OperationOutcomeError('UNSUPPORTED', 'A $export kick-off by POST (a Parameters body) is not supported here: use GET with the parameters in the query');
  });
  router.get('/$export', kickOff('system'));
  router.get('/Patient/$export', kickOff('patient'));
  router.get('/Group/:id/$export', kickOff('group'));

  router.get('/$export-status/:job', (req: Request<{ job: string }>, res) => {
    const status = service().status(ownerOf(requireAuth(req)), req.params.job);
    if (status.state === 'in-progress') {
      res.setHeader('X-Progress', status.progress);
      res.setHeader('Retry-After', '5');
      res.status(202).end();
      return;
    }
    if (status.state === 'error') {
      res.status(500).type(FHIR_JSON).send(JSON.stringify(status.outcome));
      return;
    }
    res.setHeader('Expires', new Date(status.expiresAt).toUTCString());
    res.status(200).type('application/json').send(JSON.stringify(status.manifest));
  });

  router.delete('/$export-status/:job', async (req: Request<{ job: string }>, res) => {
    await service().remove(ownerOf(requireAuth(req)), req.params.job);
    res
      .status(202)
      .type(FHIR_JSON)
      .send(JSON.stringify(informational('The export and its files are deleted')));
  });

  router.get('/$export-file/:job/:file', async (req: Request<{ job: string; file: string }>, res) => {
    const file = service().file(ownerOf(requireAuth(req)), req.params.job, req.params.file);
    const stream = fs.createReadStream(file);
    // Opened before anything is sent: a file deleted meanwhile is a 404, not a broken answer.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', () => reject(new OperationOutcomeError('NOT_FOUND', 'No such export file (the export may have expired or been deleted)')));
    });
    res.status(200).type(NDJSON);
    // A client that goes away mid-file is not a server error: pipeline closes both ends, nothing to answer.
    await pipeline(stream, res).catch(() => undefined);
  });

  return router;
}
