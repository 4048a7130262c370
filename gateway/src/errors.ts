import type { FhirIssue } from '@hdx/fhir-mappers';

/** The error codes the gateway speaks: the chaincode's `CODE: message` codes plus the gateway's own. */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'GONE'
  | 'ALREADY_EXISTS'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'INVALID'
  | 'PRECONDITION_FAILED'
  | 'UNSUPPORTED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNMAPPABLE'
  | 'TOO_LARGE'
  | 'TOO_MANY_REQUESTS'
  | 'INTEGRITY'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'INTERNAL';

type IssueType =
  | 'multiple-matches'
  | 'not-found'
  | 'deleted'
  | 'duplicate'
  | 'conflict'
  | 'login'
  | 'forbidden'
  | 'invalid'
  | 'not-supported'
  | 'processing'
  | 'too-long'
  | 'throttled'
  | 'exception'
  | 'transient'
  | 'timeout';

/** One exhaustive table: a new code without an HTTP status and issue type does not compile. */
const TABLE: Record<ErrorCode, { status: number; issue: IssueType }> = {
  NOT_FOUND: { status: 404, issue: 'not-found' },
  GONE: { status: 410, issue: 'deleted' },
  ALREADY_EXISTS: { status: 409, issue: 'duplicate' },
  CONFLICT: { status: 409, issue: 'conflict' },
  UNAUTHENTICATED: { status: 401, issue: 'login' },
  FORBIDDEN: { status: 403, issue: 'forbidden' },
  INVALID: { status: 400, issue: 'invalid' },
  PRECONDITION_FAILED: { status: 412, issue: 'multiple-matches' },
  UNSUPPORTED: { status: 404, issue: 'not-supported' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, issue: 'not-supported' },
  UNMAPPABLE: { status: 422, issue: 'processing' },
  TOO_LARGE: { status: 413, issue: 'too-long' },
  TOO_MANY_REQUESTS: { status: 429, issue: 'throttled' },
  // Stored content that no longer matches its ledger anchor is withheld, never served.
  INTEGRITY: { status: 500, issue: 'exception' },
  UNAVAILABLE: { status: 503, issue: 'transient' },
  TIMEOUT: { status: 504, issue: 'timeout' },
  INTERNAL: { status: 500, issue: 'exception' },
};

export const ERROR_CODES = Object.keys(TABLE) as ErrorCode[];

export interface OperationOutcomeIssue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  code: string;
  details?: { coding: Array<{ system: string; code: string }>; text?: string };
  diagnostics?: string;
  expression?: string[];
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: OperationOutcomeIssue[];
}

export const HDX_ERROR_SYSTEM = 'https://hdx.example/fhir/CodeSystem/error';

/** An error the client may see: its message must name the problem without PHI or internals. */
export class OperationOutcomeError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly issues: OperationOutcomeIssue[] = [],
  ) {
    super(message);
    this.name = OperationOutcomeError.name;
    this.status = TABLE[code].status;
  }

  get outcome(): OperationOutcome {
    const main: OperationOutcomeIssue = {
      severity: 'error',
      code: TABLE[this.code].issue,
      details: { coding: [{ system: HDX_ERROR_SYSTEM, code: this.code }], text: this.message },
      diagnostics: this.message,
    };
    return { resourceType: 'OperationOutcome', issue: this.issues.length > 0 ? this.issues : [main] };
  }
}

export function statusOf(code: ErrorCode): number {
  return TABLE[code].status;
}

/** A validation failure, with one issue per problem, each naming its FHIRPath expression. */
export function invalidResource(issues: readonly FhirIssue[], summary = 'The resource is not valid FHIR R4'): OperationOutcomeError {
  return new OperationOutcomeError(
    'INVALID',
    summary,
    issues.map((i) => ({
      severity: i.severity,
      code: i.code,
      details: { coding: [{ system: HDX_ERROR_SYSTEM, code: 'INVALID' }], text: summary },
      diagnostics: i.diagnostics,
      expression: [i.expression],
    })),
  );
}

export function informational(text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: text }] };
}
