import { MAX_RESOURCES_PER_ENTRY } from '@hdx/chaincode/dist/protocol';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type AuditSink, LedgerAuditSink } from '../audit/sink';
import type { AccessEntryInput, Decision, EvaluateRequest, LedgerClient } from '../ledger/ledger-client';
import type { AccessClass } from '../model/access-class';
import type { StoredVersion } from '../store/store';
import type { LocalDecision } from '../view/local-decisions';
import { OperationOutcomeError } from '../errors';
import { mapLimit } from '../util/concurrency';
import type { Caller } from './policy';

export type { Caller };

export type Disclosure = 'read' | 'vread' | 'history-instance' | 'history-type' | 'history-system' | 'search-type' | '$everything' | '$verify' | '$export';

const EVALUATE_CONCURRENCY = 8;
/** hdx.audit takes at most this many resources in one access entry: larger disclosures take several. */
export { MAX_RESOURCES_PER_ENTRY };

/** The answer for a resource that is absent or that the caller may not see: the two are never told apart. */
export function notKnown(resourceType: string, id: string, versionId?: string): OperationOutcomeError {
  return new OperationOutcomeError('NOT_FOUND', `${resourceType}/${id}${versionId !== undefined ? `/_history/${versionId}` : ''} is not known to this server`);
}

/** Consecutive slices of at most `size` items. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function ref(v: StoredVersion): string {
  return `${v.resourceType}/${v.id}/_history/${v.versionId}`;
}

/**
 * The ledger references of every patient whose consents govern a version: its patient's, then its
 * co-patients' (a resource in several patients' compartments; `patientRefOf` reads only `patientId`).
 * Each one's access history gets the access.
 */
async function governingRefs(v: StoredVersion, patientRefOf: (v: StoredVersion) => Promise<string>): Promise<string[]> {
  const refs = [await patientRefOf(v)];
  for (const co of v.coPatientIds ?? []) refs.push(await patientRefOf({ ...v, patientId: co }));
  return refs;
}

/** The decision for reference data: permitted to every member user, no consent involved. */
// 'reference-data' is not (yet) one of the chaincode's DecisionReason codes; its entries accept any reason code.
export const REFERENCE_DATA_DECISION: Decision = { decision: 'permit', consents: [], reason: 'reference-data' as Decision['reason'], breakGlass: false };

export interface AccessControlOptions {
  /** Where access entries go: the ledger (sync audit mode, the default) or the durable outbox (async). */
  readonly sink?: AuditSink;
  /** The ledger patient reference of a version (async mode states it in the entry; sync mode lets the chaincode take it from the anchor). */
  readonly patientRefOf?: (v: StoredVersion) => Promise<string>;
  /**
   * Decisions made on the ledger view (LocalDecisions), used in async audit mode only: each answers
   * undefined where the chaincode must decide (view not fresh, version not in it). Absent: every
   * decision asks the chaincode (HDX_DECISIONS=chaincode, or no view).
   */
  readonly local?: { decideAll(requests: readonly EvaluateRequest[]): Array<LocalDecision | undefined> };
}

/** A change to record: the version, its patient's ledger reference and its co-patients' (each one's history gets it). */
export interface Change {
  readonly version: StoredVersion;
  readonly patient: string;
  readonly coPatients?: readonly string[];
  readonly action: 'C' | 'U' | 'D';
}

/** A decision, with the view height when it was made locally (undefined: the chaincode decided). */
export type DecisionAt = Decision & { height?: number };

/**
 * What one decision covers (AccessControl.decideSubjects): reference data (no consent), one anchored
 * version, or every version of one patient, type and access class at this custodian (the chaincode
 * decides a version exactly as the request stating its anchor's patient, custodian, type, labels and
 * month: model/access-class.ts).
 */
export type DecisionSubject =
  | { readonly kind: 'reference' }
  | { readonly kind: 'version'; readonly resource: string }
  | { readonly kind: 'class'; readonly patient: string; readonly resourceType: string; readonly accessClass: AccessClass };

