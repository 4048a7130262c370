import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';
import { decideAccess, parseAccessRequest } from './access-decision';
import {
  AUDIT_ACTIONS,
  AUDIT_CLIENT_KEY,
  AuditAction,
  AuditEntry,
  AuditIndex,
  AuditInput,
  ENTRY_ID,
  MAX_RESOURCES,
  RESOURCE_ID,
  AUDIT_INDEX,
  auditKey,
  breakGlassIndexKey,
  eventNumberOf,
  indexRange,
  indexRowKeysOf,
  parseAuditInput,
  resourceOfRef,
  timeKeyOf,
} from './audit-model';
import { canSee, mayQuery, viewerOf } from './audit-viewer';
import { queryBreakGlass, reviewBreakGlass, reviewStatesOf } from './break-glass-review';
import { Caller, callerOf, hasRole } from './caller';
import { forbidden, invalid, notFound } from './errors';
import { findIdentity } from './identity-model';
import { LINK_KEY, PatientLink, findLink } from './patient-link';
import { MAX_AUDIT_BATCH, coPatientEntryId } from './protocol';
import { ANCHOR_KEY, Anchor, anchorKey, governingPatients } from './record-model';
import { INDEX_MARKER, canonicalJson, marshal, parseBookmark, parsePageSize, readState, scanPartial, txInstant, txTimeKey, writeState } from './ledger';
import { packedRows, pageMembers, simpleKeyRange } from './packed-index';
import {
  FHIR_INSTANT,
  HDX_DID,
  type JsonObject,
  PATIENT_REF_RULE,
  isPatientRef,
  optionalString,
  optionalStringArray,
  parseJsonArray,
  parseJsonObject,
  rejectUnknownFields,
} from './validate';
import { refuseRemovedSubmitter } from './member-model';

export const AUDIT_EVENT = 'hdx.audit';
export { MAX_AUDIT_BATCH };

/** Access history: who saw or changed what, when, why, and what decided it. */
@Info({ title: 'AuditContract', description: 'hdx.audit: access history entries, range queries and AuthorizeAndRecord' })
export class AuditContract extends Contract {
  public constructor() {
    super('hdx.audit');
  }

  /** No identity of a member organization removed from the consortium submits anything. */
  public override async beforeTransaction(ctx: Context): Promise<void> {
    await refuseRemovedSubmitter(ctx);
  }

  /** Records one access entry stated by a gateway of an organization that took part in it. */
  @Transaction()
  @Returns('string')
  public async RecordAccess(ctx: Context, entryJson: string): Promise<string> {
    const caller = callerMayRecord(ctx);
    const input = parseAuditInput(parseJsonObject(entryJson, 'entry'), 'entry');
    const [entry] = await recordEntries(ctx, caller, [input], {});
    return canonicalJson(entry);
  }

  /** Records many entries in one transaction (the gateway's async outbox); all or nothing. */
  @Transaction()
  @Returns('string')
  public async RecordAccessBatch(ctx: Context, entriesJson: string): Promise<string> {
    const caller = callerMayRecord(ctx);
    return canonicalJson(await recordEntries(ctx, caller, parseAuditEntries(entriesJson), {}));
  }

  /**
   * Evaluates consent and records the access in the same transaction (sync audit mode): the entry is
   * on the ledger, permit or deny, before the gateway releases anything. Request: the EvaluateAccess
   * request plus `resources?`, `auditAction?` (C|R|U|D|E, default R), `subtype?`, `entryId?`.
   * Returns `{decision, consents, reason, breakGlass, eventId}`.
   */
  @Transaction()
  @Returns('string')
  public async AuthorizeAndRecord(ctx: Context, requestJson: string): Promise<string> {
    const caller = callerMayRecord(ctx);
    const decided = await authorizeInput(ctx, caller, parseJsonObject(requestJson, 'request'), 'request');
    if ('previous' in decided) return canonicalJson(decisionOf(decided.previous));
    const [entry] = await recordEntries(ctx, caller, [decided.input, ...decided.coPatients], 'decided');
    return canonicalJson(decisionOf(entry as AuditEntry));
  }

