/**
 * FHIR R4 Bundle transaction and batch at `POST [base]` (http.html#transaction).
 *
 * - transaction: all or nothing. Every entry is checked first (method, URL, scope, FHIR validity, the
 *   patient it belongs to); the ids of POSTed entries are assigned up front and `urn:uuid:` references
 *   rewritten to them (conditional references `Type?query`, resolved to the one match, before anything
 *   else; an entry with `ifNoneExist` matching one resource writes nothing and stands for it); then every new version is stored pending in one SQLite transaction, anchored in
 *   ONE ledger transaction (hdx.record:AnchorBatch; more than 500 versions in several, none served until
 *   all are committed) and only then marked anchored. Any failure before the ledger has part of it
 *   discards every pending version and answers one OperationOutcome naming the entry at fault.
 *   Its GET entries come last (http.html#trules). Reads and vreads: before anything is committed each
 *   is checked to be answerable in the state the writes leave (scope, compartment, consent evaluated
 *   but not recorded, there and not deleted), so one that is not fails the whole transaction and
 *   nothing is disclosed or recorded; once the writes are committed each is answered through the
 *   enforcement point as any read (decided again and recorded). A version the transaction writes is
 *   decided at that second step only; one refused there (consent changed in between) fails closed: its
 *   entry answers the error, the committed writes stand. Searches (`GET Type?query`): before anything is
 *   written each is parsed and checked as the search-type handler checks it (parameters, scopes, a
 *   remote caller naming the patient; an entry's urn:uuid in a value names what the entry writes), so
 *   one that would be a 400 or 403 fails the whole transaction;
 *   after the commit each is answered by that handler, through the enforcement point (a search never
 *   fails on consent: what the caller may not see is absent, so it needs no check before).
 * - batch: each entry on its own, exactly as the single interactions (reads through the enforcement
 *   point), with its own status and, on failure, its own OperationOutcome.
 *
 * Errors name entries and element paths, never values (no PHI).
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { validateResource, type FhirIssue } from '@hdx/fhir-mappers';
import type { ScopeAction } from '../auth/scopes';
import type { AuthContext } from '../auth/types';
import type { Caller } from './access-control';
import { invalidResource, type OperationOutcome, OperationOutcomeError, type OperationOutcomeIssue } from '../errors';
import { MAX_WRITE_VERSIONS, type ResourceService } from './resource-service';
import { commitOutcomeOf, REQUEST_REFUSALS } from '../ledger/ledger-errors';
import { parseIfMatch, type PreparedVersion, type Resource, WritePlan } from './write-plan';
import { MERGE_PATCH_MEDIA_TYPE } from './merge-patch';
import { fhirPathPatch, jsonPatch, mergePatch, type PatchDocument } from './patch-document';
import { ID, type RawQuery } from './search-params';
import { mapLimit } from '../util/concurrency';
import { type BundleSource, bundleSourceOf } from './bundle-source';
import { phaseClock, timeSync } from '../util/phase-timing';
import { bindCaller } from './policy';
import { conditionalDelete } from './handlers/conditional-delete';
import { conditionalUpdate } from './handlers/conditional-update';
import { create } from './handlers/create';
import { read } from './handlers/read';
import type { FhirContext, FhirOutcome, FhirRequest } from './handlers/request';
import { queryOf, withVersion } from './handlers/request';
import { answerSearch, type PreparedSearch, prepareSearch, search } from './handlers/search';
import { vread } from './handlers/vread';

/**
 * Most entries in one Bundle: a transaction is one write (MAX_WRITE_VERSIONS, anchored in as many
 * AnchorBatch transactions as it needs and still all or nothing).
 */
export const MAX_BUNDLE_ENTRIES = MAX_WRITE_VERSIONS;

/** Batch entries processed at the same time. */
const BATCH_CONCURRENCY = 8;
/** Batch entries read from the Bundle, checked and processed before their answers are handed on. */
const BATCH_WINDOW = 64;
/** The text of the bdl-7 invariant (as the validator words it for a whole Bundle). */
const BDL_7 = 'bdl-7: fullUrl SHALL be unique in a Bundle (or, in a history, differ by meta.versionId)';

/** The Caller for one interaction on one type, after its scope check (policy.ts bindCaller); throws FORBIDDEN. */
export type ScopedCaller = (resourceType: string, action: ScopeAction) => Caller;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Entry {
  readonly index: number;
  readonly method: Method;
  readonly type: string;
  /** PUT, DELETE, GET. */
  readonly id?: string;
  /** GET of a version (vread). */
  readonly versionId?: string;
  /** `urn:uuid:…` of the entry, if it has one. */
  readonly urn?: string;
  /** An absolute fullUrl `…/Type/id` of the entry (its identity in the Bundle), and the `Type/id` it ends with. */
  readonly absolute?: { readonly url: string; readonly ref: string; readonly atThisServer: boolean };
  /** PUT, DELETE of `Type?query`: the query (conditional update or delete); no id then. */
  readonly conditional?: string;
  /** GET of `Type?query` (or `Type`): a search, with this query. */
  readonly search?: string;
  /** PUT, DELETE: request.ifMatch, the version it must be (W/"n"). */
  readonly ifMatch?: string;
  /** POST: request.ifNoneExist, the query part (conditional create). */
  readonly ifNoneExist?: string;
  /** GET Type/id: request.ifNoneMatch and request.ifModifiedSince (conditional read). */
  readonly ifNoneMatch?: string;
  readonly ifModifiedSince?: string;
  readonly resource?: Resource;
  /** PATCH: the patch the entry carries (a FHIRPath Patch Parameters, or a JSON Patch or JSON Merge Patch in a Binary). */
  readonly patch?: PatchDocument;
}

export interface ResponseEntry {
  fullUrl?: string;
  resource?: Record<string, unknown>;
  response: { status: string; location?: string; etag?: string; lastModified?: string; outcome?: OperationOutcome };
}

/** A response entry and the method of the request entry it answers (undefined when that entry had none). */
export interface AnsweredEntry {
  readonly entry: ResponseEntry;
  readonly method: unknown;
}

/** A transaction-response or batch-response: its fields, and its entries in request order as they are answered. */
export interface BundleAnswer {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly entries: AsyncIterable<AnsweredEntry>;
}

