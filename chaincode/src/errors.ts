/**
 * Chaincode errors. Only `error.message` reaches a client (fabric-shim turns a thrown error into
 * `shim.error(message)`), so every message is `CODE: text` and the gateway parses the code.
 * Messages name keys and fields, never clinical content (no PHI).
 */

import { ERROR_CODES, type ErrorCode } from './protocol';

export { ERROR_CODES, type ErrorCode };

export class ChaincodeError extends Error {
  public readonly code: ErrorCode;

  public constructor(code: ErrorCode, text: string) {
    super(`${code}: ${text}`);
    this.name = ChaincodeError.name;
    this.code = code;
  }
}

export function notFound(text: string): ChaincodeError {
  return new ChaincodeError('NOT_FOUND', text);
}

export function alreadyExists(text: string): ChaincodeError {
  return new ChaincodeError('ALREADY_EXISTS', text);
}

export function conflict(text: string): ChaincodeError {
  return new ChaincodeError('CONFLICT', text);
}

export function unauthenticated(text: string): ChaincodeError {
  return new ChaincodeError('UNAUTHENTICATED', text);
}

export function forbidden(text: string): ChaincodeError {
  return new ChaincodeError('FORBIDDEN', text);
}

export function invalid(text: string): ChaincodeError {
  return new ChaincodeError('INVALID', text);
}

/** The code at the start of an error message (`CODE: text`), or undefined when there is none. */
export function errorCodeOf(error: unknown): ErrorCode | undefined {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : '';
  const match = /^([A-Z_]+): /.exec(message);
  const code = match?.[1];
  return (ERROR_CODES as readonly string[]).includes(code ?? '') ? (code as ErrorCode) : undefined;
}
