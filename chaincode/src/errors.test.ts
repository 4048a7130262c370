import { expect } from 'chai';
import { ChaincodeError, ERROR_CODES, errorCodeOf, forbidden, invalid, notFound } from './errors';

describe('errors', () => {
  it('formats messages as CODE: text and keeps the code', () => {
    const error = new ChaincodeError('CONFLICT', 'Patient/1/_history/1 is already anchored');
    expect(error).to.be.instanceOf(Error);
    expect(error.name).to.equal('ChaincodeError');
    expect(error.code).to.equal('CONFLICT');
    expect(error.message).to.equal('CONFLICT: Patient/1/_history/1 is already anchored');
  });

  it('has one helper per code', () => {
    expect(notFound('x').code).to.equal('NOT_FOUND');
    expect(forbidden('x').code).to.equal('FORBIDDEN');
    expect(invalid('x').code).to.equal('INVALID');
    expect(ERROR_CODES).to.deep.equal(['NOT_FOUND', 'ALREADY_EXISTS', 'CONFLICT', 'UNAUTHENTICATED', 'FORBIDDEN', 'INVALID']);
  });

  it('parses the code back from a message, and nothing else', () => {
    expect(errorCodeOf(new Error('NOT_FOUND: x'))).to.equal('NOT_FOUND');
    expect(errorCodeOf('FORBIDDEN: y')).to.equal('FORBIDDEN');
    expect(errorCodeOf(new Error('MVCC_READ_CONFLICT: z'))).to.equal(undefined);
    expect(errorCodeOf(new Error('boom'))).to.equal(undefined);
  });
});
