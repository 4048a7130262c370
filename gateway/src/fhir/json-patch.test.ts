import { expect } from 'chai';
import { thrownOutcome } from '../test-support/outcome';
import { applyJsonPatch, parseJsonPatch } from './json-patch';

const resource = { resourceType: 'Observation', id: 'o1', status: 'final', valueString: 'private value', note: [{ text: 'a' }] };

describe('JSON Patch on a resource (RFC 6902, fast-json-patch)', () => {
  it('applies every operation in order and leaves the input unchanged', () => {
    const before = structuredClone(resource);
    const out = applyJsonPatch(
      resource,
      parseJsonPatch([
        { op: 'test', path: '/status', value: 'final' },
        { op: 'add', path: '/note/-', value: { text: 'b' } },
        { op: 'copy', from: '/note/0', path: '/note/-' },
        { op: 'move', from: '/valueString', path: '/comment' },
        { op: 'remove', path: '/note/0' },
        { op: 'replace', path: '/status', value: 'amended' },
      ]),
    );
    expect(out).to.deep.equal({ resourceType: 'Observation', id: 'o1', status: 'amended', comment: 'private value', note: [{ text: 'b' }, { text: 'a' }] });
    expect(resource).to.deep.equal(before);
  });

  it('names the failing operation by index and its reason, never a value; test failure 412, unappliable 422, malformed 400', () => {
    const failed = thrownOutcome(() =>
      applyJsonPatch(
        resource,
        parseJsonPatch([
          { op: 'test', path: '/status', value: 'final' },
          { op: 'test', path: '/valueString', value: 'guess' },
        ]),
      ),
    );
    expect([failed.status, failed.message]).to.deep.equal([412, 'JSON Patch operation 1: the test failed; nothing was written']);
    const missing = thrownOutcome(() => applyJsonPatch(resource, parseJsonPatch([{ op: 'replace', path: '/nothing/here', value: 'secret' }])));
    expect(missing.status).to.equal(422);
    expect(missing.message).to.include('operation 0').and.not.include('secret').and.not.include('nothing/here');
    expect(thrownOutcome(() => parseJsonPatch([{ op: 'add', path: 'no-slash', value: 1 }])).status).to.equal(400);
    expect(thrownOutcome(() => parseJsonPatch([{ op: 'add', path: '/x' }])).message).to.equal('JSON Patch operation 0: it needs a value');
    expect(thrownOutcome(() => parseJsonPatch([{ op: 'move', path: '/x' }])).status).to.equal(400);
    expect(thrownOutcome(() => parseJsonPatch({ op: 'add' })).status).to.equal(400);
    expect(thrownOutcome(() => applyJsonPatch(resource, parseJsonPatch([{ op: 'replace', path: '', value: { resourceType: 'Patient', id: 'o1' } }]))).status).to.equal(400);
  });
});
