/**
 * The gateway's resource store: every version of every FHIR resource this organization holds as
 * custodian, plus the per-patient keys of the HMAC commitments anchored on the ledger.
 *
 * A version is first written `pending`, then marked `anchored` once its anchor is committed on the
 * ledger; only anchored versions are ever served. A pending version left by a crash is settled at start
 * (anchored if the ledger has it, removed otherwise), so nothing acknowledged is lost and nothing
 * unanchored is served.
 */
export interface StoredVersion {
  readonly resourceType: string;
  readonly id: string;
  readonly versionId: number;
  readonly lastUpdated: string;
  /** Local id of the patient the resource belongs to (the Patient's own id for a Patient). */
  readonly patientId: string | null;
  readonly deleted: boolean;
  /** The resource JSON exactly as stored (meta.versionId and meta.lastUpdated included). */
  readonly content: string;
  readonly state: 'pending' | 'anchored';
}

export interface ResourceStore {
  /** Writes a new version as pending. Fails with a CONFLICT OperationOutcomeError if the version exists. */
  insertPending(version: Omit<StoredVersion, 'state'>): void;
  markAnchored(resourceType: string, id: string, versionId: number): void;
  /** Removes a pending version whose anchoring failed. Never removes an anchored version. */
  discardPending(resourceType: string, id: string, versionId: number): void;
  listPending(): StoredVersion[];
  /** The latest anchored version, or undefined. */
  readCurrent(resourceType: string, id: string): StoredVersion | undefined;
  readVersion(resourceType: string, id: string, versionId: number): StoredVersion | undefined;

  /** The patient's HMAC key, creating it on first use. */
  patientKey(patientId: string): Buffer;
  /** The patient's HMAC key if it exists (undefined after erasure). */
  findPatientKey(patientId: string): Buffer | undefined;

  ping(): void;
  close(): void;
}
