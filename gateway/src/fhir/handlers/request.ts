/**
 * The transport-free FHIR layer's input and output (Medplum's fhir-router is the model: a parsed
 * request in, an outcome out). HTTP routes (http/fhir-routes.ts) and Bundle entries
 * (fhir/bundle-service.ts) both call the handlers of this folder; neither decides statuses, builds
 * Bundles or reads parameters itself.
 */
import type { Logger } from 'pino';
import type { ScopeAction } from '../../auth/scopes';
import type { AuthContext } from '../../auth/types';
import { OperationOutcomeError, type OperationOutcome } from '../../errors';
import type { ResourceStore } from '../../store/store';
import type { ErasureService } from '../erasure';
import { bindCaller, type Caller } from '../policy';
import type { ResourceService } from '../resource-service';
import { ID, type RawQuery } from '../search-params';
import type { Resource } from '../write-plan';

/** What `Patient/$exchange` asks of the exchange between members (ExchangeService, a layer above this one). */
export interface PatientExchange {
  fetchPatientRecords(caller: Caller, patient: string, types: readonly string[] | undefined, readable: (resourceType: string) => boolean): Promise<Record<string, unknown>>;
}

/** What a handler needs of the server: the services and this server's identity. */
export interface FhirContext {
  readonly resources: ResourceService;
  readonly store: ResourceStore;
  /** This server's FHIR base URL (fullUrls and paging links). */
  readonly baseUrl: string;
  /** This organization's MSP id (callers are bound against it: policy.ts). */
  readonly mspId: string;
  /** Where a batch logs an entry's internal error (never its content). */
  readonly log: Logger;
  /** Exchange between members (`Patient/$exchange`, exchange/exchange-service.ts); absent without HDX_ORG_KEY_FILE. */
  readonly exchange?: PatientExchange;
  /** The custodian's erasure (`Patient/:id/$erase`); absent: not offered. */
  readonly erasure?: ErasureService;
}

/** The format the transport says the body is in (HTTP: its Content-Type); handlers refuse the wrong one. */
export type BodyFormat = 'fhir-json' | 'json-patch' | 'merge-patch' | 'other';

/** One FHIR interaction or operation, parsed: who asks, on what, with which parameters, headers and body. */
export interface FhirRequest {
  /** The authenticated caller; each handler binds it for its type and interaction (policy.ts bindCaller). */
  readonly auth: AuthContext;
  /** The resource type of the URL (absent at the system level). */
  readonly type?: string;
  readonly id?: string;
  readonly versionId?: string;
  /** The query parameters, each with its values in order. */
  readonly query: RawQuery;
  /** The raw query string (conditional update and delete match on it as sent); '' when there is none. */
  readonly queryString?: string;
  /** The headers that matter to FHIR interactions. */
  readonly headers?: {
    readonly ifMatch?: string;
    /** If-None-Exist, its query part (`identifier=sys|1`, without any `Type?` before it). */
    readonly ifNoneExist?: string;
    readonly prefer?: string;
    /** Conditional read: the versions the client holds (`W/"3"`, a list, or `*`). */
    readonly ifNoneMatch?: string;
    /** Conditional read: the time the client's copy is from (an HTTP-date, or an instant in a Bundle). */
    readonly ifModifiedSince?: string;
  };
  readonly body?: unknown;
  readonly bodyFormat?: BodyFormat;
}

/** What a handler answers: a status, a resource (or Bundle, Parameters) and the version it names. */
export interface FhirOutcome {
  readonly status: number;
  /** The resource, Bundle or Parameters answered (none for 204). */
  readonly resource?: Record<string, unknown>;
  /** An OperationOutcome explaining a success that returns no resource (a conditional create that matched). */
  readonly info?: OperationOutcome;
  /** The version answered or written (HTTP: ETag, Last-Modified; Bundle: etag, lastModified). */
  readonly version?: { readonly versionId: string; readonly lastUpdated?: string };
  /** `Type/id/_history/vid` of a created (or matched) resource, relative to the base (HTTP: Location). */
  readonly location?: string;
  /**
   * The entries of the Bundle `resource` is, handed on as they are answered (a batch or transaction
   * answer): `resource` holds the Bundle's other fields. The transport sends them as they come; a
   * failure once the answer has begun can only cut it short.
   */
  readonly entries?: AsyncIterable<object>;
}

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** The type, id and version id of the URL, checked: 400 (type: not supported) before anything is looked at. */
export function checkIds(type: string, id?: string, vid?: string): void {
  if (!TYPE.test(type)) throw new OperationOutcomeError('UNSUPPORTED', 'Unknown resource type in the URL');
  if (id !== undefined && !ID.test(id)) throw new OperationOutcomeError('INVALID', 'The resource id in the URL is not a valid FHIR id');
  if (vid !== undefined && !/^[0-9]{1,9}$/.test(vid)) throw new OperationOutcomeError('INVALID', 'The version id in the URL is not valid');
}

