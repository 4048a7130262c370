/**
 * The write plan: the versions of one write, each validated, its patient resolved, its search columns,
 * access class and ledger anchor computed (fhir/resource-service.ts prepares them; commitWrite stores,
 * anchors and acknowledges them). Nothing here touches the store or the ledger.
 */
import type { AnchorInput } from '../ledger/ledger-client';
import { dataMonthOf, securityLabels } from '../model/access-class';
import { commitmentOf, versionKey } from '../model/commitment';
import type { NewVersion, PendingWrite } from '../store/store';
import { OperationOutcomeError } from '../errors';

export type { Resource } from '../model/resource';
import type { Resource } from '../model/resource';

/** A version's commitment: HMAC under the key that opens that version only (see versionKey). */
export function commitmentFor(patientKey: Buffer, resource: Resource): string {
  const meta = resource.meta as { versionId?: string } | undefined;
  return commitmentOf(versionKey(patientKey, resource.resourceType, String(resource.id), String(meta?.versionId)), resource);
}

/**
 * The store's key id under which reference data (resources in no patient's compartment: Practitioner,
 * Organization, Medication, ...) is committed and anchored. `~` is not allowed in a FHIR id, so it never
 * names a Patient.
 */
export const REFERENCE_DATA_KEY_ID = '~reference-data';

/** The key id of a version's commitment: its patient, or the reference-data key. */
export function keyIdOf(patientId: string | null): string {
  return patientId ?? REFERENCE_DATA_KEY_ID;
}

/**
 * The version an `If-Match` header (or Bundle `request.ifMatch`) names: `W/"3"` (the ETag this server
 * sends) or `"3"`. Anything else is a 400.
 */
export function parseIfMatch(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(?:W\/)?"([0-9]{1,9})"\s*$/.exec(value);
  if (!m?.[1]) throw new OperationOutcomeError('INVALID', 'If-Match must name one version as W/"<versionId>"');
  return m[1];
}

/** The writes a conditional query can be part of. */
export type ConditionalWrite = 'create' | 'update' | 'delete';

/** A version ready to be stored and anchored: validated, its patient resolved, its commitment computed. */
export interface PreparedVersion {
  readonly resource: Resource;
  readonly row: NewVersion;
  readonly anchor: AnchorInput;
  /** The patient reference on the ledger (DID or pseudonym). */
  readonly patient: string;
  /** The other patients' references on the ledger (a resource in several patients' compartments). */
  readonly coPatients: readonly string[];
  readonly action: 'C' | 'U' | 'D';
}

/**
 * The versions of one write: a single create, update or delete, or every entry of a FHIR transaction.
 * Preparing stores nothing; ResourceService.commitWrite stores them all pending in one SQLite
 * transaction, anchors them in one ledger transaction and only then marks them anchored.
 */
export class WritePlan {
  readonly versions: PreparedVersion[] = [];
  /** meta.lastUpdated of every version of the write. */
  readonly lastUpdated = new Date().toISOString();
  /** Patients this write creates, updates or deletes, and whether it deletes them. */
  readonly patients = new Map<string, { deleted: boolean }>();
  /** Keys of the patients this write creates. */
  readonly newPatientKeys = new Map<string, Buffer>();
  /** DID links this write sets (Patient.identifier naming the patient's DID). */
  readonly didLinks = new Map<string, { did: string; previous: string | undefined }>();
  readonly #asked = new Map<string, Promise<unknown>>();

  /**
   * A store lookup made once per write (`what` names it: `key:p1`): the versions of a Bundle of one
   * patient's records all name the same patient, whose Patient, key and DID were read again for each.
   * Planning stores nothing it asks about (the reference-data key it may create is created before it is
   * first asked for), so an answer holds for the whole plan; what the plan itself adds (its patients, new
   * keys, DID links) is looked at before the store, as before.
   */
  async once<T>(what: string, ask: () => Promise<T>): Promise<T> {
    let answer = this.#asked.get(what) as Promise<T> | undefined;
    if (!answer) {
      answer = ask();
      this.#asked.set(what, answer);
    }
    return answer;
  }

  /**
   * Takes another plan's versions and what they change into this one: independent writes committed as
   * one (a batch window's, bundle-service.ts). The plans must write different resources.
   */
  absorb(other: WritePlan): void {
    this.versions.push(...other.versions);
    for (const [k, v] of other.patients) this.patients.set(k, v);
    for (const [k, v] of other.newPatientKeys) this.newPatientKeys.set(k, v);
    for (const [k, v] of other.didLinks) this.didLinks.set(k, v);
  }

  pendingWrite(): PendingWrite {
    return {
      versions: this.versions.map((v) => v.row),
      newPatientKeys: [...this.newPatientKeys].map(([patientId, key]) => ({ patientId, key })),
      didLinks: [...this.didLinks].map(([patientId, l]) => ({ patientId, ...l })),
    };
  }
}

/**
 * The ledger anchor of a version: what AnchorBatch stores for it. Built when the version is prepared,
 * and rebuilt from the stored version to complete a write anchored in several transactions.
 */
export function anchorInputFor(
  resource: Resource,
  v: { readonly resourceType: string; readonly id: string; readonly versionId: number; readonly lastUpdated: string; readonly deleted: boolean },
  key: Buffer,
  patient: string,
  coPatients: readonly string[] = [],
): AnchorInput {
  const dataMonth = dataMonthOf(resource, v.deleted);
  return {
    resourceType: v.resourceType,
    id: v.id,
    versionId: String(v.versionId),
    patient,
    ...(coPatients.length > 0 ? { coPatients: [...coPatients] } : {}),
    securityLabels: securityLabels(resource.meta),
    lastUpdated: v.lastUpdated,
    // The clinical month (never a Patient's birth date): consent dataPeriod is decided on it.
    ...(dataMonth !== undefined ? { dataMonth } : {}),
    commitment: { alg: 'HMAC-SHA-256', value: commitmentFor(key, resource) },
  };
}
