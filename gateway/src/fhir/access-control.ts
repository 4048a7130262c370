import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AccessEntryInput, Decision, LedgerClient } from '../ledger/ledger-client';
import type { StoredVersion } from '../store/store';
import { OperationOutcomeError } from './outcome';

/** Who is asking, as established by authentication, and why. */
export interface Caller {
  /** The user's DID; consented access is decided for a DID, so disclosure needs one. */
  readonly did: string | undefined;
  /** MSP id of the caller's organization. */
  readonly organization: string;
  /** HL7 v3 PurposeOfUse code (TREAT, ETREAT, HRESCH, ...). */
  readonly purpose: string | undefined;
  /** Required for ETREAT (break-glass); kept off the ledger (free text). */
  readonly breakGlassReason?: string | undefined;
}

export type Disclosure = 'read' | 'vread' | 'history-instance' | 'history-type' | 'search-type' | '$everything' | '$verify';

const EVALUATE_CONCURRENCY = 8;

function ref(v: StoredVersion): string {
  return `${v.resourceType}/${v.id}/_history/${v.versionId}`;
}

/** Runs `fn` over items with at most `n` in flight, keeping order. */
async function mapLimit<T, R>(items: readonly T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}

/**
 * The one enforcement point for every disclosure: it asks the chaincode whether the caller may see each
 * version, records the access on the ledger, and only then lets data go. In `sync` audit mode (the only
 * mode so far) the access entry is committed before anything is released.
 */
export class AccessControl {
  readonly #ledger: LedgerClient;
  readonly #log: Logger;
  /** This gateway's MSP id: the custodian of everything it discloses. */
  readonly #custodian: string;

  constructor(ledger: LedgerClient, log: Logger, custodian: string) {
    this.#ledger = ledger;
    this.#log = log;
    this.#custodian = custodian;
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

  #noteBreakGlass(caller: Caller, decision: Decision, eventIds: string[]): void {
    if (decision.breakGlass) {
      // The reason is free text that may name the patient: it stays with the custodian, not in logs.
      this.#log.warn({ event: 'break-glass', actorOrganization: caller.organization, decision: decision.decision, eventIds }, 'break-glass access: flagged for review');
    }
  }

  /**
   * One version, atomically: consent evaluated and the access recorded (permit or deny) in one ledger
   * transaction. Throws FORBIDDEN on deny.
   */
  async authorize(caller: Caller, v: StoredVersion, subtype: Disclosure): Promise<Decision & { eventId: string }> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    const result = await this.#ledger.authorizeAndRecord({
      actor,
      actorOrganization: caller.organization,
      purpose,
      resource: ref(v),
      resources: [ref(v)],
      auditAction: 'R',
      subtype,
      entryId: randomUUID(),
    });
    this.#noteBreakGlass(caller, result, [result.eventId]);
    if (result.decision !== 'permit') {
      throw new OperationOutcomeError('FORBIDDEN', `Access to ${v.resourceType}/${v.id} is denied (${result.reason}); the attempt is recorded`);
    }
    return result;
  }

  /** Consent decisions for many versions (evaluate only: nothing is recorded), in input order. */
  async evaluate(caller: Caller, versions: readonly StoredVersion[]): Promise<Decision[]> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    return mapLimit(versions, EVALUATE_CONCURRENCY, (v) => this.#ledger.evaluateAccess({ actor, actorOrganization: caller.organization, purpose, resource: ref(v) }));
  }

  /**
   * Commits one access entry per patient for versions about to be released (permitted by `evaluate`).
   * Returns only after the entries are on the ledger.
   */
  async recordDisclosures(caller: Caller, released: ReadonlyArray<{ version: StoredVersion; decision: Decision }>, subtype: Disclosure, patientRefOf: (v: StoredVersion) => string): Promise<void> {
    if (released.length === 0) return;
    const { actor, purpose } = AccessControl.requireActor(caller);
    const byPatient = new Map<string, { refs: string[]; consents: Set<string>; breakGlass: boolean }>();
    for (const { version, decision } of released) {
      const key = patientRefOf(version);
      const group = byPatient.get(key) ?? { refs: [], consents: new Set<string>(), breakGlass: false };
      group.refs.push(ref(version));
      decision.consents.forEach((c) => group.consents.add(c));
      group.breakGlass ||= decision.breakGlass;
      byPatient.set(key, group);
    }
    const entries: AccessEntryInput[] = [...byPatient.entries()].map(([patient, g]) => ({
      actor,
      actorOrganization: caller.organization,
      patient,
      resources: g.refs,
      action: 'R',
      subtype,
      purpose,
      decision: 'permit',
      consents: [...g.consents].sort(),
      breakGlass: g.breakGlass,
      custodian: this.#custodian,
      entryId: randomUUID(),
    }));
    for (let i = 0; i < entries.length; i += 200) {
      const recorded = await this.#ledger.recordAccess(entries.slice(i, i + 200));
      const flagged = recorded.filter((e) => e.breakGlass).map((e) => e.eventId);
      if (flagged.length > 0) this.#noteBreakGlass(caller, { decision: 'permit', consents: [], reason: 'break-glass', breakGlass: true }, flagged);
    }
  }

  /**
   * Many versions (history, $everything): only the permitted ones are returned, after their access
   * entries are committed. What is withheld is simply absent, so counts never reveal it.
   */
  async filterAndRecord(caller: Caller, versions: readonly StoredVersion[], subtype: Disclosure, patientRefOf: (v: StoredVersion) => string): Promise<StoredVersion[]> {
    const decisions = await this.evaluate(caller, versions);
    const released = versions.map((version, i) => ({ version, decision: decisions[i] })).filter((x): x is { version: StoredVersion; decision: Decision } => x.decision?.decision === 'permit');
    await this.recordDisclosures(caller, released, subtype, patientRefOf);
    return released.map((x) => x.version);
  }

  /** Records a change (create, update, delete) made by the custodian's user. */
  async recordChange(caller: Caller, v: StoredVersion, patient: string, action: 'C' | 'U' | 'D'): Promise<void> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    await this.#ledger.recordAccess([
      {
        actor,
        actorOrganization: caller.organization,
        patient,
        resources: [ref(v)],
        action,
        subtype: action === 'C' ? 'create' : action === 'U' ? 'update' : 'delete',
        purpose,
        decision: 'permit',
        consents: [],
        breakGlass: false,
        custodian: this.#custodian,
        entryId: randomUUID(),
      },
    ]);
  }
}
