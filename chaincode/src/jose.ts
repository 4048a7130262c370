/**
 * JOSE pieces the chaincode needs: P-256 JWKs, RFC 7638 thumbprints and compact JWS (RFC 7515) with
 * ES256 (IEEE P1363 r||s signatures). The strict parsing (header members, canonical payload, signature
 * length, DID URL kid) is HDX's own; signature verification and thumbprints are `jose`'s (panva):
 * `verifyJws` (compactVerify, ES256 only) and `thumbprintOf` (calculateJwkThumbprint).
 */
import { createPublicKey } from 'node:crypto';
import { calculateJwkThumbprint, compactVerify, errors as joseErrors } from 'jose';
import { invalid, unauthenticated } from './errors';
import { canonicalJson } from './ledger';
import { JsonObject, asObject, isBase64UrlOfLength, rejectUnknownFields } from './validate';

export interface P256Jwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** A public P-256 JWK with exactly kty, crv, x and y (a private `d` or anything else is refused). */
export function parseP256Jwk(value: unknown, path: string): P256Jwk {
  const jwk = asObject(value, path);
  rejectUnknownFields(jwk, ['kty', 'crv', 'x', 'y'], path);
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') {
    throw invalid(`${path} must be an EC key on P-256`);
  }
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string' || !isBase64UrlOfLength(jwk.x, 32) || !isBase64UrlOfLength(jwk.y, 32)) {
    throw invalid(`${path}.x and .y must be base64url of 32 bytes`);
  }
  const key: P256Jwk = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
  try {
    createPublicKey({ key: { ...key }, format: 'jwk' });
  } catch {
    throw invalid(`${path} is not a point on P-256`);
  }
  return key;
}

export interface CompactJws {
  header: JsonObject & { alg: 'ES256'; kid: string };
  /** The decoded payload text (UTF-8). */
  payloadText: string;
  payload: JsonObject;
  signingInput: string;
  signature: Buffer;
}

const B64URL_PART = /^[A-Za-z0-9_-]+$/;

/** Parses a compact ES256 JWS whose payload is RFC 8785 canonical JSON. Does not verify it. */
export function parseCompactJws(jws: unknown, path: string): CompactJws {
  if (typeof jws !== 'string' || jws.length > 200_000) {
    throw invalid(`${path} must be a compact JWS`);
  }
  const parts = jws.split('.');
  const [h, p, s] = parts;
  if (parts.length !== 3 || !h || !p || !s || !B64URL_PART.test(h) || !B64URL_PART.test(p) || !B64URL_PART.test(s)) {
    throw invalid(`${path} must be a compact JWS (three base64url parts)`);
  }
  const header = decodeJsonPart(h, `${path} header`);
  rejectUnknownFields(header, ['alg', 'kid', 'typ'], `${path} header`);
  if (header.alg !== 'ES256') {
    throw invalid(`${path} header.alg must be ES256`);
  }
  if (typeof header.kid !== 'string' || !/^did:hdx:[A-Za-z0-9_-]{43}#[A-Za-z0-9_-]{1,64}$/.test(header.kid)) {
    throw invalid(`${path} header.kid must be a DID URL (did:hdx:…#key-n)`);
  }
  const payloadText = Buffer.from(p, 'base64url').toString('utf8');
  const payload = decodeJsonPart(p, `${path} payload`);
  if (canonicalJson(payload) !== payloadText) {
    throw invalid(`${path} payload must be RFC 8785 canonical JSON`);
  }
  const signature = Buffer.from(s, 'base64url');
  if (signature.length !== 64) {
    throw invalid(`${path} signature must be 64 bytes (ES256, r||s)`);
  }
  return { header: header as CompactJws['header'], payloadText, payload, signingInput: `${h}.${p}`, signature };
}

function decodeJsonPart(part: string, name: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw invalid(`${name} is not base64url JSON`);
  }
  return asObject(value, name);
}

/**
 * Verifies a parsed JWS with jose's compactVerify (algorithms: ES256 only) and a P-256 public key;
 * UNAUTHENTICATED when the signature does not match, INVALID when jose cannot read the JWS.
 */
export async function verifyJws(jws: CompactJws, jwk: P256Jwk, path: string): Promise<void> {
  const key = createPublicKey({ key: { ...jwk }, format: 'jwk' });
  try {
    await compactVerify(`${jws.signingInput}.${jws.signature.toString('base64url')}`, key, { algorithms: ['ES256'] });
  } catch (err) {
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw unauthenticated(`${path} signature does not verify with ${jws.header.kid}`);
    }
    throw invalid(`${path} is not a valid ES256 JWS`);
  }
}

/** RFC 7638 thumbprint (SHA-256, base64url) computed by jose's calculateJwkThumbprint. */
export async function thumbprintOf(jwk: P256Jwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256');
}

/** The DID and fragment of a DID URL. */
export function splitDidUrl(kid: string): { did: string; fragment: string } {
  const index = kid.indexOf('#');
  return { did: kid.slice(0, index), fragment: kid.slice(index + 1) };
}