/** The caller bound for one interaction on one type (scope, kind and purpose checked: policy.ts). */
export function bind(ctx: FhirContext, req: FhirRequest, type: string, action: ScopeAction): Caller {
  return bindCaller(req.auth, ctx.mspId, type, action);
}

/** The version a resource carries (meta.versionId, meta.lastUpdated), as an outcome names it. */
export function versionOf(resource: Resource): FhirOutcome['version'] {
  const m = resource.meta as { versionId?: string; lastUpdated?: string } | undefined;
  if (!m?.versionId) return undefined;
  return { versionId: m.versionId, ...(m.lastUpdated ? { lastUpdated: m.lastUpdated } : {}) };
}

/** A resource answered with its version. */
export function withVersion(status: number, resource: Resource): FhirOutcome {
  const version = versionOf(resource);
  return { status, resource, ...(version ? { version } : {}) };
}

/** A written resource answered with its version and where it is (`Type/id/_history/vid`). */
export function located(status: number, type: string, resource: Resource): FhirOutcome {
  const versionId = (resource.meta as { versionId: string }).versionId;
  return { ...withVersion(status, resource), location: `${type}/${String(resource.id)}/_history/${versionId}` };
}

/** The body must be a FHIR JSON resource. */
export function needsJson(req: FhirRequest): void {
  if (req.bodyFormat !== 'fhir-json') throw new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'Send the resource as application/fhir+json');
}

/** A query string (`a=1&a=2&b=x,y`) as handlers take it: each parameter's values, in order. */
export function queryOf(query: string): RawQuery {
  const out: RawQuery = {};
  for (const [k, v] of new URLSearchParams(query)) (out[k] ??= []).push(v);
  return out;
}

/** The versions an If-None-Match names (`W/"3"`, `"3"`, a comma-separated list of them), or `*` (any); anything else is a 400. */
function noneMatch(value: string): Set<string> | '*' {
  if (value.trim() === '*') return '*';
  const versions = new Set<string>();
  for (const tag of value.split(',')) {
    const m = /^\s*(?:W\/)?"([0-9]{1,9})"\s*$/.exec(tag);
    if (!m?.[1]) throw new OperationOutcomeError('INVALID', 'If-None-Match must name versions as W/"<versionId>" (or be *)');
    versions.add(m[1]);
  }
  return versions;
}

/**
 * Conditional read (http.html#cread): whether the version read is one the client already has
 * (If-None-Match names it) or is not newer than its copy (If-Modified-Since, compared to the second,
 * HTTP-dates having no fraction; not looked at when If-None-Match is sent). Asked only of a version the
 * caller was allowed to read, so a 304 never tells anything the read itself would not.
 */
export function notModified(req: FhirRequest, resource: Resource): boolean {
  const version = versionOf(resource);
  if (!version) return false;
  const { ifNoneMatch, ifModifiedSince } = req.headers ?? {};
  if (ifNoneMatch !== undefined) {
    const held = noneMatch(ifNoneMatch);
    return held === '*' || held.has(version.versionId);
  }
  if (ifModifiedSince === undefined || version.lastUpdated === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  if (Number.isNaN(since)) throw new OperationOutcomeError('INVALID', 'If-Modified-Since must be a date (an HTTP-date, or an instant in a Bundle)');
  return Math.floor(Date.parse(version.lastUpdated) / 1000) <= Math.floor(since / 1000);
}

/** What `Prefer: return=` asks of a write's answer; `representation` when it names nothing known. */
export function preferredReturn(req: FhirRequest): 'minimal' | 'representation' | 'operationoutcome' {
  const m = /(?:^|[,;\s])return\s*=\s*"?(minimal|representation|OperationOutcome)"?(?=$|[,;\s])/i.exec(req.headers?.prefer ?? '');
  const preference = m?.[1]?.toLowerCase();
  return preference === 'minimal' || preference === 'operationoutcome' ? preference : 'representation';
}

/**
 * A write's answer as the client prefers it (`Prefer: return=…`, http.html#ops): `minimal`, no body;
 * `OperationOutcome`, an OperationOutcome saying what was done instead of the resource;
 * `representation` (and no preference, or one not known) the resource. Status, Location and ETag are
 * the same whichever.
 */
export function asPreferred(req: FhirRequest, out: FhirOutcome, done: string): FhirOutcome {
  if (out.resource === undefined) return out;
  const preference = preferredReturn(req);
  if (preference === 'representation') return out;
  const { resource: _resource, ...rest } = out;
  if (preference === 'minimal') return rest;
  return { ...rest, info: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: done }] } };
}
