import type {
  AccessRequestRecord,
  ActorAuth,
  Anchor,
  AnchorInput,
  AuditEntry,
  BreakGlassReview,
  ConsentRecord,
  Decision,
  DidKind,
  DidStatus,
  PatientLink,
  ReviewedEntry,
  ReviewOutcome,
  ReviewState,
} from '@hdx/chaincode';
import type { DidResolution } from './did-resolution';

export type {
  AccessRequestRecord,
  ActorAuth,
  Anchor,
  AnchorInput,
  AuditEntry,
  BreakGlassReview,
  ConsentRecord,
  Decision,
  DidKind,
  DidStatus,
  PatientLink,
  ReviewedEntry,
  ReviewOutcome,
  ReviewState,
};

/** A custodian's pseudonym of a patient linked to the patient's DID (`hdx.record:LinkPatient`). */
export interface PatientLinkInput {
  pseudonym: string;
  did: string;
}

/** `hdx.identity:FindBySubject` row: a DID this organization registered for an IdP subject. */
export interface SubjectDid {
  did: string;
  kind: DidKind;
  status: DidStatus;
}

/** `hdx.identity:AddGuardian|RemoveGuardian`: with the patient's proof (JWS) in force at once, else proposed. */
export interface GuardianChange {
  patient: string;
  guardian: string;
  proof?: string;
}

export type { DidResolution };

/** `hdx.audit:AuthorizeAndRecord` request: the access request plus what to record. */
export interface AuthorizeRequest {
  actor: string;
  actorOrganization: string;
  /** How the actor was authenticated; the chaincode treats an absent one as `delegated`. */
  actorAuth?: ActorAuth;
  purpose: string;
  action?: 'collect' | 'access' | 'use' | 'disclose' | 'correct';
  /** `Type/id/_history/v` of one anchored version, or patient + custodian + resourceType. */
  resource?: string;
  patient?: string;
  custodian?: string;
  resourceType?: string;
  resources?: string[];
  auditAction?: 'C' | 'R' | 'U' | 'D' | 'E';
  subtype?: string;
  entryId?: string;
}

export interface AuthorizeResult extends Decision {
  eventId: string;
}

/** `hdx.consent:RequestAccess` input: who asks whom, why, for which types (codes only). */
export interface AccessRequestInput {
  patient: string;
  requester: string;
  purpose: string;
  resourceTypes: string[];
}

/** `hdx.consent:EvaluateAccess` request (evaluate only: nothing is recorded). */
export type EvaluateRequest = Omit<AuthorizeRequest, 'resources' | 'auditAction' | 'subtype' | 'entryId'> & { securityLabels?: string[]; dataDate?: string };

/** `hdx.audit:RecordAccess*` entry. */
export interface AccessEntryInput {
  actor: string;
  actorOrganization: string;
  /** As AuthorizeRequest.actorAuth; the chaincode adds `vouchedBy`. */
  actorAuth?: ActorAuth;
  patient: string;
  resources?: string[];
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  subtype?: string;
  purpose: string;
  decision: 'permit' | 'deny';
  consents?: string[];
  reason?: string;
  breakGlass: boolean;
  custodian?: string;
  occurredAt?: string;
  entryId?: string;
  /** The ledger view height a gateway decided the access at (a local decision); absent when the chaincode decided. */
  decidedAt?: { height: number };
}

/** `hdx.record:LocateRecords` request (consent-checked per entry for the actor and purpose). */
export interface LocateRequest {
  patient: string;
  actor: string;
  actorOrganization: string;
  actorAuth?: ActorAuth;
  purpose: string;
  /** Derived when absent; a request by another member than the custodian is always `disclose`. */
  action?: 'collect' | 'access' | 'use' | 'disclose' | 'correct';
  custodian?: string;
  resourceType?: string;
  pageSize?: number;
  bookmark?: string;
}