/**
 * The one enforcement point for every disclosure: it decides whether the caller may see each version,
 * records the access, and only then lets data go. `sync` audit mode: the chaincode decides and the access
 * entry is committed on the ledger before anything is released (consent and entry in one transaction for
 * a single version). `async` mode: consent is decided by the chaincode's own decision run on the ledger
 * view when the view is fresh (`local`, the entry then names the view height it was decided at), else by
 * the chaincode (EvaluateAccess), and the entry is committed to the durable outbox before anything is
 * released; the outbox delivers it to the ledger later.
 */
export class AccessControl {
  readonly #ledger: LedgerClient;
  readonly #log: Logger;
  /** This gateway's MSP id: the custodian of everything it discloses. */
  readonly #custodian: string;
  readonly #sink: AuditSink;
  readonly #patientRefOf: ((v: StoredVersion) => Promise<string>) | undefined;
  readonly #local: AccessControlOptions['local'];

  constructor(ledger: LedgerClient, log: Logger, custodian: string, options: AccessControlOptions = {}) {
    this.#ledger = ledger;
    this.#log = log;
    this.#custodian = custodian;
    this.#sink = options.sink ?? new LedgerAuditSink(ledger);
    this.#patientRefOf = options.patientRefOf;
    // Sync mode keeps the chaincode deciding and recording in one transaction.
    this.#local = this.#sink.kind === 'outbox' ? options.local : undefined;
    if (this.#sink.kind === 'outbox' && !this.#patientRefOf) throw new Error('AccessControl: async audit mode needs patientRefOf');
  }

  get auditMode(): 'sync' | 'async' {
    return this.#sink.kind === 'outbox' ? 'async' : 'sync';
  }

  static requireActor(caller: Caller): { actor: string; purpose: string } {
    if (!caller.did) {
      throw new OperationOutcomeError('FORBIDDEN', 'This token carries no DID: access to patient data is decided for a registered DID (claim hdx_did)');
    }
    if (!caller.purpose) throw new OperationOutcomeError('FORBIDDEN', 'This token states no purpose of use (claim purpose_of_use)');
    if (caller.purpose === 'ETREAT' && !caller.breakGlassReason) {
      throw new OperationOutcomeError('FORBIDDEN', 'Break-glass access (purpose ETREAT) needs a reason (claim break_glass_reason)');
    }
    return { actor: caller.did, purpose: caller.purpose };
  }

  /** Break-glass entries are named by eventId once on the ledger (sync), else by entryId (async: the outbox delivers them later). */
  #noteBreakGlass(caller: Caller, decision: Decision, ids: { eventIds: string[] } | { entryIds: string[] }): void {
    if (decision.breakGlass) {
      // The reason is free text that may name the patient: it stays with the custodian, not in logs.
      this.#log.warn({ event: 'break-glass', actorOrganization: caller.organization, decision: decision.decision, ...ids }, 'break-glass access: flagged for review');
    }
  }

