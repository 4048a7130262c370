/**
 * search-type (`GET [base]/Type?query`, and a batch's `GET Type?query` entries): the spec's search
 * parameters of the type, through the enforcement point, answered as a searchset Bundle.
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import { OperationOutcomeError } from '../../errors';
import { OPENING_KEY_EXTENSION } from '../../model/commitment';
import { searchset } from '../bundle';
import { bindCaller } from '../policy';
import {
  chainSpecs,
  count,
  dateFilters,
  hasSpecs,
  ID,
  includeSpecs,
  lenientQuery,
  list,
  offset,
  patientParam,
  type RawQuery,
  searchCriteria,
  sortKeys,
  summaryMode,
  totalWanted,
} from '../search-params';
import { elementNames, subset, type Subsetting } from '../subsetting';
import type { Caller } from '../policy';
import type { Includes, SearchParams } from '../resource-service';
import { checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

/** A patient / subject value's form: Patient/<id>, <id> or a patient DID (anything else is a 400). */
function checkPatientValue(value: string): void {
  if (HDX_DID.test(value)) return;
  const id = value.startsWith('Patient/') ? value.slice('Patient/'.length) : value;
  if (!ID.test(id)) throw new OperationOutcomeError('INVALID', 'Search parameter patient/subject must be Patient/<id>, <id> or a patient DID');
}

/** patient / subject values (checked by checkPatientValue) → local Patient id (undefined: matches nothing). */
async function localPatientId(ctx: FhirContext, value: string): Promise<string | undefined> {
  if (HDX_DID.test(value)) return ctx.store.patientByDid(value);
  return value.startsWith('Patient/') ? value.slice('Patient/'.length) : value;
}

/**
 * A search-type request parsed and checked: every answer it could get without looking at the store
 * (an unknown or malformed parameter, a missing scope, a remote caller who names no patient: 400, 403)
 * is given by prepareSearch, which reads nothing, decides no consent and records nothing. A transaction
 * prepares its search entries before it writes, and answers them (answerSearch) once its writes are
 * committed; `GET [base]/Type?query` and a batch do both at once (search).
 */
export interface PreparedSearch {
  readonly type: string;
  readonly query: RawQuery;
  readonly forMember: boolean;
  readonly searcher: Caller;
  readonly patientValues: readonly string[];
  readonly params: Omit<SearchParams, 'patientIds'>;
  readonly includes: Includes;
  readonly subsetting: Subsetting;
  readonly showTotal: boolean;
  readonly countOnly: boolean;
}

