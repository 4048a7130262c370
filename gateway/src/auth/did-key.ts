/**
 * DID keys on Node's crypto only: P-256 JWKs, RFC 7638 thumbprints, `did:hdx:<thumbprint>` DIDs and
 * the compact ES256 JWS (RFC 7515, RFC 8785 canonical payload, r||s signature) that the chaincode's
 * signed requests expect (chaincode/README.md, "Signed requests").
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import canonicalize from 'canonicalize';

export interface P256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

export interface P256PrivateJwk extends P256PublicJwk {
  d: string;
  /** The DID URL this key signs as (`did:hdx:…#key-n`); hdx keygen writes it. */
  kid?: string;
}

/** `did:hdx:` + 43 base64url characters (a SHA-256 thumbprint). */
export { HDX_DID };
/** A DID URL naming a key, as the chaincode accepts it in a JWS `kid`. */
export const HDX_DID_URL = /^did:hdx:[A-Za-z0-9_-]{43}#[A-Za-z0-9_-]{1,64}$/;

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** The members RFC 7638 §3.2 requires per key type, in lexicographic order. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  EC: ['crv', 'kty', 'x', 'y'],
  RSA: ['e', 'kty', 'n'],
  OKP: ['crv', 'kty', 'x'],
};

/** RFC 7638 JWK thumbprint: base64url(SHA-256(JSON of the required members, sorted, no whitespace)). */
export function jwkThumbprint(key: object): string {
  const jwk = key as Readonly<Record<string, unknown>>;
  const kty = jwk.kty;
  const members = typeof kty === 'string' ? THUMBPRINT_MEMBERS[kty] : undefined;
  if (!members) throw new Error('thumbprint: the JWK kty must be EC, RSA or OKP');
  const required: Record<string, string> = {};
  for (const name of members) {
    const value = jwk[name];
    if (typeof value !== 'string') throw new Error(`thumbprint: the JWK has no ${name}`);
    required[name] = value;
  }
  const text = canonicalize(required);
  if (text === undefined) throw new Error('thumbprint: the JWK cannot be serialized');
  return createHash('sha256').update(text, 'utf8').digest('base64url');
}

/** Checks a value is a P-256 JWK (public members valid, the point on the curve) and returns its public part. */
export function toP256PublicJwk(value: unknown): P256PublicJwk {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('the key must be a JSON object (a JWK)');
  const jwk = value as Record<string, unknown>;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('the key must be an EC key on P-256 (kty "EC", crv "P-256")');
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string' || !B64URL_32.test(jwk.x) || !B64URL_32.test(jwk.y)) {
    throw new Error('the key x and y must be base64url of 32 bytes');
  }
  const pub: P256PublicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  try {
    createPublicKey({ key: { ...pub }, format: 'jwk' });
  } catch {
    throw new Error('the key is not a point on P-256');
  }
  return pub;
}

/** Checks a value is a private P-256 JWK whose `d` matches its public point. */
export function toP256PrivateJwk(value: unknown): P256PrivateJwk {
  const pub = toP256PublicJwk(value);
  const { d, kid } = value as Record<string, unknown>;
  if (typeof d !== 'string' || !B64URL_32.test(d)) throw new Error('the key has no private part (d, base64url of 32 bytes)');
  if (kid !== undefined && (typeof kid !== 'string' || !HDX_DID_URL.test(kid))) throw new Error('the key kid must be a DID URL (did:hdx:…#key-n)');
  // Node keeps the x and y it is given with d, so the pair is checked by a signature.
  let matches: boolean;
  try {
    const probe = Buffer.from('hdx key check', 'utf8');
    const signature = sign('sha256', probe, createPrivateKey({ key: { ...pub, d }, format: 'jwk' }));
    matches = verify('sha256', probe, createPublicKey({ key: { ...pub }, format: 'jwk' }), signature);
  } catch {
    throw new Error('the key private part (d) is not valid');
  }
  if (!matches) throw new Error('the key private part (d) does not match x and y');
  return kid === undefined ? { ...pub, d } : { ...pub, d, kid };
}

/** The public part of a P-256 JWK (drops `d`, `kid` and anything else). */
export function publicJwkOf(jwk: P256PublicJwk): P256PublicJwk {
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}

/** The self-certifying DID of a P-256 key: `did:hdx:` + its RFC 7638 thumbprint. */
export function didOf(jwk: P256PublicJwk): string {
  return `did:hdx:${jwkThumbprint(publicJwkOf(jwk))}`;
}

/** The DID URL a key signs as: its `kid` when it has one, else `<did of the key>#key-1` (a key never rotated). */
export function kidOf(jwk: P256PrivateJwk): string {
  return jwk.kid ?? `${didOf(jwk)}#key-1`;
}

/** The DID and the fragment of a DID URL (`did:hdx:…#key-1` → did, `key-1`). */
export function splitDidUrl(didUrl: string): { did: string; fragment: string } {
  const index = didUrl.indexOf('#');
  if (index < 0) return { did: didUrl, fragment: '' };
  return { did: didUrl.slice(0, index), fragment: didUrl.slice(index + 1) };
}

export interface GeneratedDidKey {
  did: string;
  kid: string;
  privateJwk: P256PrivateJwk & { kid: string };
  publicJwk: P256PublicJwk;
}

/** A new P-256 key pair, its DID and its first DID URL (`#key-1`). */
export function generateDidKey(): GeneratedDidKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const exported = privateKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const publicJwk = toP256PublicJwk(exported);
  const did = didOf(publicJwk);
  const kid = `${did}#key-1`;
  return { did, kid, publicJwk, privateJwk: { ...publicJwk, d: String(exported.d), kid } };
}

export function privateKeyOf(jwk: P256PrivateJwk): KeyObject {
  return createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d }, format: 'jwk' });
}

export function publicKeyOf(jwk: P256PublicJwk): KeyObject {
  return createPublicKey({ key: { ...publicJwkOf(jwk) }, format: 'jwk' });
}

/** RFC 8785 canonical JSON of a value (throws for values JSON cannot represent). */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('the value cannot be serialized as JSON');
  return text;
}

/** A fresh nonce for signed requests: 32 base64url characters (the chaincode accepts 16 to 128). */
export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * A compact JWS as the chaincode verifies it: header exactly `{alg:"ES256", kid}`, payload the RFC 8785
 * canonical JSON of `payload`, signature the 64-byte r||s (IEEE P1363) ES256 signature.
 */
export function signCompactJws(payload: Record<string, unknown>, jwk: P256PrivateJwk, kid: string = kidOf(jwk)): string {
  if (!HDX_DID_URL.test(kid)) throw new Error('the kid must be a DID URL (did:hdx:…#key-n)');
  const header = Buffer.from(canonicalJson({ alg: 'ES256', kid }), 'utf8').toString('base64url');
  const body = Buffer.from(canonicalJson(payload), 'utf8').toString('base64url');
  const input = `${header}.${body}`;
  const signature = sign('sha256', Buffer.from(input, 'ascii'), { key: privateKeyOf(jwk), dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
