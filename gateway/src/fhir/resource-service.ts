import { MAX_AUDIT_BATCH, MAX_CO_PATIENTS } from '@hdx/chaincode/dist/protocol';
import { randomBytes, randomUUID } from 'node:crypto';
import { validateResource } from '@hdx/fhir-mappers';
import type { Logger } from 'pino';
import type { AuditSink } from '../audit/sink';
import { type Anchor, type AnchorInput, type LedgerClient, MAX_ANCHOR_BATCH, unsettledTransactionOf } from '../ledger/ledger-client';
import { commitOutcomeOf, withCommitOutcome } from '../ledger/ledger-errors';
import { mapLimit } from '../util/concurrency';
import { timeAsync, timeSync } from '../util/phase-timing';
import type { Criterion, DateFilter, HistoryClass, PendingWrite, ResourceStore, SearchClass, SortKey, StoredVersion, StoreQuery, VersionKey } from '../store/store';
import { historyClassKey, type StoredPendingWrite, searchClassKey } from '../store/store';
import { AccessControl, type AccessControlOptions, type Caller, type DecisionAt, type DecisionSubject, type Disclosure, notKnown } from './access-control';
import { assertInteraction, type Interaction, isPatientOrGuardian } from './policy';
import { commitmentsEqual, patientPseudonym } from '../model/commitment';
import { HDX_ERROR_SYSTEM, invalidResource, OperationOutcomeError } from '../errors';
import { applyPatch, type PatchDocument } from './patch-document';
import { type AccessClass, accessClassOf, parseAccessClass } from '../model/access-class';
import { Integrity } from './integrity';
import { anchorInputFor, type ConditionalWrite, commitmentFor, keyIdOf, parseIfMatch, type PreparedVersion, REFERENCE_DATA_KEY_ID, type Resource, WritePlan } from './write-plan';
import { indexEntriesOf } from '../store/search-index';
import { type ChainSpec, COMMON_SEARCH_PARAMS, type HasSpec, type IncludeSpec, patientParam, searchCriteria } from './search-params';
import { assertLinksNamePatient, dedupe, type Permitted, resolveLinks } from './search-links';
import {
  clinicalDateOf,
  codeTokensOf,
  compartmentParamsOf,
  governedByPatientReference,
  inPatientCompartment,
  valuesOf,
  patientReferencesOf,
  patientTargetReferencesOf,
  SUPPORTED_TYPES,
} from '../model/definitions';

export { SUPPORTED_TYPES };

/** The URI identifier system under which a Patient carries the DID the patient registered. */
export const DID_IDENTIFIER_SYSTEM = 'urn:ietf:rfc:3986';

export interface ResourceServiceDeps {
  readonly store: ResourceStore;
  readonly ledger: LedgerClient;
  readonly log: Logger;
  /** MSP id of this gateway's organization: the custodian of everything in the store. */
  readonly mspId: string;
  /** Where access entries go: omitted → the ledger, each committed before release (sync audit mode); the outbox for async mode. */
  readonly auditSink?: AuditSink;
  /** Decisions on the ledger view (async audit mode only; see AccessControlOptions.local). */
  readonly localDecisions?: AccessControlOptions['local'];
  /**
   * Anchors from the ledger view (with local decisions): the integrity check of a version served takes
   * its anchor from here when the view holds it, else asks the ledger. `$verify` always asks the ledger.
   */
  readonly viewAnchors?: { anchor(resourceType: string, id: string, versionId: string): Anchor | undefined };
}

export interface SearchParams {
  readonly ids?: string[];
  readonly patientIds?: string[];
  readonly lastUpdated?: DateFilter[];
  readonly date?: DateFilter[];
  readonly codes?: string[];
  /** Criteria on the search index, from the spec's SearchParameters (AND). */
  readonly criteria?: Criterion[];
  /** `_sort`: the order of the matches, before paging (so pages are stable). */
  readonly sort?: SortKey[];
  readonly count: number;
  readonly offset: number;
  /**
   * `_summary=count` (or `_count=0`): only the total is returned, no page and no includes; the matches it
   * counts are decided for the caller and recorded on the ledger as a search's page is, since the count
   * tells the caller about them.
   */
  readonly countOnly?: boolean;
  /** Chained parameters (one level): the referenced resources must meet them, and the caller must be allowed to see them. */
  readonly chains?: readonly ChainSpec[];
  /** `_has`: some resource referencing the match must meet it, and the caller must be allowed to see it. */
  readonly has?: readonly HasSpec[];
}

/** One version in a history: a deletion has no content. */
export interface HistoryEntry {
  readonly resource: Resource;
  readonly deleted: boolean;
  readonly versionId: string;
}

export interface SearchPage {
  readonly total: number;
  readonly resources: Resource[];
  /** Resources brought in by _include / _revinclude, each released through the enforcement point. */
  readonly included: Resource[];
}

/** What a search includes, and which types the caller's scopes let it read. */
export interface Includes {
  readonly specs: readonly IncludeSpec[];
  readonly mayRead: (resourceType: string) => boolean;
}

/** The refusal of a reference to a Patient that is not held here, or not the writing patient's own. */
function notHeldPatient(resourceType: string): OperationOutcomeError {
  const path = `${resourceType}.${compartmentParamsOf(resourceType)[0] ?? 'patient'}`;
  return invalidAt(path, `${path} must reference a Patient held by this server`);
}

/** Whether the interaction table lets this caller read the type here. */
function mayReadHere(caller: Caller, resourceType: string, ownMsp: string): boolean {
  try {
    assertInteraction(caller, 'read', resourceType, ownMsp);
    return true;
  } catch {
    return false;
  }
}

/** A history's filters and page: `since` an instant, `at` a period as [low, high) of normalized dates. */
export interface HistoryParams {
  readonly since?: string;
  readonly at?: { readonly low: string; readonly high: string };
  readonly count: number;
  readonly offset: number;
}

/**
 * Too many candidates to decide in one request (history, $everything, includes, chains; a search pages
 * instead). Said the same way whoever asks (it counts before consent).
 */
function tooBroad(narrowBy: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', `The request is too broad for one answer: narrow it (${narrowBy})`);
}

/** hdx.audit takes at most this many access entries in one transaction (the chaincode's MAX_AUDIT_BATCH). */
const MAX_ENTRIES_PER_TRANSACTION = MAX_AUDIT_BATCH;

/**
 * Most versions in one write (a FHIR transaction): anchored in ceil(n / MAX_ANCHOR_BATCH) ledger
 * transactions and still all or nothing (commitWrite). Synthea's largest patient bundle has 6,550.
 */
export const MAX_WRITE_VERSIONS = 20_000;
/** AnchorBatch transactions of one write in flight at once (after the first). */
const ANCHOR_CHUNKS_IN_FLIGHT = 4;
/** GetAnchor calls in flight at once when a write's anchors are looked up. */
const LEDGER_READS_IN_FLIGHT = 32;

/** Errors of a partly anchored write whose anchors were just read and found incomplete (#anchorInChunks). */
const UNRESOLVED_HERE = new WeakSet<object>();

function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The local patients whose consents govern a version: its patient (null: reference data) and any others. */
interface GoverningPatients {
  readonly patientId: string | null;
  readonly coPatientIds: readonly string[];
}

/** Candidates decided one by one in one request at most (history, $everything, includes, chains); a search pages through any number. */
export const MAX_SEARCH_CANDIDATES = 1000;

/** Rounds of _include / _revinclude at most: the matches' includes, then three more of `:iterate` (a loop ends sooner: nothing is included twice). */
export const MAX_INCLUDE_ROUNDS = 4;

/** Resources one Patient/$everything answers at most (a larger record is exported, or searched page by page). */
export const MAX_EVERYTHING = 10_000;

/** A permitted (patient, access class) of a search: the decision that permitted it, and the class it stands for. */
interface PermittedClass {
  readonly decision: DecisionAt;
  readonly accessClass: AccessClass | undefined;
}

function ref(resourceType: string, id: string, versionId: number | string): string {
  return `${resourceType}/${id}/_history/${versionId}`;
}

/** Caller kinds of the custodian that may write reference data (its staff and its feeds). */
const REFERENCE_DATA_WRITERS: ReadonlySet<string> = new Set(['practitioner', 'system']);

function typeInfo(resourceType: string): void {
  if (!SUPPORTED_TYPES.has(resourceType)) {
    const why = resourceType === 'Consent' || resourceType === 'AuditEvent' ? 'is held on the ledger (see its own routes)' : 'is not an R4 resource type';
    throw new OperationOutcomeError('UNSUPPORTED', `Resource type "${resourceType}" ${why}`);
  }
}

/** An INVALID error naming the element at fault (FHIRPath), so a Bundle can point at its entry. */
function invalidAt(expression: string, message: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', message, [
    { severity: 'error', code: 'invalid', details: { coding: [{ system: HDX_ERROR_SYSTEM, code: 'INVALID' }], text: message }, diagnostics: message, expression: [expression] },
  ]);
}

/** 412 unless the current version is the one If-Match names (no If-Match: nothing to check). */
function assertVersionMatches(ifMatch: string | undefined, current: StoredVersion, resourceType: string): void {
  if (ifMatch === undefined) return;
  if (String(current.versionId) !== parseIfMatch(ifMatch)) {
    // The current version is not named: the caller reads it (through consent) to learn it.
    const message = `If-Match does not name the current version of the ${resourceType}: nothing was written; read it and retry`;
    throw new OperationOutcomeError('PRECONDITION_FAILED', message, [
      { severity: 'error', code: 'conflict', details: { coding: [{ system: HDX_ERROR_SYSTEM, code: 'PRECONDITION_FAILED' }], text: message }, diagnostics: message },
    ]);
  }
}

function didOf(resource: Resource): string | undefined {
  const ids = resource.identifier;
  if (!Array.isArray(ids)) return undefined;
  const found = ids.find((i: { system?: unknown; value?: unknown }) => i?.system === DID_IDENTIFIER_SYSTEM && typeof i.value === 'string' && i.value.startsWith('did:hdx:'));
  return found ? String((found as { value: string }).value) : undefined;
}

/**
 * FHIR resources held by this organization. Every version is anchored on the ledger before it is
 * acknowledged and checked against its anchor before it is served; every disclosure goes through
 * AccessControl (consent asked, access recorded, then released).
 */
export class ResourceService {
  readonly #store: ResourceStore;
  readonly #ledger: LedgerClient;
  readonly #log: Logger;
  readonly #mspId: string;
  readonly #integrity: Integrity;
  readonly access: AccessControl;