  /**
   * AuthorizeAndRecord for 1–200 requests in ONE transaction (sync audit mode's group commit: the
   * concurrent reads of a gateway share a transaction, and each still waits for its commit). Each request
   * is decided and recorded as AuthorizeAndRecord would, permit or deny; a request already recorded
   * (its entryId) returns its recorded decision. entryIds must be unique within the batch. All or nothing:
   * one request the chaincode refuses fails the batch (the gateway then sends them one by one). Returns the
   * decisions in request order.
   */
  @Transaction()
  @Returns('string')
  public async AuthorizeAndRecordBatch(ctx: Context, requestsJson: string): Promise<string> {
    const caller = callerMayRecord(ctx);
    const requests = parseJsonArray(requestsJson, 'requests', MAX_AUDIT_BATCH).map((item, i) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) throw invalid(`requests[${i}] must be an object`);
      return item as JsonObject;
    });
    const ids = requests.map((r) => r.entryId).filter((id) => id !== undefined);
    if (new Set(ids).size !== ids.length) {
      throw invalid('requests has a repeated entryId');
    }
    const decided: Array<{ previous: AuditEntry } | { input: AuditInput; coPatients: AuditInput[] }> = [];
    for (const [i, obj] of requests.entries()) {
      decided.push(await authorizeInput(ctx, caller, obj, `requests[${i}]`));
    }
    // Each request's own entry, then the entries of its other patients (a version in several compartments).
    const fresh = decided.flatMap((d) => ('input' in d ? [d.input, ...d.coPatients] : []));
    const recorded = fresh.length > 0 ? await recordEntries(ctx, caller, fresh, 'decided') : [];
    let next = 0;
    return canonicalJson(
      decided.map((d) => {
        if ('previous' in d) return decisionOf(d.previous);
        const own = recorded[next] as AuditEntry;
        next += 1 + d.coPatients.length;
        return decisionOf(own);
      }),
    );
  }

  /** One entry by event id, if the requester may read it. `requester`: the DID a gateway acts for ('' for none). */
  @Transaction(false)
  @Returns('string')
  public async GetEntry(ctx: Context, eventId: string, requester: string): Promise<string> {
    const viewer = await viewerOf(ctx, callerOf(ctx), requester || undefined);
    if (!/^[A-Za-z0-9]{1,128}\.[0-9]{1,6}$/.test(eventId)) {
      throw invalid('eventId must be <txId>.<n>');
    }
    const entry = await readState<AuditEntry>(ctx, auditKey(ctx, eventId));
    if (!entry) {
      throw notFound(`audit entry ${eventId} does not exist`);
    }
    if (!(await canSee(ctx, viewer, entry))) {
      throw forbidden(`audit entry ${eventId} is not visible to the requester`);
    }
    return canonicalJson(entry);
  }

  /**
   * Range query over the access history, oldest first: `{patient? | actor? | resource?, from?, to?,
   * pageSize?, bookmark?, requester?}` (at most one of patient/actor/resource; none = all by time;
   * window [from, to) on the recording time). Returns `{entries, bookmark, fetchedRecordsCount}`;
   * entries the requester may not see are left out of the page.
   */
  @Transaction(false)
  @Returns('string')
  public async QueryAccess(ctx: Context, queryJson: string): Promise<string> {
    const caller = callerOf(ctx);
    const query = parseJsonObject(queryJson, 'query');
    rejectUnknownFields(query, ['patient', 'actor', 'resource', 'from', 'to', 'pageSize', 'bookmark', 'requester'], 'query');
    const requester = optionalString(query, 'requester', 'query', HDX_DID, 'must be a did:hdx DID');
    const viewer = await viewerOf(ctx, caller, requester);
    const selectors = (['patient', 'actor', 'resource'] as const).filter((field) => query[field] !== undefined);
    if (selectors.length > 1) {
      throw invalid('query may select by only one of patient, actor, resource');
    }
    const index: AuditIndex = selectors[0] ?? 'time';
    let value: string | undefined;
    if (index === 'patient') {
      value = optionalString(query, 'patient', 'query');
      if (!isPatientRef(value ?? '')) throw invalid(`query.patient ${PATIENT_REF_RULE}`);
    } else if (index === 'actor') {
      value = optionalString(query, 'actor', 'query', HDX_DID, 'must be a did:hdx DID');
    } else if (index === 'resource') {
      value = resourceOfRef(optionalString(query, 'resource', 'query', RESOURCE_ID, 'must be Type/id') ?? '');
    }
    await mayQuery(ctx, viewer, index, value);
    const from = optionalString(query, 'from', 'query', FHIR_INSTANT, 'must be a FHIR instant');
    const to = optionalString(query, 'to', 'query', FHIR_INSTANT, 'must be a FHIR instant');
    const [start, end] = indexRange(index, value, from === undefined ? undefined : timeKeyOf(from), to === undefined ? undefined : timeKeyOf(to));
    if (end < start) {
      throw invalid('query.from must not be after query.to');
    }
    const pageSize = parsePageSize(query.pageSize as string | number | undefined);
    // pageSize counts entries: a page may end inside the row of one transaction (packed-index.ts).
    const page = await pageMembers(AUDIT_INDEX, [simpleKeyRange(ctx, start, end)], pageSize, parseBookmark(optionalString(query, 'bookmark', 'query')));
    const entries: AuditEntry[] = [];
    for (const { member: eventId } of page.members) {
      const entry = await readState<AuditEntry>(ctx, auditKey(ctx, eventId));
      if (entry && (await canSee(ctx, viewer, entry))) {
        entries.push(entry);
      }
    }
    // The review state of each break-glass entry on the page, by event id (break-glass-review.ts).
    const reviews = await reviewStatesOf(ctx, entries);
    return canonicalJson({ entries, bookmark: page.bookmark, fetchedRecordsCount: page.fetchedRecordsCount, reviews });
  }

  /**
   * Records an auditor's review of a break-glass entry: `reviewJws` is a compact JWS signed by an active
   * auditor DID over `{action: "review", eventId, outcome, nonce, iat}` (outcome: justified,
   * not-justified or needs-follow-up). Submitted by a gateway (or auditor identity) of the auditor's
   * organization; never an admin, never the entry's actor, only break-glass entries; append-only.
   * Returns `{entry, review: {state, reviews, current}}`.
   */
  @Transaction()
  @Returns('string')
  public async ReviewBreakGlass(ctx: Context, reviewJws: string): Promise<string> {
    return canonicalJson(await reviewBreakGlass(ctx, callerOf(ctx), reviewJws));
  }

  /**
   * The break-glass review queue, oldest first: `{state?: open | reviewed, from?, to?, pageSize?,
   * bookmark?, requester?}` (requester: the auditor DID a gateway acts for). Returns `{entries: [{entry,
   * review}], bookmark, fetchedRecordsCount}`; for auditors (everything) and admins or auditor
   * identities of an organization (its own entries).
   */
  @Transaction(false)
  @Returns('string')
  public async QueryBreakGlass(ctx: Context, queryJson: string): Promise<string> {
    const query = parseJsonObject(queryJson, 'query');
    rejectUnknownFields(query, ['state', 'from', 'to', 'pageSize', 'bookmark', 'requester'], 'query');
    const requester = optionalString(query, 'requester', 'query', HDX_DID, 'must be a did:hdx DID');
    const viewer = await viewerOf(ctx, callerOf(ctx), requester);
    return canonicalJson(await queryBreakGlass(ctx, viewer, query));
  }
}

