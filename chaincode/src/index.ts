import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';

export { IdentityContract } from './identity-contract';
export { RecordContract } from './record-contract';
export { ChaincodeError, ERROR_CODES, errorCodeOf } from './errors';
export type { ErrorCode } from './errors';
export type { Anchor, AnchorInput, Commitment, LocatorEntry, Tombstone } from './record-model';

export type { DidDocument, DidKind, IdentityRecord } from './identity-model';

export const contracts: unknown[] = [RecordContract, IdentityContract];
