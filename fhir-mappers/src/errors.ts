/**
 * The one error type the mappers throw. `code` follows the HDX error table (STYLE.md):
 * INVALID → 400 (the input is malformed or breaks its schema), UNMAPPABLE → 422 (well-formed, but
 * HDX cannot turn it into FHIR: unsupported message type, value type, ...).
 * `location` names where in the input: `PID-5`, `OBX[2]-5.1`, `/biometrics/0/samples/3`, `MSH-2`.
 * Messages name the location and the rule, never the value (input may be PHI).
 */
export type MappingErrorCode = 'INVALID' | 'UNMAPPABLE';

export interface MappingProblem {
  location: string;
  message: string;
}

export class MappingError extends Error {
  readonly code: MappingErrorCode;
  readonly location: string;
  /** all problems found (the first is `location` / `message`) */
  readonly problems: readonly MappingProblem[];

  constructor(code: MappingErrorCode, location: string, message: string, problems?: readonly MappingProblem[], options?: { cause?: unknown }) {
    super(`${code}: ${location}: ${message}`, options);
    this.name = MappingError.name;
    this.code = code;
    this.location = location;
    this.problems = problems && problems.length > 0 ? problems : [{ location, message }];
  }
}

export function isMappingError(e: unknown): e is MappingError {
  return e instanceof MappingError;
}

/**
 * Runs a mapper and turns anything that is not a MappingError into one (location 'internal'), so callers
 * only ever see MappingError. Tests assert 'internal' never happens.
 */
export function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof MappingError) throw e;
    const why = e instanceof RangeError ? 'input is too large or too deeply nested' : 'unexpected mapping failure';
    throw new MappingError('UNMAPPABLE', 'internal', why, undefined, { cause: e });
  }
}
