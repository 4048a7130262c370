/**
 * Idempotent ingestion (issue 6): FHIR resources from a named source (an HL7 v2 feed through
 * hl7v2ToBundle, a VR platform through vrSessionToBundle, an EHR pushing or being pulled) are written
 * into this custodian's store with UPSERT semantics on their stable ids:
 *
 * - a resource not held yet is created with the given id (version 1);
 * - one whose content, ignoring meta.versionId and meta.lastUpdated, equals the current version is a
 *   no-op: no new version, no anchor, no change record;
 * - a changed one (or one deleted here) gets a new version.
 *
 * The new versions of one ingested Bundle are written as ONE write (ResourceService.commitWrite): stored
 * pending in one SQLite transaction, anchored in ONE ledger transaction (AnchorBatch) and recorded
 * through AccessControl. A Bundle with more than MAX_ANCHOR_BATCH (500) changed resources is written in
 * chunks of at most 500, Patients first, each chunk all or nothing; if a later chunk fails the earlier
 * ones stay, and re-sending the same Bundle finishes the job (the written ones are then no-ops).
 * Re-ingesting the same message therefore never duplicates versions or anchors.
 *
 * Errors name the entry and element (`Bundle.entry[3].resource.subject`), never values (no PHI), and carry
 * no resource ids or DIDs (redactIds): ids of ingested patients are derived from MRNs, and error messages
 * end up in logs and HL7 ACKs.
 *
 * Ids: the mappers and the EHR import take the custodian's keyed ids (CustodianIds, HDX_ID_SECRET_FILE);
 * without them this service refuses HL7 v2, VR and EHR-keyed ingestion rather than derive an unkeyed id.
 */
import { randomUUID } from 'node:crypto';
import canonicalize from 'canonicalize';
import { type MappingWarning, mappingWarningToIssue } from '@hdx/fhir-mappers';
import type { Logger } from 'pino';
import type { ScopedCaller } from '../fhir/bundle-service';
import type { Caller } from '../fhir/access-control';
import { HDX_ERROR_SYSTEM, type OperationOutcome, OperationOutcomeError, type OperationOutcomeIssue } from '../errors';
import { type ResourceService, SUPPORTED_TYPES } from '../fhir/resource-service';
import { type PreparedVersion, type Resource, WritePlan } from '../fhir/write-plan';
import { ID } from '../fhir/search-params';
import { MAX_ANCHOR_BATCH } from '../ledger/ledger-client';
import type { ResourceStore } from '../store/store';
import type { CustodianIds } from '../store/custodian-ids';

/** Most entries in one ingested Bundle (the body limit bounds it too). */
export const MAX_INGEST_ENTRIES = 10_000;

/** A source name: letters, digits and `._:-`, at most 64 (it goes to logs: never PHI). */
export const SOURCE_NAME = /^[A-Za-z0-9._:-]{1,64}$/;

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

export type IngestStatus = 'created' | 'updated' | 'unchanged' | 'skipped';

export interface IngestSummary {
  readonly source: string;
  readonly created: number;
  readonly updated: number;
  readonly unchanged: number;
  readonly skipped: number;
  /** Ledger transactions used to anchor (one per chunk of ≤ 500 changed versions; 0 when nothing changed). */
  readonly anchorTransactions: number;
}

export interface IngestResult {
  /**
   * A FHIR `transaction-response` Bundle: one entry per input entry, in input order. The mapper's warnings
   * are warning issues in `response.outcome` of the entry they concern (message-wide ones: the first entry).
   */
  readonly bundle: Record<string, unknown>;
  readonly summary: IngestSummary;
  /** The mapper's warnings passed in, for the HL7 ACK (ERR, severity W). */
  readonly warnings: readonly MappingWarning[];
}

interface Item {
  readonly index: number;
  readonly type: string;
  readonly id: string;
  readonly resource: Resource;
  /** `request.ifNoneMatch: "*"`: create the resource only if it is not held yet; never replace it. */
  readonly createOnly: boolean;
}

