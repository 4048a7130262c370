import { createHash, createPublicKey, verify } from 'node:crypto';
import { expect } from 'chai';
import { calculateJwkThumbprint, compactVerify, importJWK } from 'jose';
import { didOf, generateDidKey, jwkThumbprint, kidOf, publicJwkOf, signCompactJws, splitDidUrl, toP256PrivateJwk, toP256PublicJwk } from './did-key';

/** RFC 7638 §3.1: the example RSA key and its thumbprint. */
const RFC7638_RSA = {
  kty: 'RSA',
  n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  e: 'AQAB',
  alg: 'RS256',
  kid: '2011-04-29',
};

/** A fixed P-256 key (generated once for these tests). */
const EC_JWK = {
  kty: 'EC',
  crv: 'P-256',
  x: 'TJwyAdE700thwBVyFxzaZwm1RIx32ZDhsHdrOjDEgQ8',
  y: 'cSUZIg2XFCHn4Q8DgoZQIWhjLWFowSXPwUUGu-YsEbc',
  d: 'sZXkZMgHHmb9wBBV51T9rzx16VYliLxTMOiyt4qpAio',
} as const;
const EC_THUMBPRINT = 'cshToDJOAe0IHbs6tlBLgplw6woGIp4FQa-JiTsPsJs';

describe('auth/did-key', () => {
  describe('RFC 7638 thumbprints', () => {
    it('gives the RFC 7638 §3.1 example thumbprint for its RSA key (alg and kid ignored)', () => {
      expect(jwkThumbprint(RFC7638_RSA)).to.equal('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    });

    it('is stable for a fixed P-256 key and matches an independent computation over {"crv","kty","x","y"}', () => {
      const independent = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${EC_JWK.x}","y":"${EC_JWK.y}"}`, 'utf8').digest('base64url');
      expect(independent).to.equal(EC_THUMBPRINT);
      expect(jwkThumbprint(EC_JWK)).to.equal(EC_THUMBPRINT);
      // member order and extra members (d, kid, alg) do not matter
      expect(jwkThumbprint({ y: EC_JWK.y, x: EC_JWK.x, kid: 'k', crv: 'P-256', kty: 'EC', d: EC_JWK.d })).to.equal(EC_THUMBPRINT);
    });

    it('refuses a JWK without its required members', () => {
      expect(() => jwkThumbprint({ kty: 'EC', crv: 'P-256', x: EC_JWK.x })).to.throw(/no y/);
      expect(() => jwkThumbprint({ kty: 'oct', k: 'abc' })).to.throw(/kty/);
    });
  });

  describe('DIDs', () => {
    it('derives did:hdx:<thumbprint> and the first DID URL', () => {
      const key = toP256PrivateJwk(EC_JWK);
      expect(didOf(key)).to.equal(`did:hdx:${EC_THUMBPRINT}`);
      expect(kidOf(key)).to.equal(`did:hdx:${EC_THUMBPRINT}#key-1`);
      expect(kidOf({ ...key, kid: `did:hdx:${EC_THUMBPRINT}#key-3` })).to.equal(`did:hdx:${EC_THUMBPRINT}#key-3`);
      expect(splitDidUrl(`did:hdx:${EC_THUMBPRINT}#key-3`)).to.deep.equal({ did: `did:hdx:${EC_THUMBPRINT}`, fragment: 'key-3' });
    });

    it('generates a P-256 key whose DID is the thumbprint of its public JWK', () => {
      const key = generateDidKey();
      expect(key.did).to.match(/^did:hdx:[A-Za-z0-9_-]{43}$/);
      expect(key.did).to.equal(`did:hdx:${jwkThumbprint(key.publicJwk)}`);
      expect(key.kid).to.equal(`${key.did}#key-1`);
      expect(key.privateJwk.kid).to.equal(key.kid);
      expect(toP256PrivateJwk(key.privateJwk)).to.deep.equal(key.privateJwk);
      expect(publicJwkOf(key.privateJwk)).to.deep.equal(key.publicJwk);
    });

    it('checks keys read from files', () => {
      expect(() => toP256PublicJwk([])).to.throw(/JSON object/);
      expect(() => toP256PublicJwk({ ...EC_JWK, crv: 'P-384' })).to.throw(/P-256/);
      expect(() => toP256PublicJwk({ ...EC_JWK, x: 'short' })).to.throw(/32 bytes/);
      expect(() => toP256PublicJwk({ ...EC_JWK, y: EC_JWK.x })).to.throw(/not a point/);
      expect(() => toP256PrivateJwk({ ...EC_JWK, d: undefined })).to.throw(/private part/);
      expect(() => toP256PrivateJwk({ ...EC_JWK, d: generateDidKey().privateJwk.d })).to.throw(/does not match/);
      expect(() => toP256PrivateJwk({ ...EC_JWK, kid: 'key-1' })).to.throw(/DID URL/);
    });
  });

  describe('compact JWS for signed requests', () => {
    it('signs canonical JSON with header {alg, kid} and a 64-byte r||s signature', () => {
      const key = generateDidKey();
      const jws = signCompactJws({ nonce: 'n'.repeat(16), action: 'register', iat: 1700000000, did: key.did }, key.privateJwk);
      const [h = '', p = '', s = ''] = jws.split('.');
      expect(JSON.parse(Buffer.from(h, 'base64url').toString())).to.deep.equal({ alg: 'ES256', kid: key.kid });
      expect(Buffer.from(p, 'base64url').toString()).to.equal(`{"action":"register","did":"${key.did}","iat":1700000000,"nonce":"nnnnnnnnnnnnnnnn"}`);
      const signature = Buffer.from(s, 'base64url');
      expect(signature).to.have.length(64);
      const publicKey = createPublicKey({ key: { ...key.publicJwk }, format: 'jwk' });
      expect(verify('sha256', Buffer.from(`${h}.${p}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)).to.equal(true);
    });

    it('refuses a kid that is not a DID URL', () => {
      expect(() => signCompactJws({}, generateDidKey().privateJwk, 'did:hdx:abc')).to.throw(/DID URL/);
    });
  });

  // signCompactJws, jwkThumbprint and didOf stay synchronous (the CLI, the exchange service and the
  // tests call them so; jose's signing and thumbprints are async): these pin that they agree with jose.
  describe('agreement with jose (panva)', () => {
    it('jwkThumbprint equals jose calculateJwkThumbprint (RFC 7638 RSA example, the fixed and fresh P-256 keys)', async () => {
      expect(jwkThumbprint(RFC7638_RSA)).to.equal(await calculateJwkThumbprint(RFC7638_RSA));
      expect(jwkThumbprint(EC_JWK)).to.equal(await calculateJwkThumbprint(publicJwkOf(EC_JWK)));
      const key = generateDidKey();
      expect(key.did).to.equal(`did:hdx:${await calculateJwkThumbprint(key.publicJwk)}`);
    });

    it('a signCompactJws JWS verifies with jose compactVerify (ES256 only)', async () => {
      const key = generateDidKey();
      const jws = signCompactJws({ action: 'register', did: key.did }, key.privateJwk);
      const { payload, protectedHeader } = await compactVerify(jws, await importJWK({ ...key.publicJwk }, 'ES256'), { algorithms: ['ES256'] });
      expect(protectedHeader).to.deep.equal({ alg: 'ES256', kid: key.kid });
      expect(JSON.parse(Buffer.from(payload).toString('utf8'))).to.deep.equal({ action: 'register', did: key.did });
    });
  });
});