/** A JSON array of 1–200 access entries, entryIds unique within it. */
export function parseAuditEntries(entriesJson: string): AuditInput[] {
  const inputs = parseJsonArray(entriesJson, 'entries', MAX_AUDIT_BATCH).map((item, index) => parseAuditInput(item, `entries[${index}]`));
  const ids = inputs.map((input) => input.entryId).filter((id): id is string => id !== undefined);
  if (new Set(ids).size !== ids.length) {
    throw invalid('entries has a repeated entryId');
  }
  return inputs;
}

/** Gateways and admins record; auditors only read. */
export function callerMayRecord(ctx: Context): Caller {
  const caller = callerOf(ctx);
  if (!hasRole(caller, 'gateway', 'admin')) {
    throw forbidden('access entries are recorded by a gateway or admin identity');
  }
  return caller;
}

/**
 * One AuthorizeAndRecord request (the EvaluateAccess request plus `resources?`, `auditAction?`,
 * `subtype?`, `entryId?`): its access entry, decided, ready to record; or the entry already recorded
 * under its entryId.
 */
async function authorizeInput(ctx: Context, caller: Caller, obj: JsonObject, path: string): Promise<{ previous: AuditEntry } | { input: AuditInput; coPatients: AuditInput[] }> {
  const input = parseAccessRequest(obj, path, ['resources', 'auditAction', 'subtype', 'entryId']);
  const extra = optionalStringArray(obj, 'resources', path, RESOURCE_ID, 'must be Type/id or Type/id/_history/v', MAX_RESOURCES) ?? [];
  const auditAction = (optionalString(obj, 'auditAction', path) ?? 'R') as AuditAction;
  if (!AUDIT_ACTIONS.includes(auditAction)) {
    throw invalid(`${path}.auditAction must be one of ${AUDIT_ACTIONS.join(', ')}`);
  }
  const entryId = optionalString(obj, 'entryId', path, ENTRY_ID, 'must be 1 to 128 characters [A-Za-z0-9._:-]');
  if (entryId !== undefined) {
    const previous = await entryByClientId(ctx, caller, entryId);
    if (previous) {
      return { previous };
    }
  }
  const resolved = await decideAccess(ctx, input, path);
  const resources = [...new Set([...(resolved.resource ? [resolved.resource] : []), ...extra])];
  if (resources.length > MAX_RESOURCES) {
    throw invalid(`${path}.resources has more than ${MAX_RESOURCES} items`);
  }
  const auditInput: AuditInput = {
    actor: resolved.request.actor,
    actorOrganization: resolved.request.actorOrganization,
    actorAuth: resolved.request.actorAuth,
    patient: resolved.request.patient,
    resources,
    action: auditAction,
    purpose: resolved.request.purpose,
    decision: resolved.decision,
    consents: resolved.consents,
    reason: resolved.reason,
    breakGlass: resolved.breakGlass,
    custodian: resolved.request.custodian,
  };
  const subtype = optionalString(obj, 'subtype', path, /^[A-Za-z0-9$._-]{1,64}$/, 'must be a short code');
  if (subtype !== undefined) auditInput.subtype = subtype;
  if (entryId !== undefined) auditInput.entryId = entryId;
  // A version in several patients' compartments: the same access is in each one's history too.
  const coPatients = (resolved.coPatients ?? []).map((patient, i) => {
    const { entryId: _entryId, ...rest } = auditInput;
    return { ...rest, patient, ...(entryId !== undefined ? { entryId: coPatientEntryId(entryId, i + 1) } : {}) };
  });
  return { input: auditInput, coPatients };
}

