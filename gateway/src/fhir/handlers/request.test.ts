import { expect } from 'chai';
import type { AuthContext } from '../../auth/types';
import { OperationOutcomeError } from '../../errors';
import { asPreferred, type FhirOutcome, type FhirRequest, notModified } from './request';

const auth = {} as AuthContext;
const resource = { resourceType: 'Observation', id: 'o1', meta: { versionId: '3', lastUpdated: '2026-12-07T10:00:00.500Z' } };
const req = (headers: FhirRequest['headers']): FhirRequest => ({ auth, query: {}, headers });

describe('conditional read and Prefer (handlers/request.ts)', () => {
  it('notModified: If-None-Match names the version (weak or strong, in a list, or *); If-Modified-Since to the second; If-None-Match decides when both are sent', () => {
    for (const ifNoneMatch of ['W/"3"', '"3"', 'W/"1", W/"3"', '*']) expect(notModified(req({ ifNoneMatch }), resource), ifNoneMatch).to.equal(true);
    expect(notModified(req({ ifNoneMatch: 'W/"2"' }), resource)).to.equal(false);
    expect(notModified(req({ ifModifiedSince: 'Mon, 07 Dec 2026 10:00:00 GMT' }), resource)).to.equal(true);
    expect(notModified(req({ ifModifiedSince: '2026-12-07T10:00:00Z' }), resource)).to.equal(true);
    expect(notModified(req({ ifModifiedSince: 'Mon, 07 Dec 2026 09:59:59 GMT' }), resource)).to.equal(false);
    expect(notModified(req({ ifNoneMatch: 'W/"2"', ifModifiedSince: 'Mon, 07 Dec 2026 11:00:00 GMT' }), resource)).to.equal(false);
    expect(notModified(req({}), resource)).to.equal(false);
    for (const headers of [{ ifNoneMatch: '3' }, { ifNoneMatch: 'W/"x"' }, { ifModifiedSince: 'soon' }]) {
      expect(() => notModified(req(headers), resource), JSON.stringify(headers))
        .to.throw(OperationOutcomeError)
        .with.property('status', 400);
    }
  });

  it('asPreferred: minimal drops the resource, OperationOutcome replaces it, anything else keeps it; status, version and location stay', () => {
    const out: FhirOutcome = { status: 201, resource, version: { versionId: '3' }, location: 'Observation/o1/_history/3' };
    expect(asPreferred(req({ prefer: 'return=minimal' }), out, 'done')).to.deep.equal({ status: 201, version: { versionId: '3' }, location: 'Observation/o1/_history/3' });
    expect(asPreferred(req({ prefer: 'handling=lenient; return="OperationOutcome"' }), out, 'done')).to.deep.equal({
      status: 201,
      version: { versionId: '3' },
      location: 'Observation/o1/_history/3',
      info: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: 'done' }] },
    });
    for (const prefer of [undefined, 'return=representation', 'return=minimalist', 'respond-async'])
      expect(asPreferred(req({ ...(prefer ? { prefer } : {}) }), out, 'done')).to.equal(out);
  });
});