  /**
   * One version: consent evaluated and the access recorded (permit or deny) before anything is
   * released; sync mode does both in one ledger transaction. Throws FORBIDDEN on deny.
   *
   * Reference data (a version with no patient: Practitioner, Organization, Medication, ...) is in no
   * patient's compartment, so no consent governs it: any member user with a DID and a purpose (scopes
   * were checked when the caller was bound) may read it. The access is still recorded, through the same
   * sink, before anything is released.
   */
  async authorize(caller: Caller, v: StoredVersion, subtype: Disclosure): Promise<Decision & { eventId?: string; entryId: string }> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    const entryId = randomUUID();
    let result: Decision & { eventId?: string; entryId: string };
    if (v.patientId === null) {
      const patient = await this.#patientRefOf?.(v);
      if (!patient) throw new Error('AccessControl: reference data needs patientRefOf (the reference-data pseudonym)');
      const decision = REFERENCE_DATA_DECISION;
      const [recorded] = await this.#sink.record([this.#readEntry(caller, v, patient, subtype, decision, entryId)]);
      return { ...decision, entryId, ...(recorded?.eventId ? { eventId: recorded.eventId } : {}) };
    }
    if (this.#sink.kind === 'ledger') {
      result = {
        ...(await this.#ledger.authorizeAndRecord({
          actor,
          actorOrganization: caller.organization,
          actorAuth: caller.actorAuth,
          purpose,
          resource: ref(v),
          resources: [ref(v)],
          auditAction: 'R',
          subtype,
          entryId,
        })),
        entryId,
      };
      this.#noteBreakGlass(caller, result, { eventIds: [result.eventId as string] });
    } else {
      const [decision] = await this.#decide(caller, [v]);
      // Permit or deny, the entry is on disk before the answer leaves (as AuthorizeAndRecord records both),
      // in the history of each patient whose consents decided it.
      const [own, ...others] = await governingRefs(v, this.#patientRefOf as (v: StoredVersion) => Promise<string>);
      await this.#sink.record([
        this.#readEntry(caller, v, own as string, subtype, decision as DecisionAt, entryId),
        ...others.map((patient) => this.#readEntry(caller, v, patient, subtype, decision as DecisionAt, randomUUID())),
      ]);
      const { height: _height, ...plain } = decision as DecisionAt;
      result = { ...plain, entryId };
      this.#noteBreakGlass(caller, result, { entryIds: [entryId] });
    }
    // The same answer as for a resource that does not exist (HAPI and Medplum answer compartment misses
    // so): a denied caller learns nothing, not even that the record is there. The reason is on the ledger.
    if (result.decision !== 'permit') throw notKnown(v.resourceType, v.id, subtype === 'vread' ? String(v.versionId) : undefined);
    return result;
  }

  /** The access entry of one read of one version, as the chaincode's AuthorizeAndRecord would record it. */
  #readEntry(
    caller: Caller,
    v: StoredVersion,
    patient: string,
    subtype: Disclosure,
    decision: Pick<AccessEntryInput, 'decision' | 'consents' | 'reason' | 'breakGlass'> & { height?: number },
    entryId: string,
  ): AccessEntryInput {
    const { actor, purpose } = AccessControl.requireActor(caller);
    return {
      actor,
      actorOrganization: caller.organization,
      actorAuth: caller.actorAuth,
      patient,
      resources: [ref(v)],
      action: 'R',
      subtype,
      purpose,
      decision: decision.decision,
      consents: decision.consents ?? [],
      ...(decision.reason !== undefined ? { reason: decision.reason } : {}),
      breakGlass: decision.breakGlass,
      custodian: this.#custodian,
      entryId,
      ...(decision.height !== undefined ? { decidedAt: { height: decision.height } } : {}),
    };
  }

  /**
   * A refusal the gateway decides before asking the chaincode (a patient outside their compartment):
   * recorded as a denied access like any other, then answered exactly as a missing resource.
   */
  async refuse(caller: Caller, v: StoredVersion, subtype: Disclosure, reason: 'outside-compartment'): Promise<never> {
    if (this.#patientRefOf) {
      const patients = await governingRefs(v, this.#patientRefOf);
      await this.#sink.record(patients.map((patient) => this.#readEntry(caller, v, patient, subtype, { decision: 'deny', consents: [], reason, breakGlass: false }, randomUUID())));
    }
    throw notKnown(v.resourceType, v.id, subtype === 'vread' ? String(v.versionId) : undefined);
  }

  /**
   * Consent decisions for versions of patients, in input order: made on the ledger view, all at one
   * height, where it may decide (async mode, view fresh); by the chaincode (EvaluateAccess) for the rest.
   */
  async #decide(caller: Caller, versions: readonly StoredVersion[]): Promise<DecisionAt[]> {
    return this.#decideRequests(versions.map((v) => ({ ...this.#requestBase(caller), resource: ref(v) })));
  }

  #requestBase(caller: Caller): EvaluateRequest {
    const { actor, purpose } = AccessControl.requireActor(caller);
    return { actor, actorOrganization: caller.organization, actorAuth: caller.actorAuth, purpose };
  }

  async #decideRequests(requests: readonly EvaluateRequest[]): Promise<DecisionAt[]> {
    const local = this.#local?.decideAll(requests) ?? [];
    return mapLimit(requests, EVALUATE_CONCURRENCY, async (request, i) => local[i] ?? this.#ledger.evaluateAccess(request));
  }

  /**
   * Decisions for groups of versions (evaluate only: nothing is recorded), in input order, made as
   * `evaluate` makes them (on the view when it may decide, else by the chaincode): a search decides each
   * patient's class once, however many of its versions match.
   */
  async decideSubjects(caller: Caller, subjects: readonly DecisionSubject[]): Promise<DecisionAt[]> {
    const base = this.#requestBase(caller);
    const requests: EvaluateRequest[] = [];
    for (const s of subjects) {
      if (s.kind === 'version') requests.push({ ...base, resource: s.resource });
      else if (s.kind === 'class') {
        requests.push({
          ...base,
          patient: s.patient,
          custodian: this.#custodian,
          resourceType: s.resourceType,
          securityLabels: [...s.accessClass.securityLabels],
          ...(s.accessClass.dataMonth !== undefined ? { dataDate: s.accessClass.dataMonth } : {}),
        });
      }
    }
    const decided = await this.#decideRequests(requests);
    let next = 0;
    return subjects.map((s) => (s.kind === 'reference' ? REFERENCE_DATA_DECISION : (decided[next++] as DecisionAt)));
  }

  /** Consent decisions for many versions (evaluate only: nothing is recorded), in input order. */
  async evaluate(caller: Caller, versions: readonly StoredVersion[]): Promise<DecisionAt[]> {
    AccessControl.requireActor(caller);
    const ofPatients = versions.filter((v) => v.patientId !== null);
    const decided = await this.#decide(caller, ofPatients);
    let next = 0;
    return versions.map((v) => (v.patientId === null ? REFERENCE_DATA_DECISION : (decided[next++] as DecisionAt)));
  }

  /** The versions the caller may see, each with the decision that permitted it, in input order. */
  async permitted(caller: Caller, versions: readonly StoredVersion[]): Promise<Array<{ version: StoredVersion; decision: DecisionAt }>> {
    const decisions = await this.evaluate(caller, versions);
    return versions
      .map((version, i) => ({ version, decision: decisions[i] }))
      .filter((x): x is { version: StoredVersion; decision: DecisionAt } => x.decision?.decision === 'permit');
  }

  /**
   * Commits one access entry per patient for versions about to be released (permitted by `evaluate`).
   * Returns only after the entries are on the ledger (sync) or in the durable outbox (async).
   */
  async recordDisclosures(
    caller: Caller,
    released: ReadonlyArray<{ version: StoredVersion; decision: DecisionAt }>,
    subtype: Disclosure,
    patientRefOf: (v: StoredVersion) => Promise<string>,
  ): Promise<void> {
    if (released.length === 0) return;
    const { actor, purpose } = AccessControl.requireActor(caller);
    // One entry per patient and decision height (local decisions), so each entry says where it was decided.
    const byPatient = new Map<string, { patient: string; height: number | undefined; refs: string[]; consents: Set<string>; breakGlass: boolean }>();
    // A patient's reference is looked up once, however many of its versions are released.
    const refs = new Map<string | null, string>();
    const refOf = async (v: StoredVersion): Promise<string> => {
      const patient = refs.get(v.patientId) ?? (await patientRefOf(v));
      refs.set(v.patientId, patient);
      return patient;
    };
    for (const { version, decision } of released) {
      // In the history of each patient whose consents decided it (several for a version of several patients).
      for (const patient of await governingRefs(version, refOf)) {
        const key = `${patient}\u0000${decision.height ?? ''}`;
        const group = byPatient.get(key) ?? { patient, height: decision.height, refs: [], consents: new Set<string>(), breakGlass: false };
        group.refs.push(ref(version));
        decision.consents.forEach((c) => group.consents.add(c));
        group.breakGlass ||= decision.breakGlass;
        byPatient.set(key, group);
      }
    }
    const entries: AccessEntryInput[] = [...byPatient.values()].flatMap((g) =>
      chunks(g.refs, MAX_RESOURCES_PER_ENTRY).map((resources) => ({
        actor,
        actorOrganization: caller.organization,
        actorAuth: caller.actorAuth,
        patient: g.patient,
        resources,
        action: 'R' as const,
        subtype,
        purpose,
        decision: 'permit' as const,
        consents: [...g.consents].sort(),
        breakGlass: g.breakGlass,
        custodian: this.#custodian,
        entryId: randomUUID(),
        ...(g.height !== undefined ? { decidedAt: { height: g.height } } : {}),
      })),
    );
    const flagged = (await this.#sink.record(entries)).filter((e) => e.breakGlass);
    if (flagged.length > 0) {
      const ids = this.#sink.kind === 'ledger' ? { eventIds: flagged.map((e) => e.eventId as string) } : { entryIds: flagged.map((e) => e.entryId) };
      this.#noteBreakGlass(caller, { decision: 'permit', consents: [], reason: 'break-glass', breakGlass: true }, ids);
    }
  }

  /**
   * Many versions (history, $everything): only the permitted ones are returned, after their access
   * entries are committed. What is withheld is simply absent, so counts never reveal it.
   */
  async filterAndRecord(caller: Caller, versions: readonly StoredVersion[], subtype: Disclosure, patientRefOf: (v: StoredVersion) => Promise<string>): Promise<StoredVersion[]> {
    const released = await this.permitted(caller, versions);
    await this.recordDisclosures(caller, released, subtype, patientRefOf);
    return released.map((x) => x.version);
  }

  /**
   * Records changes (create, update, delete) made by the custodian's users, through the sink (ledger or
   * outbox): one access entry per patient and action listing its versions (at most 100 per entry, the
   * chaincode's limit), so a whole transaction takes as few ledger transactions as possible.
   */
  async recordChanges(caller: Caller, changes: readonly Change[]): Promise<void> {
    const entries = this.changeEntries(caller, changes);
    if (entries.length > 0) await this.#sink.record(entries);
  }

  /** The access entries recording changes: one per patient and action, at most 100 versions each. */
  changeEntries(caller: Caller, changes: readonly Change[]): AccessEntryInput[] {
    if (changes.length === 0) return [];
    const { actor, purpose } = AccessControl.requireActor(caller);
    const groups = new Map<string, { patient: string; action: 'C' | 'U' | 'D'; refs: string[] }>();
    for (const c of changes) {
      for (const patient of [c.patient, ...(c.coPatients ?? [])]) {
        const key = `${c.action} ${patient}`;
        const group = groups.get(key) ?? { patient, action: c.action, refs: [] };
        group.refs.push(ref(c.version));
        groups.set(key, group);
      }
    }
    const slices = [...groups.values()].flatMap((g) => chunks(g.refs, MAX_RESOURCES_PER_ENTRY).map((refs) => ({ ...g, refs })));
    const entries: AccessEntryInput[] = slices.map((g) => ({
      actor,
      actorOrganization: caller.organization,
      actorAuth: caller.actorAuth,
      patient: g.patient,
      resources: g.refs,
      action: g.action,
      subtype: g.action === 'C' ? 'create' : g.action === 'U' ? 'update' : 'delete',
      purpose,
      decision: 'permit',
      consents: [],
      breakGlass: false,
      custodian: this.#custodian,
      entryId: randomUUID(),
    }));
    return entries;
  }
}