async function entryByClientId(ctx: Context, caller: Caller, entryId: string): Promise<AuditEntry | undefined> {
  const bytes = await ctx.stub.getState(ctx.stub.createCompositeKey(AUDIT_CLIENT_KEY, [caller.mspId, entryId]));
  if (!bytes || bytes.length === 0) {
    return undefined;
  }
  return readState<AuditEntry>(ctx, auditKey(ctx, Buffer.from(bytes).toString('utf8')));
}

function decisionOf(entry: AuditEntry): { decision: string; consents: string[]; reason: string; breakGlass: boolean; eventId: string } {
  return { decision: entry.decision, consents: entry.consents, reason: entry.reason ?? '', breakGlass: entry.breakGlass, eventId: entry.eventId };
}

/**
 * What the recording organization can stand behind, for entries it states itself: anchors and patient
 * links written earlier in the same transaction (Fabric reads do not see them). `'decided'`: the entry
 * is the chaincode's own decision (AuthorizeAndRecord), resolved from the anchor.
 */
export type EntryCheck = 'decided' | { fresh?: Map<string, Anchor>; links?: Map<string, PatientLink> };

/**
 * Refuses a stated entry the creator cannot stand behind. Custodian side: custodian === creator and
 * at least one resource is named and every named resource is anchored by the creator under entry.patient (or a pseudonym the creator
 * linked to it; erased anchors have no patient left to compare). Requester side: actorOrganization ===
 * creator and the actor is an active DID the creator registered.
 */
async function checkStatedEntry(ctx: Context, caller: Caller, input: AuditInput, check: Exclude<EntryCheck, 'decided'>, path: string): Promise<void> {
  if (input.custodian === caller.mspId && (await anchorsBackEntry(ctx, caller, input, check))) {
    return;
  }
  if (input.actorOrganization === caller.mspId) {
    const actor = await findIdentity(ctx, input.actor);
    if (actor?.status === 'active' && actor.organization === caller.mspId) {
      return;
    }
  }
  throw forbidden(`${path}: ${caller.mspId} can stand behind neither its resources (as custodian) nor its actor (as the actor's organization)`);
}

