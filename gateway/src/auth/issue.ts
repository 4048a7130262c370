/**
 * Making tokens and signed requests: what the `hdx` CLI prints, and what tests verify. The gateway
 * itself never signs tokens.
 */
import { createPublicKey, type KeyObject, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { didOf, kidOf, newNonce, type P256PrivateJwk, privateKeyOf, publicJwkOf, signCompactJws, splitDidUrl } from './did-key';
import { algorithmOfKey, MAX_DID_TOKEN_LIFETIME_SEC } from './token';

export interface DidTokenInput {
  /** The signer's private P-256 JWK (as written by `hdx keygen`). */
  readonly key: P256PrivateJwk;
  /** The DID URL to sign as (default: the key's `kid`, else `<did of the key>#key-1`). */
  readonly kid?: string;
  /** The gateway's FHIR base URL. */
  readonly audience: string;
  /** Space-separated SMART scopes. */
  readonly scope: string;
  readonly purposeOfUse?: string;
  readonly breakGlassReason?: string;
  /** For an organization DID acting for one of its users: the user's DID (claim hdx_user). */
  readonly onBehalfOf?: string;
  /** Lifetime in seconds, 1 to 300 (default 300). */
  readonly ttlSec?: number;
  /** Seconds since the epoch (default now). */
  readonly iat?: number;
  readonly jti?: string;
}

/** A DID self-signed bearer token (DESIGN.md §3): ES256, kid = DID URL, iss = sub = DID, a random jti. */
export function signDidToken(input: DidTokenInput): string {
  const ttl = input.ttlSec ?? MAX_DID_TOKEN_LIFETIME_SEC;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_DID_TOKEN_LIFETIME_SEC) throw new Error(`the lifetime must be 1 to ${MAX_DID_TOKEN_LIFETIME_SEC} seconds`);
  const kid = input.kid ?? kidOf(input.key);
  const { did } = splitDidUrl(kid);
  const iat = input.iat ?? Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: did,
    sub: did,
    aud: input.audience,
    iat,
    exp: iat + ttl,
    jti: input.jti ?? randomUUID(),
    scope: input.scope,
  };
  if (input.purposeOfUse !== undefined) payload.purpose_of_use = input.purposeOfUse;
  if (input.breakGlassReason !== undefined) payload.break_glass_reason = input.breakGlassReason;
  if (input.onBehalfOf !== undefined) payload.hdx_user = input.onBehalfOf;
  // jsonwebtoken keeps the payload's own iat (noTimestamp would drop it).
  return jwt.sign(payload, privateKeyOf(input.key), { algorithm: 'ES256', keyid: kid });
}

export interface IdpTokenInput {
  /** The identity provider's private key: EC P-256 (ES256) or RSA (RS256). */
  readonly key: KeyObject;
  readonly kid?: string;
  readonly issuer: string;
  readonly audience: string;
  readonly subject: string;
  readonly role: string;
  readonly scope: string;
  readonly purposeOfUse?: string;
  readonly did?: string;
  readonly breakGlassReason?: string;
  /** Lifetime in seconds (default 3600). */
  readonly ttlSec?: number;
  readonly iat?: number;
  readonly jti?: string;
}

/** A token as a (development) identity provider would issue it. */
export function signIdpToken(input: IdpTokenInput): string {
  const alg = algorithmOfKey(createPublicKey(input.key));
  if (input.key.type !== 'private' || !alg) throw new Error('the identity provider key must be a private EC P-256 or RSA (2048 bits or more) key');
  const ttl = input.ttlSec ?? 3600;
  if (!Number.isInteger(ttl) || ttl < 1) throw new Error('the lifetime must be a positive number of seconds');
  const iat = input.iat ?? Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: input.issuer,
    sub: input.subject,
    aud: input.audience,
    iat,
    exp: iat + ttl,
    jti: input.jti ?? randomUUID(),
    role: input.role,
    scope: input.scope,
  };
  if (input.purposeOfUse !== undefined) payload.purpose_of_use = input.purposeOfUse;
  if (input.did !== undefined) payload.hdx_did = input.did;
  if (input.breakGlassReason !== undefined) payload.break_glass_reason = input.breakGlassReason;
  return jwt.sign(payload, input.key, { algorithm: alg, ...(input.kid !== undefined ? { keyid: input.kid } : {}) });
}

/** The `hdx.identity:Register` input with its proof of possession: `{did, kind, publicKeyJwk, proof, fhirBaseUrl?}`. */
export function registrationRequest(key: P256PrivateJwk, kind: string, options: { fhirBaseUrl?: string; iat?: number; nonce?: string } = {}): Record<string, unknown> {
  const publicKeyJwk = publicJwkOf(key);
  const did = didOf(publicKeyJwk);
  const proof = signCompactJws({ action: 'register', did, kind, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) }, key, `${did}#key-1`);
  return { did, kind, publicKeyJwk, proof, ...(options.fhirBaseUrl !== undefined ? { fhirBaseUrl: options.fhirBaseUrl } : {}) };
}

/** The `hdx.identity:Deactivate` input signed by the DID's current key: `{did, proof}`. */
export function deactivationRequest(key: P256PrivateJwk, options: { kid?: string; iat?: number; nonce?: string } = {}): Record<string, unknown> {
  const kid = options.kid ?? kidOf(key);
  const { did } = splitDidUrl(kid);
  const proof = signCompactJws({ action: 'deactivate', did, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) }, key, kid);
  return { did, proof };
}

/** The `hdx.identity:RotateKey` input signed by the current key over the new public key: `{did, publicKeyJwk, proof}`. */
export function rotationRequest(currentKey: P256PrivateJwk, newKey: P256PrivateJwk, options: { kid?: string; iat?: number; nonce?: string } = {}): Record<string, unknown> {
  const kid = options.kid ?? kidOf(currentKey);
  const { did } = splitDidUrl(kid);
  const publicKeyJwk = publicJwkOf(newKey);
  const proof = signCompactJws({ action: 'rotate', did, publicKeyJwk, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) }, currentKey, kid);
  return { did, publicKeyJwk, proof };
}

export type ConsentAction = 'grant' | 'update' | 'revoke';

/**
 * An auditor's break-glass review, as `hdx.audit:ReviewBreakGlass` verifies it: a compact JWS over the
 * canonical `{action: "review", eventId, outcome, nonce, iat}` (outcome: justified, not-justified or
 * needs-follow-up), signed with the auditor's DID key.
 */
export function signReview(key: P256PrivateJwk, eventId: string, outcome: string, options: { kid?: string; iat?: number; nonce?: string } = {}): string {
  return signCompactJws(
    { action: 'review', eventId, outcome, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) },
    key,
    options.kid ?? kidOf(key),
  );
}

/**
 * The signed consent `hdx.consent:Grant/Update/Revoke` expects: a compact JWS over the canonical
 * `{consent, action, nonce, iat}`. A revocation carries only `{resourceType, id, patient}`.
 */
export function signConsent(key: P256PrivateJwk, consent: Record<string, unknown>, action: ConsentAction, options: { kid?: string; iat?: number; nonce?: string } = {}): string {
  const body = action === 'revoke' ? { resourceType: consent.resourceType, id: consent.id, patient: consent.patient } : consent;
  return signCompactJws({ consent: body, action, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) }, key, options.kid ?? kidOf(key));
}
