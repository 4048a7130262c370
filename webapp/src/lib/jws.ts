/**
 * The compact JWS the chaincode verifies (chaincode/src/jose.ts, signed-request.ts): header exactly
 * `{"alg":"ES256","kid":<DID URL>}`, payload the RFC 8785 canonical JSON (the `canonicalize` package),
 * signature the 64-byte r||s of ES256, made by jose's CompactSign with a WebCrypto key.
 */
import canonicalize from 'canonicalize';
import { CompactSign } from 'jose';

/** RFC 8785 canonical JSON of a value (throws for values JSON cannot represent). */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('the value cannot be serialized as JSON');
  return text;
}

/** Signs the canonical JSON of `payload` as the DID URL `kid`. */
export async function signCompact(payload: Record<string, unknown>, privateKey: CryptoKey, kid: string): Promise<string> {
  // jose serializes the protected header with JSON.stringify: {alg, kid} in this order is already canonical.
  return new CompactSign(new TextEncoder().encode(canonicalJson(payload))).setProtectedHeader({ alg: 'ES256', kid }).sign(privateKey);
}
