/**
 * The patient's DID key in the browser, on WebCrypto and jose (its browser build, chosen by Vite's
 * "browser" export condition): a P-256 key, its DID `did:hdx:<RFC 7638 thumbprint>` (the derivation of
 * gateway/src/auth/did-key.ts and `hdx keygen`), the single-use DID token of `hdx token`
 * (gateway/src/auth/issue.ts) and the registration proof of `hdx did-proof`.
 *
 * The signing key the app keeps is a non-extractable CryptoKey. The private JWK exists only while a key
 * is being created or imported, so that the patient can save a backup file (the same JSON `hdx keygen
 * --out` writes, usable with the CLI); after that the page cannot read it back.
 */
import { calculateJwkThumbprint, SignJWT } from 'jose';
import { signCompact } from './jws';

export interface P256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** The backup file: a private P-256 JWK with its DID URL, as `hdx keygen --out key.json` writes it. */
export interface P256PrivateJwk extends P256PublicJwk {
  d: string;
  kid: string;
}

/** A key the app signs with. `privateKey` is non-extractable. */
export interface PatientKey {
  did: string;
  /** The DID URL it signs as (`<did>#key-1` for a key never rotated). */
  kid: string;
  publicJwk: P256PublicJwk;
  privateKey: CryptoKey;
}

export const HDX_DID = /^did:hdx:[A-Za-z0-9_-]{43}$/;
const HDX_DID_URL = /^did:hdx:[A-Za-z0-9_-]{43}#[A-Za-z0-9_-]{1,64}$/;
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** `did:hdx:` + the RFC 7638 SHA-256 thumbprint of the public key. */
export async function didOf(jwk: P256PublicJwk): Promise<string> {
  return `did:hdx:${await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256')}`;
}

/** A new key: the non-extractable key the app keeps, and the backup JWK to offer the patient once. */
export async function generatePatientKey(): Promise<{ key: PatientKey; backup: P256PrivateJwk }> {
  const pair = await crypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
  const exported = await crypto.subtle.exportKey('jwk', pair.privateKey);
  return importPrivateJwk(exported);
}

/**
 * Reads a backup (a private P-256 JWK, optionally with `kid`) and imports it non-extractable. Throws an
 * Error with a sentence a patient can act on when the file is not such a key.
 */
export async function importPrivateJwk(value: unknown): Promise<{ key: PatientKey; backup: P256PrivateJwk }> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('The file is not a key: it must hold a JSON object (a JWK).');
  const jwk = value as Record<string, unknown>;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error('The file is not an HDX key: it must be an EC key on P-256 (kty "EC", crv "P-256").');
  const { x, y, d, kid } = jwk;
  if (typeof x !== 'string' || typeof y !== 'string' || !B64URL_32.test(x) || !B64URL_32.test(y)) throw new Error('The key is damaged: x and y must be base64url of 32 bytes.');
  if (typeof d !== 'string' || !B64URL_32.test(d)) throw new Error('The file holds no private key (d): choose the backup file, not a public key.');
  const publicJwk: P256PublicJwk = { kty: 'EC', crv: 'P-256', x, y };
  const did = await didOf(publicJwk);
  if (kid !== undefined && (typeof kid !== 'string' || !HDX_DID_URL.test(kid) || !kid.startsWith(`${did}#`))) {
    throw new Error(`The key's kid must be a DID URL of this key (${did}#key-n).`);
  }
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey('jwk', { ...publicJwk, d }, ECDSA_P256, false, ['sign']);
    publicKey = await crypto.subtle.importKey('jwk', publicJwk, ECDSA_P256, true, ['verify']);
  } catch {
    throw new Error('The key is damaged: it is not a valid P-256 key pair.');
  }
  // WebCrypto keeps the x and y it is given with d: a signature checks that they belong together.
  const probe = new TextEncoder().encode('hdx key check');
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, probe);
  if (!(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, probe))) {
    throw new Error('The key is damaged: its private part does not match its public part.');
  }
  const keyId = typeof kid === 'string' ? kid : `${did}#key-1`;
  return { key: { did, kid: keyId, publicJwk, privateKey }, backup: { ...publicJwk, d, kid: keyId } };
}

/** The longest life of a DID token the gateway accepts (MAX_DID_TOKEN_LIFETIME_SEC). */
export const MAX_TOKEN_SECONDS = 300;

/**
 * A DID self-signed bearer token, as `hdx token` makes it: ES256, header {alg, typ: JWT, kid}, iss = sub
 * = the DID, aud = the gateway's FHIR base URL, a random jti. The gateway accepts each token once: make a
 * new one per request.
 */
export async function didToken(key: PatientKey, audience: string, scope: string, options: { ttlSec?: number; iat?: number; purposeOfUse?: string } = {}): Promise<string> {
  const ttl = options.ttlSec ?? 120;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TOKEN_SECONDS) throw new Error(`the token lifetime must be 1 to ${MAX_TOKEN_SECONDS} seconds`);
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const did = key.kid.slice(0, key.kid.indexOf('#'));
  return new SignJWT({ scope, ...(options.purposeOfUse !== undefined ? { purpose_of_use: options.purposeOfUse } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: key.kid })
    .setIssuer(did)
    .setSubject(did)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(crypto.randomUUID())
    .sign(key.privateKey);
}

/** A nonce for signed requests: 32 base64url characters (the chaincode accepts 16 to 128). */
export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The `hdx.identity:Register` input with its proof of possession, as `hdx did-proof --kind patient`
 * prints it: `{did, kind, publicKeyJwk, proof}`. The patient gives it to their hospital, whose admin
 * registers the DID on the ledger.
 */
export async function registrationRequest(key: PatientKey, options: { iat?: number; nonce?: string } = {}): Promise<Record<string, unknown>> {
  const payload = { action: 'register', did: key.did, kind: 'patient', nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) };
  const proof = await signCompact(payload, key.privateKey, `${key.did}#key-1`);
  return { did: key.did, kind: 'patient', publicKeyJwk: key.publicJwk, proof };
}
