import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import type { BundleSource } from '../fhir/bundle-source';
import { isBundleSource } from '../fhir/bundle-source';
import { thrownOutcome } from '../test-support/outcome';
import { frameBundle } from './bundle-frame';

const frame = (text: string, maxDepth = 64): BundleSource => frameBundle(Buffer.from(text), maxDepth);
const entries = (s: BundleSource): unknown[] => Array.from({ length: s.entryCount }, (_, i) => s.entry(i));

describe('frameBundle: a large body framed as a Bundle, its entries parsed when asked for', () => {
  it('finds every entry of the top-level entry array, whatever they hold (strings with brackets, escapes, nested entry keys)', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: { resourceType: 'Basic', code: { text: 'a "quoted" ] } , [ { text' } }, request: { method: 'POST', url: 'Basic' } },
        { resource: { resourceType: 'Basic', code: { text: 'back\\slash\\' }, extension: [{ url: 'http://x.org/entry', valueString: '{"entry":[1,2]}' }] } },
        { request: { method: 'GET', url: 'Patient?name=é"ü' } },
      ],
      meta: { tag: [{ code: 'after' }] },
    };
    const s = frame(JSON.stringify(bundle, null, 2));
    expect(isBundleSource(s)).to.equal(true);
    expect(s.fields).to.deep.equal({ resourceType: 'Bundle', type: 'batch', meta: { tag: [{ code: 'after' }] } });
    expect(entries(s)).to.deep.equal(bundle.entry);
    // Each call parses afresh: a change to one entry object is nobody else's.
    (s.entry(0) as { resource: unknown }).resource = null;
    expect(s.entry(0)).to.deep.equal(bundle.entry[0]);
  });

  it('an empty entry array, none at all, or one whose key is written with escapes (parsed as any JSON)', () => {
    expect(frame('{"resourceType":"Bundle","type":"batch","entry":[ ]}').entryCount).to.equal(0);
    expect(frame('{"resourceType":"Bundle","type":"batch"}').entryCount).to.equal(0);
    const escaped = frame('{"resourceType":"Bundle","type":"batch","\\u0065ntry":[{"a":1},{"b":2}]}');
    expect(entries(escaped)).to.deep.equal([{ a: 1 }, { b: 2 }]);
  });

  it('refuses a body that is not JSON, naming the entry that is not, before anything is acted on', () => {
    const cases: Array<[string, RegExp]> = [
      ['{"resourceType":"Bundle","entry":[{"a":1},{"b":}]}', /^Bundle\.entry\[1\] is not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[{"a":1},]}', /^The request body is not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[,{"a":1}]}', /^The request body is not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[{"a":1}}]}', /not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[{"a":1}] "type":"batch"}', /^The request body is not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[{"a":"unterminated}]}', /^The request body is not valid JSON$/],
      ['{"resourceType":"Bundle","entry":[{"a":1}]', /^The request body is not valid JSON$/],
      ['[{"resourceType":"Bundle"}]', /must be a JSON object/],
    ];
    for (const [text, message] of cases) {
      const err = thrownOutcome(() => frame(text));
      expect(err.status, text).to.equal(400);
      expect(err.message, text).to.match(message);
    }
  });

  it('refuses a body nested too deeply and a Bundle with entry twice', () => {
    const deep = `{"resourceType":"Bundle","entry":[${'['.repeat(70)}${']'.repeat(70)}]}`;
    expect(thrownOutcome(() => frame(deep)).message).to.equal('The request body is nested more than 64 levels deep');
    expect(thrownOutcome(() => frame('{"entry":[{"a":1}],"entry":[{"b":1}]}')).message).to.equal('Bundle.entry appears more than once');
    expect(thrownOutcome(() => frame('{"entry":[{"a":1}],"\\u0065ntry":[{"b":1}]}')).message).to.equal('Bundle.entry appears more than once');
    expect(thrownOutcome(() => frame('{"entry":{"a":1}}')).message).to.equal('Bundle.entry must be an array');
    expect(() => frame('{"entry":[]}')).not.to.throw(OperationOutcomeError);
  });
});
