/**
 * A small, real FHIR R4 server over HTTP standing in for an EHR in tests of `hdx sync`: resources in
 * memory, `GET metadata` (a CapabilityStatement of the types it holds), `PUT [type]/[id]` (versions and lastUpdated), `GET [type]/[id]` and search by type with
 * `_lastUpdated` (gt, ge, lt, le, eq), `_sort=_lastUpdated`, `_count` and `next` links (offset
 * paging). Unknown search parameters are refused, as a strict server would.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

type Resource = { resourceType: string; id: string; meta?: Record<string, unknown> } & Record<string, unknown>;

export interface MiniFhirServer {
  readonly baseUrl: string;
  /** Creates or updates a resource; `lastUpdated` defaults to now. Returns the stored copy. */
  put(resource: Omit<Resource, 'meta'> & { meta?: Record<string, unknown> }, lastUpdated?: string): Resource;
  /** Search requests served so far (path and query). */
  readonly searches: string[];
  close(): Promise<void>;
}

const OPS: Record<string, (a: number, b: number) => boolean> = {
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  eq: (a, b) => a === b,
};

export async function startMiniFhirServer(options: { port?: number; host?: string } = {}): Promise<MiniFhirServer> {
  const data = new Map<string, Resource>();
  const searches: string[] = [];
  const app = express();
  app.use(express.json({ type: ['application/json', 'application/fhir+json'], limit: '10mb' }));
  let baseUrl = '';

  const put = (input: Omit<Resource, 'meta'> & { meta?: Record<string, unknown> }, lastUpdated = new Date().toISOString()): Resource => {
    const key = `${input.resourceType}/${input.id}`;
    const previous = data.get(key);
    const versionId = String(Number((previous?.meta as { versionId?: string } | undefined)?.versionId ?? 0) + 1);
    const stored = { ...structuredClone(input), meta: { ...(input.meta ?? {}), versionId, lastUpdated } } as unknown as Resource;
    data.set(key, stored);
    return structuredClone(stored);
  };

  const outcome = (res: express.Response, status: number, text: string): void => {
    res
      .status(status)
      .type('application/fhir+json')
      .send(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics: text }] }));
  };

  app.put('/fhir/:type/:id', (req, res) => {
    const body = req.body as Resource;
    if (body?.resourceType !== req.params.type || body.id !== req.params.id) return outcome(res, 400, 'resourceType and id must match the URL');
    res
      .status(200)
      .type('application/fhir+json')
      .send(JSON.stringify(put(body)));
  });

  // The types it serves (those it holds, and Consent, which a gateway that keeps consents elsewhere skips), as a real server lists them.
  app.get('/fhir/metadata', (_req, res) => {
    const types = [...new Set([...[...data.values()].map((r) => r.resourceType), 'Consent'])].sort();
    res.type('application/fhir+json').send(
      JSON.stringify({
        resourceType: 'CapabilityStatement',
        status: 'active',
        kind: 'instance',
        fhirVersion: '4.0.1',
        format: ['json'],
        rest: [{ mode: 'server', resource: types.map((type) => ({ type, interaction: [{ code: 'read' }, { code: 'search-type' }] })) }],
      }),
    );
  });

  app.get('/fhir/:type/:id', (req, res) => {
    const r = data.get(`${req.params.type}/${req.params.id}`);
    if (!r) return outcome(res, 404, 'not found');
    res.type('application/fhir+json').send(JSON.stringify(r));
  });

  app.get('/fhir/:type', (req, res) => {
    searches.push(req.originalUrl);
    const q = req.query as Record<string, string | string[]>;
    for (const k of Object.keys(q)) if (!['_lastUpdated', '_sort', '_count', '_offset'].includes(k)) return outcome(res, 400, `unknown search parameter ${k}`);
    let matches = [...data.values()].filter((r) => r.resourceType === req.params.type);
    for (const f of ([] as string[]).concat(q._lastUpdated ?? [])) {
      const m = /^(gt|ge|lt|le|eq)?(.+)$/.exec(f);
      const at = Date.parse(m?.[2] ?? '');
      if (!m || Number.isNaN(at)) return outcome(res, 400, '_lastUpdated must be a prefix and an instant');
      const op = OPS[m[1] ?? 'eq'] as (a: number, b: number) => boolean;
      matches = matches.filter((r) => op(Date.parse(String(r.meta?.lastUpdated)), at));
    }
    if (q._sort !== undefined && q._sort !== '_lastUpdated') return outcome(res, 400, 'only _sort=_lastUpdated is supported');
    matches.sort((a, b) => Date.parse(String(a.meta?.lastUpdated)) - Date.parse(String(b.meta?.lastUpdated)) || a.id.localeCompare(b.id));
    const count = Math.min(Number(q._count ?? 20), 500);
    const offset = Number(q._offset ?? 0);
    const page = matches.slice(offset, offset + count);
    const link: Array<{ relation: string; url: string }> = [{ relation: 'self', url: `${baseUrl}${req.originalUrl.replace(/^\/fhir/, '')}` }];
    if (offset + count < matches.length) {
      const next = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (k !== '_offset') for (const one of ([] as string[]).concat(v)) next.append(k, one);
      next.set('_offset', String(offset + count));
      link.push({ relation: 'next', url: `${baseUrl}/${req.params.type}?${next.toString()}` });
    }
    res.type('application/fhir+json').send(
      JSON.stringify({
        resourceType: 'Bundle',
        type: 'searchset',
        total: matches.length,
        link,
        entry: page.map((r) => ({ fullUrl: `${baseUrl}/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } })),
      }),
    );
  });

  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  return {
    baseUrl,
    put,
    searches,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
