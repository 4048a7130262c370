/**
 * batch and transaction (`POST [base]` with a Bundle): bundle-service.ts processes the entries; a
 * batch's reads, searches and conditional writes go through the handlers of this folder.
 */
import { BundleService } from '../bundle-service';
import { type FhirContext, type FhirOutcome, type FhirRequest, needsJson, preferredReturn } from './request';

export async function batch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  needsJson(req);
  const answered = await new BundleService({ context: ctx }).process(req.auth, req.body);
  return { status: 200, resource: asPreferredEntries(preferredReturn(req), req.body, answered) };
}

const WRITES = new Set(['POST', 'PUT', 'PATCH']);

/**
 * `Prefer: return=` applied to each write entry of the response (http.html#ops, as for a single write):
 * `minimal` leaves its resource out, `OperationOutcome` puts an outcome saying what was done in its
 * place; its status, location and etag stay. A read or search entry keeps its resource: that is its
 * answer. A transaction of thousands of resources then need not send them all back.
 */
interface AnsweredEntry {
  readonly resource?: unknown;
  readonly response?: { readonly status?: string; readonly location?: string; readonly outcome?: unknown };
}

function asPreferredEntries(preference: ReturnType<typeof preferredReturn>, sent: unknown, answered: Record<string, unknown>): Record<string, unknown> {
  if (preference === 'representation') return answered;
  const requests = (sent as { entry?: Array<{ request?: { method?: unknown } }> }).entry ?? [];
  return {
    ...answered,
    entry: ((answered.entry ?? []) as AnsweredEntry[]).map((e, i) => {
      if (!WRITES.has(String(requests[i]?.request?.method)) || e.resource === undefined) return e;
      const { resource: _resource, ...rest } = e;
      if (preference === 'minimal' || rest.response?.outcome !== undefined) return rest;
      const done = `${rest.response?.status ?? ''} ${rest.response?.location ?? ''}`.trim();
      return {
        ...rest,
        response: {
          ...rest.response,
          status: rest.response?.status ?? '',
          outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: done }] },
        },
      };
    }),
  };
}
