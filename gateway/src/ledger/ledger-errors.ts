import { status as GrpcStatus } from '@grpc/grpc-js';
import { ERROR_CODES } from '@hdx/chaincode/dist/protocol';
import { type ErrorCode, OperationOutcomeError } from '../errors';

/** The codes the chaincode throws as `CODE: message` (its own list, each one of the gateway's codes). */
const CHAINCODE_CODES = ERROR_CODES satisfies readonly ErrorCode[];
const CODE_PATTERN = new RegExp(`\\b(${CHAINCODE_CODES.join('|')}): (.*)$`, 's');

interface GatewayLikeError {
  code?: number;
  message: string;
  details?: Array<{ message?: string }>;
  transactionId?: string;
}

/** The chaincode's `CODE: message`, found in an evaluate error's message or an endorse error's details. */
export function chaincodeError(err: unknown): { code: (typeof CHAINCODE_CODES)[number]; message: string } | undefined {
  const e = err as GatewayLikeError;
  const texts = [...(e.details ?? []).map((d) => d.message ?? ''), e.message ?? ''];
  for (const text of texts) {
    const m = CODE_PATTERN.exec(text);
    if (m?.[1] && m[2] !== undefined) return { code: m[1] as (typeof CHAINCODE_CODES)[number], message: m[2].trim() };
  }
  return undefined;
}

/** True for the read-write conflicts worth retrying (another transaction changed what this one read). */
export function isMvccConflict(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; message?: string };
  return (e.name === 'CommitError' && String(e.code) === '11') || /MVCC_READ_CONFLICT|PHANTOM_READ_CONFLICT/.test(e.message ?? '');
}

/**
 * One place that turns anything the Fabric Gateway throws into an OperationOutcomeError: the
 * chaincode's own code when there is one, gRPC availability and deadline errors as 503 / 504, and
 * anything else as an internal error whose details stay in the log.
 */
export function toLedgerError(err: unknown, what: string): OperationOutcomeError {
  if (err instanceof OperationOutcomeError) return err;
  const outcome = fabricCommitOutcome(err);
  const mark = (e: OperationOutcomeError): OperationOutcomeError => {
    if (outcome) COMMIT_OUTCOME.set(e, outcome);
    return e;
  };
  const cc = chaincodeError(err);
  if (cc) return mark(new OperationOutcomeError(cc.code, cc.message));
  if (isMvccConflict(err)) return mark(new OperationOutcomeError('CONFLICT', `${what}: the ledger changed concurrently; retry`));
  const code = (err as GatewayLikeError).code;
  if (code === GrpcStatus.UNAVAILABLE) return mark(new OperationOutcomeError('UNAVAILABLE', `${what}: the ledger is unavailable`));
  if (code === GrpcStatus.DEADLINE_EXCEEDED) return mark(new OperationOutcomeError('TIMEOUT', `${what}: the ledger did not answer in time`));
  // The Fabric Gateway finds too few peers up to satisfy the endorsement policy (peers down or restarting):
  // nothing was sent to the orderer, and the same request can succeed once they are back.
  if (code === GrpcStatus.FAILED_PRECONDITION && /no (peer )?combination of peers|satisfy the endorsement policy/.test((err as GatewayLikeError).message ?? '')) {
    return mark(new OperationOutcomeError('UNAVAILABLE', `${what}: too few peers are reachable to endorse it; retry later`));
  }
  const wrapped = mark(new OperationOutcomeError('INTERNAL', `${what} failed`));
  (wrapped as { cause?: unknown }).cause = err;
  return wrapped;
}

/**
 * What a failed submit says about the transaction:
 * - `not-committed`: it certainly did not change the ledger (endorsement refused or never reached, a
 *   chaincode error, or the block marked it invalid). The write can be discarded.
 * - `unknown`: it may have committed (the orderer may have it; the commit status was not seen). Only
 *   the ledger can tell (read what the transaction would have written).
 */
export type CommitOutcome = 'not-committed' | 'unknown';

/** Outcomes known from the Fabric Gateway error class, attached by toLedgerError. */
const COMMIT_OUTCOME = new WeakMap<object, CommitOutcome>();

/**
 * From the fabric-gateway error classes: EndorseError (the transaction was never sent to the orderer,
 * including "not connected") and CommitError (committed in a block but invalidated, e.g. an MVCC
 * conflict) are definite; SubmitError (the orderer may have received it) and CommitStatusError (the
 * commit status wait failed or timed out, the 4 x timeout deadline) are not.
 */
function fabricCommitOutcome(err: unknown): CommitOutcome | undefined {
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'EndorseError' || name === 'CommitError') return 'not-committed';
  if (name === 'SubmitError' || name === 'CommitStatusError') return 'unknown';
  return undefined;
}

/** Marks an error with the commit outcome the caller knows (e.g. `unknown` for a write part of which may be committed). */
export function withCommitOutcome<E extends object>(err: E, outcome: CommitOutcome): E {
  COMMIT_OUTCOME.set(err, outcome);
  return err;
}

/**
 * Chaincode refusals that concern one request of a group sent as one transaction, not the ledger: the
 * group (a group commit's reads, a batch window's writes) is then sent again request by request, so
 * each gets its own answer and no other fails for it.
 */
export const REQUEST_REFUSALS: ReadonlySet<string> = new Set<ErrorCode>(['INVALID', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT']);

/** Codes that are the chaincode's (or the gateway's) refusal of the request: nothing was committed. */
const REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CONFLICT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'INVALID',
  'UNSUPPORTED',
  'TOO_LARGE',
  'UNMAPPABLE',
]);

/**
 * Whether a transaction that failed with `err` (from anchor, anchorBatch, anchorAndRecord) may
 * nevertheless be on the ledger. The Fabric error class decides when known (toLedgerError records it).
 * Otherwise: a refusal code, or UNAVAILABLE without a submit behind it (the ledger client could not
 * reach the ledger at all: the Fabric client reports an UNAVAILABLE after submit as a SubmitError or
 * CommitStatusError, which is `unknown`), means not committed; anything else (TIMEOUT, INTERNAL, an
 * unexpected throw) is `unknown`: fail safe, the caller asks the ledger before discarding anything.
 */
export function commitOutcomeOf(err: unknown): CommitOutcome {
  if (err !== null && typeof err === 'object') {
    const known = COMMIT_OUTCOME.get(err);
    if (known) return known;
  }
  if (err instanceof OperationOutcomeError && (REFUSAL_CODES.has(err.code) || err.code === 'UNAVAILABLE')) return 'not-committed';
  return 'unknown';
}

/** For a delivery that may be retried as is (an idempotent resend): the ledger was unreachable or slow, not refusing. */
export function isTransientLedgerError(err: unknown): boolean {
  return err instanceof OperationOutcomeError ? err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' : true;
}
