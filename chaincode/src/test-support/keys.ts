/** P-256 keys, DIDs and compact JWS for tests. */
import { KeyObject, createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { P256Jwk } from '../jose';
import { canonicalJson } from '../ledger';

export interface TestKey {
  privateKey: KeyObject;
  jwk: P256Jwk;
  /** did:hdx of this key (when it is the initial key). */
  did: string;
}

/** RFC 7638 thumbprint written out from the RFC (the tests' own oracle; the chaincode uses jose). */
export function rfc7638Thumbprint(jwk: P256Jwk): string {
  return createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`).digest('base64url');
}

export function newKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const exported = publicKey.export({ format: 'jwk' });
  const jwk: P256Jwk = { kty: 'EC', crv: 'P-256', x: String(exported.x), y: String(exported.y) };
  return { privateKey, jwk, did: `did:hdx:${rfc7638Thumbprint(jwk)}` };
}

/** A compact ES256 JWS over the canonical JSON of `payload`. */
export function signJws(key: KeyObject, kid: string, payload: unknown, header: Record<string, unknown> = {}): string {
  const h = Buffer.from(JSON.stringify({ alg: 'ES256', kid, ...header })).toString('base64url');
  const p = Buffer.from(canonicalJson(payload)).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${signature.toString('base64url')}`;
}

let nonceCounter = 0;
export function nonce(): string {
  nonceCounter += 1;
  return `nonce-${String(nonceCounter).padStart(12, '0')}`;
}