/** A plain write of a batch, prepared: who writes it, its plan and the version it writes (none: a delete of nothing). */
interface BatchWrite {
  readonly index: number;
  readonly type: string;
  readonly who: Caller;
  readonly plan: WritePlan;
  readonly version: PreparedVersion | undefined;
}

/** A batch entry that is a create, or an update, patch or delete by id: prepared and committed with its window's others. */
function isPlainWrite(e: Entry): boolean {
  if (e.conditional !== undefined || e.search !== undefined || e.method === 'GET') return false;
  return e.method !== 'POST' || e.ifNoneExist === undefined;
}

async function* fromArray<T>(xs: readonly T[]): AsyncGenerator<T> {
  yield* xs;
}

/**
 * The validation errors of entry `index` of a transaction or batch: the entry checked as the only entry
 * of a batch Bundle (the official schema and the entry's invariants; a transaction's references between
 * entries are checked where they are resolved), its issues rebased onto `Bundle.entry[index]`.
 */
function entryIssues(raw: unknown, index: number): FhirIssue[] {
  const at = `Bundle.entry[${index}]`;
  const move = (text: string): string => (text.startsWith('Bundle.entry[0]') ? `${at}${text.slice('Bundle.entry[0]'.length)}` : text);
  return validateResource({ resourceType: 'Bundle', type: 'batch', entry: [raw] }, 'Bundle')
    .filter((i) => i.severity === 'error')
    .map((i) => ({ ...i, expression: move(i.expression), diagnostics: move(i.diagnostics) }));
}

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const URN_UUID = /^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const CONDITIONAL = ['ifNoneMatch', 'ifModifiedSince'] as const;
/** An absolute fullUrl: its base, type and id. */
const ABSOLUTE_FULL_URL = /^(https?:\/\/.+)\/([A-Z][A-Za-z]{1,63})\/([A-Za-z0-9\-.]{1,64})$/;
/** A conditional reference: `Type?search` (http.html#trules), resolved to the one resource it matches. */
const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]{1,63})\?(.+)$/;
const SCOPE_ACTION: Record<Method, ScopeAction> = { GET: 'read', POST: 'create', PUT: 'update', PATCH: 'update', DELETE: 'delete' };
/** FHIR transaction processing order (DELETE, POST, PUT and PATCH, GET); Patients before what refers to them. */
const METHOD_ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3 };
/** The media type of a Bundle PATCH entry's Binary holding a JSON Patch (http.html#patch; a FHIRPath Patch is a Parameters). */
const JSON_PATCH_TYPE = 'application/json-patch+json';

function status(code: number): string {
  return `${code} ${STATUS_CODES[code] ?? ''}`.trim();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function invalid(expression: string, message: string): OperationOutcomeError {
  return invalidResource([{ severity: 'error', code: 'invalid', expression, diagnostics: message }], message);
}

/** `Observation.subject` (an entry's resource as validated on its own) → `Bundle.entry[3].resource.subject`. */
function rebase(text: string, entry: string, type: string | undefined): string {
  if (type === undefined || !text.startsWith(type)) return text;
  const rest = text.slice(type.length);
  return rest === '' || /^[.[\s:]/.test(rest) ? `${entry}.resource${rest}` : text;
}

/**
 * The error of one entry: each issue's FHIRPath and text rebased onto `Bundle.entry[i]`; an error
 * without an element names the entry itself. Internal errors pass unchanged (the app hides them).
 */
function atEntry(err: unknown, index: number, type: string | undefined): unknown {
  if (!(err instanceof OperationOutcomeError) || err.code === 'INTERNAL') return err;
  if (err.message.startsWith('Bundle.')) return err;
  const entry = `Bundle.entry[${index}]`;
  const name = (text: string): string => {
    const rebased = rebase(text, entry, type);
    return rebased.startsWith('Bundle.') ? rebased : `${entry}: ${rebased}`;
  };
  const issues: OperationOutcomeIssue[] = err.outcome.issue.map((i) => ({
    ...i,
    ...(i.diagnostics !== undefined ? { diagnostics: name(i.diagnostics) } : {}),
    ...(i.details ? { details: { ...i.details, ...(i.details.text !== undefined ? { text: name(i.details.text) } : {}) } } : {}),
    expression: i.expression?.map((e) => rebase(e, entry, type)) ?? [entry],
  }));
  return new OperationOutcomeError(err.code, name(err.message), issues);
}

/**
 * The patch a Bundle PATCH entry carries (http.html#patch): a FHIRPath Patch as its resource (a
 * Parameters), or a JSON Patch (a JSON Merge Patch) in a Binary of contentType
 * application/json-patch+json (application/merge-patch+json) whose data is the patch document, base64.
 * Parsed here: a malformed one fails its entry (400).
 */
function patchDocument(resource: unknown, at: string): PatchDocument {
  if (isObject(resource) && resource.resourceType === 'Parameters') return fhirPathPatch(resource);
  if (!isObject(resource) || resource.resourceType !== 'Binary')
    throw invalid(
      `${at}.resource`,
      `${at}: a PATCH entry carries a FHIRPath Patch (a Parameters), or a JSON Patch or JSON Merge Patch in a Binary (contentType ${JSON_PATCH_TYPE} or ${MERGE_PATCH_MEDIA_TYPE})`,
    );
  if (resource.contentType !== JSON_PATCH_TYPE && resource.contentType !== MERGE_PATCH_MEDIA_TYPE)
    throw invalid(`${at}.resource.contentType`, `${at}.resource.contentType must be ${JSON_PATCH_TYPE} or ${MERGE_PATCH_MEDIA_TYPE}`);
  if (typeof resource.data !== 'string') throw invalid(`${at}.resource.data`, `${at}.resource.data must hold the patch document, base64`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8')) as unknown;
  } catch {
    throw invalid(`${at}.resource.data`, `${at}.resource.data is not a base64 JSON document`);
  }
  return resource.contentType === MERGE_PATCH_MEDIA_TYPE ? mergePatch(body) : jsonPatch(body);
}

/** `Type`, `Type/id` or `Type/id/_history/vid`, relative or under this server's base. */
function parseUrl(url: string, baseUrl: string): { type: string; id?: string; versionId?: string } | undefined {
  const relative = url.startsWith(`${baseUrl}/`) ? url.slice(baseUrl.length + 1) : url;
  const parts = relative.split('/');
  const [type, id, history, versionId] = parts;
  if (type === undefined || !TYPE.test(type)) return undefined;
  if (parts.length === 1) return { type };
  if (id === undefined || !ID.test(id)) return undefined;
  if (parts.length === 2) return { type, id };
  if (parts.length === 4 && history === '_history' && versionId !== undefined && /^[0-9]{1,9}$/.test(versionId)) return { type, id, versionId };
  return undefined;
}

/** Every `reference` string in a resource, with the FHIRPath of the Reference holding it. */
function forEachReference(value: unknown, path: string, fn: (holder: Record<string, unknown>, path: string) => void): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => forEachReference(v, `${path}[${i}]`, fn));
  } else if (isObject(value)) {
    if (typeof value.reference === 'string') fn(value, path);
    for (const [k, v] of Object.entries(value)) if (v !== null && typeof v === 'object') forEachReference(v, `${path}.${k}`, fn);
  }
}