async function anchorsBackEntry(ctx: Context, caller: Caller, input: AuditInput, check: Exclude<EntryCheck, 'decided'>): Promise<boolean> {
  if (input.resources.length === 0) {
    // Nothing to check the patient against: the custodian side needs at least one anchored resource.
    return false;
  }
  for (const ref of input.resources) {
    const parts = ref.split('/');
    const [type = '', id = ''] = parts;
    let anchors: Anchor[];
    if (parts.length === 4) {
      const anchor = check.fresh?.get(ref) ?? (await readState<Anchor>(ctx, anchorKey(ctx, type, id, parts[3] as string)));
      anchors = anchor ? [anchor] : [];
    } else {
      const stored = (await scanPartial(ctx, ANCHOR_KEY, [type, id])).map((row) => JSON.parse(Buffer.from(row.value).toString('utf8')) as Anchor);
      const fresh = [...(check.fresh?.values() ?? [])].filter((a) => a.resourceType === type && a.id === id);
      anchors = [...stored, ...fresh];
    }
    if (anchors.length === 0) {
      return false;
    }
    for (const anchor of anchors) {
      if (anchor.custodian !== caller.mspId) {
        return false;
      }
      // The entry's patient is one of the anchor's patients (its co-patients too), or linked to one.
      const patients = governingPatients(anchor);
      if (patients.length === 0 || patients.includes(input.patient)) {
        continue;
      }
      let linked = false;
      for (const patient of patients) {
        const linkKey = ctx.stub.createCompositeKey(LINK_KEY, [caller.mspId, patient]);
        const link = check.links?.get(linkKey) ?? (await findLink(ctx, caller.mspId, patient));
        if (link?.did === input.patient) {
          linked = true;
          break;
        }
      }
      if (!linked) {
        return false;
      }
    }
  }
  return true;
}

/**
 * Writes entries under unique keys and one chaincode event for the transaction. Each entry is filed in
 * the transaction's index rows (one per patient, actor, resource and the time index, however many
 * entries share it), written once at the end; a break-glass entry also gets its review-queue key.
 */
export async function recordEntries(ctx: Context, caller: Caller, inputs: AuditInput[], check: EntryCheck): Promise<AuditEntry[]> {
  const txId = ctx.stub.getTxID();
  const recordedAt = txInstant(ctx);
  const timeKey = txTimeKey(ctx);
  const rows = packedRows(ctx);
  const entries: AuditEntry[] = [];
  for (const [index, input] of inputs.entries()) {
    if (input.actorOrganization !== caller.mspId && input.custodian !== caller.mspId) {
      throw forbidden(`a gateway of ${caller.mspId} records only accesses its organization took part in`);
    }
    // A decided entry's entryId was looked up before it was decided (authorizeInput): one read, not two.
    if (input.entryId !== undefined && check !== 'decided') {
      const previous = await entryByClientId(ctx, caller, input.entryId);
      if (previous) {
        entries.push(previous);
        continue;
      }
    }
    if (check !== 'decided') {
      await checkStatedEntry(ctx, caller, input, check, `entries[${index}]`);
    }
    const vouchedBy = input.actorAuth === 'delegated' ? input.actorOrganization : caller.mspId;
    const entry: AuditEntry = { ...input, vouchedBy, eventId: `${txId}.${index}`, recordedAt, occurredAt: input.occurredAt ?? recordedAt, gateway: caller.mspId, txId };
    await writeState(ctx, auditKey(ctx, entry.eventId), entry);
    for (const key of indexRowKeysOf(entry, timeKey)) {
      rows.add(AUDIT_INDEX, key, eventNumberOf(entry));
    }
    if (entry.breakGlass) {
      // The break-glass review queue (break-glass-review.ts) pages over these, one key per entry.
      await ctx.stub.putState(breakGlassIndexKey(timeKey, entry.eventId), INDEX_MARKER);
    }
    if (entry.entryId !== undefined) {
      await ctx.stub.putState(ctx.stub.createCompositeKey(AUDIT_CLIENT_KEY, [caller.mspId, entry.entryId]), Buffer.from(entry.eventId, 'utf8'));
    }
    entries.push(entry);
  }
  await rows.flush();
  const fresh = entries.filter((entry) => entry.txId === txId);
  if (fresh.length > 0) {
    ctx.stub.setEvent(
      AUDIT_EVENT,
      marshal({
        entries: fresh.map((e) => ({
          eventId: e.eventId,
          recordedAt: e.recordedAt,
          patient: e.patient,
          actor: e.actor,
          actorOrganization: e.actorOrganization,
          actorAuth: e.actorAuth,
          decision: e.decision,
          breakGlass: e.breakGlass,
          resources: e.resources.length,
        })),
      }),
    );
  }
  return entries;
}
