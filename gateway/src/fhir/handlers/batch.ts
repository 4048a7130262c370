/**
 * batch and transaction (`POST [base]` with a Bundle): bundle-service.ts processes the entries; a
 * batch's reads, searches and conditional writes go through the handlers of this folder. The answer's
 * entries are handed on as they are answered (FhirOutcome.entries), so the transport can send a large
 * Bundle's answer without building it whole.
 */
import { type AnsweredEntry, BundleService, type ResponseEntry } from '../bundle-service';
import { type FhirContext, type FhirOutcome, type FhirRequest, needsJson, preferredReturn } from './request';

export async function batch(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  needsJson(req);
  const answer = await new BundleService({ context: ctx }).process(req.auth, req.body);
  return { status: 200, resource: { ...answer.fields }, entries: preferred(preferredReturn(req), answer.entries) };
}

const WRITES = new Set(['POST', 'PUT', 'PATCH']);

/**
 * `Prefer: return=` applied to each write entry of the response (http.html#ops, as for a single write):
 * `minimal` leaves its resource out, `OperationOutcome` puts an outcome saying what was done in its
 * place; its status, location and etag stay. A read or search entry keeps its resource: that is its
 * answer. A transaction of thousands of resources then need not send them all back.
 */
async function* preferred(preference: ReturnType<typeof preferredReturn>, entries: AsyncIterable<AnsweredEntry>): AsyncGenerator<ResponseEntry> {
  for await (const { entry, method } of entries) {
    if (preference === 'representation' || !WRITES.has(String(method)) || entry.resource === undefined) {
      yield entry;
      continue;
    }
    const { resource: _resource, ...rest } = entry;
    if (preference === 'minimal' || rest.response.outcome !== undefined) {
      yield rest;
      continue;
    }
    const done = `${rest.response.status} ${rest.response.location ?? ''}`.trim();
    yield {
      ...rest,
      response: { ...rest.response, outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: done }] } },
    };
  }
}
