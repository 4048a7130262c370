import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';

export { AuditContract } from './audit-contract';
export { ConsentContract } from './consent-contract';
export { IdentityContract } from './identity-contract';
export { RecordContract } from './record-contract';
export { ChaincodeError, ERROR_CODES, errorCodeOf } from './errors';
export {
  ACTOR_AUTHS,
  ACTIONS_COVERING,
  AUDITOR_PURPOSES,
  BREAK_GLASS_KINDS,
  CUSTODIAN_TREATMENT_KINDS,
  DEFAULT_ACTOR_AUTH,
  DELEGABLE_KINDS,
  ORGANIZATION_ACTOR_KINDS,
  PATIENT_PURPOSES,
  PURPOSES_BY_KIND,
  actionCovers,
  effectiveAction,
  purposeAllowed,
} from './actor-rules';
export type { ActorAuth, PurposeRule } from './actor-rules';
export type { PatientLink } from './patient-link';
export type { MemberApproval, MemberRemoval } from './member-model';
export type { ErrorCode } from './errors';
export type { Anchor, AnchorInput, Commitment, LocatorEntry, Tombstone } from './record-model';

export type { AuditAction, AuditEntry, DecidedAt } from './audit-model';
export { REVIEW_OUTCOMES } from './break-glass-review';
export type { AccessRequestRecord } from './access-request';
export type { BreakGlassReview, ReviewedEntry, ReviewOutcome, ReviewState } from './break-glass-review';
export type { AccessRequest, ActorIdentity, Decision, DecisionReason } from './consent-evaluate';
export type { ConsentRecord, ConsentResource, Provision } from './consent-model';
export type { DidDocument, DidKind, DidStatus, IdentityRecord, PendingGuardian, PendingReactivation } from './identity-model';

export const contracts: unknown[] = [RecordContract, IdentityContract, ConsentContract, AuditContract];