/**
 * A transaction search's query with each value (or comma-separated part of one) that names an entry
 * replaced by the `Type/id` that entry writes (by its id alone in `_id`): its `urn:uuid:`
 * (`Observation?subject=urn:uuid:…` finds what the transaction's Patient entry creates), or its absolute
 * fullUrl (with or without `/_history/n`; at this server's base also its `Type/id`), as references to
 * the entry are rewritten. Anything else is left as sent.
 */
function withEntryIds(query: RawQuery, targets: ReadonlyMap<string, string>): RawQuery {
  const swap = (key: string, part: string): string => {
    const value = part.trim();
    const ref = value.startsWith('urn:uuid:') ? targets.get(value.toLowerCase()) : (targets.get(value) ?? targets.get(value.replace(/\/_history\/[^/]+$/, '')));
    if (ref === undefined) return part;
    return key === '_id' ? ref.slice(ref.indexOf('/') + 1) : ref;
  };
  return Object.fromEntries(
    Object.entries(query).map(([k, values]) => [
      k,
      values.map((v) =>
        v
          .split(',')
          .map((part) => swap(k, part))
          .join(','),
      ),
    ]),
  );
}

export interface BundleServiceDeps {
  /**
   * The FHIR layer's context: its services, this server's FHIR base URL (fullUrl of the response
   * entries; accepted as a prefix of request URLs) and MSP id (callers are bound against it).
   */
  readonly context: FhirContext;
}

export class BundleService {
  readonly #ctx: FhirContext;
  readonly #resources: ResourceService;
  readonly #base: string;
  /** Conditional references resolved by this Bundle so far: `Type?query` → `Type/id`. */
  readonly #references = new Map<string, string>();

  constructor(deps: BundleServiceDeps) {
    this.#ctx = deps.context;
    this.#resources = deps.context.resources;
    this.#base = deps.context.baseUrl;
  }

  /**
   * `POST [base]`: a transaction or batch Bundle of this caller → its transaction-response or
   * batch-response: the response Bundle's fields and its entries, each with the method of the request
   * entry it answers. A batch's entries are processed a window at a time as the answer is read (its
   * entries come from the source one at a time), so a batch of any size is never held whole; a
   * transaction is processed completely before its answer is returned. A batch's `GET Type?query`
   * entries are answered by the search-type handler, as `GET [base]/Type?query` is (a searchset Bundle).
   */
  async process(auth: AuthContext, body: unknown): Promise<BundleAnswer> {
    const scoped: ScopedCaller = (type, action) => bindCaller(auth, this.#ctx.mspId, type, action);
    const source = bundleSourceOf(body);
    const type = source.fields.type;
    if (type !== 'transaction' && type !== 'batch') throw invalid('Bundle.type', 'Bundle.type must be transaction or batch');
    if (source.entryCount > MAX_BUNDLE_ENTRIES) {
      throw new OperationOutcomeError('TOO_LARGE', `A Bundle may hold at most ${MAX_BUNDLE_ENTRIES} entries; this one has ${source.entryCount}: split it`);
    }
    // The Bundle's own fields are checked first; each entry is checked as it is read (checkedEntry).
    const envelope = timeSync('validate', () => validateResource(source.fields, 'Bundle'), 'bundle').filter((i) => i.severity === 'error');
    if (envelope.length > 0)
      throw invalidResource(envelope, type === 'transaction' ? 'The transaction is not valid FHIR R4; nothing was written' : 'The batch is not a valid FHIR R4 Bundle');
    const fields = { resourceType: 'Bundle', id: randomUUID(), type: `${type}-response` };
    if (type === 'transaction') return { fields, entries: fromArray(await this.transaction(auth, scoped, source)) };
    return { fields, entries: this.batch(auth, scoped, source) };
  }

  /**
   * Entry `index` of the source, ready to be parsed as an entry: its conditional references
   * (`Practitioner?identifier=…`) resolved first, so it is validated with the literal references it will
   * be stored with, then validated as an entry of a Bundle of the source's type (the official schema and
   * invariants; a fullUrl used by an earlier entry is bdl-7). Throws the entry's error.
   */
  async #checkedEntry(scoped: ScopedCaller, source: BundleSource, index: number, fullUrls: Set<string>): Promise<unknown> {
    const raw = source.entry(index);
    await this.#resolveConditionalReferences(scoped, raw, index);
    const kind = source.fields.type === 'transaction' ? 'transaction' : 'batch';
    const issues = timeSync('validate', () => entryIssues(raw, index), 'entry');
    const fullUrl = isObject(raw) && typeof raw.fullUrl === 'string' ? raw.fullUrl : undefined;
    if (fullUrl !== undefined) {
      if (fullUrls.has(fullUrl)) issues.push({ severity: 'error', code: 'invariant', expression: `Bundle.entry[${index}].fullUrl`, diagnostics: BDL_7 });
      fullUrls.add(fullUrl);
    }
    if (issues.length > 0)
      throw invalidResource(issues, kind === 'transaction' ? 'The transaction is not valid FHIR R4; nothing was written' : `Bundle.entry[${index}] is not valid FHIR R4`);
    return raw;
  }

