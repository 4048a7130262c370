import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';

export { AuditContract } from './audit-contract';
export { ConsentContract } from './consent-contract';
export { IdentityContract } from './identity-contract';
export { RecordContract } from './record-contract';
export { ChaincodeError, ERROR_CODES, errorCodeOf } from './errors';
export type { ErrorCode } from './errors';
export type { Anchor, AnchorInput, Commitment, LocatorEntry, Tombstone } from './record-model';

export type { AuditAction, AuditEntry } from './audit-model';
export type { AccessRequest, Decision, DecisionReason } from './consent-evaluate';
export type { ConsentRecord, ConsentResource, Provision } from './consent-model';
export type { DidDocument, DidKind, IdentityRecord } from './identity-model';

export const contracts: unknown[] = [RecordContract, IdentityContract, ConsentContract, AuditContract];
