/**
 * The integrity check of every version served: the stored content against the commitment anchored on the
 * ledger (the view's copy of the anchor when it holds one; `$verify` always asks the ledger) and, for a
 * version released by its access class, the anchor's patient, labels and month against that class. A
 * version that fails is withheld and the custodian alerted; nothing that fails is ever served.
 */
import { createHash } from 'node:crypto';
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

function refOf(v: StoredVersion): string {
  return `${v.resourceType}/${v.id}/_history/${v.versionId}`;
}

/** Most verified versions Integrity remembers (the oldest is dropped first). */
export const MAX_VERIFIED_MEMO = 2_000;

/** A commitment check that passed: what it passed on (the key and the text by their SHA-256 only). */
interface Verified {
  readonly inputs: Buffer;
  readonly commitment: string;
}

/**
 * SHA-256 of the patient key and the stored text: equal only for the same key and the same text. The
 * memo keeps this, not the key or the text, so nothing it holds outlives an erasure (the key destroyed,
 * the versions removed) in a usable form.
 */
function inputsOf(key: Buffer, content: string): Buffer {
  return createHash('sha256').update(key).update('\u0000').update(content, 'utf8').digest();
}

export class Integrity {
  readonly #deps: IntegrityDeps;
  /**
   * Commitment checks that passed, by version: the same stored text under the same patient key against
   * the same anchored commitment passes again without recomputing the HMAC over its canonical JSON
   * (a pure function of those three; text and key compared by SHA-256, inputsOf). Any change to one of
   * them (a tampered row, a replaced key, an erased or different anchor) is a miss, and the check runs
   * in full.
   */
  readonly #verified = new Map<string, Verified>();
  readonly #maxVerified: number;
  /** Commitment checks answered from the memo, and computed (tests, the benchmark). */
  readonly stats = { remembered: 0, computed: 0 };

  constructor(deps: IntegrityDeps, options: { maxVerified?: number } = {}) {
    this.#deps = deps;
    this.#maxVerified = options.maxVerified ?? MAX_VERIFIED_MEMO;
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
    return (await this.#check(v, fromView, decidedAs)).result;
  }

  async #check(v: StoredVersion, fromView: boolean, decidedAs?: AccessClass): Promise<{ result: IntegrityResult; resource?: Resource }> {
    // An anchor never changes once committed (an erasure tombstones it, and removes the version here too):
    // the view's copy, when it has one, is the ledger's, without a ledger call per read.
    const anchor =
      (fromView ? this.#deps.viewAnchors?.anchor(v.resourceType, v.id, String(v.versionId)) : undefined) ??
      (await this.#deps.ledger.getAnchor(v.resourceType, v.id, String(v.versionId)));
    const key = await this.#deps.store.findPatientKey(keyIdOf(v.patientId));
    if (anchor === undefined) return { result: { ok: false, reason: 'no anchor on the ledger' } };
    if (anchor.tombstone) return { result: { ok: false, reason: 'the anchor is erased', anchor } };
    if (key === undefined) return { result: { ok: false, reason: 'the patient key is missing', anchor } };
    const ref = refOf(v);
    const known = this.#verified.get(ref);
    const inputs = inputsOf(key, v.content);
    let resource: Resource | undefined;
    if (known !== undefined && known.commitment === anchor.commitment.value && known.inputs.equals(inputs)) {
      this.stats.remembered += 1;
    } else {
      this.stats.computed += 1;
      resource = JSON.parse(v.content) as Resource;
      if (!commitmentsEqual(anchor.commitment.value, commitmentFor(key, resource))) {
        this.#verified.delete(ref);
        return { result: { ok: false, reason: 'the stored content does not match the anchored commitment', anchor } };
      }
      this.#verified.delete(ref);
      if (this.#verified.size >= this.#maxVerified) {
        const oldest = this.#verified.keys().next();
        if (!oldest.done) this.#verified.delete(oldest.value);
      }
      this.#verified.set(ref, { inputs, commitment: anchor.commitment.value });
    }
    if (decidedAs !== undefined) {
      const patients = v.patientId === null ? undefined : [await this.#deps.patientRefOf(v), patientPseudonym(key)];
      if (!anchorHasClass(anchor, decidedAs) || (patients !== undefined && !patients.includes(anchor.patient ?? ''))) {
        return { result: { ok: false, reason: 'the anchor states another patient, security label or month than the access class the version was released by', anchor } };
      }
    }
    return { result: { ok: true, reason: 'the stored content matches the anchored commitment', anchor }, ...(resource !== undefined ? { resource } : {}) };
  }

  /** Releases a stored version only if it still matches the commitment anchored on the ledger (and the class it was decided by). */
  async verified(v: StoredVersion, decidedAs?: AccessClass): Promise<Resource> {
    const { result, resource } = await this.#check(v, true, decidedAs);
    if (!result.ok) {
      this.#deps.log.warn({ event: 'integrity-failure', resource: refOf(v), reason: result.reason }, 'stored resource does not match its ledger anchor; withheld');
      throw new OperationOutcomeError('INTEGRITY', `${refOf(v)} does not match its anchor on the ledger and is withheld; the custodian has been alerted`);
    }
    return resource ?? (JSON.parse(v.content) as Resource);
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
