/**
 * history at the instance (`GET Type/id/_history`), type (`GET Type/_history`) and system
 * (`GET _history`) levels: every version the caller may see, as a history Bundle.
 */
import { OperationOutcomeError } from '../../errors';
import { historyBundle, pagingLinks } from '../bundle';
import type { Caller } from '../policy';
import type { HistoryParams } from '../resource-service';
import { assertKnown, count, dateFilters, offset, type RawQuery } from '../search-params';
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

/** `_since`, `_at`, `_count`, `_getpagesoffset` of a type's or the system's history. */
export function historyParams(q: RawQuery): HistoryParams {
  assertKnown(q, ['_since', '_at', '_count', '_getpagesoffset']);
  const since = dateFilters('_since', q._since)?.map((f) => {
    if (f.op !== 'eq' || !f.value.includes('T')) throw new OperationOutcomeError('INVALID', 'Search parameter _since must be an instant (e.g. 2026-01-01T00:00:00Z)');
    return f.value;
  });
  const at = dateFilters('_at', q._at)?.map((f) => {
    if (f.op !== 'eq') throw new OperationOutcomeError('INVALID', 'Search parameter _at is a date or dateTime without a prefix (e.g. 2026-01 or 2026-01-01T10:00:00Z)');
    // The whole period the value names: [start, end of its precision).
    return { low: f.value, high: `${f.value}\uffff` };
  });
  if ((since?.length ?? 0) > 1 || (at?.length ?? 0) > 1) throw new OperationOutcomeError('INVALID', 'Search parameters _since and _at may be given only once');
  return { ...(since?.[0] ? { since: since[0] } : {}), ...(at?.[0] ? { at: at[0] } : {}), count: count(q), offset: offset(q) };
}

/** history-instance: every version of one resource the caller may see. */
export async function historyInstance(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  const versions = await ctx.resources.history(bind(ctx, req, type, 'read'), type, id);
  return { status: 200, resource: historyBundle(ctx.baseUrl, versions) };
}

/** history-type: every version of the type the caller may see, newest first, paged. */
export async function historyType(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const type = req.type ?? '';
  checkIds(type);
  const params = historyParams(req.query);
  const result = await ctx.resources.typeHistory(bind(ctx, req, type, 'read'), type, params);
  const link = pagingLinks({ baseUrl: ctx.baseUrl, path: `/${type}/_history`, query: req.query, total: result.total, offset: params.offset, count: params.count });
  return { status: 200, resource: historyBundle(ctx.baseUrl, result.entries, { total: result.total, link }) };
}

/** history-system: as history-type, over every type the caller's scopes read (the others left out). */
export async function historySystem(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const params = historyParams(req.query);
  const callerFor = (type: string): Caller | undefined => {
    try {
      return bind(ctx, req, type, 'read');
    } catch {
      return undefined;
    }
  };
  const result = await ctx.resources.systemHistory(callerFor, params);
  const link = pagingLinks({ baseUrl: ctx.baseUrl, path: '/_history', query: req.query, total: result.total, offset: params.offset, count: params.count });
  return { status: 200, resource: historyBundle(ctx.baseUrl, result.entries, { total: result.total, link }) };
}