  /**
   * Rewrites every conditional reference of an entry's resource to the one resource it matches; throws
   * the entry's error at the first that does not resolve.
   */
  async #resolveConditionalReferences(scoped: ScopedCaller, raw: unknown, index: number): Promise<void> {
    if (!isObject(raw) || !isObject(raw.resource) || !isObject(raw.request)) return;
    const method = raw.request.method;
    const type = raw.resource.resourceType;
    try {
      const holders: Array<{ holder: Record<string, unknown>; path: string }> = [];
      forEachReference(raw.resource, `Bundle.entry[${index}].resource`, (holder, path) => {
        if (CONDITIONAL_REFERENCE.test(holder.reference as string)) holders.push({ holder, path });
      });
      for (const { holder, path } of holders) {
        // Resolved only for a caller allowed to make this entry's write (the match is looked up before consent).
        if ((method !== 'POST' && method !== 'PUT') || typeof type !== 'string') throw invalid(path, `${path}: a conditional reference is resolved only in a POST or PUT entry`);
        const interaction = method === 'POST' ? 'create' : 'update';
        holder.reference = await this.#resolveConditionalReference(scoped(type, interaction), interaction, type, holder.reference as string, path, this.#references);
      }
    } catch (err) {
      throw atEntry(err, index, typeof type === 'string' ? type : undefined);
    }
  }

  #parseEntry(raw: unknown, index: number, kind: 'transaction' | 'batch'): Entry {
    const at = `Bundle.entry[${index}]`;
    if (!isObject(raw)) throw invalid(at, `${at} must be an object`);
    const request = raw.request;
    if (!isObject(request)) throw invalid(`${at}.request`, `${at}.request is required in a ${kind}`);
    const method = request.method;
    if (method !== 'GET' && method !== 'POST' && method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') {
      throw invalid(`${at}.request.method`, `${at}.request.method must be GET, POST, PUT, PATCH or DELETE (HEAD is not supported)`);
    }
    // Conditional read (If-None-Match, If-Modified-Since): on a read (GET Type/id) only, checked below.
    const conditionalRead = CONDITIONAL.find((c) => request[c] !== undefined);
    if (conditionalRead !== undefined && (method !== 'GET' || typeof request[conditionalRead] !== 'string'))
      throw invalid(`${at}.request.${conditionalRead}`, `${at}.request.${conditionalRead}: a conditional read, on a GET Type/id only`);
    const ifMatch = request.ifMatch;
    if (ifMatch !== undefined) {
      if ((method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') || typeof ifMatch !== 'string')
        throw invalid(`${at}.request.ifMatch`, `${at}.request.ifMatch names a version, on a PUT, PATCH or DELETE only`);
      parseIfMatch(ifMatch);
    }
    const ifNoneExist = request.ifNoneExist;
    if (ifNoneExist !== undefined && (method !== 'POST' || typeof ifNoneExist !== 'string' || ifNoneExist.trim() === '')) {
      throw invalid(`${at}.request.ifNoneExist`, `${at}.request.ifNoneExist is a search query, on a POST only`);
    }
    if (typeof request.url !== 'string') throw invalid(`${at}.request.url`, `${at}.request.url is required`);
    // `Type?query` on a PUT, PATCH or DELETE: a conditional update, patch or delete (http.html#cond-update, #patch, #cdelete).
    const [path = '', query] = request.url.split(/\?(.*)/s, 2);
    const url = parseUrl(path, this.#base);
    // `GET Type?query` (or `GET Type`): a search (http.html#transaction), in a batch or a transaction.
    if (method === 'GET' && url !== undefined && url.id === undefined) {
      if (conditionalRead !== undefined) throw invalid(`${at}.request.${conditionalRead}`, `${at}.request.${conditionalRead}: a conditional read, on a GET Type/id only`);
      if (raw.resource !== undefined) throw invalid(`${at}.resource`, `${at}: a GET entry carries no resource`);
      return { index, method, type: url.type, search: query ?? '' };
    }
    if (query !== undefined && (method === 'GET' || method === 'POST' || query === ''))
      throw invalid(
        `${at}.request.url`,
        `${at}.request.url: a query in request.url is a conditional update, patch or delete (PUT, PATCH or DELETE Type?query), or a search (GET Type?query)`,
      );
    const shape = {
      GET: 'Type/id or Type/id/_history/vid',
      POST: 'a resource type',
      PUT: 'Type/id or Type?query',
      PATCH: 'Type/id or Type?query',
      DELETE: 'Type/id or Type?query',
    }[method];
    const fits =
      url !== undefined &&
      (method === 'POST' || query !== undefined ? url.id === undefined : method === 'GET' ? url.id !== undefined : url.id !== undefined && url.versionId === undefined);
    if (!url || !fits) throw invalid(`${at}.request.url`, `${at}.request.url must be ${shape} for ${method}`);
    if (conditionalRead !== undefined && url.versionId !== undefined)
      throw invalid(`${at}.request.${conditionalRead}`, `${at}.request.${conditionalRead}: a conditional read, on a GET Type/id only`);
    const resource = raw.resource;
    const patch = method === 'PATCH' ? patchDocument(resource, at) : undefined;
    if (method === 'POST' || method === 'PUT') {
      if (!isObject(resource)) throw invalid(`${at}.resource`, `${at}.resource is required for ${method}`);
      if (resource.resourceType !== url.type) throw invalid(`${at}.resource.resourceType`, `${at}.resource.resourceType must be the type named by request.url`);
    } else if (resource !== undefined && method !== 'PATCH') {
      throw invalid(`${at}.resource`, `${at}: a ${method} entry carries no resource`);
    }
    const fullUrl = raw.fullUrl;
    const urn = typeof fullUrl === 'string' && fullUrl.startsWith('urn:uuid:') ? fullUrl.toLowerCase() : undefined;
    if (urn !== undefined && !URN_UUID.test(urn)) throw invalid(`${at}.fullUrl`, `${at}.fullUrl: a urn:uuid must hold a UUID`);
    // An absolute fullUrl names the entry's resource where it came from; references to it are rewritten (http.html#trules).
    const abs = typeof fullUrl === 'string' && /^https?:\/\//.test(fullUrl) ? ABSOLUTE_FULL_URL.exec(fullUrl) : null;
    const absolute =
      abs?.[1] !== undefined && abs[2] === url.type && abs[3] !== undefined ? { url: abs[0], ref: `${abs[2]}/${abs[3]}`, atThisServer: abs[1] === this.#base } : undefined;
    return {
      index,
      method,
      type: url.type,
      ...(url.id !== undefined ? { id: url.id } : {}),
      ...(url.versionId !== undefined ? { versionId: url.versionId } : {}),
      ...(urn !== undefined ? { urn } : {}),
      ...(absolute !== undefined ? { absolute } : {}),
      ...(typeof ifMatch === 'string' ? { ifMatch } : {}),
      ...(query !== undefined ? { conditional: query } : {}),
      ...(typeof ifNoneExist === 'string' ? { ifNoneExist: ifNoneExist.replace(/^[^?]*\?/, '') } : {}),
      ...(typeof request.ifNoneMatch === 'string' ? { ifNoneMatch: request.ifNoneMatch } : {}),
      ...(typeof request.ifModifiedSince === 'string' ? { ifModifiedSince: request.ifModifiedSince } : {}),
      ...(isObject(resource) && method !== 'PATCH' ? { resource: resource as Resource } : {}),
      ...(patch !== undefined ? { patch } : {}),
    };
  }

  /** All or nothing: see the file comment. Its response entries, in request order. */
  async transaction(auth: AuthContext, scoped: ScopedCaller, source: BundleSource): Promise<AnsweredEntry[]> {
    const fullUrls = new Set<string>();
    const entries: Entry[] = [];
    for (let i = 0; i < source.entryCount; i++) entries.push(this.#parseEntry(await this.#checkedEntry(scoped, source, i, fullUrls), i, 'transaction'));

    // Who may do all of it: the scope for every entry's interaction, up front.
    const callers = entries.map((e) => {
      try {
        return scoped(e.type, e.search !== undefined ? 'search' : SCOPE_ACTION[e.method]);
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    });
    // Conditional creates: an entry whose ifNoneExist matches one resource writes nothing and stands
    // for that resource (its urn:uuid resolves to it); several matches fail the transaction (412).
    const matched = new Map<number, { id: string; versionId: number }>();
    for (const e of entries) {
      if (e.ifNoneExist === undefined) continue;
      try {
        const found = await this.#resources.matchFor(callers[e.index] as Caller, 'create', e.type, e.type, e.ifNoneExist);
        if (found.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `ifNoneExist matches several ${e.type} resources: nothing was written`);
        if (found[0]) matched.set(e.index, { id: found[0].id, versionId: found[0].versionId });
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    }

    // Conditional updates, patches and deletes: one match → that resource; none → an update creates (a
    // server id), a delete has nothing to do, a patch fails (404); several → 412. Matched only for a caller allowed to make the
    // write (a patient in its own compartment only), so the answer is no existence oracle.
    const conditional = new Map<number, { id: string } | { create: true } | { none: true }>();
    const queries = new Set<string>();
    for (const e of entries) {
      if (e.conditional === undefined) continue;
      try {
        // Two entries of one query would both create (or both change one resource): refused.
        if (queries.has(`${e.type}?${e.conditional}`))
          throw invalid(
            `Bundle.entry[${e.index}].request.url`,
            `Bundle.entry[${e.index}].request.url: the same conditional request.url is on an earlier entry of this transaction`,
          );
        queries.add(`${e.type}?${e.conditional}`);
        const interaction = e.method === 'DELETE' ? 'delete' : 'update';
        // A conditional update may create: the scopes of both, before anything is matched.
        if (e.method === 'PUT') scoped(e.type, 'create');
        const found = await this.#resources.matchFor(callers[e.index] as Caller, interaction, e.type, e.type, e.conditional);
        const what = e.method === 'PATCH' ? 'patch' : interaction;
        if (found.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `the conditional ${what} matches several ${e.type} resources: nothing was written`);
        const [match] = found;
        // A conditional patch needs its one match (http.html#patch): none is a 404.
        if (!match && e.method === 'PATCH') throw new OperationOutcomeError('NOT_FOUND', `the conditional patch matches no ${e.type}: nothing was written`);
        const bodyId = e.resource?.id;
        if (match) {
          if (bodyId !== undefined && bodyId !== match.id) throw invalid(`${e.type}.id`, `${e.type}.id is not the id of the resource the conditional update matches`);
          conditional.set(e.index, { id: match.id });
        } else if (e.method === 'DELETE') {
          conditional.set(e.index, { none: true });
        } else {
          if (bodyId !== undefined)
            throw invalid(`${e.type}.id`, 'the conditional update matches nothing and names an id: this server does not create a resource at a client-chosen id');
          if (e.ifMatch !== undefined) throw new OperationOutcomeError('PRECONDITION_FAILED', `ifMatch names a version, but the conditional update matches no ${e.type}`);
          conditional.set(e.index, { create: true });
        }
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    }

    // Server-assigned ids for POSTs, so urn:uuid references resolve before anything is validated.
    const ids = new Map<number, string>();
    const targets = new Map<string, string>();
    const touched = new Set<string>();
    for (const e of entries) {
      // A read changes nothing and names its resource by Type/id: no id to assign, nothing touched.
      if (e.method === 'GET') continue;
      const cond = conditional.get(e.index);
      const id = matched.get(e.index)?.id ?? (cond && 'id' in cond ? cond.id : e.method === 'POST' || cond !== undefined ? randomUUID() : (e.id as string));
      ids.set(e.index, id);
      if (e.urn !== undefined) {
        if (targets.has(e.urn)) throw invalid(`Bundle.entry[${e.index}].fullUrl`, `Bundle.entry[${e.index}].fullUrl appears on an earlier entry too`);
        targets.set(e.urn, `${e.type}/${id}`);
      }
      if (e.absolute !== undefined) {
        if (targets.has(e.absolute.url)) throw invalid(`Bundle.entry[${e.index}].fullUrl`, `Bundle.entry[${e.index}].fullUrl appears on an earlier entry too`);
        targets.set(e.absolute.url, `${e.type}/${id}`);
        // At this server's base, the relative form names the entry too (a POST's id is replaced by the server's).
        if (e.absolute.atThisServer) targets.set(e.absolute.ref, `${e.type}/${id}`);
      }
      if (e.method !== 'POST') {
        if (touched.has(`${e.type}/${id}`))
          throw invalid(`Bundle.entry[${e.index}].request.url`, `Bundle.entry[${e.index}]: the resource is already changed by an earlier entry of this transaction`);
        touched.add(`${e.type}/${id}`);
      }
    }
    // Searches, before anything is prepared or written: each parsed and checked as `GET Type?query` would
    // be (parameters, scopes, a remote caller naming the patient), nothing read, decided or recorded; one
    // that would be refused fails the transaction. A value that is an entry's urn:uuid names the resource
    // that entry writes. They are answered after the commit (below).
    const searches = new Map<number, PreparedSearch>();
    for (const e of entries) {
      if (e.search === undefined) continue;
      try {
        searches.set(e.index, prepareSearch(this.#ctx, { auth, type: e.type, query: withEntryIds(queryOf(e.search), targets) }));
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    }
    for (const e of entries) {
      if (matched.has(e.index)) continue;
      forEachReference(e.resource, `Bundle.entry[${e.index}].resource`, (holder, path) => {
        const value = holder.reference as string;
        if (!value.startsWith('urn:uuid:')) {
          // A reference to an entry by its absolute fullUrl (or, at this server's base, its Type/id).
          const entryTarget = targets.get(value) ?? targets.get(value.replace(/\/_history\/[^/]+$/, ''));
          if (entryTarget !== undefined && !value.startsWith('#')) holder.reference = entryTarget;
          return;
        }
        const target = targets.get(value.toLowerCase());
        if (target === undefined) throw invalid(`${path}.reference`, `${path}.reference: a urn:uuid in a transaction SHALL resolve to the fullUrl of an entry`);
        holder.reference = target;
      });
    }

    // Prepared in dependency order (nothing is stored yet): a Patient before what refers to it.
    const plan = new WritePlan();
    const prepared = new Map<number, PreparedVersion | undefined>();
    // A conditional update that creates is ordered as the create it is (a POST may refer to it).
    const rank = (e: Entry): number => {
      const cond = conditional.get(e.index);
      return METHOD_ORDER[cond && 'create' in cond ? 'POST' : e.method];
    };
    const order = [...entries].sort((a, b) => rank(a) - rank(b) || Number(b.type === 'Patient') - Number(a.type === 'Patient') || a.index - b.index);
    const planStart = phaseClock();
    for (const e of order) {
      if (matched.has(e.index) || e.method === 'GET') continue;
      const who = callers[e.index] as Caller;
      const id = ids.get(e.index) as string;
      const cond = conditional.get(e.index);
      try {
        if (cond && 'none' in cond) prepared.set(e.index, undefined);
        else if (cond && 'create' in cond) prepared.set(e.index, await this.#resources.prepareCreate(scoped(e.type, 'create'), e.type, e.resource, plan, id));
        else if (e.method === 'POST') prepared.set(e.index, await this.#resources.prepareCreate(who, e.type, e.resource, plan, id));
        else if (e.method === 'PUT' && cond) prepared.set(e.index, await this.#resources.prepareUpdate(who, e.type, id, { ...e.resource, id }, plan, e.ifMatch));
        else if (e.method === 'PUT') prepared.set(e.index, await this.#resources.prepareUpdate(who, e.type, id, e.resource, plan, e.ifMatch));
        else if (e.method === 'PATCH') prepared.set(e.index, await this.#resources.preparePatch(who, e.type, id, e.patch as PatchDocument, plan, e.ifMatch));
        else prepared.set(e.index, await this.#resources.prepareDelete(who, e.type, id, plan, e.ifMatch));
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    }
    planStart?.('plan');

    // GET entries, before anything is committed: each must be answerable (allowed, there) in the state
    // the writes leave, decided without recording anything; one that is not fails the transaction.
    const reads = entries.filter((e) => e.method === 'GET' && e.search === undefined);
    const written = new Map(plan.versions.map((v) => [`${v.row.resourceType}/${v.row.id}`, v]));
    for (const e of reads) {
      try {
        const mine = written.get(`${e.type}/${String(e.id)}`);
        if (mine?.action === 'D' && (e.versionId === undefined || e.versionId === String(mine.row.versionId)))
          throw new OperationOutcomeError('GONE', `${e.type}/${String(e.id)} is deleted by this transaction`);
        // A version this transaction writes is decided when it is read, after the commit; any other is decided now.
        if (mine === undefined || (e.versionId !== undefined && e.versionId !== String(mine.row.versionId)))
          await this.#resources.assertReadable(callers[e.index] as Caller, e.type, e.id as string, e.versionId);
      } catch (err) {
        throw atEntry(err, e.index, e.type);
      }
    }

    // The writes are committed as the caller of the first write (a read's binding is for reading).
    const first = callers.find((_, i) => entries[i]?.method !== 'GET');
    if (first) {
      try {
        await this.#resources.commitWrite(first, plan);
      } catch (err) {
        // Pending versions are discarded by commitWrite; name the entry if the error names its version.
        const culprit = entries.find((e) => {
          const v = prepared.get(e.index);
          return v !== undefined && err instanceof Error && err.message.includes(`${v.row.resourceType}/${v.row.id}`);
        });
        throw culprit ? atEntry(err, culprit.index, culprit.type) : err;
      }
    }

    // The reads and searches, last (http.html#trules), in entry order, through the enforcement point as
    // any read or search: each decided and recorded now that the writes are committed, so it sees them.
    // A read no longer allowed (consent changed since the check) fails closed: that entry answers its
    // error, the committed writes stand. A search leaves out what the caller may not see, as any search.
    const answers = new Map<number, ResponseEntry>();
    for (const e of entries) {
      if (e.method !== 'GET') continue;
      const prepared = searches.get(e.index);
      if (prepared) {
        try {
          const found = await answerSearch(this.#ctx, prepared);
          answers.set(e.index, { ...(found.resource ? { resource: found.resource } : {}), response: { status: status(found.status) } });
        } catch (err) {
          answers.set(e.index, this.#failed(atEntry(err, e.index, e.type), e.index));
        }
        continue;
      }
      const req: FhirRequest = {
        auth,
        type: e.type,
        id: e.id as string,
        ...(e.versionId !== undefined ? { versionId: e.versionId } : {}),
        query: {},
        headers: { ...(e.ifNoneMatch !== undefined ? { ifNoneMatch: e.ifNoneMatch } : {}), ...(e.ifModifiedSince !== undefined ? { ifModifiedSince: e.ifModifiedSince } : {}) },
      };
      try {
        answers.set(e.index, this.#entryOf(e.type, e.versionId === undefined ? await read(this.#ctx, req) : await vread(this.#ctx, req)));
      } catch (err) {
        answers.set(e.index, this.#failed(atEntry(err, e.index, e.type), e.index));
      }
    }

    return entries.map((e): AnsweredEntry => {
      const answer = answers.get(e.index);
      const existing = matched.get(e.index);
      const v = prepared.get(e.index);
      const entry = answer ?? (existing ? this.#matched(e.type, existing) : v ? this.#written(v) : { response: { status: status(204) } });
      return { entry, method: e.method };
    });
  }

  /**
   * `Type?query` → `Type/id` of the one current resource it matches (cached per transaction); none →
   * 400, several → 412. The query never appears in an error (it may hold an identifier).
   */
  async #resolveConditionalReference(caller: Caller, interaction: 'create' | 'update', writing: string, value: string, path: string, cache: Map<string, string>): Promise<string> {
    const m = CONDITIONAL_REFERENCE.exec(value);
    const [type, query] = [m?.[1] ?? '', m?.[2] ?? ''];
    const known = cache.get(value);
    if (known) {
      this.#resources.assertMayWrite(caller, interaction, writing);
      return known;
    }
    // A patient's references match its own compartment only (matchFor): never another patient's record.
    const found = await this.#resources.matchFor(caller, interaction, writing, type, query);
    if (found.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `${path}: the conditional reference matches several ${type} resources`);
    if (!found[0]) throw invalid(path, `${path}: the conditional reference matches no ${type} held here`);
    const ref = `${type}/${found[0].id}`;
    cache.set(value, ref);
    return ref;
  }

  /** A conditional create that matched: nothing written, the existing resource named (not disclosed). */
  #matched(type: string, existing: { id: string; versionId: number }): ResponseEntry {
    return {
      fullUrl: `${this.#base}/${type}/${existing.id}`,
      response: { status: status(200), location: `${type}/${existing.id}/_history/${existing.versionId}`, etag: `W/"${existing.versionId}"` },
    };
  }

  #written(v: PreparedVersion): ResponseEntry {
    const { resourceType, id, versionId, lastUpdated } = v.row;
    const response = { etag: `W/"${versionId}"`, lastModified: lastUpdated };
    if (v.action === 'D') return { response: { status: status(204), ...response } };
    return {
      fullUrl: `${this.#base}/${resourceType}/${id}`,
      resource: v.resource,
      response: { status: status(v.action === 'C' ? 201 : 200), location: `${resourceType}/${id}/_history/${versionId}`, ...response },
    };
  }

  /**
   * Each entry on its own; the batch-response lists every entry's outcome in request order. Entries are
   * read from the source, checked and processed a window at a time (BATCH_CONCURRENCY of them at once),
   * and each window's answers are yielded before the next window is read.
   */
  async *batch(auth: AuthContext, scoped: ScopedCaller, source: BundleSource): AsyncGenerator<AnsweredEntry> {
    const fullUrls = new Set<string>();
    for (let start = 0; start < source.entryCount; start += BATCH_WINDOW) {
      // Checked in entry order (a fullUrl is a duplicate of an earlier entry's), then processed together.
      const window: Array<{ index: number; raw?: unknown; method: unknown; failure?: unknown }> = [];
      for (let index = start; index < Math.min(start + BATCH_WINDOW, source.entryCount); index++) {
        try {
          const raw = await this.#checkedEntry(scoped, source, index, fullUrls);
          window.push({ index, raw, method: isObject(raw) && isObject(raw.request) ? raw.request.method : undefined });
        } catch (err) {
          window.push({ index, method: undefined, failure: err });
        }
      }
      // Plain writes (a create, or an update, patch or delete by id) are prepared each on its own and
      // committed together (#commitTogether); everything else, and a second write of a resource the
      // window writes already, goes alone through the single interactions' path.
      const answers = new Map<number, ResponseEntry>();
      const writes: BatchWrite[] = [];
      const later: Entry[] = [];
      const touched = new Set<string>();
      await mapLimit(window, BATCH_CONCURRENCY, async ({ index, raw, failure }) => {
        let type: string | undefined;
        try {
          if (failure !== undefined) throw failure;
          const e = this.#parseEntry(raw, index, 'batch');
          type = e.type;
          if (e.search !== undefined) {
            // A search, as GET [base]/Type?query is (no Prefer: strict).
            const found = await search(this.#ctx, { auth, type: e.type, query: queryOf(e.search) });
            answers.set(index, { ...(found.resource ? { resource: found.resource } : {}), response: { status: status(found.status) } });
          } else if (!isPlainWrite(e)) {
            answers.set(index, await this.#batchEntry(auth, e));
          } else if (e.id !== undefined && touched.has(`${e.type}/${e.id}`)) {
            later.push(e);
          } else {
            if (e.id !== undefined) touched.add(`${e.type}/${e.id}`);
            writes.push({ index, type: e.type, ...(await this.#prepareWrite(auth, e)) });
          }
        } catch (err) {
          answers.set(index, this.#failed(atEntry(err, index, type), index));
        }
      });
      for (const [index, entry] of await this.#commitTogether(writes)) answers.set(index, entry);
      for (const e of later) {
        try {
          answers.set(e.index, await this.#batchEntry(auth, e));
        } catch (err) {
          answers.set(e.index, this.#failed(atEntry(err, e.index, e.type), e.index));
        }
      }
      for (const { index, method } of window) yield { entry: answers.get(index) ?? this.#failed(new Error('a batch entry was not answered'), index), method };
    }
  }

  async #batchEntry(auth: AuthContext, e: Entry): Promise<ResponseEntry> {
    forEachReference(e.resource, `Bundle.entry[${e.index}].resource`, (holder, path) => {
      if ((holder.reference as string).startsWith('urn:uuid:')) throw invalid(path, `${path}: entries of a batch cannot refer to each other (urn:uuid); use a transaction`);
    });
    const who = bindCaller(auth, this.#ctx.mspId, e.type, SCOPE_ACTION[e.method]);
    // Reads and conditional writes: the handlers of the single interactions, with the entry's request.
    const req: FhirRequest = {
      auth,
      type: e.type,
      ...(e.id !== undefined ? { id: e.id } : {}),
      ...(e.versionId !== undefined ? { versionId: e.versionId } : {}),
      query: {},
      ...(e.conditional !== undefined ? { queryString: e.conditional } : {}),
      headers: {
        ...(e.ifMatch !== undefined ? { ifMatch: e.ifMatch } : {}),
        ...(e.ifNoneExist !== undefined ? { ifNoneExist: e.ifNoneExist } : {}),
        ...(e.ifNoneMatch !== undefined ? { ifNoneMatch: e.ifNoneMatch } : {}),
        ...(e.ifModifiedSince !== undefined ? { ifModifiedSince: e.ifModifiedSince } : {}),
      },
      ...(e.resource !== undefined ? { body: e.resource } : {}),
      bodyFormat: 'fhir-json',
    };
    if (e.method === 'POST' && e.ifNoneExist !== undefined) return this.#entryOf(e.type, await create(this.#ctx, req));
    if (e.conditional !== undefined && e.method === 'DELETE') return this.#entryOf(e.type, await conditionalDelete(this.#ctx, req));
    if (e.conditional !== undefined && e.method === 'PATCH') {
      this.#resources.assertMayWrite(who, 'update', e.type);
      return this.#entryOf(e.type, withVersion(200, await this.#resources.conditionalPatch(who, e.type, e.conditional, e.patch as PatchDocument, e.ifMatch)), true);
    }
    // A conditional update's entry names the version written, also when it updated (HTTP sends Location on a create only).
    if (e.conditional !== undefined) return this.#entryOf(e.type, await conditionalUpdate(this.#ctx, req), true);
    if (e.method === 'GET') return this.#entryOf(e.type, e.versionId === undefined ? await read(this.#ctx, req) : await vread(this.#ctx, req));
    // A plain write alone (a second write of a resource its window writes already): prepared and committed here.
    const w = await this.#prepareWrite(auth, e);
    if (w.version) await this.#resources.commitWrite(w.who, w.plan);
    return w.version ? this.#written(w.version) : { response: { status: status(204) } };
  }

  /**
   * A plain write of a batch (a create, or an update, patch or delete by id): prepared (validated, its
   * patient and version resolved), nothing stored. The entry's response names the version written, a
   * deletion's too, which only the prepared version carries (the single delete answers 204 alone);
   * no version: a delete of what is not there.
   */
  async #prepareWrite(auth: AuthContext, e: Entry): Promise<{ who: Caller; plan: WritePlan; version: PreparedVersion | undefined }> {
    forEachReference(e.resource, `Bundle.entry[${e.index}].resource`, (holder, path) => {
      if ((holder.reference as string).startsWith('urn:uuid:')) throw invalid(path, `${path}: entries of a batch cannot refer to each other (urn:uuid); use a transaction`);
    });
    const who = bindCaller(auth, this.#ctx.mspId, e.type, SCOPE_ACTION[e.method]);
    const plan = new WritePlan();
    const id = e.id as string;
    const version =
      e.method === 'DELETE'
        ? await this.#resources.prepareDelete(who, e.type, id, plan, e.ifMatch)
        : e.method === 'POST'
          ? await this.#resources.prepareCreate(who, e.type, e.resource, plan)
          : e.method === 'PATCH'
            ? await this.#resources.preparePatch(who, e.type, id, e.patch as PatchDocument, plan, e.ifMatch)
            : await this.#resources.prepareUpdate(who, e.type, id, e.resource, plan, e.ifMatch);
    return { who, plan, version };
  }

  /**
   * The prepared plain writes of a batch window, committed together: ONE store transaction and ONE
   * ledger transaction (commitWrite of their plans merged) instead of one each, so a large batch costs
   * what a transaction of its writes costs. Each keeps its own answer: if the ledger refuses the group
   * for a reason that concerns a request (INVALID, FORBIDDEN, NOT_FOUND, CONFLICT; nothing was kept),
   * each is committed again on its own and answers for itself; any other failure (the ledger
   * unreachable, an outcome not known) is every write's answer, as it would have been alone.
   */
  async #commitTogether(writes: readonly BatchWrite[]): Promise<Map<number, ResponseEntry>> {
    const out = new Map<number, ResponseEntry>();
    const real = writes.filter((w) => w.version !== undefined);
    for (const w of writes) if (w.version === undefined) out.set(w.index, { response: { status: status(204) } });
    if (real.length > 1) {
      const plan = new WritePlan();
      for (const w of real) plan.absorb(w.plan);
      try {
        await this.#resources.commitWrite((real[0] as BatchWrite).who, plan);
        for (const w of real) out.set(w.index, this.#written(w.version as PreparedVersion));
        return out;
      } catch (err) {
        const code = err instanceof OperationOutcomeError ? err.code : 'INTERNAL';
        if (commitOutcomeOf(err) !== 'not-committed' || !REQUEST_REFUSALS.has(code)) {
          for (const w of real) out.set(w.index, this.#failed(atEntry(err, w.index, w.type), w.index));
          return out;
        }
      }
    }
    // One write, or a group refused for one write's sake (nothing of it kept): each on its own.
    await mapLimit(real, BATCH_CONCURRENCY, async (w) => {
      try {
        await this.#resources.commitWrite(w.who, w.plan);
        out.set(w.index, this.#written(w.version as PreparedVersion));
      } catch (err) {
        out.set(w.index, this.#failed(atEntry(err, w.index, w.type), w.index));
      }
    });
    return out;
  }

  /**
   * A handler's outcome as a batch-response entry: its resource, status, version (etag, lastModified)
   * and where the resource is (fullUrl; location when the outcome names one, or with `locate` the
   * version the resource carries).
   */
  #entryOf(type: string, out: FhirOutcome, locate = false): ResponseEntry {
    const versioned = out.resource !== undefined && out.version !== undefined ? `${type}/${String(out.resource.id)}/_history/${out.version.versionId}` : undefined;
    const location = out.location ?? (locate ? versioned : undefined);
    const ref = location?.replace(/\/_history\/[^/]+$/, '') ?? (out.resource?.id !== undefined ? `${type}/${String(out.resource.id)}` : undefined);
    return {
      ...(ref !== undefined ? { fullUrl: `${this.#base}/${ref}` } : {}),
      ...(out.resource !== undefined ? { resource: out.resource } : {}),
      response: {
        status: status(out.status),
        ...(location !== undefined ? { location } : {}),
        ...(out.version ? { etag: `W/"${out.version.versionId}"` } : {}),
        ...(out.version?.lastUpdated !== undefined ? { lastModified: out.version.lastUpdated } : {}),
      },
    };
  }

  #failed(err: unknown, index: number): ResponseEntry {
    if (err instanceof OperationOutcomeError && err.code !== 'INTERNAL') return { response: { status: status(err.status), outcome: err.outcome } };
    this.#ctx.log.error({ err: (err as { cause?: unknown }).cause ?? err, entry: index }, 'internal error in a batch entry');
    const e = new OperationOutcomeError('INTERNAL', `Bundle.entry[${index}]: internal error; the operator has been alerted`);
    return { response: { status: status(500), outcome: e.outcome } };
  }
}
