import { status as GrpcStatus } from '@grpc/grpc-js';
import { type ErrorCode, OperationOutcomeError } from '../fhir/outcome';

/** The codes the chaincode throws as `CODE: message`. */
const CHAINCODE_CODES = ['NOT_FOUND', 'ALREADY_EXISTS', 'CONFLICT', 'UNAUTHENTICATED', 'FORBIDDEN', 'INVALID'] as const satisfies readonly ErrorCode[];
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
  const cc = chaincodeError(err);
  if (cc) return new OperationOutcomeError(cc.code, cc.message);
  if (isMvccConflict(err)) return new OperationOutcomeError('CONFLICT', `${what}: the ledger changed concurrently; retry`);
  const code = (err as GatewayLikeError).code;
  if (code === GrpcStatus.UNAVAILABLE) return new OperationOutcomeError('UNAVAILABLE', `${what}: the ledger is unavailable`);
  if (code === GrpcStatus.DEADLINE_EXCEEDED) return new OperationOutcomeError('TIMEOUT', `${what}: the ledger did not answer in time`);
  const wrapped = new OperationOutcomeError('INTERNAL', `${what} failed`);
  (wrapped as { cause?: unknown }).cause = err;
  return wrapped;
}
