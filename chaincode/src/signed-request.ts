/**
 * Requests signed by a DID key: a compact JWS (ES256) whose payload is the RFC 8785 canonical JSON of
 * `{…, action, nonce, iat}`, header `kid` = DID URL of the signing key. Verified against the DID
 * document on the ledger; a nonce is accepted once per signer (replay refused).
 */
import type { Context } from 'fabric-contract-api';
import { conflict, forbidden, invalid, unauthenticated } from './errors';
import { findIdentity, IdentityRecord } from './identity-model';
import { CompactJws, P256Jwk, parseCompactJws, splitDidUrl, verifyJws } from './jose';
import { INDEX_MARKER, txEpochSeconds } from './ledger';
import { findRemoval, isRemoved } from './member-model';
import { JsonObject } from './validate';

export const NONCE_KEY = 'hdx.nonce';
export const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
/** A signature may be at most this old when it reaches the ledger … */
export const MAX_SIGNATURE_AGE_SECONDS = 24 * 60 * 60;
/** … and its iat at most this far in the future (clock skew). */
export const MAX_CLOCK_SKEW_SECONDS = 5 * 60;

export interface VerifiedRequest {
  payload: JsonObject;
  /** DID of the signer. */
  signer: string;
  kid: string;
  iat: number;
  nonce: string;
  jws: string;
}

/** Checks action, nonce and iat of a payload (the signature is checked by the caller). */
function checkEnvelope(ctx: Context, payload: JsonObject, actions: readonly string[], path: string): { nonce: string; iat: number } {
  if (typeof payload.action !== 'string' || !actions.includes(payload.action)) {
    throw invalid(`${path} payload.action must be one of ${actions.join(', ')}`);
  }
  if (typeof payload.nonce !== 'string' || !NONCE.test(payload.nonce)) {
    throw invalid(`${path} payload.nonce must be 16 to 128 base64url characters`);
  }
  const iat = payload.iat;
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat) || iat < 0) {
    throw invalid(`${path} payload.iat must be seconds since the epoch`);
  }
  const now = txEpochSeconds(ctx);
  if (iat > now + MAX_CLOCK_SKEW_SECONDS) {
    throw invalid(`${path} payload.iat is in the future`);
  }
  if (iat < now - MAX_SIGNATURE_AGE_SECONDS) {
    throw invalid(`${path} payload.iat is too old`);
  }
  return { nonce: payload.nonce, iat };
}

/** Refuses a nonce the signer used before and records it. */
async function consumeNonce(ctx: Context, signer: string, nonce: string, path: string): Promise<void> {
  const key = ctx.stub.createCompositeKey(NONCE_KEY, [signer, nonce]);
  const seen = await ctx.stub.getState(key);
  if (seen && seen.length > 0) {
    throw conflict(`${path} nonce was already used (replay)`);
  }
  await ctx.stub.putState(key, INDEX_MARKER);
}

/**
 * Verifies a JWS by a registered, active DID with the key named by `kid` in its assertionMethod,
 * and consumes its nonce.
 */
export async function verifySignedRequest(
  ctx: Context,
  jws: unknown,
  actions: readonly string[],
  path: string,
  options: { allowSuspended?: boolean } = {},
): Promise<VerifiedRequest & { signerRecord: IdentityRecord }> {
  const parsed = parseCompactJws(jws, path);
  const { did } = splitDidUrl(parsed.header.kid);
  const signerRecord = await findIdentity(ctx, did);
  if (!signerRecord) {
    throw unauthenticated(`${path} is signed by a DID that is not registered`);
  }
  // A suspended DID (an admin's freeze) may still sign what undoes harm: revoking a consent, reactivating.
  if (signerRecord.status !== 'active' && !(signerRecord.status === 'suspended' && options.allowSuspended === true)) {
    throw forbidden(`${path} is signed by a ${signerRecord.status} DID`);
  }
  // A DID of a removed member organization signs nothing but what undoes harm (as a suspended one);
  // a patient it registered keeps their say (their consents, their key), as in the access decision.
  if (options.allowSuspended !== true && signerRecord.kind !== 'patient' && isRemoved(await findRemoval(ctx, signerRecord.organization))) {
    throw forbidden(`${path} is signed by a DID of an organization removed from the consortium`);
  }
  const method = signerRecord.document.verificationMethod.find((m) => m.id === parsed.header.kid);
  if (!method || !signerRecord.document.assertionMethod.includes(parsed.header.kid)) {
    throw unauthenticated(`${path} kid is not a current assertion key of the signer`);
  }
  return { ...(await verifyWithKey(ctx, parsed, method.publicKeyJwk, actions, path, did, jws as string)), signerRecord };
}

/** Verifies a JWS with a given key (registration: the key being registered), then consumes its nonce. */
export async function verifyWithKey(
  ctx: Context,
  parsed: CompactJws,
  jwk: P256Jwk,
  actions: readonly string[],
  path: string,
  signer: string,
  jws: string,
): Promise<VerifiedRequest> {
  await verifyJws(parsed, jwk, path);
  const { nonce, iat } = checkEnvelope(ctx, parsed.payload, actions, path);
  await consumeNonce(ctx, signer, nonce, path);
  return { payload: parsed.payload, signer, kid: parsed.header.kid, iat, nonce, jws };
}
