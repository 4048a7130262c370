/**
 * Authentication (401) and scope (403) errors. Both are OperationOutcomeErrors, so the app's error
 * handler renders them; each carries the RFC 6750 `WWW-Authenticate` value to send with it.
 */
import { OperationOutcomeError } from '../errors';

export const REALM = 'hdx';

/** RFC 6750 §3 quoted-string content: printable ASCII without `"` and `\`. */
function quoted(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, "'");
}

export type BearerErrorCode = 'invalid_request' | 'invalid_token';

/**
 * 401: no usable credentials. `bearerError` defaults to invalid_token; pass null when the request
 * carried no credentials at all (RFC 6750 §3.1: no error code then).
 */
export class AuthenticationError extends OperationOutcomeError {
  readonly wwwAuthenticate: string;
  readonly bearerError: BearerErrorCode | null;
  constructor(message: string, bearerError?: BearerErrorCode | null) {
    super('UNAUTHENTICATED', message);
    this.name = AuthenticationError.name;
    this.bearerError = bearerError === undefined ? 'invalid_token' : bearerError;
    this.wwwAuthenticate = this.bearerError === null ? `Bearer realm="${REALM}"` : `Bearer realm="${REALM}", error="${this.bearerError}", error_description="${quoted(message)}"`;
  }
}

/** 403: the token is valid but its scopes do not cover the request. */
export class InsufficientScopeError extends OperationOutcomeError {
  readonly wwwAuthenticate: string;
  constructor(
    message: string,
    /** The scope that would grant the request (RFC 6750 `scope` attribute). */
    readonly requiredScope: string,
  ) {
    super('FORBIDDEN', message);
    this.name = InsufficientScopeError.name;
    this.wwwAuthenticate = `Bearer realm="${REALM}", error="insufficient_scope", scope="${quoted(requiredScope)}"`;
  }
}

/** The `WWW-Authenticate` header value an error asks for, if any (for the app's error handler). */
export function wwwAuthenticateOf(err: unknown): string | undefined {
  if (err instanceof AuthenticationError || err instanceof InsufficientScopeError) return err.wwwAuthenticate;
  return undefined;
}

export function unauthenticated(message: string): AuthenticationError {
  return new AuthenticationError(message);
}
