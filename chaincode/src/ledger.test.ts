import { expect } from 'chai';
import type { Context } from 'fabric-contract-api';
import { canonicalJson, parsePageSize, txInstant, txTimeKey } from './ledger';

const ctxAt = (seconds: unknown, nanos: number) => ({ stub: { getTxTimestamp: () => ({ seconds, nanos }) } }) as unknown as Context;

describe('ledger helpers', () => {
  it('turns the transaction timestamp (a Long in fabric-shim) into a FHIR instant and a sortable key', () => {
    const long = { low: 1714557600, high: 0, unsigned: true, toString: () => '1714557600' };
    expect(txInstant(ctxAt(long, 123_456_789))).to.equal('2024-05-01T10:00:00.123Z');
    expect(txTimeKey(ctxAt(long, 5))).to.equal('2024-05-01T10:00:00.000000005Z');
    expect(txTimeKey(ctxAt(1714557600, 5)) < txTimeKey(ctxAt(1714557600, 6))).to.equal(true);
  });

  it('writes RFC 8785 canonical JSON', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1e21, y: 0.1 } })).to.equal('{"a":[true,null,"x"],"b":1,"c":{"y":0.1,"z":1e+21}}');
  });

  it('parses page sizes strictly', () => {
    expect(parsePageSize('')).to.equal(50);
    expect(parsePageSize('25')).to.equal(25);
    expect(parsePageSize(200)).to.equal(200);
    for (const bad of ['0', '201', '-1', '1.5', 'ten']) {
      expect(() => parsePageSize(bad)).to.throw(/^INVALID: /);
    }
  });
});
