/**
 * The integrity check of every version served: the stored content against the commitment anchored on the
 * ledger (the view's copy of the anchor when it holds one; `$verify` always asks the ledger) and, for a
 * version released by its access class, the anchor's patient, labels and month against that class. A
 * version that fails is withheld and the custodian alerted; nothing that fails is ever served.
 */
import type { Logger } from 'pino';
import type { Anchor, LedgerClient } from '../ledger/ledger-client';
import { type AccessClass, anchorHasClass } from '../model/access-class';
import { commitmentsEqual, patientPseudonym, versionKey } from '../model/commitment';
import type { ResourceStore, StoredVersion } from '../store/store';
import { OperationOutcomeError } from '../errors';
import { commitmentFor, keyIdOf, type Resource } from './write-plan';

export interface IntegrityDeps {
  readonly store: ResourceStore;
  readonly ledger: Pick<LedgerClient, 'getAnchor'>;
  readonly log: Logger;
  /** Anchors from the ledger view, when the gateway keeps one (see ResourceServiceDeps.viewAnchors). */
  readonly viewAnchors?: { anchor(resourceType: string, id: string, versionId: string): Anchor | undefined };
  /** The patient reference on the ledger of a version (its DID once linked, else its pseudonym). */
  readonly patientRefOf: (v: StoredVersion) => Promise<string>;
}

export interface IntegrityResult {
  readonly ok: boolean;
  readonly reason: string;
  readonly anchor?: { txId: string; custodian: string; anchoredAt: string };
}

function ref(v: StoredVersion): string {
  return `${v.resourceType}/${v.id}/_history/${v.versionId}`;
}

export class Integrity {
  readonly #deps: IntegrityDeps;

  constructor(deps: IntegrityDeps) {
    this.#deps = deps;
  }

  /**
   * The version against its anchor: the content against the commitment and, for a version whose release
   * was decided by its access class (`decidedAs`), the anchor's patient, labels and month against that
   * class, so a class altered in the store cannot release what the anchor's own facts would not.
   */
  async check(
    v: StoredVersion,
    fromView = false,
    decidedAs?: AccessClass,
  ): Promise<{ ok: boolean; reason: string; anchor?: { txId: string; custodian: string; anchoredAt: string } }> {
    const resource = JSON.parse(v.content) as Resource;
    // An anchor never changes once committed (an erasure tombstones it, and removes the version here too):
    // the view's copy, when it has one, is the ledger's, without a ledger call per read.
    const anchor =
      (fromView ? this.#deps.viewAnchors?.anchor(v.resourceType, v.id, String(v.versionId)) : undefined) ??
      (await this.#deps.ledger.getAnchor(v.resourceType, v.id, String(v.versionId)));
    const key = await this.#deps.store.findPatientKey(keyIdOf(v.patientId));
    if (anchor === undefined) return { ok: false, reason: 'no anchor on the ledger' };
    if (anchor.tombstone) return { ok: false, reason: 'the anchor is erased', anchor };
    if (key === undefined) return { ok: false, reason: 'the patient key is missing', anchor };
    if (!commitmentsEqual(anchor.commitment.value, commitmentFor(key, resource))) return { ok: false, reason: 'the stored content does not match the anchored commitment', anchor };
    if (decidedAs !== undefined) {
      const patients = v.patientId === null ? undefined : [await this.#deps.patientRefOf(v), patientPseudonym(key)];
      if (!anchorHasClass(anchor, decidedAs) || (patients !== undefined && !patients.includes(anchor.patient ?? ''))) {
        return { ok: false, reason: 'the anchor states another patient, security label or month than the access class the version was released by', anchor };
      }
    }
    return { ok: true, reason: 'the stored content matches the anchored commitment', anchor };
  }

  /** Releases a stored version only if it still matches the commitment anchored on the ledger (and the class it was decided by). */
  async verified(v: StoredVersion, decidedAs?: AccessClass): Promise<Resource> {
    const check = await this.check(v, true, decidedAs);
    if (!check.ok) {
      this.#deps.log.warn({ event: 'integrity-failure', resource: ref(v), reason: check.reason }, 'stored resource does not match its ledger anchor; withheld');
      throw new OperationOutcomeError('INTEGRITY', `${ref(v)} does not match its anchor on the ledger and is withheld; the custodian has been alerted`);
    }
    return JSON.parse(v.content) as Resource;
  }

  /**
   * The key that opens one stored version's commitment, for a member this version is being disclosed to
   * (so it can check the content against the anchor); undefined once the patient is erased.
   */
  async openingKey(resourceType: string, id: string, versionId: number | string): Promise<Buffer | undefined> {
    const v = await this.#deps.store.readVersion(resourceType, id, Number(versionId));
    const key = v ? await this.#deps.store.findPatientKey(keyIdOf(v.patientId)) : undefined;
    return key ? versionKey(key, resourceType, id, versionId) : undefined;
  }
}