  constructor(deps: ResourceServiceDeps) {
    this.#store = deps.store;
    this.#ledger = deps.ledger;
    this.#log = deps.log;
    this.#mspId = deps.mspId;
    this.access = new AccessControl(deps.ledger, deps.log, deps.mspId, {
      ...(deps.auditSink ? { sink: deps.auditSink } : {}),
      patientRefOf: this.#refOfVersion,
      ...(deps.localDecisions ? { local: deps.localDecisions } : {}),
    });
    this.#integrity = new Integrity({
      store: deps.store,
      ledger: deps.ledger,
      log: deps.log,
      ...(deps.viewAnchors ? { viewAnchors: deps.viewAnchors } : {}),
      patientRefOf: this.#refOfVersion,
    });
  }

  /** The patient reference used on the ledger: the patient's DID once linked, else a keyed pseudonym. */
  async patientRef(patientId: string): Promise<string> {
    return (await this.#store.patientDid(patientId)) ?? patientPseudonym(await this.#store.patientKey(patientId));
  }

  #refOfVersion = (v: StoredVersion): Promise<string> => this.patientRef(ResourceService.keyIdOf(v.patientId));

  /** The interaction table (policy.ts), then a DID for the record of who changed what. */
  #assertWrite(caller: Caller, interaction: Interaction, resourceType: string): void {
    assertInteraction(caller, interaction, resourceType, this.#mspId);
    AccessControl.requireActor(caller);
  }

  /**
   * Whether a compartment-bound caller (a patient) may touch the local patient's data: it is that
   * patient, or a registered guardian of that patient (read from the patient's DID on the ledger).
   * Callers that are not compartment-bound are decided by consent alone.
   */
  async inCompartment(caller: Caller, patientId: string | null): Promise<boolean> {
    const self = caller.compartmentOf;
    if (self === undefined) return true;
    if (patientId === null) return false;
    const did = await this.#store.patientDid(patientId);
    return did !== undefined && isPatientOrGuardian(self, did, (d) => this.#ledger.resolveDid(d));
  }

  /**
   * A version in several patients' compartments is in a compartment-bound caller's compartment when any
   * of its patients is (reading it still needs every patient's consent); writing it needs all of them
   * (a patient writes only its own compartment's records).
   */
  async inCompartmentOf(caller: Caller, v: Pick<StoredVersion, 'patientId' | 'coPatientIds'>, need: 'any' | 'all' = 'any'): Promise<boolean> {
    const patients = [v.patientId, ...(v.coPatientIds ?? [])];
    for (const p of patients) {
      const inside = await this.inCompartment(caller, p);
      if (need === 'any' && inside) return true;
      if (need === 'all' && !inside) return false;
    }
    return need === 'all';
  }

  /** The local patients a compartment-bound caller may search: itself, and the wards it names. */
  async #compartmentPatients(caller: Caller, asked: readonly string[] | undefined): Promise<string[] | undefined> {
    if (caller.compartmentOf === undefined) return asked ? [...asked] : undefined;
    const own = await this.#store.patientByDid(caller.compartmentOf);
    const candidates = asked ?? (own !== undefined ? [own] : []);
    const allowed: string[] = [];
    for (const p of candidates) if (await this.inCompartment(caller, p)) allowed.push(p);
    return allowed;
  }

  /** One version to disclose: absent, outside the caller's compartment or denied all answer the same 404. */
  async #visible(caller: Caller, v: StoredVersion | undefined, subtype: Disclosure, resourceType: string, id: string, versionId?: string): Promise<StoredVersion> {
    assertInteraction(caller, 'read', resourceType, this.#mspId);
    if (!v) throw notKnown(resourceType, id, versionId);
    // Reference data is in no patient's compartment: a patient reads it as any other member user does.
    if (v.patientId !== null && !(await this.inCompartmentOf(caller, v))) return this.access.refuse(caller, v, subtype, 'outside-compartment');
    return v;
  }

  /** The body as a valid FHIR R4 resource of that (supported) type, or an INVALID error with one issue per problem. */
  validate(resourceType: string, body: unknown): Resource {
    return this.#validate(resourceType, body);
  }

  #validate(resourceType: string, body: unknown): Resource {
    typeInfo(resourceType);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new OperationOutcomeError('INVALID', `The request body must be a FHIR ${resourceType} resource (a JSON object)`);
    }
    const issues = timeSync('validate', () => validateResource(body, resourceType), 'resource').filter((i) => i.severity === 'error');
    if (issues.length > 0) throw invalidResource(issues, `The ${resourceType} is not valid FHIR R4`);
    return body as Resource;
  }

  /**
   * The local patients whose consents govern a resource (patientId null: reference data, in no patient's
   * compartment). A type of the spec's patient CompartmentDefinition must reference at least one Patient
   * held here through its compartment parameters; the first found (in the CompartmentDefinition's
   * parameter order: `Observation.subject` before `performer`) is its patient, any others its co-patients,
   * and every one's consents govern it (at most 1 + MAX_CO_PATIENTS). A type outside the compartment is
   * governed by the Patients it references through a search parameter targeting Patient (Device.patient),
   * else it is reference data. Each Patient must be held here, or created (and not deleted) by the same write.
   */
  async #patientOf(resource: Resource, id: string, plan: WritePlan): Promise<GoverningPatients> {
    const type = resource.resourceType;
    if (type === 'Patient') return { patientId: id, coPatientIds: [] };
    const inCompartment = inPatientCompartment(type);
    const refs = inCompartment ? patientReferencesOf(resource) : patientTargetReferencesOf(resource);
    const path = `${type}.${compartmentParamsOf(type)[0] ?? 'patient'}`;
    let ids: string[];
    if (refs.length === 0) {
      if (!inCompartment) return { patientId: null, coPatientIds: [] };
      // No Patient named (a Provenance whose targets are the patients' records): governed by the patients
      // whose records it references, never left ungoverned.
      ids = [...(await this.#patientsReferenced(resource, plan))].sort();
      if (ids.length === 0) throw invalidAt(path, `${path} must reference the Patient (Patient/<id>) the record belongs to`);
    } else {
      ids = [];
      for (const r of refs) {
        const patientId = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(r)?.[1];
        const inPlan = patientId === undefined ? undefined : plan.patients.get(patientId);
        const held =
          patientId === undefined
            ? false
            : inPlan
              ? !inPlan.deleted
              : await plan.once(`held:${patientId}`, async () => (await this.#store.readCurrent('Patient', patientId))?.deleted === false);
        if (!held || patientId === undefined) throw notHeldPatient(type);
        if (!ids.includes(patientId)) ids.push(patientId);
      }
    }
    if (ids.length > 1 + MAX_CO_PATIENTS) {
      throw invalidAt(path, `A ${type} may be in at most ${1 + MAX_CO_PATIENTS} patients' compartments here (each one's consents govern it); this one names ${ids.length}`);
    }
    const [patientId, ...coPatientIds] = ids as [string, ...string[]];
    return { patientId, coPatientIds };
  }

  /** The patients governing the resources (held here or in this write) a resource references literally. */
  async #patientsReferenced(resource: Resource, plan: WritePlan): Promise<Set<string>> {
    const targets: Array<[string, string]> = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        const ref = (v as { reference?: unknown }).reference;
        const m = typeof ref === 'string' ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
        if (m?.[1] && m[2]) targets.push([m[1], m[2]]);
        Object.values(v).forEach(walk);
      }
    };
    walk(resource);
    const found = new Set<string>();
    for (const [type, id] of targets) {
      const planned = plan.versions.find((p) => p.row.resourceType === type && p.row.id === id);
      const patientId = planned ? planned.row.patientId : (await this.#store.readCurrent(type, id))?.patientId;
      if (patientId) found.add(patientId);
    }
    return found;
  }

  /** The key id of a version's commitment: its patient, or the reference-data key. */
  static keyIdOf(patientId: string | null): string {
    return keyIdOf(patientId);
  }

  /** Plans the DID link of a Patient naming its DID (stored with the version, undone if it is not anchored). */
  async #linkDid(resource: Resource, patientId: string, plan: WritePlan, caller: Caller | undefined): Promise<void> {
    const did = didOf(resource);
    const linked = await this.#store.patientDid(patientId);
    // Re-linking a patient to another DID hands that DID the patient's records and consent: an admin's act.
    if (linked !== undefined && linked !== did && caller?.kind !== 'admin') {
      throw invalidAt('Patient.identifier', "The Patient's DID link can only be changed by an admin of this organization");
    }
    if (!did) return;
    const resolved = await this.#ledger.resolveDid(did);
    if (!resolved || resolved.hdx.kind !== 'patient' || resolved.hdx.status !== 'active') {
      throw new OperationOutcomeError('INVALID', 'Patient.identifier names a DID that is not an active patient DID on the ledger');
    }
    const other = await this.#store.patientByDid(did);
    const otherInPlan = [...plan.didLinks].some(([p, l]) => l.did === did && p !== patientId);
    if ((other !== undefined && other !== patientId) || otherInPlan) throw new OperationOutcomeError('CONFLICT', 'That DID is already linked to another Patient on this server');
    const previous = await this.#store.patientDid(patientId);
    if (previous !== did) plan.didLinks.set(patientId, { did, previous });
  }

  async create(caller: Caller, resourceType: string, body: unknown): Promise<Resource> {
    const plan = new WritePlan();
    const prepared = await this.prepareCreate(caller, resourceType, body, plan);
    await this.commitWrite(caller, plan);
    return prepared.resource;
  }

  /**
   * The current versions a conditional query (`identifier=http://sys|123`, the search syntax without
   * paging) matches, at most `limit`. Used by conditional create and conditional references, which only
   * the custodian's own users send (writes are theirs alone): it looks at the store, before consent,
   * and tells the caller only whether there are none, one (its id) or several.
   */
  async matchConditional(
    writer: { caller: Caller; interaction: ConditionalWrite; resourceType: string },
    resourceType: string,
    query: string,
    limit = 2,
    within?: readonly string[],
  ): Promise<StoredVersion[]> {
    // Only a caller that may make the write it is part of learns anything (else it is an existence oracle).
    this.assertMayWrite(writer.caller, writer.interaction, writer.resourceType);
    typeInfo(resourceType);
    const params = new URLSearchParams(query);
    const q: Record<string, string[]> = {};
    for (const [k, v] of params) (q[k] ??= []).push(v);
    if (Object.keys(q).length === 0) throw new OperationOutcomeError('INVALID', `A conditional ${resourceType} query names no search parameter`);
    for (const k of Object.keys(q)) {
      // Nor chains, _has or _include:iterate: the search skips them for the enforcement point to resolve,
      // so here they would be silently dropped and widen the match.
      if (k !== '_id' && ((COMMON_SEARCH_PARAMS as readonly string[]).includes(k) || k.startsWith('_') || k.includes('.')))
        throw new OperationOutcomeError('INVALID', `A conditional query takes search parameters, not ${k}`);
    }
    const criteria = searchCriteria(resourceType, q);
    const patientValues = ['patient', 'subject'].filter((c) => patientParam(resourceType, c)).flatMap((c) => (q[c] ?? []).flatMap((v) => v.split(',')));
    const patientIds: string[] = [];
    for (const v of patientValues) patientIds.push(v.startsWith('did:') ? ((await this.#store.patientByDid(v)) ?? '') : v.replace(/^Patient\//, ''));
    const ids = q._id?.flatMap((v) => v.split(','));
    // A compartment-bound caller's matches are looked for in its compartment only (`within`).
    const scoped =
      within === undefined ? (patientValues.length > 0 ? patientIds : undefined) : patientValues.length > 0 ? patientIds.filter((p) => within.includes(p)) : [...within];
    return this.#store.search({ resourceType, criteria, ...(ids ? { ids } : {}), ...(scoped ? { patientIds: scoped } : {}), limit });
  }

  /**
   * matchConditional for the caller making the write: a patient (compartment-bound) is matched only
   * against the records of its own compartment, so none, one or several never tells it about anyone
   * else's records. Reference data is written by staff only (a patient's write of it is refused later).
   */
  async matchFor(caller: Caller, interaction: ConditionalWrite, writing: string, resourceType: string, query: string, limit = 2): Promise<StoredVersion[]> {
    this.assertMayWrite(caller, interaction, writing);
    // Reference data (in no patient's compartment) is any member user's to read: matched as for anyone.
    const reference = !inPatientCompartment(resourceType) && !governedByPatientReference(resourceType);
    const within = caller.compartmentOf === undefined || reference ? undefined : await this.#compartmentPatients(caller, undefined);
    return this.matchConditional({ caller, interaction, resourceType: writing }, resourceType, query, limit, within);
  }

  /** Throws FORBIDDEN unless the caller may make this write here (the interaction table, and a DID). */
  assertMayWrite(caller: Caller, interaction: ConditionalWrite, resourceType: string): void {
    this.#assertWrite(caller, interaction, resourceType);
  }

  /** Runs conditional writes of the same type and query in this process one after the other (no double create). */
  async #serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#conditionalTails.get(key) ?? Promise.resolve();
    // In this process one after the other; across the processes sharing the store, under its lock.
    const run = before.catch(() => undefined).then(() => this.#store.exclusive(key, fn));
    this.#conditionalTails.set(key, run);
    try {
      return await run;
    } finally {
      if (this.#conditionalTails.get(key) === run) this.#conditionalTails.delete(key);
    }
  }

  /**
   * Conditional update (`PUT /Type?query`, http.html#cond-update): no match → created with a server
   * id (a body naming an id is a 400: update-as-create is not offered); one match → that resource
   * updated (a body id must be its id; If-Match applies); several → 412. The body is validated and the
   * write permitted before anything is matched.
   */
  async conditionalUpdate(caller: Caller, resourceType: string, query: string, body: unknown, ifMatch?: string): Promise<{ resource: Resource; created: boolean }> {
    this.#assertWrite(caller, 'update', resourceType);
    const input = this.#validate(resourceType, body);
    if (ifMatch !== undefined) parseIfMatch(ifMatch);
    return this.#serialized(`${resourceType}?${query}`, async () => {
      const matches = await this.matchFor(caller, 'update', resourceType, resourceType, query);
      if (matches.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `The conditional update matches several ${resourceType} resources: nothing was written`);
      const [match] = matches;
      if (match) {
        if (input.id !== undefined && input.id !== match.id)
          throw invalidAt(`${resourceType}.id`, `${resourceType}.id is not the id of the resource the conditional update matches`);
        return { resource: await this.update(caller, resourceType, match.id, { ...input, id: match.id }, ifMatch), created: false };
      }
      if (input.id !== undefined)
        throw invalidAt(`${resourceType}.id`, `The conditional update matches nothing and names an id: this server does not create a resource at a client-chosen id`);
      if (ifMatch !== undefined)
        throw new OperationOutcomeError('PRECONDITION_FAILED', `If-Match names a version, but the conditional update matches no ${resourceType}: nothing was written`);
      this.#assertWrite(caller, 'create', resourceType);
      return { resource: await this.create(caller, resourceType, input), created: true };
    });
  }

  /**
   * Conditional delete (`DELETE /Type?query`, http.html#cdelete): no match → nothing to delete
   * (success); one match → deleted (If-Match applies); several → 412, nothing deleted.
   */
  async conditionalDelete(caller: Caller, resourceType: string, query: string, ifMatch?: string): Promise<{ deleted: number }> {
    this.#assertWrite(caller, 'delete', resourceType);
    if (ifMatch !== undefined) parseIfMatch(ifMatch);
    return this.#serialized(`${resourceType}?${query}`, async () => {
      const matches = await this.matchFor(caller, 'delete', resourceType, resourceType, query);
      if (matches.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `The conditional delete matches several ${resourceType} resources: nothing was deleted`);
      const [match] = matches;
      if (!match) return { deleted: 0 };
      await this.delete(caller, resourceType, match.id, ifMatch);
      return { deleted: 1 };
    });
  }

  /**
   * Conditional patch (`PATCH /Type?query`, http.html#patch): one match → that resource patched (as
   * patch: If-Match applies, a deleted match cannot be, as it is not current); none → 404; several →
   * 412, nothing written. Matched only for a caller allowed to make the write (a patient in its own
   * compartment only), so none, one or several tells nothing about records it may not see.
   */
  async conditionalPatch(caller: Caller, resourceType: string, query: string, patch: PatchDocument, ifMatch?: string): Promise<Resource> {
    this.#assertWrite(caller, 'update', resourceType);
    if (ifMatch !== undefined) parseIfMatch(ifMatch);
    return this.#serialized(`${resourceType}?${query}`, async () => {
      const matches = await this.matchFor(caller, 'update', resourceType, resourceType, query);
      if (matches.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `The conditional patch matches several ${resourceType} resources: nothing was written`);
      const [match] = matches;
      if (!match) throw new OperationOutcomeError('NOT_FOUND', `The conditional patch matches no ${resourceType}: nothing was written`);
      return this.patch(caller, resourceType, match.id, patch, ifMatch);
    });
  }

  /** Conditional creates of the same type and query in this process, one after the other (no double create). */
  readonly #conditionalTails = new Map<string, Promise<unknown>>();

  /**
   * Conditional create (If-None-Exist): none matches → created; one matches → nothing written, that one
   * named (not disclosed: the answer carries no content); several → 412.
   */
  async conditionalCreate(caller: Caller, resourceType: string, body: unknown, query: string): Promise<{ created: Resource } | { existing: { id: string; versionId: number } }> {
    this.#assertWrite(caller, 'create', resourceType);
    return this.#serialized(`${resourceType}?${query}`, async (): Promise<{ created: Resource } | { existing: { id: string; versionId: number } }> => {
      const matches = await this.matchFor(caller, 'create', resourceType, resourceType, query);
      if (matches.length > 1) throw new OperationOutcomeError('PRECONDITION_FAILED', `If-None-Exist matches several ${resourceType} resources: nothing was written`);
      const [match] = matches;
      if (match) return { existing: { id: match.id, versionId: match.versionId } };
      return { created: await this.create(caller, resourceType, body) };
    });
  }

  async update(caller: Caller, resourceType: string, id: string, body: unknown, ifMatch?: string): Promise<Resource> {
    await this.#settleBefore(resourceType, id);
    const plan = new WritePlan();
    const prepared = await this.prepareUpdate(caller, resourceType, id, body, plan, ifMatch);
    await this.commitWrite(caller, plan);
    return prepared.resource;
  }

  async delete(caller: Caller, resourceType: string, id: string, ifMatch?: string): Promise<void> {
    await this.#settleBefore(resourceType, id);
    const plan = new WritePlan();
    await this.prepareDelete(caller, resourceType, id, plan, ifMatch);
    await this.commitWrite(caller, plan);
  }

  /**
   * `PATCH Type/id` with a JSON Patch or a FHIRPath Patch (parsed: patch-document.ts): applied to the current version (checked against its anchor
   * first), then written as an update (validated, If-Match, anchored). A record that is not there or
   * that the caller may not see is a 404 before If-Match or the patch is looked at; a deleted one 410.
   */
  async patch(caller: Caller, resourceType: string, id: string, patch: PatchDocument, ifMatch?: string): Promise<Resource> {
    typeInfo(resourceType);
    this.#assertWrite(caller, 'update', resourceType);
    await this.#settleBefore(resourceType, id);
    const plan = new WritePlan();
    const prepared = await this.preparePatch(caller, resourceType, id, patch, plan, ifMatch);
    await this.commitWrite(caller, plan);
    return prepared.resource;
  }

  /** Adds a patch of the current version to `plan` as an update (patch above; a Bundle's PATCH entry). */
  async preparePatch(caller: Caller, resourceType: string, id: string, patch: PatchDocument, plan: WritePlan, ifMatch?: string): Promise<PreparedVersion> {
    typeInfo(resourceType);
    this.#assertWrite(caller, 'update', resourceType);
    if (ifMatch !== undefined) parseIfMatch(ifMatch);
    const current = await this.#store.readCurrent(resourceType, id);
    if (!current || !(await this.inCompartmentOf(caller, current, 'all'))) throw notKnown(resourceType, id);
    if (current.deleted) throw new OperationOutcomeError('GONE', `${resourceType}/${id} was deleted`);
    assertVersionMatches(ifMatch, current, resourceType);
    const patched = applyPatch(await this.#integrity.verified(current), patch);
    // If-Match again: the version patched is the version replaced.
    return this.prepareUpdate(caller, resourceType, id, patched, plan, `W/"${current.versionId}"`);
  }

  /**
   * Adds a create to `plan` (nothing is stored yet). The server assigns the id (a FHIR transaction
   * assigns it beforehand, to resolve urn:uuid references), versionId and lastUpdated; a client-sent id
   * is ignored (FHIR create).
   */
  async prepareCreate(caller: Caller, resourceType: string, body: unknown, plan: WritePlan, id: string = randomUUID()): Promise<PreparedVersion> {
    this.#assertWrite(caller, 'create', resourceType);
    const input = this.#validate(resourceType, body);
    return this.#guardCompartment(caller, await this.#prepareVersion(plan, { ...input, id }, 1, false, undefined, caller));
  }

  /** A compartment-bound caller (a patient) writes only its own compartment's records. */
  async #guardCompartment(caller: Caller, prepared: PreparedVersion): Promise<PreparedVersion> {
    // Said exactly as for a Patient this server does not hold: a patient cannot probe which exist.
    if (!(await this.inCompartmentOf(caller, prepared.row, 'all'))) throw notHeldPatient(prepared.resource.resourceType);
    return prepared;
  }

  /** Adds an update of an existing resource to `plan` (update does not create). */
  async prepareUpdate(caller: Caller, resourceType: string, id: string, body: unknown, plan: WritePlan, ifMatch?: string): Promise<PreparedVersion> {
    this.#assertWrite(caller, 'update', resourceType);
    const input = this.#validate(resourceType, body);
    if (input.id !== id) throw invalidAt(`${resourceType}.id`, `${resourceType}.id must equal the id in the URL`);
    const current = await this.#store.readCurrent(resourceType, id);
    // Someone else's record is answered as a missing one (update does not create), before If-Match is
    // looked at: a version check never tells a caller that a record it may not see is there.
    if (!current || !(await this.inCompartmentOf(caller, current, 'all'))) throw notKnown(resourceType, id);
    assertVersionMatches(ifMatch, current, resourceType);
    return this.#guardCompartment(caller, await this.#prepareVersion(plan, input, current.versionId + 1, false, undefined, caller));
  }

  /** Adds a deletion to `plan`; undefined when there is nothing to delete (FHIR: that succeeds too). */
  async prepareDelete(caller: Caller, resourceType: string, id: string, plan: WritePlan, ifMatch?: string): Promise<PreparedVersion | undefined> {
    this.#assertWrite(caller, 'delete', resourceType);
    typeInfo(resourceType);
    const current = await this.#store.readCurrent(resourceType, id);
    // Someone else's record (outside a patient's compartment) is answered as a missing one: nothing
    // deleted, and If-Match not looked at, so the answer never tells that it is there.
    if (!current || current.deleted || !(await this.inCompartmentOf(caller, current, 'all'))) return undefined;
    assertVersionMatches(ifMatch, current, resourceType);
    const stub: Resource = { resourceType, id };
    return this.#prepareVersion(plan, stub, current.versionId + 1, true, { patientId: current.patientId, coPatientIds: current.coPatientIds ?? [] }, caller);
  }

  async #prepareVersion(plan: WritePlan, input: Resource, versionId: number, deleted: boolean, knownPatients?: GoverningPatients, caller?: Caller): Promise<PreparedVersion> {
    const id = String(input.id);
    typeInfo(input.resourceType);
    const lastUpdated = plan.lastUpdated;
    const { versionId: _v, lastUpdated: _l, ...keptMeta } = input.meta ?? {};
    const resource: Resource = { ...input, id, meta: { ...keptMeta, versionId: String(versionId), lastUpdated } };
    const { patientId, coPatientIds } = knownPatients ?? (await this.#patientOf(resource, id, plan));
    if (patientId === null && caller !== undefined && !REFERENCE_DATA_WRITERS.has(caller.kind)) {
      throw new OperationOutcomeError(
        'FORBIDDEN',
        `A ${caller.kind} may not write reference data (${resource.resourceType} in no patient's compartment): the custodian's staff and feeds do`,
      );
    }
    if (patientId === null) {
      // Created once, outside any write (a key shared by every reference-data version is never undone with one write).
      await this.#store.patientKey(REFERENCE_DATA_KEY_ID);
    } else if (resource.resourceType === 'Patient') {
      if (!deleted) await this.#linkDid(resource, patientId, plan, caller);
      plan.patients.set(patientId, { deleted });
    }
    const { key, ref: patient } = await this.#ledgerPatient(plan, patientId);
    const coPatients: string[] = [];
    for (const co of coPatientIds) coPatients.push((await this.#ledgerPatient(plan, co)).ref);
    const prepared: PreparedVersion = {
      resource,
      row: {
        resourceType: resource.resourceType,
        id,
        versionId,
        lastUpdated,
        patientId,
        deleted,
        content: JSON.stringify(resource),
        date: deleted ? null : clinicalDateOf(resource),
        codes: deleted ? [] : codeTokensOf(resource),
        // Its search index is computed and stored while its anchor is on its way to the ledger (commitWrite).
        accessClass: accessClassOf(resource, deleted),
        ...(coPatientIds.length > 0 ? { coPatientIds } : {}),
      },
      anchor: timeSync('commitment', () => anchorInputFor(resource, { resourceType: resource.resourceType, id, versionId, lastUpdated, deleted }, key, patient, coPatients)),
      patient,
      coPatients,
      action: deleted ? 'D' : versionId === 1 ? 'C' : 'U',
    };
    plan.versions.push(prepared);
    return prepared;
  }

  /**
   * A patient's commitment key (made in the plan for a patient it creates) and its reference on the
   * ledger: its DID once linked, else the pseudonym derived from its key (reference data: the shared key).
   */
  async #ledgerPatient(plan: WritePlan, patientId: string | null): Promise<{ key: Buffer; ref: string }> {
    const keyId = ResourceService.keyIdOf(patientId);
    let key = (await plan.once(`key:${keyId}`, () => this.#store.findPatientKey(keyId))) ?? plan.newPatientKeys.get(keyId);
    if (!key) {
      key = randomBytes(32);
      plan.newPatientKeys.set(keyId, key);
    }
    const ref =
      (patientId === null ? undefined : (plan.didLinks.get(patientId)?.did ?? (await plan.once(`did:${patientId}`, () => this.#store.patientDid(patientId))))) ??
      patientPseudonym(key);
    return { key, ref };
  }

  /** Versions being written (between insertPendingWrite and markWriteAnchored) or settled by this process: never settled by anyone else meanwhile. */
  readonly #inFlight = new Set<string>();
  /** Pending writes whose endorsed transaction the ledger client kept (unknown outcome), by writeId. */
  readonly #unsettled = new Map<string, unknown>();
  readonly #pendingKey = (v: { readonly resourceType: string; readonly id: string; readonly versionId: number }): string => ref(v.resourceType, v.id, v.versionId);
  /**
   * After an ambiguous ledger error (the transaction may have committed), when to ask the ledger whether
   * the write's anchors are there (ms from the error, one GetAnchor per version each time).
   */
  settleDelaysMs: readonly number[] = [0, 500, 2000];
  /** How long after an unsettled write (or undelivered change entries) settlePending runs again by itself (ms). */
  settleRetryMs = 15_000;
  #settleTimer: NodeJS.Timeout | undefined;
  #settleInterval: NodeJS.Timeout | undefined;
  #settleStopped = false;
  #settling: Promise<{ kept: number; removed: number; unresolved?: number }> | undefined;
  #delivering: Promise<boolean> | undefined;

  /**
   * Writes a plan: every version pending in ONE SQLite transaction (with the write's DID links, new
   * patients and, unless the ledger transaction records them itself, its change entries), anchored in
   * ONE ledger transaction (AnchorBatch when there are several: all or nothing; beyond MAX_ANCHOR_BATCH
   * versions, several transactions completed before anything is served: #anchorInChunks), then marked anchored
   * and its change entries made ready for delivery, in ONE SQLite transaction.
   *
   * If anchoring fails, the outcome decides (ledger-errors.ts commitOutcomeOf):
   * - certainly not committed (endorsement refused, chaincode error, not connected): the write is
   *   discarded, nothing unanchored is ever acknowledged or left in the store;
   * - unknown (timeout or unavailability after submit): the write stays pending and the ledger is asked
   *   (GetAnchor, a few times): all anchors there with this write's commitments → acknowledged; absent
   *   (or another commitment there) → discarded and the error returned; no answer → 503/504 saying the
   *   outcome is being settled; the write stays pending (never served) until settlePending settles it.
   */
  /**
   * The patient links this write puts on the ledger, in the same transaction as its anchors: a Patient
   * linked to a DID for the first time binds its pseudonym to the DID, so what was anchored under the
   * pseudonym before the link is governed by the patient's consents too (review #8). A link on the
   * ledger is never re-pointed: an admin's re-link of a Patient to another DID is refused there.
   */
  async #ledgerLinks(plan: WritePlan): Promise<Array<{ pseudonym: string; did: string }>> {
    const links: Array<{ pseudonym: string; did: string }> = [];
    for (const [patientId, link] of plan.didLinks) {
      const key = (await this.#store.findPatientKey(patientId)) ?? plan.newPatientKeys.get(patientId);
      if (key && link.previous === undefined) links.push({ pseudonym: patientPseudonym(key), did: link.did });
    }
    return links;
  }

  async commitWrite(caller: Caller, plan: WritePlan): Promise<void> {
    const [first, ...rest] = plan.versions;
    if (!first) return;
    if (plan.versions.length > MAX_WRITE_VERSIONS) throw new OperationOutcomeError('TOO_LARGE', `One write may hold at most ${MAX_WRITE_VERSIONS} versions`);
    // More versions than one AnchorBatch takes: anchored in several ledger transactions (#anchorInChunks).
    const chunked = plan.versions.length > MAX_ANCHOR_BATCH;
    const changes = plan.versions.map((v) => ({ version: { ...v.row, state: 'anchored' as const }, patient: v.patient, coPatients: v.coPatients, action: v.action }));
    const entries = timeSync('audit', () => this.access.changeEntries(caller, changes));
    // The anchors and the change record are one ledger transaction (one block, atomic) when they fit, in
    // either audit mode: a write waits for its anchors anyway, so its entries cost no wait there, and
    // async mode's outbox is left to the reads. Otherwise (more versions or entries than one transaction
    // takes) the entries are stored with the write and delivered once it is anchored.
    const together = !chunked && entries.length > 0 && entries.length <= MAX_ENTRIES_PER_TRANSACTION;
    // Entries delivered later say when the change happened (the ledger's recordedAt is the delivery).
    const write: PendingWrite = {
      ...plan.pendingWrite(),
      writeId: randomUUID(),
      changeEntries: together ? [] : entries.map((e) => ({ ...e, occurredAt: e.occurredAt ?? plan.lastUpdated })),
    };
    await timeAsync('pending-check', () => this.#settleEarlierWrites(write));
    const keys = write.versions.map(this.#pendingKey);
    if (!this.#claim(keys))
      throw new OperationOutcomeError('CONFLICT', `${first.row.resourceType}/${first.row.id} is being written by another request; retry when it has finished`);
    try {
      await timeAsync('store-pending', () => this.#store.insertPendingWrite(write));
      // Indexing off the critical path: the versions' search index is computed and stored while the peers
      // endorse and order their anchors. A pending version is never found by search, and discarding it
      // takes its rows with it, so the rows change nothing until the write is marked anchored.
      let indexing: Promise<unknown> = Promise.resolve();
      try {
        const links = await this.#ledgerLinks(plan);
        let anchoring: Promise<unknown>;
        if (chunked)
          anchoring = this.#anchorInChunks(
            plan.versions.map((v) => v.anchor),
            links,
          );
        else if (together)
          anchoring = this.#ledger.anchorAndRecord(
            plan.versions.map((v) => v.anchor),
            entries,
            ...(links.length > 0 ? [links] : []),
          );
        else if (rest.length === 0 && links.length === 0) anchoring = this.#ledger.anchor(first.anchor);
        else
          anchoring = this.#ledger.anchorBatch(
            plan.versions.map((v) => v.anchor),
            ...(links.length > 0 ? [links] : []),
          );
        // A failure is kept, not thrown: the write is indexed again before it is marked anchored.
        indexing = this.#indexWhileAnchoring(plan.versions).then(
          () => undefined,
          (err: unknown) => err ?? new Error('indexing failed'),
        );
        await anchoring;
      } catch (err) {
        // Nothing is discarded while its index rows are still being written.
        await indexing;
        if (commitOutcomeOf(err) === 'not-committed') {
          // Not anchored, so not acknowledged: leave no trace of it in the store.
          await this.#store.discardPendingWrite(write);
          throw err;
        }
        const expected = plan.versions.map((v) => ({ resourceType: v.anchor.resourceType, id: v.anchor.id, versionId: v.anchor.versionId, commitment: v.anchor.commitment.value }));
        const asked = err instanceof OperationOutcomeError && UNRESOLVED_HERE.has(err) ? 'unresolved' : await this.#askLedger(expected, this.settleDelaysMs);
        // The ledger client kept the endorsed transaction: while its anchors are not there it may still
        // commit (an orderer holding it), so it is settled later by sending that same transaction again,
        // never discarded because it is not there yet.
        const transaction = unsettledTransactionOf(err);
        if (transaction !== undefined && write.writeId !== undefined) this.#unsettled.set(write.writeId, transaction);
        const outcome = asked === 'absent' && transaction !== undefined ? 'unresolved' : asked;
        // No resource ids in logs (a Patient id names the patient).
        const what = {
          event: 'ambiguous-commit',
          resourceType: first.row.resourceType,
          versions: plan.versions.length,
          code: err instanceof OperationOutcomeError ? err.code : 'INTERNAL',
          outcome,
        };
        if (outcome === 'unresolved') {
          this.#log.warn(what, 'the ledger outcome of a write is unknown; it stays pending until the ledger answers');
          this.#armSettling();
          // An unexpected failure stays what it was (500 naming a request id); the write is settled all the same.
          if (!(err instanceof OperationOutcomeError) || (err.code !== 'TIMEOUT' && err.code !== 'UNAVAILABLE')) throw err;
          throw new OperationOutcomeError(
            err.code,
            `The ledger has not confirmed whether this write of ${first.row.resourceType}/${first.row.id} was committed; its outcome is being settled (nothing unconfirmed is served). Read the resource later; if the change is not there, send it again`,
          );
        }
        if (outcome !== 'anchored') {
          this.#log.info(what, 'the ledger outcome of a write was unknown; the ledger does not have it, so it is discarded');
          await this.#store.discardPendingWrite(write);
          throw err;
        }
        this.#log.info(what, 'the ledger outcome of a write was unknown; the ledger has it, so it is acknowledged');
        if (write.writeId !== undefined) this.#unsettled.delete(write.writeId);
      }
      if ((await indexing) !== undefined) await this.#indexVersions(plan.versions.map((v) => ({ ...v.row, resource: v.resource })));
      await timeAsync('mark-anchored', () => this.#store.markWriteAnchored(write));
    } finally {
      this.#release(keys);
    }
    if (write.changeEntries && write.changeEntries.length > 0) {
      if (!(await timeAsync('audit', () => this.#deliverChanges()))) {
        this.#log.error(
          { event: 'change-audit-pending', resourceType: first.row.resourceType, entries: write.changeEntries.length },
          'change anchored; its access entries are kept in the store and retried',
        );
      }
    }
  }

  /**
   * A write of more versions than one AnchorBatch takes, anchored in several ledger transactions of at
   * most MAX_ANCHOR_BATCH anchors, the first carrying the patient links. It is still all or nothing for
   * every reader: its versions stay pending (never served) until every anchor is committed, and are then
   * marked anchored in one SQLite transaction. If the first transaction is refused, nothing of the write
   * is on the ledger and the caller discards it. Once one is committed the write is only ever completed,
   * never discarded: AnchorBatch takes an identical anchor again as a no-op, so what is missing is sent
   * again (here once, then by settlePending) until the ledger has every anchor.
   */
  async #anchorInChunks(anchors: readonly AnchorInput[], links: ReadonlyArray<{ pseudonym: string; did: string }>): Promise<void> {
    const [head = [], ...tail] = chunksOf(anchors, MAX_ANCHOR_BATCH);
    await this.#ledger.anchorBatch(head, ...(links.length > 0 ? [[...links]] : []));
    try {
      await mapLimit(tail, ANCHOR_CHUNKS_IN_FLIGHT, (chunk) => this.#ledger.anchorBatch(chunk));
    } catch (err) {
      const completed = await this.#completeAnchors(anchors);
      if (completed === 'anchored') return;
      this.#log.warn(
        { event: 'partly-anchored', versions: anchors.length, code: err instanceof OperationOutcomeError ? err.code : 'INTERNAL' },
        'a write anchored in several ledger transactions is partly on the ledger; it is completed when the ledger takes the rest',
      );
      // Part of it is committed: never discarded (commitWrite asks the ledger, then leaves it to settlePending).
      const partly = withCommitOutcome(
        new OperationOutcomeError(
          'UNAVAILABLE',
          'The ledger took part of this write and is not taking the rest now; the write is completed when it does (nothing is served before)',
        ),
        'unknown',
      );
      // #completeAnchors has just read every anchor and could not complete them: nothing in this process
      // sends the rest before settlePending, so commitWrite need not read them all again (settle delays).
      if (completed === 'unresolved') UNRESOLVED_HERE.add(partly);
      throw partly;
    }
  }

  /**
   * Sends again the anchors of a write that the ledger does not have yet, when it has some of them with
   * this write's commitments: `anchored` when it then has them all; `absent` when it has none (nothing
   * to complete); `superseded` when another commitment is at one of its versions; `unresolved` when the
   * ledger does not answer or refuses.
   */
  async #completeAnchors(anchors: readonly AnchorInput[]): Promise<'anchored' | 'absent' | 'superseded' | 'unresolved'> {
    try {
      const state = await this.#ledgerState(anchors.map((a) => ({ ...a, commitment: a.commitment.value })));
      if (state.includes('other')) return 'superseded';
      const missing = anchors.filter((_, i) => state[i] === 'absent');
      if (missing.length === anchors.length) return 'absent';
      await mapLimit(chunksOf(missing, MAX_ANCHOR_BATCH), ANCHOR_CHUNKS_IN_FLIGHT, (chunk) => this.#ledger.anchorBatch(chunk));
      return 'anchored';
    } catch {
      return 'unresolved';
    }
  }

  /** Per version: its anchor on the ledger has this commitment (`equal`), another (`other`), or is not there (`absent`). Throws when the ledger does not answer. */
  async #ledgerState(expected: ReadonlyArray<{ resourceType: string; id: string; versionId: string; commitment: string }>): Promise<Array<'equal' | 'other' | 'absent'>> {
    const anchors = await mapLimit(expected, LEDGER_READS_IN_FLIGHT, (e) => this.#ledger.getAnchor(e.resourceType, e.id, e.versionId));
    return anchors.map((a, i) => (a === undefined ? 'absent' : commitmentsEqual(a.commitment.value, expected[i]?.commitment ?? '') ? 'equal' : 'other'));
  }

  /** The anchor of a stored version, rebuilt as it was prepared (undefined without the patient's key). */
  async #storedAnchorInput(v: StoredVersion): Promise<AnchorInput | undefined> {
    const key = await this.#store.findPatientKey(ResourceService.keyIdOf(v.patientId));
    if (!key) return undefined;
    const patient = (v.patientId === null ? undefined : await this.#store.patientDid(v.patientId)) ?? patientPseudonym(key);
    const coPatients: string[] = [];
    for (const co of v.coPatientIds ?? []) {
      const coKey = await this.#store.findPatientKey(co);
      if (!coKey) return undefined;
      coPatients.push((await this.#store.patientDid(co)) ?? patientPseudonym(coKey));
    }
    return anchorInputFor(JSON.parse(v.content) as Resource, v, key, patient, coPatients);
  }

  /** Marks versions as being worked on by this process; false (nothing marked) if one already is. */
  #claim(keys: readonly string[]): boolean {
    if (keys.some((k) => this.#inFlight.has(k))) return false;
    for (const k of keys) this.#inFlight.add(k);
    return true;
  }

  #release(keys: readonly string[]): void {
    for (const k of keys) this.#inFlight.delete(k);
  }

  /**
   * A resource this write touches may still have a pending version of an earlier write whose ledger
   * outcome was unknown (it holds the version number this write wants). Settle it now: discarded →
   * this write goes on; anchored → this write was prepared on an outdated version (409, a retry works);
   * no answer from the ledger → 503, never a permanent wedge (settlePending keeps trying).
   */
  async #settleEarlierWrites(write: PendingWrite): Promise<void> {
    const [named] = write.versions;
    if (named) await this.#settlePendingOf(write.versions, `${named.resourceType}/${named.id}`, true);
  }

  /**
   * Settles, by asking the ledger, earlier writes of these resources whose outcome was unknown. A single
   * create, update or delete does this before it is prepared, so that a version which turned out to be
   * committed simply becomes the current one and the new write follows it (the resource never wedges).
   */
  async #settleBefore(resourceType: string, id: string): Promise<void> {
    await this.#settlePendingOf([{ resourceType, id }], `${resourceType}/${id}`, false);
  }

  async #settlePendingOf(resources: ReadonlyArray<{ resourceType: string; id: string }>, what: string, conflictOnAnchored: boolean): Promise<void> {
    const pending = new Set<string>();
    for (const v of resources) for (const p of await this.#store.pendingVersions(v.resourceType, v.id)) pending.add(this.#pendingKey(p));
    if (pending.size === 0) return;
    if ([...pending].some((k) => this.#inFlight.has(k))) throw new OperationOutcomeError('CONFLICT', `${what} is being written by another request; retry when it has finished`);
    for (const earlier of (await this.#store.listPendingWrites()).filter((w) => w.versions.some((v) => pending.has(this.#pendingKey(v))))) {
      const outcome = await this.#settleStored(earlier, [0]);
      if (outcome === 'unresolved' || outcome === 'busy') {
        this.#armSettling();
        throw new OperationOutcomeError('UNAVAILABLE', `A previous write of ${what} is still being settled with the ledger (its outcome was unknown); retry shortly`);
      }
      if (outcome === 'anchored' && conflictOnAnchored)
        throw new OperationOutcomeError('CONFLICT', `${what} changed: a previous write, whose ledger outcome was unknown, turned out to be committed; read it and retry`);
    }
  }

  /**
   * Asks the ledger whether a write's anchors are there with its commitments, once per delay: all
   * there → `anchored`; another commitment at one of its versions → `superseded` (this write did not
   * make it); none there at the last try → `absent`; the ledger not answering (or a partial batch,
   * only a write anchored in several transactions can be; settlement completes it) at the last try →
   * `unresolved`.
   */
  async #askLedger(
    expected: ReadonlyArray<{ resourceType: string; id: string; versionId: string; commitment: string }>,
    delays: readonly number[],
  ): Promise<'anchored' | 'absent' | 'superseded' | 'unresolved'> {
    let last: 'absent' | 'unresolved' = 'unresolved';
    for (const delay of delays.length > 0 ? delays : [0]) {
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      try {
        const state = await this.#ledgerState(expected);
        const equal = state.filter((x) => x === 'equal').length;
        const absent = state.filter((x) => x === 'absent').length;
        if (equal === expected.length) return 'anchored';
        if (equal + absent < expected.length) return 'superseded';
        last = absent === expected.length ? 'absent' : 'unresolved';
      } catch {
        last = 'unresolved';
      }
    }
    return last;
  }

  /**
   * A pending write's outcome: when this process kept its endorsed transaction, by sending it again
   * (committed → its anchors are read back to be sure; never committed → absent); otherwise by reading
   * its anchors.
   */
  async #outcomeOf(
    w: StoredPendingWrite,
    expected: ReadonlyArray<{ resourceType: string; id: string; versionId: string; commitment: string }>,
    delays: readonly number[],
  ): Promise<'anchored' | 'absent' | 'superseded' | 'unresolved'> {
    const transaction = w.writeId !== undefined ? this.#unsettled.get(w.writeId) : undefined;
    if (transaction === undefined || !this.#ledger.settleTransaction) return this.#askLedger(expected, delays);
    const sent = await this.#ledger.settleTransaction(transaction);
    if (sent === 'not-committed') return 'absent';
    if (sent === 'unknown') return 'unresolved';
    const read = await this.#askLedger(expected, [0]);
    return read === 'absent' ? 'unresolved' : read;
  }

  /** Lets the ledger call go out first, then indexes the versions (its CPU overlapping the peers' work). */
  async #indexWhileAnchoring(versions: readonly PreparedVersion[]): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    await this.#indexVersions(versions.map((v) => ({ ...v.row, resource: v.resource })));
  }

  /** Computes and stores the search index of stored versions (none for a deletion). */
  async #indexVersions(versions: ReadonlyArray<VersionKey & { readonly deleted: boolean; readonly resource: Resource }>): Promise<void> {
    const indexed = versions.map((v) => ({
      resourceType: v.resourceType,
      id: v.id,
      versionId: v.versionId,
      index: v.deleted ? [] : timeSync('index', () => indexEntriesOf(v.resource)),
    }));
    await timeAsync('store-index', () => this.#store.indexVersions(indexed));
  }

  /** Settles one stored pending write (after a crash or an unknown outcome); `busy` when this process is still writing it. */
  async #settleStored(w: StoredPendingWrite, delays: readonly number[]): Promise<'anchored' | 'discarded' | 'unresolved' | 'busy'> {
    const keys = w.versions.map(this.#pendingKey);
    if (!this.#claim(keys)) return 'busy';
    try {
      const expected: Array<{ resourceType: string; id: string; versionId: string; commitment: string }> = [];
      for (const v of w.versions) {
        const key = await this.#store.findPatientKey(ResourceService.keyIdOf(v.patientId));
        // Without its key a version can never be verified, nor served: nothing to keep.
        if (!key) break;
        expected.push({ resourceType: v.resourceType, id: v.id, versionId: String(v.versionId), commitment: commitmentFor(key, JSON.parse(v.content) as Resource) });
      }
      let outcome = expected.length === w.versions.length ? await this.#outcomeOf(w, expected, delays) : 'absent';
      // A write anchored in several transactions, part of which is on the ledger: completed, never discarded.
      if (outcome === 'unresolved' && w.versions.length > MAX_ANCHOR_BATCH) {
        const anchors: AnchorInput[] = [];
        for (const v of w.versions) {
          const anchor = await this.#storedAnchorInput(v);
          if (anchor) anchors.push(anchor);
        }
        const completed = await this.#completeAnchors(anchors);
        if (completed === 'anchored' || completed === 'superseded') outcome = completed;
      }
      if (outcome === 'unresolved') return 'unresolved';
      if (w.writeId !== undefined) this.#unsettled.delete(w.writeId);
      if (outcome === 'anchored') {
        // A process that stopped while the write was on its way to the ledger may not have indexed it.
        await this.#indexVersions(w.versions.map((v) => ({ ...v, resource: JSON.parse(v.content) as Resource })));
        await this.#store.markWriteAnchored(w);
        return 'anchored';
      }
      if (w.writeId !== undefined) {
        // Undoes the whole write: versions, change entries, the DID links it set, the keys it created.
        await this.#store.discardPendingWrite(w);
      } else {
        // A version stored before writes were stored whole.
        for (const v of w.versions) {
          await this.#store.discardPending(v.resourceType, v.id, v.versionId);
          // A new Patient that never reached the ledger leaves nothing behind: no key, no DID link (a
          // retry with the same DID would otherwise be refused as a conflict).
          if (v.resourceType === 'Patient' && v.versionId === 1 && v.patientId !== null) await this.#store.erasePatient(v.patientId);
        }
      }
      return 'discarded';
    } finally {
      this.#release(keys);
    }
  }

  /**
   * Sync audit mode: delivers the change entries the store holds ready (writes whose entries did not
   * fit their ledger transaction) to the ledger, 200 per transaction, each deleted once committed; a
   * failed transaction leaves its entries for the next try (idempotent: entryId). Async mode: the audit
   * outbox takes them from the store itself (AuditOutbox `changes`). False when some are left.
   */
  async #deliverChanges(): Promise<boolean> {
    if (this.access.auditMode !== 'sync') {
      const { count, oldestReadyAt } = await this.#store.readyChangeStats();
      if (count > 0 && oldestReadyAt !== undefined && Date.now() - oldestReadyAt > 5 * 60_000) {
        this.#log.error(
          { event: 'change-audit-waiting', entries: count },
          'change entries have waited in the store for over 5 minutes: the audit outbox takes them only when it is given the store (AuditOutbox option changes)',
        );
      }
      return true;
    }
    this.#delivering ??= (async () => {
      let ok = true;
      const failed = new Set<string>();
      for (;;) {
        const ready = (await this.#store.readyChanges(MAX_ENTRIES_PER_TRANSACTION + failed.size)).filter((c) => !failed.has(c.entryId)).slice(0, MAX_ENTRIES_PER_TRANSACTION);
        if (ready.length === 0) break;
        try {
          await this.#ledger.recordAccess(ready.map((c) => c.entry));
          await this.#store.dropChanges(ready.map((c) => c.entryId));
        } catch (err) {
          ok = false;
          for (const c of ready) failed.add(c.entryId);
          this.#log.error(
            { event: 'change-audit-retry', code: err instanceof OperationOutcomeError ? err.code : 'INTERNAL', entries: ready.length },
            'change entries could not be recorded on the ledger; they stay in the store and are retried',
          );
        }
      }
      if (!ok) this.#armSettling();
      return ok;
    })().finally(() => {
      this.#delivering = undefined;
    });
    return this.#delivering;
  }

  /** Runs settlePending again in settleRetryMs (unref'd: never keeps the process alive), unless already due. */
  #armSettling(): void {
    if (this.#settleTimer || this.#settleStopped) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      this.settlePending().catch((err: unknown) => this.#log.error({ event: 'settle-pending', err }, 'settling pending writes failed; retried later'));
    }, this.settleRetryMs);
    this.#settleTimer.unref();
  }

  /**
   * Also settles every `intervalMs` whether or not this process left anything pending (a safety net
   * for the lead's scheduler; unref'd). stopSettling() ends it (call before closing the store).
   */
  startSettling(intervalMs = 60_000): void {
    if (this.#settleStopped || this.#settleInterval) return;
    this.#settleInterval = setInterval(() => {
      this.settlePending().catch((err: unknown) => this.#log.error({ event: 'settle-pending', err }, 'settling pending writes failed; retried later'));
    }, intervalMs);
    this.#settleInterval.unref();
  }

  /** No more settling by timer (shutdown). */
  stopSettling(): void {
    this.#settleStopped = true;
    clearTimeout(this.#settleTimer);
    clearInterval(this.#settleInterval);
    this.#settleTimer = undefined;
    this.#settleInterval = undefined;
  }

  async read(caller: Caller, resourceType: string, id: string): Promise<Resource> {
    typeInfo(resourceType);
    const v = await this.#visible(caller, await this.#store.readCurrent(resourceType, id), 'read', resourceType, id);
    return this.#disclose(caller, v, 'read');
  }

  async vread(caller: Caller, resourceType: string, id: string, versionId: string): Promise<Resource> {
    typeInfo(resourceType);
    const n = Number(versionId);
    const found = Number.isInteger(n) && n > 0 ? await this.#store.readVersion(resourceType, id, n) : undefined;
    const v = await this.#visible(caller, found, 'vread', resourceType, id, versionId);
    return this.#disclose(caller, v, 'vread');
  }

  /**
   * Whether a read (or, with `versionId`, a vread) would be answered now: a transaction's GET entry,
   * checked before its writes commit (bundle-service.ts), is read through `read`/`vread` only once they
   * have. The caller's interaction, its compartment and consent; throws what the read would: 404 for a
   * record absent or not permitted (never told apart), 410 for a deleted one. A permitted check records
   * nothing (the read after the commit is recorded); a refused one is recorded as any refused read is,
   * so a transaction is no way to try reads the patient and auditors would not see.
   */
  async assertReadable(caller: Caller, resourceType: string, id: string, versionId?: string): Promise<void> {
    typeInfo(resourceType);
    const subtype: Disclosure = versionId === undefined ? 'read' : 'vread';
    const n = Number(versionId);
    const found =
      versionId === undefined ? await this.#store.readCurrent(resourceType, id) : Number.isInteger(n) && n > 0 ? await this.#store.readVersion(resourceType, id, n) : undefined;
    const v = await this.#visible(caller, found, subtype, resourceType, id, versionId);
    const [decision] = await this.access.evaluate(caller, [v]);
    // Refused: decided again and recorded as a refused read (authorize throws the 404 of a missing record).
    if (decision?.decision !== 'permit') await this.access.authorize(caller, v, subtype);
    if (v.deleted) throw new OperationOutcomeError('GONE', `${resourceType}/${id} was deleted`);
  }

  /** One version: consent and audit in one transaction, then the integrity check, then release. */
  async #disclose(caller: Caller, v: StoredVersion, subtype: Disclosure): Promise<Resource> {
    await this.access.authorize(caller, v, subtype);
    if (v.deleted) throw new OperationOutcomeError('GONE', `${v.resourceType}/${v.id} was deleted`);
    return this.#integrity.verified(v);
  }

  /** Every version of one resource the caller may see, newest first (deletions included, without content). */
  async history(caller: Caller, resourceType: string, id: string): Promise<HistoryEntry[]> {
    typeInfo(resourceType);
    const versions = await this.#store.history(resourceType, id);
    await this.#visible(caller, versions[0], 'history-instance', resourceType, id);
    const released = await this.access.filterAndRecord(caller, versions, 'history-instance', this.#refOfVersion);
    // Nothing the caller may see is answered as nothing there at all.
    if (released.length === 0) throw notKnown(resourceType, id);
    return this.#historyEntries(released);
  }

  /**
   * Every version of every resource of a type the caller may see, newest first, one page of it. Consent
   * is applied inside the query (each type, patient and class decided once), so the total counts only
   * what the caller may see, and a history may hold any number of versions.
   */
  async typeHistory(caller: Caller, resourceType: string, params: HistoryParams): Promise<{ total: number; entries: HistoryEntry[] }> {
    typeInfo(resourceType);
    return this.#historyAcross(() => caller, resourceType, params);
  }

  /**
   * `GET [base]/_history`: every version of every type the caller may read (its scopes decide which
   * types: `callerFor` binds the caller to a type, undefined when it may not read it), then exactly as a
   * type's history: compartment, consent per version, one access entry per patient.
   */
  systemHistory(callerFor: (resourceType: string) => Caller | undefined, params: HistoryParams): Promise<{ total: number; entries: HistoryEntry[] }> {
    return this.#historyAcross(callerFor, undefined, params);
  }

  async #historyAcross(
    callerFor: (resourceType: string) => Caller | undefined,
    resourceType: string | undefined,
    params: HistoryParams,
  ): Promise<{ total: number; entries: HistoryEntry[] }> {
    const readable = new Map<string, Caller | undefined>();
    const callerOf = (type: string): Caller | undefined => {
      if (!readable.has(type)) {
        const c = callerFor(type);
        readable.set(type, c !== undefined && mayReadHere(c, type, this.#mspId) ? c : undefined);
      }
      return readable.get(type);
    };
    // The caller as bound to the type asked for, or (system history) to any type it may read: the binding differs only in the scope.
    const anyReadable = (): Caller | undefined => {
      for (const t of SUPPORTED_TYPES) {
        const c = callerOf(t);
        if (c) return c;
      }
      return undefined;
    };
    const caller = resourceType !== undefined ? callerFor(resourceType) : anyReadable();
    if (caller === undefined) throw new OperationOutcomeError('FORBIDDEN', 'The token grants no read scope for any resource type held here');
    if (resourceType !== undefined) assertInteraction(caller, 'read', resourceType, this.#mspId);
    AccessControl.requireActor(caller);
    // Across every patient of this custodian: for its own users only (another member's asks per patient).
    if (!caller.local)
      throw new OperationOutcomeError('FORBIDDEN', `The history of every ${resourceType ?? 'resource'} here is for users of ${this.#mspId}; search by patient instead`);
    // Consent inside the query, as a search's: the versions counted by type, patient and access class,
    // each group decided once, the permitted groups paged through in the store; any number of versions.
    const patientIds = await this.#compartmentPatients(caller, undefined);
    const filter = {
      ...(params.since ? { since: params.since } : {}),
      ...(params.at ? { at: params.at } : {}),
      types: resourceType !== undefined ? [resourceType] : [...SUPPORTED_TYPES].filter((t) => callerOf(t) !== undefined),
      ...(patientIds !== undefined ? { patientIds } : {}),
    };
    const { permitted, total } = await this.#decideClasses(caller, await this.#store.historyClasses(resourceType, filter));
    const page = await this.#store.typeHistory(resourceType, { ...filter, classes: [...permitted.keys()], offset: params.offset, limit: params.count });
    const released = page.flatMap((v) => {
      const p = permitted.get(historyClassKey(v));
      return p ? [{ version: v, decision: p.decision, accessClass: p.accessClass }] : [];
    });
    await this.access.recordDisclosures(caller, released, resourceType === undefined ? 'history-system' : 'history-type', this.#refOfVersion);
    return { total, entries: await this.#historyEntries(released) };
  }

  /**
   * The entries of a history page, each checked against its anchor (and, when released by its access
   * class, against that class) before it is served.
   */
  #historyEntries(versions: ReadonlyArray<StoredVersion | { readonly version: StoredVersion; readonly accessClass?: AccessClass | undefined }>): Promise<HistoryEntry[]> {
    return Promise.all(
      versions.map(async (x) => {
        const { version: v, accessClass } = 'version' in x ? x : { version: x, accessClass: undefined };
        return {
          resource: v.deleted ? { resourceType: v.resourceType, id: v.id } : await this.#integrity.verified(v, accessClass),
          deleted: v.deleted,
          versionId: String(v.versionId),
        };
      }),
    );
  }

  /**
   * What decides a group of matches: a version with no patient is reference data (as
   * AccessControl.evaluate has it); a class is decided for the patient's ledger reference; a version
   * stored without a class is decided on its own anchor. A class that cannot be read is decided by
   * nobody (undefined: its matches are withheld).
   */
  async #decisionSubject(resourceType: string, c: SearchClass, refs: Map<string, string>): Promise<DecisionSubject | undefined> {
    if (c.patientId === null) return { kind: 'reference' };
    if (c.accessClass === undefined) return c.version ? { kind: 'version', resource: ref(resourceType, c.version.id, c.version.versionId) } : undefined;
    const accessClass = parseAccessClass(c.accessClass);
    if (accessClass === undefined) {
      this.#log.warn({ event: 'integrity-failure', resourceType, reason: 'unreadable access class' }, 'a stored access class cannot be read; its matches are withheld');
      return undefined;
    }
    const patient = refs.get(c.patientId) ?? (await this.patientRef(ResourceService.keyIdOf(c.patientId)));
    refs.set(c.patientId, patient);
    return { kind: 'class', patient, resourceType, accessClass };
  }

  /**
   * Consent inside the query: the query's matches counted by patient and access class, each class decided
   * once for the caller; the permitted classes (by SearchClass.key) and how many matches they hold.
   */
  async #permittedClasses(caller: Caller, query: Omit<StoreQuery, 'limit' | 'offset' | 'sort' | 'classes'>): Promise<{ permitted: Map<string, PermittedClass>; total: number }> {
    return this.#decideClasses(
      caller,
      (await this.#store.searchClasses(query)).map((c) => ({ ...c, resourceType: query.resourceType })),
    );
  }

  /** Each group decided once for the caller (searches and histories): the permitted ones by key, and how many versions they hold. */
  async #decideClasses(caller: Caller, classes: readonly HistoryClass[]): Promise<{ permitted: Map<string, PermittedClass>; total: number }> {
    // A patient's ledger reference is looked up once, however many classes it has.
    const refs = new Map<string, string>();
    const subjects: Array<DecisionSubject | undefined> = [];
    for (const c of classes) subjects.push(await this.#decisionSubject(c.resourceType, c, refs));
    const decisions = await this.access.decideSubjects(
      caller,
      subjects.filter((x): x is DecisionSubject => x !== undefined),
    );
    let nextDecision = 0;
    const permitted = new Map<string, PermittedClass>();
    let total = 0;
    classes.forEach((c, i) => {
      const decision = subjects[i] === undefined ? undefined : decisions[nextDecision++];
      if (decision?.decision !== 'permit') return;
      permitted.set(c.key, { decision, accessClass: c.accessClass !== undefined ? parseAccessClass(c.accessClass) : undefined });
      total += c.count;
    });
    return { permitted, total };
  }

  /**
   * What `search` refuses before it looks anything up (the type, the interaction, an actor; another
   * member's user naming no patient, for the type and every type its chains and _has reach): a
   * transaction checks its search entries with it before it writes. Reads, decides and records nothing.
   */
  assertSearchable(
    caller: Caller,
    resourceType: string,
    params: Pick<SearchParams, 'chains' | 'has'> & { readonly namesPatient: boolean },
    mayRead: (t: string) => boolean,
    includes: readonly IncludeSpec[] = [],
  ): void {
    typeInfo(resourceType);
    assertInteraction(caller, 'read', resourceType, this.#mspId);
    AccessControl.requireActor(caller);
    // Another member's user searches one patient's records at a time: a search across this custodian's
    // patients would tell it how many records match (the candidate limit comes before consent).
    const reference = !inPatientCompartment(resourceType) && !governedByPatientReference(resourceType);
    if (!caller.local && !params.namesPatient && !reference) {
      throw new OperationOutcomeError('INVALID', `A search from outside ${this.#mspId} must name the patient (patient=<the patient DID>)`);
    }
    assertLinksNamePatient(this.#mspId, caller, params, params.namesPatient, mayRead);
    // A _revinclude looks for every resource pointing at the matches, of any patient: from another
    // member, only among the patient the search names (its candidate limit comes before consent, so a
    // search across patients would tell how many records point at, say, a Practitioner).
    if (!caller.local && !params.namesPatient) {
      for (const spec of includes) {
        const patientData = inPatientCompartment(spec.source) || governedByPatientReference(spec.source);
        if (spec.reverse && patientData && mayRead(spec.source)) {
          throw new OperationOutcomeError('INVALID', `A search from outside ${this.#mspId} must name the patient (patient=<the patient DID>) to _revinclude ${spec.source}`);
        }
      }
    }
  }

  async search(caller: Caller, resourceType: string, params: SearchParams, subtype: Disclosure = 'search-type', includes?: Includes): Promise<SearchPage> {
    this.assertSearchable(caller, resourceType, { ...params, namesPatient: params.patientIds !== undefined }, includes?.mayRead ?? ((): boolean => false), includes?.specs);
    const reference = !inPatientCompartment(resourceType) && !governedByPatientReference(resourceType);
    // A patient searches its own compartment (and its wards'): the store query itself is limited to it.
    // Reference data (in no patient's compartment) is not limited to the caller's compartment.
    const patientIds = reference ? params.patientIds : await this.#compartmentPatients(caller, params.patientIds);
    // Chains and _has: resolved first, each linked resource counted only if the caller may see it.
    const mayRead = includes?.mayRead ?? ((): boolean => false);
    const links = await resolveLinks(
      {
        store: this.#store,
        access: this.access,
        mspId: this.#mspId,
        maxCandidates: MAX_SEARCH_CANDIDATES,
        inCompartmentOf: (c, v) => this.inCompartmentOf(c, v, 'any'),
        compartmentPatients: (c, asked) => this.#compartmentPatients(c, asked),
      },
      caller,
      resourceType,
      {
        ...(params.chains ? { chains: params.chains } : {}),
        ...(params.has ? { has: params.has } : {}),
        ...(params.ids ? { ids: params.ids } : {}),
        ...(params.patientIds ? { patientIds: params.patientIds } : {}),
      },
      mayRead,
    );
    // Consent applied inside the query: the matches are counted by patient and access class, each class
    // is decided once (a version's decision reads its patient, type, labels and month, nothing else), and
    // the store pages through the permitted classes only. A search may match any number of resources, and
    // its total counts only what the caller may see.
    const { count: _count, offset: _offset, countOnly: _countOnly, chains: _chains, has: _has, sort, ...filters } = params;
    const query = {
      ...filters,
      resourceType,
      criteria: [...(params.criteria ?? []), ...links.criteria],
      ...(links.ids ? { ids: links.ids } : {}),
      ...(patientIds ? { patientIds } : {}),
    };
    const empty = (patientIds !== undefined && patientIds.length === 0) || links.ids?.length === 0;
    const { permitted, total } = empty ? { permitted: new Map<string, PermittedClass>(), total: 0 } : await this.#permittedClasses(caller, query);
    const matches =
      permitted.size === 0 || (params.countOnly !== true && params.count === 0)
        ? []
        : await this.#store.search({
            ...query,
            ...(sort ? { sort } : {}),
            classes: [...permitted.keys()],
            ...(params.countOnly === true ? { limit: total } : { offset: params.offset, limit: params.count }),
          });
    const visible = matches.flatMap((v) => {
      const p = permitted.get(searchClassKey(v));
      return p ? [{ version: v, decision: p.decision }] : [];
    });
    const page = params.countOnly === true ? [] : visible;
    // Includes are candidates like any other: the caller's scopes, its compartment, then consent for each.
    const included =
      includes && includes.specs.length > 0
        ? await this.#included(
            caller,
            page.map((x) => x.version),
            includes,
            await this.#linkScope(caller, params.patientIds),
          )
        : [];
    const released = params.countOnly === true ? visible : page;
    // A chained or _has resource tells the caller something about it when it links to a released match: recorded too.
    const linked = links.linkedTo(released.map((x) => x.version));
    await this.access.recordDisclosures(caller, dedupe([...released, ...included, ...linked]), subtype, this.#refOfVersion);
    return {
      total,
      resources: await Promise.all(page.map((x) => this.#integrity.verified(x.version, permitted.get(searchClassKey(x.version))?.accessClass))),
      included: await Promise.all(included.map((x) => this.#integrity.verified(x.version))),
    };
  }

  /**
   * The included resources the caller may see: the _include / _revinclude of the page's matches, then (for
   * `:iterate`) of what was included, round by round, at most MAX_INCLUDE_ROUNDS rounds. Each round's
   * candidates are decided (scopes, compartment, consent) before the next round starts from them, so an
   * iterated include starts only from a resource the caller may see, never from one withheld.
   */
  /**
   * The patients a reverse include of patient data looks among: a compartment-bound caller's own (and its
   * wards'), the patients another member's user names, none for this custodian's own staff (every one).
   */
  async #linkScope(caller: Caller, named: readonly string[] | undefined): Promise<readonly string[] | undefined> {
    if (caller.compartmentOf !== undefined) return this.#compartmentPatients(caller, named);
    return caller.local ? undefined : (named ?? []);
  }

  async #included(caller: Caller, page: readonly StoredVersion[], includes: Includes, scope: readonly string[] | undefined): Promise<Permitted[]> {
    const seen = new Set(page.map((v) => `${v.resourceType}/${v.id}`));
    const out: Permitted[] = [];
    let from: readonly StoredVersion[] = page;
    for (let round = 0; round < MAX_INCLUDE_ROUNDS && from.length > 0; round++) {
      const specs = round === 0 ? includes.specs : includes.specs.filter((x) => x.iterate);
      if (specs.length === 0) break;
      const candidates = await this.#includeCandidates(caller, from, specs, includes.mayRead, seen, scope);
      if (out.length + candidates.length > MAX_SEARCH_CANDIDATES) throw tooBroad('_include, _count');
      const permitted = candidates.length > 0 ? await this.access.permitted(caller, candidates) : [];
      out.push(...permitted);
      from = permitted.map((x) => x.version);
    }
    return out;
  }

  /**
   * Current versions that `specs` include from `from` (each spec from the resources of its type), not seen
   * before (the matches and earlier rounds: added to `seen`), that the caller may be asked about: a type
   * its scopes read, in its compartment.
   */
  async #includeCandidates(
    caller: Caller,
    from: readonly StoredVersion[],
    specs: readonly IncludeSpec[],
    mayRead: (t: string) => boolean,
    seen: Set<string>,
    scope: readonly string[] | undefined,
  ): Promise<StoredVersion[]> {
    const key = (v: { resourceType: string; id: string }): string => `${v.resourceType}/${v.id}`;
    const found = new Map<string, StoredVersion>();
    const add = (v: StoredVersion | undefined): void => {
      if (v && !v.deleted && !seen.has(key(v))) found.set(key(v), v);
    };
    // `from` by type: a `*` names every parameter of many types, most of them of no type at hand.
    const ofType = new Map<string, StoredVersion[]>();
    for (const v of from) {
      const same = ofType.get(v.resourceType);
      if (same) same.push(v);
      else ofType.set(v.resourceType, [v]);
    }
    for (const spec of specs) {
      if (spec.reverse) {
        // Resources of spec.source whose parameter points at one of `from` (of the target type, when named);
        // not looked up at all for a type the caller's scopes do not read (`_revinclude=*` names many).
        if (!mayRead(spec.source)) continue;
        const targets = spec.target === undefined ? from : (ofType.get(spec.target) ?? []);
        if (targets.length === 0) continue;
        const patientData = inPatientCompartment(spec.source) || governedByPatientReference(spec.source);
        const hits = await this.#store.search({
          resourceType: spec.source,
          criteria: [{ kind: 'reference', param: spec.param, values: targets.map((v) => ({ ref: key(v) })) }],
          // Patient data only among the patients the caller may search (#linkScope), so the candidate limit tells nothing of others.
          ...(patientData && scope !== undefined ? { patientIds: scope } : {}),
          limit: MAX_SEARCH_CANDIDATES + 1,
        });
        if (hits.length > MAX_SEARCH_CANDIDATES) throw tooBroad('_revinclude, _count');
        hits.forEach(add);
        continue;
      }
      for (const v of ofType.get(spec.source) ?? []) {
        for (const value of valuesOf(JSON.parse(v.content) as Record<string, unknown>, spec.param)) {
          const ref = value && typeof value === 'object' ? (value as { reference?: unknown }).reference : undefined;
          const m = typeof ref === 'string' ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
          if (!m?.[1] || !m[2] || (spec.target !== undefined && m[1] !== spec.target) || !SUPPORTED_TYPES.has(m[1])) continue;
          add(await this.#store.readCurrent(m[1], m[2]));
        }
      }
    }
    const out: StoredVersion[] = [];
    for (const v of found.values()) {
      seen.add(key(v));
      if (!mayRead(v.resourceType)) continue;
      if (v.patientId !== null && !(await this.inCompartmentOf(caller, v))) continue;
      out.push(v);
    }
    if (out.length > MAX_SEARCH_CANDIDATES) throw tooBroad('_include, _count');
    return out;
  }

  /** Patient/$everything: the Patient and every current resource of the patient the caller may see. */
  async everything(caller: Caller, patientId: string): Promise<Resource[]> {
    const found = await this.#store.readCurrent('Patient', patientId);
    const patient = await this.#visible(caller, found?.deleted === false ? found : undefined, '$everything', 'Patient', patientId);
    const released: Array<{ version: StoredVersion; decision: DecisionAt; accessClass?: AccessClass | undefined }> = await this.access.permitted(caller, [patient]);
    // Every other type: consent inside the query, as a search (each patient class decided once), so a
    // patient with thousands of records is answered whole, up to MAX_EVERYTHING.
    let total = 0;
    for (const type of SUPPORTED_TYPES) {
      if (type === 'Patient') continue;
      const query = { resourceType: type, patientIds: [patientId] };
      const { permitted, total: n } = await this.#permittedClasses(caller, query);
      if (n === 0) continue;
      total += n;
      if (total > MAX_EVERYTHING) throw tooBroad(`Patient/$export, or searches with paging: $everything answers at most ${MAX_EVERYTHING} resources`);
      for (const v of await this.#store.search({ ...query, classes: [...permitted.keys()], limit: n })) {
        const p = permitted.get(searchClassKey(v));
        if (p) released.push({ version: v, decision: p.decision, accessClass: p.accessClass });
      }
    }
    if (released.length === 0) throw notKnown('Patient', patientId);
    await this.access.recordDisclosures(caller, released, '$everything', this.#refOfVersion);
    return Promise.all(released.map((x) => this.#integrity.verified(x.version, x.accessClass)));
  }

  /**
   * One page of a bulk export ($export) of one type: current versions in (lastUpdated, id) order after
   * `after`, changed in [since, until], of the given patients (else every patient's, for this
   * organization's staff). Each candidate goes through the enforcement point as a search hit does (the
   * caller's compartment, consent for each, one access entry per patient, committed before anything is
   * returned); what the caller may not see is simply absent. A version that fails its integrity check is
   * withheld and counted, not returned. `next` is where the following page starts (none: this was the last).
   */
  async exportPage(
    caller: Caller,
    resourceType: string,
    page: { patientIds?: readonly string[]; since?: string; until: string; after?: { lastUpdated: string; id: string }; limit: number },
  ): Promise<{ resources: Resource[]; withheld: Array<{ resourceType: string; id: string }>; next?: { lastUpdated: string; id: string } }> {
    typeInfo(resourceType);
    assertInteraction(caller, 'read', resourceType, this.#mspId);
    AccessControl.requireActor(caller);
    const limit = Math.min(Math.max(1, page.limit), MAX_SEARCH_CANDIDATES);
    const reference = !inPatientCompartment(resourceType) && !governedByPatientReference(resourceType);
    // Across this custodian's patients only for its own users; a patient (of any member) only within its compartment.
    if (!caller.local && caller.compartmentOf === undefined && page.patientIds === undefined && !reference) {
      throw new OperationOutcomeError('FORBIDDEN', `An export across every patient here is for users of ${this.#mspId}`);
    }
    const patientIds = reference ? page.patientIds : await this.#compartmentPatients(caller, page.patientIds);
    const lastUpdated: DateFilter[] = [{ op: 'le', value: page.until }, ...(page.since ? [{ op: 'ge' as const, value: page.since }] : [])];
    const candidates =
      patientIds !== undefined && patientIds.length === 0
        ? []
        : await this.#store.search({ resourceType, ...(patientIds ? { patientIds } : {}), lastUpdated, ...(page.after ? { after: page.after } : {}), limit });
    const last = candidates.at(-1);
    const next = candidates.length === limit && last ? { lastUpdated: last.lastUpdated, id: last.id } : undefined;
    const released = await this.access.filterAndRecord(caller, candidates, '$export', this.#refOfVersion);
    const resources: Resource[] = [];
    const withheld: Array<{ resourceType: string; id: string }> = [];
    for (const v of released) {
      try {
        resources.push(await this.#integrity.verified(v));
      } catch (err) {
        if (!(err instanceof OperationOutcomeError) || err.code !== 'INTEGRITY') throw err;
        withheld.push({ resourceType: v.resourceType, id: v.id });
      }
    }
    return { resources, withheld, ...(next ? { next } : {}) };
  }

  /** $verify: the stored current version against its anchor, for a caller allowed to read it. */
  async verify(caller: Caller, resourceType: string, id: string): Promise<{ verified: boolean; reason: string; anchor?: { txId: string; custodian: string; anchoredAt: string } }> {
    typeInfo(resourceType);
    const v = await this.#visible(caller, await this.#store.readCurrent(resourceType, id), '$verify', resourceType, id);
    await this.access.authorize(caller, v, '$verify');
    const check = await this.#integrity.check(v);
    return {
      verified: check.ok,
      reason: check.reason,
      ...(check.anchor ? { anchor: { txId: check.anchor.txId, custodian: check.anchor.custodian, anchoredAt: check.anchor.anchoredAt } } : {}),
    };
  }

  /**
   * The key that opens one stored version's commitment, for a member this version is being disclosed to
   * (so it can check the content against the anchor); undefined once the patient is erased.
   */
  openingKey(resourceType: string, id: string, versionId: number | string): Promise<Buffer | undefined> {
    return this.#integrity.openingKey(resourceType, id, versionId);
  }

  /**
   * Settles writes left pending by a crash or an unknown ledger outcome: anchored on the ledger with
   * the same commitments → kept (marked anchored, and their change entries made ready, in one SQLite
   * transaction); absent → removed with everything the write set (they were never acknowledged); the
   * ledger not answering → left pending for the next run (`unresolved`, and a retry is scheduled).
   * Then delivers ready change entries (sync mode; the outbox takes them in async mode). Runs at start
   * and again by itself while something is left; concurrent calls share one run.
   */
  settlePending(): Promise<{ kept: number; removed: number; unresolved?: number }> {
    this.#settling ??= (async () => {
      let kept = 0;
      let removed = 0;
      let unresolved = 0;
      for (const w of await this.#store.listPendingWrites()) {
        const outcome = await this.#settleStored(w, [0]);
        if (outcome === 'anchored') kept += w.versions.length;
        else if (outcome === 'discarded') removed += w.versions.length;
        else if (outcome === 'unresolved') unresolved += w.versions.length;
      }
      const delivered = await this.#deliverChanges();
      if (unresolved > 0 || !delivered) this.#armSettling();
      return { kept, removed, ...(unresolved > 0 ? { unresolved } : {}) };
    })().finally(() => {
      this.#settling = undefined;
    });
    return this.#settling;
  }
}