interface Outcome {
  status: IngestStatus;
  version?: PreparedVersion;
  current?: { versionId: number; lastUpdated: string };
  note?: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function invalid(expression: string, message: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', message, [
    { severity: 'error', code: 'invalid', details: { coding: [{ system: HDX_ERROR_SYSTEM, code: 'INVALID' }], text: message }, diagnostics: message, expression: [expression] },
  ]);
}

/** An entry's error, its FHIRPaths rebased from `Observation.x` onto `Bundle.entry[i].resource.x`. */
function atEntry(err: unknown, index: number, type: string): unknown {
  if (!(err instanceof OperationOutcomeError) || err.code === 'INTERNAL' || err.message.startsWith('Bundle.')) return err;
  const entry = `Bundle.entry[${index}]`;
  const rebase = (e: string): string => (e === type || e.startsWith(`${type}.`) || e.startsWith(`${type}[`) ? `${entry}.resource${e.slice(type.length)}` : e);
  const issues: OperationOutcomeIssue[] = err.outcome.issue.map((i) => ({
    ...i,
    ...(i.diagnostics !== undefined ? { diagnostics: `${entry}: ${i.diagnostics}` } : {}),
    expression: i.expression?.map(rebase) ?? [entry],
  }));
  return new OperationOutcomeError(err.code, `${entry}: ${err.message}`, issues);
}

const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const TYPED_ID = /\b([A-Z][A-Za-z]{1,63})\/(?!_history\b|:id\b|id\b|<id>)[A-Za-z0-9\-.]{1,64}/g;
const DID_OR_PSEUDONYM = /\b(did:hdx:[A-Za-z0-9_-]{43}|pseudonym:[0-9a-f]{64})/g;

/** A message without resource ids, UUIDs, DIDs or pseudonyms (`Patient/:id`): ingested ids derive from MRNs. */
export function redactIds(text: string): string {
  return text.replace(DID_OR_PSEUDONYM, ':id').replace(TYPED_ID, '$1/:id').replace(UUID, ':id');
}

/**
 * The same error with its message and issues redacted (redactIds); an error that names no id, one of a
 * subclass (authentication, scope: they carry their WWW-Authenticate challenge) and other errors (internal
 * ones) as they are.
 */
export function withoutIds(err: unknown): unknown {
  if (!(err instanceof OperationOutcomeError) || err.constructor !== OperationOutcomeError) return err;
  const texts = [err.message, ...err.issues.flatMap((i) => [i.diagnostics ?? '', i.details?.text ?? ''])];
  if (texts.every((t) => redactIds(t) === t)) return err;
  const issues: OperationOutcomeIssue[] = err.issues.map((i) => ({
    ...i,
    ...(i.diagnostics !== undefined ? { diagnostics: redactIds(i.diagnostics) } : {}),
    ...(i.details?.text !== undefined ? { details: { ...i.details, text: redactIds(i.details.text) } } : {}),
  }));
  const out = new OperationOutcomeError(err.code, redactIds(err.message), issues);
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined) (out as { cause?: unknown }).cause = cause;
  return out;
}

/** The content that decides "unchanged": the resource without its server-assigned meta. */
function comparable(resource: Record<string, unknown>): string {
  const { meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...keptMeta } = isObject(meta) ? meta : {};
  return canonicalize(Object.keys(keptMeta).length > 0 ? { ...rest, meta: keptMeta } : rest) ?? '';
}

/** References to an EHR's resources → `Type/<local id>`; contained (`#x`), logical and foreign references are kept. */
export function rewriteEhrReferences(value: unknown, ehrBase: string, localId: (type: string, id: string) => string): void {
  const base = ehrBase.replace(/\/+$/, '');
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (isObject(v)) {
      if (typeof v.reference === 'string') {
        const relative = v.reference.startsWith(`${base}/`) ? v.reference.slice(base.length + 1) : v.reference;
        const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(relative);
        if (m?.[1] && m[2]) v.reference = `${m[1]}/${localId(m[1], m[2])}`;
      }
      for (const child of Object.values(v)) if (child !== null && typeof child === 'object') visit(child);
    }
  };
  visit(value);
}

