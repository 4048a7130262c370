/**
 * What a patient's wallet (or any DID holder) does off chain, written independently of the chaincode so
 * the integration tests check the chaincode against the README's formats rather than against itself:
 * P-256 keys, `did:hdx` DIDs from RFC 7638 thumbprints, RFC 8785 canonical JSON and compact ES256 JWS.
 */
import * as crypto from 'node:crypto';

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/**
 * RFC 8785 canonical JSON for the values the tests sign: objects with keys sorted by UTF-16 code units,
 * no whitespace, strings and finite numbers serialized as ECMAScript does (which is what RFC 8785 uses).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error('canonical JSON has no NaN or Infinity');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    // Array.prototype.sort without a comparator compares UTF-16 code units, as RFC 8785 requires.
    const keys = entries.map(([k]) => k).sort();
    const obj = value as Record<string, unknown>;
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new Error(`canonical JSON cannot hold a ${typeof value}`);
}

/** RFC 7638 thumbprint of a P-256 key: base64url(SHA-256 of {"crv","kty","x","y"} in that order). */
export function thumbprint(jwk: PublicJwk): string {
  const members = `{"crv":${JSON.stringify(jwk.crv)},"kty":${JSON.stringify(jwk.kty)},"x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
  return crypto.createHash('sha256').update(members, 'utf8').digest('base64url');
}

/** A fresh nonce: 16 random bytes, 22 base64url characters (the chaincode accepts 16 to 128). */
export function newNonce(): string {
  return crypto.randomBytes(16).toString('base64url');
}

/** Seconds since the epoch, as JWS `iat`. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Compact JWS with ES256 over a payload given as text (so tests can also sign non-canonical text). */
export function signCompact(privateKey: crypto.KeyObject, header: Record<string, unknown>, payloadText: string): string {
  const h = Buffer.from(JSON.stringify(header), 'utf8').toString('base64url');
  const p = Buffer.from(payloadText, 'utf8').toString('base64url');
  const signature = crypto.sign('sha256', Buffer.from(`${h}.${p}`, 'ascii'), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${signature.toString('base64url')}`;
}

/** The three parts of a compact JWS, decoded. */
export function decodeCompact(jws: string): { header: Record<string, unknown>; payload: Record<string, unknown>; parts: [string, string, string] } {
  const [h, p, s] = jws.split('.');
  if (h === undefined || p === undefined || s === undefined) throw new Error('not a compact JWS');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>,
    parts: [h, p, s],
  };
}

/** A P-256 key pair and the did:hdx DID derived from it (key number 1, as registered). */
export class DidKey {
  readonly privateKey: crypto.KeyObject;
  readonly jwk: PublicJwk;
  readonly did: string;

  constructor() {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const exported = publicKey.export({ format: 'jwk' }) as { kty?: string; crv?: string; x?: string; y?: string };
    if (exported.kty !== 'EC' || exported.crv !== 'P-256' || !exported.x || !exported.y) throw new Error('unexpected JWK export');
    this.privateKey = privateKey;
    this.jwk = { kty: 'EC', crv: 'P-256', x: exported.x, y: exported.y };
    this.did = `did:hdx:${thumbprint(this.jwk)}`;
  }

  /** The DID URL of this key: `<did>#key-1`. */
  get kid(): string {
    return `${this.did}#key-1`;
  }

  /** A compact JWS by this key over the canonical JSON of payload; `kid` defaults to this key's DID URL. */
  sign(payload: Record<string, unknown>, kid: string = this.kid): string {
    return signCompact(this.privateKey, { alg: 'ES256', kid }, canonicalJson(payload));
  }

  /** Register input for this key: `{kind, publicKeyJwk, did, proof}` with a proof of possession. */
  registration(kind: string, extra: Record<string, unknown> = {}): string {
    const proof = this.sign({ action: 'register', did: this.did, kind, nonce: newNonce(), iat: nowSeconds() });
    return JSON.stringify({ kind, publicKeyJwk: this.jwk, did: this.did, proof, ...extra });
  }
}

export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const MSP_SYSTEM = 'urn:hdx:msp';

/** A consent (valid FHIR R4 Consent: scope and category included) permitting one organization, by MSP id, one purpose of use. */
export function permitOrganizationConsent(id: string, patientDid: string, mspId: string, purpose: string): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    id,
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: patientDid },
    provision: {
      type: 'permit',
      actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: mspId } } }],
      purpose: [{ system: PURPOSE_SYSTEM, code: purpose }],
    },
  };
}

/** The signed-consent payload `{consent, action, nonce, iat}`. */
export function consentPayload(consent: Record<string, unknown>, action: 'grant' | 'update' | 'revoke', nonce = newNonce(), iat = nowSeconds()): Record<string, unknown> {
  return { consent, action, nonce, iat };
}
