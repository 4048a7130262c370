import { expect } from 'chai';
import { MappingError } from '../errors';

/** Runs fn, expects a MappingError with this code and location; returns it. */
export function expectMappingError(fn: () => unknown, code: MappingError['code'], location: string, message?: RegExp): MappingError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected a MappingError').to.be.instanceOf(MappingError);
  const err = thrown as MappingError;
  expect(err.code, err.message).to.equal(code);
  expect(err.location, err.message).to.equal(location);
  if (message) expect(err.message).to.match(message);
  return err;
}
