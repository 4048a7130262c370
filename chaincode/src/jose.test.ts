import { expect } from 'chai';
import { CompactSign } from 'jose';
import { parseCompactJws, parseP256Jwk, thumbprintOf, verifyJws } from './jose';
import { newKey, rfc7638Thumbprint, signJws } from './test-support/keys';

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

describe('jose (ES256 compact JWS, P-256 JWK)', () => {
  const key = newKey();
  const kid = `${key.did}#key-1`;

  it('verifies a JWS made with Node crypto in IEEE P1363 form', async () => {
    const jws = parseCompactJws(signJws(key.privateKey, kid, { a: 1, nonce: 'x' }), 'jws');
    expect(jws.payload).to.deep.equal({ a: 1, nonce: 'x' });
    await verifyJws(jws, key.jwk, 'jws');
  });

  const malformed: Array<[string, string]> = [
    ['two parts', `${b64({ alg: 'ES256', kid })}.${b64('{}')}`],
    ['alg none', `${b64({ alg: 'none', kid })}.${b64('{}')}.${b64('x'.repeat(64))}`],
    ['alg HS256', `${b64({ alg: 'HS256', kid })}.${b64('{}')}.${b64('x'.repeat(64))}`],
    ['a crit header', `${b64({ alg: 'ES256', kid, crit: ['b64'] })}.${b64('{}')}.${b64('x'.repeat(64))}`],
    ['a jwk header', `${b64({ alg: 'ES256', kid, jwk: key.jwk })}.${b64('{}')}.${b64('x'.repeat(64))}`],
    ['a kid that is not a DID URL', `${b64({ alg: 'ES256', kid: 'key-1' })}.${b64('{}')}.${b64('x'.repeat(64))}`],
    ['a DER signature length', `${b64({ alg: 'ES256', kid })}.${b64('{}')}.${b64('x'.repeat(71))}`],
    ['a payload that is not JSON', `${b64({ alg: 'ES256', kid })}.${b64('nope')}.${b64('x'.repeat(64))}`],
    ['a non-canonical payload', `${b64({ alg: 'ES256', kid })}.${b64('{"b":1,"a":2}')}.${b64('x'.repeat(64))}`],
    ['padding characters', `${b64({ alg: 'ES256', kid })}=.${b64('{}')}.${b64('x'.repeat(64))}`],
  ];
  for (const [what, jws] of malformed) {
    it(`refuses ${what} with INVALID`, () => {
      expect(() => parseCompactJws(jws, 'jws')).to.throw(/^INVALID: /);
    });
  }

  it('keeps only kty, crv, x, y of a public key and computes its thumbprint', () => {
    expect(parseP256Jwk(key.jwk, 'jwk')).to.deep.equal(key.jwk);
    expect(rfc7638Thumbprint(key.jwk)).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(() => parseP256Jwk({ ...key.jwk, kid: 'k' }, 'jwk')).to.throw(/^INVALID: /);
  });

  describe('verification and thumbprints by jose (panva)', () => {
    it('verifyJws refuses a signature by another key, or over another payload (UNAUTHENTICATED)', async () => {
      const good = parseCompactJws(signJws(key.privateKey, kid, { a: 1, nonce: 'x' }), 'jws');
      await verifyJws(good, key.jwk, 'jws');
      const other = newKey();
      const forged = parseCompactJws(signJws(other.privateKey, kid, { a: 1 }), 'jws');
      await rejectsWith(verifyJws(forged, key.jwk, 'jws'), /^UNAUTHENTICATED: jws signature does not verify/);
      const [h, , s] = signJws(key.privateKey, kid, { a: 1 }).split('.');
      await rejectsWith(verifyJws(parseCompactJws(`${h}.${b64('{"a":2}')}.${s}`, 'jws'), key.jwk, 'jws'), /^UNAUTHENTICATED: /);
    });

    it('a JWS made by jose CompactSign parses and verifies', async () => {
      const jws = await new CompactSign(Buffer.from('{"a":1,"nonce":"x"}', 'utf8')).setProtectedHeader({ alg: 'ES256', kid }).sign(key.privateKey);
      const parsed = parseCompactJws(jws, 'jws');
      await verifyJws(parsed, key.jwk, 'jws');
    });

    it('thumbprintOf (calculateJwkThumbprint) equals the RFC 7638 thumbprint written out, and the DID of the key', async () => {
      for (const k of [key, newKey(), newKey()]) {
        expect(await thumbprintOf(k.jwk)).to.equal(rfc7638Thumbprint(k.jwk));
        expect(`did:hdx:${await thumbprintOf(k.jwk)}`).to.equal(k.did);
      }
    });
  });
});

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await promise;
  } catch (err) {
    expect(String((err as Error).message)).to.match(pattern);
    return;
  }
  expect.fail(`expected a rejection matching ${pattern}`);
}