/** search-type, parsed and checked (see PreparedSearch). `Prefer: handling=lenient` drops the parameters the type does not take (and the self link says so). */
export function prepareSearch(ctx: FhirContext, req: FhirRequest): PreparedSearch {
  const { auth } = req;
  const type = req.type ?? '';
  checkIds(type);
  const q = lenientQuery(type, req.query, req.headers?.prefer);
  // From the spec's SearchParameters of the type; anything else is a 400 (ignoring it would widen the search).
  const criteria = searchCriteria(type, q);
  const specs = includeSpecs(type, q);
  const chains = chainSpecs(type, q);
  const has = hasSpecs(type, q);
  const patientValues = [...(patientParam(type, 'patient') ? (list(q, 'patient') ?? []) : []), ...(patientParam(type, 'subject') ? (list(q, 'subject') ?? []) : [])];
  patientValues.forEach(checkPatientValue);
  const c = count(q);
  const o = offset(q);
  const ids = list(q, '_id', ID, 'must be FHIR ids');
  const lastUpdated = dateFilters('_lastUpdated', q._lastUpdated);
  const sort = sortKeys(type, q);
  const showTotal = totalWanted(q);
  const summary = summaryMode(q);
  const elements = q._elements ? elementNames(type, q._elements) : undefined;
  if (elements && summary !== undefined && summary !== 'false') throw new OperationOutcomeError('INVALID', 'Search parameters _summary and _elements are exclusive: give one');
  // `_summary=count` and `_count=0` both ask for the total only.
  const countOnly = summary === 'count' || c === 0;
  const subsetting: Subsetting = elements ? { elements } : summary === 'true' || summary === 'text' || summary === 'data' ? { summary } : undefined;
  // A member organization checks what it fetches against the anchors: a part of a resource cannot be checked.
  if (subsetting && auth.viaOrganization !== undefined)
    throw new OperationOutcomeError('INVALID', 'A member organization fetches whole resources (it verifies each against its anchor): no _summary or _elements');
  const searcher = bindCaller(auth, ctx.mspId, type, 'search');
  // An included type is read only under the scopes (and rules) that would let the caller search it.
  const mayReadType = (t: string): boolean => {
    try {
      bindCaller(auth, ctx.mspId, t, 'search');
      return true;
    } catch {
      return false;
    }
  };
  const params = {
    ...(ids ? { ids } : {}),
    ...(lastUpdated ? { lastUpdated } : {}),
    ...(criteria.length > 0 ? { criteria } : {}),
    ...(sort ? { sort } : {}),
    ...(chains.length > 0 ? { chains } : {}),
    ...(has.length > 0 ? { has } : {}),
    count: c,
    offset: o,
    countOnly,
  };
  // What the service would refuse before looking anything up (the interaction, a remote caller naming no patient).
  ctx.resources.assertSearchable(searcher, type, { ...params, namesPatient: patientValues.length > 0 }, mayReadType, specs);
  return {
    type,
    query: q,
    forMember: auth.viaOrganization !== undefined,
    searcher,
    patientValues,
    params,
    includes: { specs, mayRead: mayReadType },
    subsetting,
    showTotal,
    countOnly,
  };
}

/** A prepared search answered through the enforcement point, as a searchset Bundle. */
export async function answerSearch(ctx: FhirContext, prepared: PreparedSearch): Promise<FhirOutcome> {
  const { type, query: q, params, subsetting, countOnly, forMember } = prepared;
  const patientIds =
    prepared.patientValues.length > 0 ? (await Promise.all(prepared.patientValues.map((v) => localPatientId(ctx, v)))).filter((v): v is string => v !== undefined) : undefined;
  const page = await ctx.resources.search(prepared.searcher, type, { ...params, ...(patientIds ? { patientIds } : {}) }, 'search-type', prepared.includes);
  // A member organization fetching for one of its users gets, per version, the key that opens its
  // commitment, so it can check the content against the ledger before passing it on.
  const versionOf = (r: Record<string, unknown>): [string, string, string] => [
    String(r.resourceType),
    String(r.id),
    String((r.meta as { versionId?: string } | undefined)?.versionId),
  ];
  const openingKeys = new Map<string, Buffer>();
  if (forMember) {
    for (const r of [...page.resources, ...page.included]) {
      const key = await ctx.resources.openingKey(...versionOf(r));
      if (key) openingKeys.set(versionOf(r).join('/'), key);
    }
  }
  const entryExtension = forMember
    ? (r: Record<string, unknown>) => {
        const key = openingKeys.get(versionOf(r).join('/'));
        return key ? [{ url: OPENING_KEY_EXTENSION, valueBase64Binary: key.toString('base64') }] : undefined;
      }
    : undefined;
  const bundle = searchset({
    baseUrl: ctx.baseUrl,
    path: `/${type}`,
    query: q,
    resources: page.resources.map((r) => subset(r, subsetting, 'match')),
    included: page.included.map((r) => subset(r, subsetting, 'include')),
    total: page.total,
    offset: params.offset,
    count: params.count,
    ...(entryExtension ? { entryExtension } : {}),
    hideTotal: !prepared.showTotal,
    countOnly,
  });
  return { status: 200, resource: bundle };
}

/** search-type (`GET [base]/Type?query`, a batch's `GET Type?query` entry): prepared and answered at once. */
export async function search(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  return answerSearch(ctx, prepareSearch(ctx, req));
}
