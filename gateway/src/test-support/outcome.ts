import { OperationOutcomeError } from '../errors';

/** The OperationOutcomeError `fn` throws (any other error is rethrown; none thrown fails the test). */
export function thrownOutcome(fn: () => unknown): OperationOutcomeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OperationOutcomeError) return err;
    throw err;
  }
  throw new Error('expected an OperationOutcomeError');
}