/** Every Reference.reference string in a value, with a setter. */
function forEachReference(value: unknown, path: string, fn: (holder: Record<string, unknown>, path: string) => void): void {
  if (Array.isArray(value)) value.forEach((v, i) => forEachReference(v, `${path}[${i}]`, fn));
  else if (isObject(value)) {
    if (typeof value.reference === 'string') fn(value, path);
    for (const [k, v] of Object.entries(value)) if (v !== null && typeof v === 'object') forEachReference(v, `${path}.${k}`, fn);
  }
}

/**
 * Per resource, the end of the last ingestion touching it, shared by every IngestService of the process
 * (the HTTP routes and the MLLP listener): ingestions of the same resources run one after the other.
 */
const tails = new Map<string, Promise<void>>();

export interface IngestServiceDeps {
  readonly resources: ResourceService;
  readonly store: ResourceStore;
  readonly log: Logger;
  readonly baseUrl: string;
  /** The custodian's keyed ids (HDX_ID_SECRET_FILE); without them HL7 v2, VR and EHR-keyed ingestion are refused. */
  readonly ids?: CustodianIds;
}

export class IngestService {
  readonly #resources: ResourceService;
  readonly #store: ResourceStore;
  readonly #log: Logger;
  readonly #base: string;
  readonly #ids: CustodianIds | undefined;
  constructor(deps: IngestServiceDeps) {
    this.#resources = deps.resources;
    this.#store = deps.store;
    this.#log = deps.log;
    this.#base = deps.baseUrl;
    this.#ids = deps.ids;
  }

  /** The custodian's keyed ids, for the mappers (options.ids); refused when this server has none. */
  custodianIds(): CustodianIds {
    if (!this.#ids) {
      throw new OperationOutcomeError(
        'UNSUPPORTED',
        'This server has no custodian id secret (HDX_ID_SECRET_FILE): it does not derive ids for HL7 v2, VR sessions or EHR resources',
      );
    }
    return this.#ids;
  }

  /**
   * A Bundle of an EHR's resources under the EHR's own ids (`hdx sync`) → the same resources under this
   * custodian's keyed local ids (CustodianIds.ehrLocalId), references to the EHR's resources (`Type/id`,
   * `<EHR base>/Type/id`, with or without `_history`) rewritten to them, `meta.versionId` and
   * `meta.lastUpdated` dropped (they are the gateway's own), `meta.source` the EHR URL of the resource.
   * The EHR ids never leave this process in an id: the keyed ids are derived here, where the secret is.
   */
  async fromEhr(ehrBase: string, body: unknown): Promise<Record<string, unknown>> {
    const ids = this.custodianIds();
    let url: URL;
    try {
      url = new URL(ehrBase);
    } catch {
      throw new OperationOutcomeError('INVALID', "ehr must be the EHR's FHIR base URL (http or https)");
    }
    if (!['http:', 'https:'].includes(url.protocol) || url.search !== '' || url.hash !== '' || ehrBase.length > 2048) {
      throw new OperationOutcomeError('INVALID', "ehr must be the EHR's FHIR base URL (http or https, no query)");
    }
    const base = ehrBase.replace(/\/+$/, '');
    if (!isObject(body) || body.resourceType !== 'Bundle' || !Array.isArray(body.entry)) throw invalid('Bundle.entry', 'An EHR import is a Bundle with entries');
    if (body.entry.length > MAX_INGEST_ENTRIES)
      throw new OperationOutcomeError('TOO_LARGE', `At most ${MAX_INGEST_ENTRIES} entries may be ingested at once; this Bundle has ${body.entry.length}`);
    const local = (type: string, id: string): string => ids.ehrLocalId(base, type, id);
    const entries: unknown[] = body.entry;
    const entry = await ids.derive(() =>
      entries.map((raw: unknown, index: number) => {
        const at = `Bundle.entry[${index}].resource`;
        const r = isObject(raw) && isObject(raw.resource) ? (structuredClone(raw.resource) as Record<string, unknown>) : undefined;
        if (!r || typeof r.resourceType !== 'string' || !TYPE.test(r.resourceType)) throw invalid(`${at}.resourceType`, `${at}.resourceType is not a FHIR resource type`);
        if (typeof r.id !== 'string' || !ID.test(r.id)) throw invalid(`${at}.id`, `${at}.id is required and must be a FHIR id (the EHR's id)`);
        const type = r.resourceType;
        const ehrId = r.id;
        rewriteEhrReferences(r, base, local);
        const { versionId: _v, lastUpdated: _l, ...meta } = isObject(r.meta) ? r.meta : {};
        const id = local(type, ehrId);
        return { resource: { ...r, id, meta: { ...meta, source: meta.source ?? `${base}/${type}/${ehrId}` } }, request: { method: 'PUT', url: `${type}/${id}` } };
      }),
    );
    return { resourceType: 'Bundle', type: 'transaction', entry };
  }

