/**
 * The one error type the mappers throw. `code` follows the HDX error table (STYLE.md):
 * INVALID → 400 (the input is malformed or breaks its schema), UNMAPPABLE → 422 (well-formed, but
 * HDX cannot turn it into FHIR: unsupported message type, value type, ...).
 * `location` names where in the input: `PID-5`, `OBX[2]-5.1`, `/biometrics/0/samples/3`, `MSH-2`.
 * Messages name the location and the rule, never the value (input may be PHI).
 */
export type MappingErrorCode = 'INVALID' | 'UNMAPPABLE';

/**
 * HL7 table 0357 (message error condition codes) as HDX uses them in HL7 v2 ACKs (ERR-3):
 * 100 segment sequence error (a segment missing or out of place), 101 required field missing,
 * 102 data type error, 103 table value not found, 200 unsupported message type, 201 unsupported event code
 * (a supported message type with another trigger), 203 unsupported version id,
 * 207 application internal error.
 */
export type Hl7Condition = '100' | '101' | '102' | '103' | '200' | '201' | '203' | '207';

export const HL7_CONDITION_TEXT: Readonly<Record<Hl7Condition, string>> = {
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '203': 'Unsupported version id',
  '207': 'Application internal error',
};

export interface MappingProblem {
  location: string;
  message: string;
}

export class MappingError extends Error {
  readonly code: MappingErrorCode;
  readonly location: string;
  /** all problems found (the first is `location` / `message`) */
  readonly problems: readonly MappingProblem[];
  /** HL7 v2 mappers: the table 0357 condition (ERR-3 of the ACK), when more precise than the code's default */
  readonly hl7Condition: Hl7Condition | undefined;

  constructor(code: MappingErrorCode, location: string, message: string, problems?: readonly MappingProblem[], options?: { cause?: unknown; hl7Condition?: Hl7Condition }) {
    super(`${code}: ${location}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = MappingError.name;
    this.code = code;
    this.location = location;
    this.problems = problems && problems.length > 0 ? problems : [{ location, message }];
    this.hl7Condition = options?.hl7Condition;
  }
}

/** A MappingError's table 0357 condition: its own, else 200 for MSH-9, 102 for INVALID, 207 otherwise. */
export function hl7ConditionOf(err: MappingError): Hl7Condition {
  if (err.hl7Condition !== undefined) return err.hl7Condition;
  if (err.location.startsWith('MSH-9')) return '200';
  return err.code === 'INVALID' ? '102' : '207';
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
