import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import * as fs from 'node:fs';

/**
 * Each member organization's DID on the ledger (kind `organization`, with its gateway's FHIR base URL as
 * a FhirEndpoint service): how other members find and authenticate its gateway. The launcher onboards
 * it with the org admin's Fabric identity (only an admin may register an organization DID) and keeps
 * the private key for the org's gateway, which signs member-to-member requests with it.
 */
export interface OrgKey {
  readonly did: string;
  readonly kid: string;
  readonly privateJwk: Record<string, string>;
  readonly publicJwk: { kty: string; crv: string; x: string; y: string };
}

/** RFC 7638 thumbprint of a P-256 public JWK (members in lexicographic order: crv, kty, x, y). */
function thumbprint(jwk: { crv: string; kty: string; x: string; y: string }): string {
  return createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
}

/** Loads the org's key from `file`, creating it (mode 0600) the first time. */
export function orgKey(file: string): OrgKey {
  if (!fs.existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = privateKey.export({ format: 'jwk' }) as Record<string, string>;
    const did = `did:hdx:${thumbprint({ crv: String(jwk.crv), kty: String(jwk.kty), x: String(jwk.x), y: String(jwk.y) })}`;
    fs.writeFileSync(file, `${JSON.stringify({ ...jwk, kid: `${did}#key-1` }, null, 2)}\n`, { mode: 0o600 });
  }
  const privateJwk = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
  const publicJwk = { kty: String(privateJwk.kty), crv: String(privateJwk.crv), x: String(privateJwk.x), y: String(privateJwk.y) };
  const did = `did:hdx:${thumbprint(publicJwk)}`;
  return { did, kid: `${did}#key-1`, privateJwk, publicJwk };
}

/**
 * `hdx.identity:Register` input for the organization, with its proof of possession: a compact JWS
 * (ES256, kid = the DID URL) over the RFC 8785 canonical JSON of {action, did, iat, kind, nonce} (a flat
 * object of strings and an integer, so sorted keys are its canonical form).
 */
export function orgRegistration(key: OrgKey, fhirBaseUrl: string, nowSec = Math.floor(Date.now() / 1000)): Record<string, unknown> {
  const payload = { action: 'register', did: key.did, iat: nowSec, kind: 'organization', nonce: randomBytes(18).toString('base64url') };
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: key.kid })).toString('base64url');
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${header}.${body}`), { key: key.privateJwk, format: 'jwk', dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return { kind: 'organization', did: key.did, publicKeyJwk: key.publicJwk, proof: `${header}.${body}.${signature}`, fhirBaseUrl };
}
