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
  searchCriteria,
  sortKeys,
  summaryMode,
  totalWanted,
} from '../search-params';
import { elementNames, subset, type Subsetting } from '../subsetting';
import { checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

/** patient / subject values: Patient/<id>, <id> or the patient's DID → local Patient id (undefined: matches nothing). */
async function localPatientId(ctx: FhirContext, value: string): Promise<string | undefined> {
  if (HDX_DID.test(value)) return ctx.store.patientByDid(value);
  const id = value.startsWith('Patient/') ? value.slice('Patient/'.length) : value;
  if (!ID.test(id)) throw new OperationOutcomeError('INVALID', 'Search parameter patient/subject must be Patient/<id>, <id> or a patient DID');
  return id;
}

/** search-type. `Prefer: handling=lenient` drops the parameters the type does not take (and the self link says so). */
export async function search(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
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
  const patientIds = patientValues.length > 0 ? (await Promise.all(patientValues.map((v) => localPatientId(ctx, v)))).filter((v): v is string => v !== undefined) : undefined;
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
  const page = await ctx.resources.search(
    searcher,
    type,
    {
      ...(ids ? { ids } : {}),
      ...(patientIds ? { patientIds } : {}),
      ...(lastUpdated ? { lastUpdated } : {}),
      ...(criteria.length > 0 ? { criteria } : {}),
      ...(sort ? { sort } : {}),
      ...(chains.length > 0 ? { chains } : {}),
      ...(has.length > 0 ? { has } : {}),
      count: c,
      offset: o,
      countOnly,
    },
    'search-type',
    { specs, mayRead: mayReadType },
  );
  // A member organization fetching for one of its users gets, per version, the key that opens its
  // commitment, so it can check the content against the ledger before passing it on.
  const forMember = auth.viaOrganization !== undefined;
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
    offset: o,
    count: c,
    ...(entryExtension ? { entryExtension } : {}),
    hideTotal: !showTotal,
    countOnly,
  });
  return { status: 200, resource: bundle };
}