export interface LocateResult {
  custodians: Array<{
    custodian: string;
    organization?: string;
    fhirBaseUrl?: string;
    resources: Array<{ resourceType: string; id: string; versionId: string; lastUpdated: string; consents: string[]; reason: string }>;
  }>;
  withheld: number;
  breakGlass: boolean;
  bookmark: string;
  fetchedRecordsCount: number;
}

export interface AccessQuery {
  patient?: string;
  actor?: string;
  resource?: string;
  from?: string;
  to?: string;
  pageSize?: number;
  bookmark?: string;
  requester?: string;
}

/** `hdx.audit:QueryBreakGlass`: the break-glass review queue (open: not reviewed yet). */
export interface BreakGlassQuery {
  state?: 'open' | 'reviewed';
  from?: string;
  to?: string;
  pageSize?: number;
  bookmark?: string;
  requester?: string;
}

/** Most anchors in one `hdx.record:AnchorBatch`: the chaincode's own limit. */
export { MAX_ANCHOR_BATCH } from '@hdx/chaincode/dist/protocol';

export interface Page<T> {
  entries: T[];
  bookmark: string;
  fetchedRecordsCount: number;
  /** QueryAccess: the review state of each break-glass entry of the page, by event id. */
  reviews?: Record<string, ReviewState>;
}

/**
 * What the gateway asks of the ledger. The Fabric implementation is fabric-ledger.ts; unit tests use
 * an in-memory fake with the same rules. Failures are OperationOutcomeErrors (see ledger-errors.ts).
 */
/** What settling an unsettled transaction found: committed (valid), never committed, or still unknown. */
export type TransactionOutcome = 'committed' | 'not-committed' | 'unknown';

/** The endorsed transaction behind an error whose ledger outcome is unknown (fabric-ledger.ts attaches it). */
const UNSETTLED = new WeakMap<object, unknown>();

/** Attaches to an error the transaction whose outcome it leaves unknown, for settleTransaction. */
export function withUnsettledTransaction<E extends object>(err: E, transaction: unknown): E {
  UNSETTLED.set(err, transaction);
  return err;
}

/** The transaction an error left unsettled, if the ledger client kept it. */
export function unsettledTransactionOf(err: unknown): unknown {
  return err !== null && typeof err === 'object' ? UNSETTLED.get(err) : undefined;
}

export interface LedgerClient {
  /**
   * Settles a transaction whose outcome an error left unknown (unsettledTransactionOf) by sending the
   * same endorsed transaction again and reading its commit status. Optional: without it the caller
   * settles by reading what the transaction would have written.
   */
  settleTransaction?(transaction: unknown): Promise<TransactionOutcome>;