  /** The local Patient linked to a DID, if any (a VR record names its patient by DID). */
  patientByDid(did: string): Promise<string | undefined> {
    return this.#store.patientByDid(did);
  }

  /**
   * Ingests a Bundle (transaction, batch or collection) of `PUT Type/id` entries or of resources with
   * ids, or one resource with an id. `urn:uuid:` references to entries of the Bundle are rewritten to
   * `Type/id`. Resource types this gateway does not hold (Device, Provenance, ...) are skipped and said
   * so in their response entry. `scoped` checks the caller's scopes (create and update for every type).
   * `warnings` are what the mapper read leniently (hl7v2ToBundleWithWarnings): they go into the response
   * entries and back in the result.
   */
  async ingest(scoped: ScopedCaller, source: string, body: unknown, warnings: readonly MappingWarning[] = []): Promise<IngestResult> {
    try {
      if (!SOURCE_NAME.test(source)) throw new OperationOutcomeError('INVALID', 'The source name must be 1 to 64 letters, digits or ._:-');
      const items = this.#parse(body);
      return await this.#exclusive(
        items.map((i) => `${i.type}/${i.id}`),
        () => this.#ingest(scoped, source, items, warnings),
      );
    } catch (err) {
      // Ledger and store errors may name `Patient/<id>` (an id derived from an MRN): never passed on.
      throw withoutIds(err);
    }
  }

  /**
   * Runs `fn` after every earlier ingestion touching one of `keys` has ended. Two deliveries of the same
   * message at once (an MLLP resend, a sync retried while its first push is still running) would both
   * see "not held yet" and collide on version 1; in turn, the second finds the first's versions and is a
   * no-op. Waiting only on earlier registrations cannot deadlock.
   */
  async #exclusive<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const before = [...new Set(keys)].map((k) => tails.get(k)).filter((p): p is Promise<void> => p !== undefined);
    let release: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const k of keys) tails.set(k, done);
    try {
      await Promise.all(before);
      return await fn();
    } finally {
      release();
      for (const k of keys) if (tails.get(k) === done) tails.delete(k);
    }
  }

  async #ingest(scoped: ScopedCaller, source: string, items: readonly Item[], warnings: readonly MappingWarning[]): Promise<IngestResult> {
    // Who may do it: create and update on every type that is stored, before anything is looked at.
    const callers = new Map<string, Caller>();
    for (const item of items) {
      if (!SUPPORTED_TYPES.has(item.type) || callers.has(item.type)) continue;
      try {
        scoped(item.type, 'update');
        callers.set(item.type, scoped(item.type, 'create'));
      } catch (err) {
        throw atEntry(err, item.index, item.type);
      }
    }

    // Patients first, so what refers to them finds them (in this chunk or an earlier one).
    const outcomes = new Map<number, Outcome>();
    const stored = items.filter((i) => SUPPORTED_TYPES.has(i.type)).sort((a, b) => Number(b.type === 'Patient') - Number(a.type === 'Patient') || a.index - b.index);
    for (const item of items)
      if (!SUPPORTED_TYPES.has(item.type)) outcomes.set(item.index, { status: 'skipped', note: `${item.type} is not a resource type this gateway holds; not stored` });

    let anchorTransactions = 0;
    let plan = new WritePlan();
    let planCaller: Caller | undefined;
    const flush = async (): Promise<void> => {
      if (plan.versions.length === 0 || !planCaller) return;
      await this.#resources.commitWrite(planCaller, plan);
      anchorTransactions++;
      plan = new WritePlan();
    };
    for (const item of stored) {
      const who = callers.get(item.type) as Caller;
      planCaller ??= who;
      const current = await this.#store.readCurrent(item.type, item.id);
      // Create-only entries (e.g. the patient a lab result names) never replace what is held.
      if (current && !current.deleted && (item.createOnly || comparable(JSON.parse(current.content) as Record<string, unknown>) === comparable(item.resource))) {
        outcomes.set(item.index, { status: 'unchanged', current: { versionId: current.versionId, lastUpdated: current.lastUpdated } });
        continue;
      }
      if (plan.versions.length >= MAX_ANCHOR_BATCH) await flush();
      try {
        const version = current
          ? await this.#resources.prepareUpdate(who, item.type, item.id, item.resource, plan)
          : await this.#resources.prepareCreate(who, item.type, item.resource, plan, item.id);
        outcomes.set(item.index, { status: current ? 'updated' : 'created', version });
      } catch (err) {
        throw atEntry(err, item.index, item.type);
      }
    }
    await flush();

    const summary: IngestSummary = {
      source,
      created: [...outcomes.values()].filter((o) => o.status === 'created').length,
      updated: [...outcomes.values()].filter((o) => o.status === 'updated').length,
      unchanged: [...outcomes.values()].filter((o) => o.status === 'unchanged').length,
      skipped: [...outcomes.values()].filter((o) => o.status === 'skipped').length,
      anchorTransactions,
    };
    // Rule names and positions only (no values): which fields a feed leaves blank.
    const lenient = warnings.length === 0 ? {} : { warnings: warnings.length, warningRules: [...new Set(warnings.map((w) => `${w.location.replace(/\[\d+\]/, '')} ${w.rule}`))] };
    this.#log.info({ event: 'ingest', ...summary, entries: items.length, ...lenient }, 'ingested');
    return { bundle: this.#response(items, outcomes, warnings), summary, warnings };
  }

  #parse(body: unknown): Item[] {
    if (!isObject(body) || typeof body.resourceType !== 'string') throw new OperationOutcomeError('INVALID', 'The body must be a FHIR Bundle or resource (JSON)');
    if (body.resourceType !== 'Bundle') return [this.#item(0, body, undefined, 'resource')];
    if (!['transaction', 'batch', 'collection'].includes(String(body.type))) throw invalid('Bundle.type', 'Bundle.type must be transaction, batch or collection to be ingested');
    const entries = body.entry ?? [];
    if (!Array.isArray(entries)) throw invalid('Bundle.entry', 'Bundle.entry must be an array');
    if (entries.length > MAX_INGEST_ENTRIES)
      throw new OperationOutcomeError('TOO_LARGE', `At most ${MAX_INGEST_ENTRIES} entries may be ingested at once; this Bundle has ${entries.length}`);
    const items: Item[] = [];
    const urns = new Map<string, string>();
    const seen = new Set<string>();
    entries.forEach((raw, index) => {
      const at = `Bundle.entry[${index}]`;
      if (!isObject(raw) || !isObject(raw.resource)) throw invalid(`${at}.resource`, `${at}.resource is required: ingestion takes resources (PUT Type/id)`);
      const item = this.#item(index, raw.resource, raw.request, at);
      const key = `${item.type}/${item.id}`;
      if (seen.has(key)) throw invalid(`${at}.request.url`, `${at}: the same resource appears in an earlier entry`);
      seen.add(key);
      if (typeof raw.fullUrl === 'string' && raw.fullUrl.startsWith('urn:uuid:')) urns.set(raw.fullUrl.toLowerCase(), key);
      items.push(item);
    });
    for (const item of items) {
      forEachReference(item.resource, `Bundle.entry[${item.index}].resource`, (holder, path) => {
        const value = holder.reference as string;
        if (!value.startsWith('urn:uuid:')) return;
        const target = urns.get(value.toLowerCase());
        if (target === undefined) throw invalid(path, `${path} refers to a urn:uuid that is not the fullUrl of an entry of this Bundle`);
        holder.reference = target;
      });
    }
    return items;
  }

  /** One entry: a PUT Type/id (resource id agreeing or absent), or a resource carrying its id. */
  #item(index: number, raw: Record<string, unknown>, request: unknown, at: string): Item {
    const resource = structuredClone(raw) as Resource;
    const type = resource.resourceType;
    const prefix = at === 'resource' ? type : `${at}.resource`;
    if (typeof type !== 'string' || !TYPE.test(type)) throw invalid(`${prefix}.resourceType`, `${prefix}.resourceType is not a FHIR resource type`);
    let id = typeof resource.id === 'string' ? resource.id : undefined;
    let createOnly = false;
    if (request !== undefined) {
      const r = isObject(request) ? request : {};
      const url = typeof r.url === 'string' ? r.url.replace(`${this.#base}/`, '') : '';
      const m = /^([A-Za-z]+)\/([^/?]+)$/.exec(url);
      if (r.method !== 'PUT' || !m) throw invalid(`${at}.request`, `${at}.request must be PUT Type/id: ingestion writes resources under their stable ids`);
      if (m[1] !== type || (id !== undefined && id !== m[2])) throw invalid(`${at}.request.url`, `${at}.request.url must name the entry's resource type and id`);
      if (r.ifNoneMatch !== undefined && r.ifNoneMatch !== '*') throw invalid(`${at}.request.ifNoneMatch`, `${at}.request.ifNoneMatch may only be "*" (create only if absent)`);
      createOnly = r.ifNoneMatch === '*';
      id = m[2];
    }
    if (id === undefined || !ID.test(id)) throw invalid(`${prefix}.id`, `${prefix}.id is required and must be a FHIR id: ingestion writes resources under their stable ids`);
    resource.id = id;
    return { index, type, id, resource, createOnly };
  }

  #response(items: readonly Item[], outcomes: ReadonlyMap<number, Outcome>, warnings: readonly MappingWarning[]): Record<string, unknown> {
    // Each warning with the entry of the resource it concerns; one about the whole message with the first.
    const byEntry = new Map<string, OperationOutcomeIssue[]>();
    const firstKey = items[0] ? `${items[0].type}/${items[0].id}` : '';
    for (const w of warnings) {
      const key = w.resource ?? firstKey;
      byEntry.set(key, [...(byEntry.get(key) ?? []), mappingWarningToIssue(w) as OperationOutcomeIssue]);
    }
    const entry = items.map((item) => {
      const o = outcomes.get(item.index) as Outcome;
      const lenient = byEntry.get(`${item.type}/${item.id}`) ?? [];
      const info = (text: string): OperationOutcome => ({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'information', code: 'informational', diagnostics: text }, ...lenient],
      });
      if (o.status === 'skipped')
        return {
          response: {
            status: '422 Unprocessable Entity',
            outcome: {
              ...info(o.note ?? 'not stored'),
              issue: [{ severity: 'warning', code: 'not-supported', diagnostics: o.note ?? 'not stored', expression: [`Bundle.entry[${item.index}]`] }, ...lenient],
            },
          },
        };
      const versionId = o.version ? o.version.row.versionId : (o.current?.versionId as number);
      const lastUpdated = o.version ? o.version.row.lastUpdated : (o.current?.lastUpdated as string);
      return {
        fullUrl: `${this.#base}/${item.type}/${item.id}`,
        response: {
          status: o.status === 'created' ? '201 Created' : '200 OK',
          location: `${item.type}/${item.id}/_history/${versionId}`,
          etag: `W/"${versionId}"`,
          lastModified: lastUpdated,
          outcome: info(
            o.status === 'unchanged'
              ? item.createOnly
                ? 'unchanged: already held, and a create-only entry (ifNoneMatch *) does not replace it'
                : 'unchanged: the content equals the current version; no new version'
              : o.status === 'created'
                ? 'created'
                : 'updated: new version',
          ),
        },
      };
    });
    return { resourceType: 'Bundle', id: randomUUID(), type: 'transaction-response', entry };
  }
}
