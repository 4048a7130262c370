import { expect } from 'chai';
import { thrownOutcome } from '../test-support/outcome';
import { applyMergePatch, parseMergePatch } from './merge-patch';

const resource = {
  resourceType: 'Observation',
  id: 'o1',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: 'Heart rate' },
  valueString: 'private value',
  note: [{ text: 'a' }, { text: 'b' }],
};

describe('JSON Merge Patch on a resource (RFC 7396, json-merge-patch)', () => {
  it('replaces members, merges objects, replaces lists whole, removes what is null, and leaves the input unchanged', () => {
    const before = structuredClone(resource);
    const patch = parseMergePatch({ status: 'amended', code: { text: null }, valueString: null, note: [{ text: 'c' }], issued: '2026-03-01T10:00:00Z' });
    const out = applyMergePatch(resource, patch);
    expect(out).to.deep.equal({
      resourceType: 'Observation',
      id: 'o1',
      status: 'amended',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      note: [{ text: 'c' }],
      issued: '2026-03-01T10:00:00Z',
    });
    expect(resource).to.deep.equal(before);
    // The patch is not shared with the result (a later change to one does not reach the other).
    (out.note as Array<{ text: string }>)[0] = { text: 'changed' };
    expect(patch.note).to.deep.equal([{ text: 'c' }]);
    // An object where there was none: its null members are left out (RFC 7396 section 2).
    expect((applyMergePatch(resource, parseMergePatch({ valueQuantity: { value: 72, unit: null } })) as Record<string, unknown>).valueQuantity).to.deep.equal({ value: 72 });
  });

  it('refuses a body that is no non-empty object, members no FHIR element has, and a change of resourceType or id: 400, naming no value', () => {
    for (const body of [[{ op: 'add' }], 'text', null, 7, {}]) {
      const e = thrownOutcome(() => parseMergePatch(body));
      expect([e.status, e.message], JSON.stringify(body)).to.deep.equal([400, 'A JSON Merge Patch body is a non-empty JSON object naming the elements to change (RFC 7396)']);
    }
    for (const body of [JSON.parse('{"__proto__": {"polluted": "secret"}}') as unknown, { code: { constructor: { prototype: { polluted: 'secret' } } } }]) {
      const e = thrownOutcome(() => parseMergePatch(body));
      expect(e.status).to.equal(400);
      expect(e.message).to.not.include('secret');
    }
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    for (const patch of [{ id: 'secret-elsewhere' }, { id: null }, { resourceType: 'Patient' }]) {
      const e = thrownOutcome(() => applyMergePatch(resource, parseMergePatch(patch)));
      expect([e.status, e.message]).to.deep.equal([400, 'A JSON Merge Patch may not change the resourceType or id of the resource']);
    }
    // The same resourceType and id are no change.
    expect(applyMergePatch(resource, parseMergePatch({ resourceType: 'Observation', id: 'o1', status: 'amended' })).status).to.equal('amended');
  });
});