  /** Anchors one resource version (submit; waits for the commit). Idempotent for identical input. */
  anchor(input: AnchorInput): Promise<Anchor>;
  /**
   * `hdx.record:AnchorBatch`: anchors 1–MAX_ANCHOR_BATCH versions in ONE ledger transaction, all or
   * nothing (submit; waits for the commit). Returns the stored anchors in input order.
   */
  anchorBatch(inputs: AnchorInput[], links?: PatientLinkInput[]): Promise<Anchor[]>;
  /**
   * Anchors versions and records their change entries in ONE transaction (hdx.record:AnchorAndRecord);
   * `links` (pseudonym → DID of this custodian) are written first in the same transaction.
   */
  anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[], links?: PatientLinkInput[]): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }>;
  /** `hdx.record:LinkPatient`: this custodian's pseudonym stands for the DID from now on (never re-pointed). */
  linkPatient(pseudonym: string, did: string): Promise<PatientLink>;
  /** The record locator: which custodians hold which versions for the patient, as far as the actor may see. */
  locateRecords(request: LocateRequest): Promise<LocateResult>;
  /** Tombstones every anchor this organization holds for the patient reference (erasure). */
  erasePatient(patient: string): Promise<{ erased: string[] }>;
  /** The anchor of a version, or undefined if it was never anchored. */
  getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined>;
  /** Resolves when the ledger answers a query through this organization's peer. */
  ping(): Promise<void>;

  /** The DID document and metadata, or undefined for an unknown DID. */
  resolveDid(did: string): Promise<DidResolution | undefined>;
  /** `hdx.identity:Register` with the caller's proof of possession (and an optional keyed `subject`). */
  registerDid(registration: Record<string, unknown>): Promise<DidResolution>;
  /** `hdx.identity:FindBySubject`: the DIDs this organization registered for a keyed IdP-subject hash. */
  findBySubject(subject: string): Promise<SubjectDid[]>;
  /** `hdx.identity:AddGuardian` / `RemoveGuardian` (proposed without the patient's proof). */
  changeGuardian(change: 'add' | 'remove', request: GuardianChange): Promise<DidResolution>;
  /** `hdx.identity:ApproveGuardian` (an admin of RegulatorMSP). */
  approveGuardian(request: { patient: string; guardian: string }): Promise<DidResolution>;
  /** `hdx.identity:Deactivate`: an admin without proof suspends a patient and deactivates other kinds. */
  deactivateDid(request: { did: string; proof?: string }): Promise<DidResolution>;
  /** `hdx.identity:Reactivate`: a suspended patient, by its proof, or proposed by its organization's admin. */
  reactivateDid(request: { did: string; proof?: string }): Promise<DidResolution>;
  /** `hdx.identity:ApproveReactivation` (an admin of RegulatorMSP). */
  approveReactivation(request: { did: string }): Promise<DidResolution>;

  /** `hdx.consent:Grant|Update|Revoke` with the patient's (or guardian's) compact JWS. */
  changeConsent(action: 'grant' | 'update' | 'revoke', jws: string): Promise<ConsentRecord>;
  getConsent(id: string): Promise<ConsentRecord | undefined>;
  listConsents(patient: string, pageSize: number, bookmark: string): Promise<{ consents: ConsentRecord[]; bookmark: string }>;

  /**
   * `hdx.consent:RequestAccess`: stores a practitioner's request for access to a patient's data (codes
   * only), submitted by this organization for its own active practitioner; replaces the open request of
   * the same requester, patient and purpose. Grants nothing.
   */
  requestAccess(request: AccessRequestInput): Promise<AccessRequestRecord>;
  /** `hdx.consent:ListAccessRequests`: a patient's open access requests, latest first. */
  listAccessRequests(patient: string): Promise<AccessRequestRecord[]>;

  /** Evaluates consent for one request; records nothing. */
  evaluateAccess(request: EvaluateRequest): Promise<Decision>;
  /** Records access entries (1–200) in one transaction; entries with an entryId are idempotent. */
  recordAccess(entries: AccessEntryInput[]): Promise<AuditEntry[]>;
  /** Evaluates consent and records the access on the ledger in one transaction (sync audit mode). */
  authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult>;
  /**
   * AuthorizeAndRecord for 1–200 requests in ONE transaction (`hdx.audit:AuthorizeAndRecordBatch`, sync
   * mode's group commit: ledger/group-commit.ts); all or nothing; decisions in request order.
   */
  authorizeAndRecordBatch(requests: AuthorizeRequest[]): Promise<AuthorizeResult[]>;
  queryAccess(query: AccessQuery): Promise<Page<AuditEntry>>;
  /**
   * `hdx.audit:ReviewBreakGlass`: records an auditor's review of a break-glass entry, a compact JWS the
   * auditor signed over `{action: "review", eventId, outcome, nonce, iat}` (append-only). Returns the
   * entry with its new review state.
   */
  reviewBreakGlass(reviewJws: string): Promise<ReviewedEntry>;
  /** `hdx.audit:QueryBreakGlass`: break-glass entries with their review state, oldest first, paged. */
  queryBreakGlass(query: BreakGlassQuery): Promise<Page<ReviewedEntry>>;

  close(): void;
}
