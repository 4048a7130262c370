/**
 * Bearer token verification (DESIGN.md §3, §4). Two kinds of JWT are accepted:
 *
 * - DID tokens, self-signed with a key of a DID registered on the ledger: header `kid` = DID URL,
 *   ES256, `iss` = `sub` = the DID, `aud` = this gateway's FHIR base URL, `iat`, `exp` at most
 *   5 minutes after `iat`, a `jti` used once, `scope`, `purpose_of_use`.
 * - Identity-provider tokens: signed by one of the configured IdP keys (ES256 for P-256 keys, RS256
 *   for RSA keys), `iss` = the IdP, `aud` = the configured audience, `sub`, `role`, `scope`,
 *   `purpose_of_use`, optional `hdx_did` (or `did`) and `break_glass_reason`. These are access tokens,
 *   reusable until `exp`: their `jti` is not checked for replay.
 *
 * Every failure is a 401 AuthenticationError whose message names the rule that failed and never
 * repeats anything from the token.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { OperationOutcomeError } from '../fhir/outcome';
import { HDX_DID, HDX_DID_URL, splitDidUrl, toP256PublicJwk } from './did-key';
import { AuthenticationError, unauthenticated } from './errors';
import type { JtiStore } from './replay';
import { parseScopes, type Scope, ScopeSyntaxError } from './scopes';
import { type AuthContext, type DidResolution, type DidResolver, IDP_ROLES, type IdpRole, type Role } from './types';

export type TokenAlgorithm = 'ES256' | 'RS256';
export const TOKEN_ALGORITHMS: readonly TokenAlgorithm[] = ['ES256', 'RS256'];
/** DESIGN.md §3: a DID token is valid for at most 5 minutes. */
export const MAX_DID_TOKEN_LIFETIME_SEC = 300;
/** Longest Authorization header accepted (a JWT with a few scopes is well under 2 KB). */
export const MAX_AUTHORIZATION_LENGTH = 8192;

export interface IdpKey {
  /** When set, only tokens whose header `kid` equals it are checked against this key. */
  readonly kid?: string;
  /** A public key: EC P-256 (ES256) or RSA of at least 2048 bits (RS256). */
  readonly key: KeyObject;
}

export interface IdpOptions {
  /** The `iss` of the identity provider's tokens. */
  readonly issuer: string;
  /** The `aud` its tokens must carry for this gateway. */
  readonly audience: string;
  readonly keys: readonly IdpKey[];
}

export interface TokenVerifierOptions {
  /** This gateway's public FHIR base URL: the `aud` of DID tokens (a trailing `/` is tolerated). */
  readonly audience: string;
  /** This gateway's MSP id: the organization of IdP-token callers. */
  readonly mspId?: string;
  /** Identity-provider tokens are refused when absent. */
  readonly idp?: IdpOptions;
  /** `hdx.identity:Resolve` on the ledger; DID tokens are refused when absent. */
  readonly resolveDid?: DidResolver;
  /** Where DID-token `jti`s are recorded (SqliteJtiStore in the gateway); required with resolveDid. */
  readonly jtiStore?: JtiStore;
  /** Signing algorithms accepted (default ES256 and RS256). DID tokens need ES256. */
  readonly algorithms?: readonly TokenAlgorithm[];
  /** Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (default 30, at most 300). */
  readonly clockToleranceSec?: number;
  /** Clock in milliseconds since the epoch (tests). */
  readonly now?: () => number;
}

const DEFAULT_CLOCK_TOLERANCE_SEC = 30;
const B64URL = /^[A-Za-z0-9_-]+$/;
const PURPOSE_OF_USE = /^[A-Z]{2,20}$/;
const MAX_CLAIM_LENGTH = 256;
const MAX_BREAK_GLASS_REASON = 1000;
/** DID kinds that act for a person: they may not claim `system/` scopes in a self-signed token. */
const PERSON_KINDS = new Set<string>(['patient', 'practitioner', 'auditor']);

/**
 * Checks options once, at start (authenticate() calls it): throws an Error naming what is wrong.
 * verifyBearerToken does not repeat these checks.
 */
export function assertTokenVerifierOptions(opts: TokenVerifierOptions): void {
  if (!/^https?:\/\/[^/]+/.test(opts.audience)) throw new Error('auth: audience must be the gateway FHIR base URL (http(s)://host/fhir)');
  const algorithms = opts.algorithms ?? TOKEN_ALGORITHMS;
  if (algorithms.length === 0 || algorithms.some((a) => !TOKEN_ALGORITHMS.includes(a))) throw new Error('auth: algorithms must be a non-empty list of ES256 and RS256');
  const tolerance = opts.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC;
  if (!Number.isInteger(tolerance) || tolerance < 0 || tolerance > 300) throw new Error('auth: clockToleranceSec must be an integer from 0 to 300');
  if (opts.resolveDid && !opts.jtiStore) throw new Error('auth: DID tokens need a jtiStore (replay protection)');
  if (opts.resolveDid && !algorithms.includes('ES256')) throw new Error('auth: DID tokens need ES256 among the algorithms');
  if (!opts.resolveDid && !opts.idp) throw new Error('auth: configure an identity provider (idp), DID tokens (resolveDid) or both');
  if (opts.idp) {
    if (opts.idp.issuer.length === 0) throw new Error('auth: idp.issuer must not be empty');
    if (opts.idp.audience.length === 0) throw new Error('auth: idp.audience must not be empty');
    if (opts.idp.keys.length === 0) throw new Error('auth: idp.keys must hold at least one public key');
    opts.idp.keys.forEach((k, i) => {
      const alg = algorithmOfKey(k.key);
      if (!alg) throw new Error(`auth: idp.keys[${i}] must be a public EC P-256 or RSA (2048 bits or more) key`);
      if (!algorithms.includes(alg)) throw new Error(`auth: idp.keys[${i}] needs ${alg}, which is not among the accepted algorithms`);
    });
  }
}

/** ES256 for a P-256 public key, RS256 for an RSA public key of 2048 bits or more, else undefined. */
export function algorithmOfKey(key: KeyObject): TokenAlgorithm | undefined {
  if (key.type !== 'public') return undefined;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'RS256';
  return undefined;
}

/**
 * Reads identity-provider public keys from text: PEM (one or more PUBLIC KEY or CERTIFICATE blocks),
 * a JWK, or a JWK Set (`{"keys": [...]}`; each key's `kid` is kept). Private keys are refused.
 */
export function idpKeysFromText(text: string): IdpKey[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new Error('auth: the identity provider keys are neither PEM nor valid JSON (JWK or JWK Set)');
    }
    const set = parsed as { keys?: unknown };
    const jwks: unknown[] = Array.isArray(set.keys) ? set.keys : [parsed];
    return jwks.map((jwk, i) => {
      if (typeof jwk !== 'object' || jwk === null) throw new Error(`auth: identity provider JWK ${i + 1} is not an object`);
      const record = jwk as Record<string, unknown>;
      if ('d' in record || 'p' in record) throw new Error(`auth: identity provider JWK ${i + 1} is a private key; configure the public key only`);
      let key: KeyObject;
      try {
        key = createPublicKey({ key: record as JsonWebKey, format: 'jwk' });
      } catch {
        throw new Error(`auth: identity provider JWK ${i + 1} is not a valid public key`);
      }
      return typeof record.kid === 'string' ? { kid: record.kid, key } : { key };
    });
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) throw new Error('auth: the identity provider PEM holds a private key; configure the public key only');
  const blocks = trimmed.match(/-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----[\s\S]+?-----END \1-----/g) ?? [];
  if (blocks.length === 0) throw new Error('auth: no PUBLIC KEY or CERTIFICATE block found in the identity provider PEM');
  return blocks.map((block, i) => {
    try {
      return { key: createPublicKey(block) };
    } catch {
      throw new Error(`auth: identity provider PEM block ${i + 1} is not a valid public key or certificate`);
    }
  });
}

interface DecodedHeader {
  alg?: unknown;
  kid?: unknown;
  crit?: unknown;
}

/** The token of an `Authorization: Bearer <token>` header. */
function bearerTokenOf(authorization: string | undefined): string {
  if (authorization === undefined || authorization.trim() === '') {
    throw new AuthenticationError('Authentication required: send Authorization: Bearer <token> (a DID token from `hdx token` or a token from your identity provider)', null);
  }
  if (authorization.length > MAX_AUTHORIZATION_LENGTH) throw new AuthenticationError('The Authorization header is too long', 'invalid_request');
  const m = /^Bearer +([^ ]+) *$/i.exec(authorization);
  if (!m?.[1]) throw new AuthenticationError('The Authorization header must be: Bearer <token>', 'invalid_request');
  return m[1];
}

/** The JOSE header of a compact JWT, before any verification (used only to pick the key). */
function headerOf(token: string): DecodedHeader {
  const parts = token.split('.');
  const [h, p, s] = parts;
  if (parts.length !== 3 || !h || !p || s === undefined || !B64URL.test(h) || !B64URL.test(p) || (s !== '' && !B64URL.test(s))) {
    throw unauthenticated('The bearer token is not a compact JWT (three base64url parts)');
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  } catch {
    throw unauthenticated('The bearer token header is not base64url JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw unauthenticated('The bearer token header is not a JSON object');
  const decoded = header as DecodedHeader;
  if (decoded.alg === 'none' || s === '') throw unauthenticated('Unsigned tokens (alg none) are refused');
  return decoded;
}

/**
 * Verifies the bearer token of an Authorization header and returns who is calling. Throws an
 * AuthenticationError (UNAUTHENTICATED, 401) for a missing, malformed, unsigned, wrongly signed,
 * misaddressed, expired, not yet valid, over-long-lived or replayed token; ledger failures while
 * resolving a DID are passed on as they are.
 */
export async function verifyBearerToken(authorizationHeader: string | undefined, opts: TokenVerifierOptions): Promise<AuthContext> {
  const token = bearerTokenOf(authorizationHeader);
  const header = headerOf(token);
  const algorithms = opts.algorithms ?? TOKEN_ALGORITHMS;
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg as TokenAlgorithm)) {
    throw unauthenticated(`The token signing algorithm is not accepted (accepted: ${algorithms.join(', ')})`);
  }
  if (header.crit !== undefined) throw unauthenticated('Tokens with critical header parameters (crit) are not supported');
  const alg = header.alg as TokenAlgorithm;
  if (typeof header.kid === 'string' && header.kid.startsWith('did:')) return verifyDidToken(token, alg, header.kid, opts);
  return verifyIdpToken(token, alg, header.kid, opts);
}

function clockOf(opts: TokenVerifierOptions): { nowSec: number; tolerance: number } {
  return { nowSec: Math.floor((opts.now?.() ?? Date.now()) / 1000), tolerance: opts.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC };
}

/** The audience and the same with or without a trailing slash. */
function audiencesOf(audience: string): [string, string] {
  return audience.endsWith('/') ? [audience, audience.replace(/\/+$/, '')] : [audience, `${audience}/`];
}

type JwtPayload = Record<string, unknown>;

/** jsonwebtoken's verify with an explicit single-algorithm allow-list; its errors become PHI-free 401s. */
function jwtVerify(token: string, key: KeyObject, alg: TokenAlgorithm, options: { audience: string; issuer?: string; subject?: string; kind: 'DID' | 'identity provider' }, opts: TokenVerifierOptions): JwtPayload {
  const { nowSec, tolerance } = clockOf(opts);
  let payload: unknown;
  try {
    payload = jwt.verify(token, key, {
      algorithms: [alg],
      audience: audiencesOf(options.audience),
      ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
      ...(options.subject !== undefined ? { subject: options.subject } : {}),
      clockTolerance: tolerance,
      clockTimestamp: nowSec,
    });
  } catch (err) {
    throw jwtErrorToOutcome(err, options);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw unauthenticated('The token payload is not a JSON object');
  return payload as JwtPayload;
}

function jwtErrorToOutcome(err: unknown, options: { audience: string; kind: 'DID' | 'identity provider' }): AuthenticationError {
  if (err instanceof jwt.TokenExpiredError) return unauthenticated('The token has expired');
  if (err instanceof jwt.NotBeforeError) return unauthenticated('The token is not valid yet (nbf is in the future)');
  if (err instanceof SyntaxError) return unauthenticated('The bearer token payload is not base64url JSON');
  const message = err instanceof Error ? err.message : '';
  if (message === 'invalid signature') return unauthenticated('The token signature does not verify');
  if (message.startsWith('jwt audience invalid')) return unauthenticated(`The token is not meant for this gateway: its aud must be ${options.audience}`);
  if (message.startsWith('jwt issuer invalid')) {
    return unauthenticated(options.kind === 'DID' ? "A DID token's iss must be the DID of its kid" : 'The token issuer is not the configured identity provider');
  }
  if (message.startsWith('jwt subject invalid')) return unauthenticated("A DID token's sub must be the DID of its kid");
  if (message === 'invalid exp value' || message === 'invalid nbf value') return unauthenticated('The token exp and nbf must be numbers of seconds');
  if (message === 'invalid algorithm') return unauthenticated('The token signing algorithm is not accepted');
  if (message === 'jwt malformed' || message === 'invalid token' || message === 'jwt signature is required') {
    return unauthenticated('The bearer token is not a well-formed signed JWT');
  }
  return unauthenticated('The token could not be verified');
}

function requireSeconds(payload: JwtPayload, claim: 'iat' | 'exp', kind: string): number {
  const value = payload[claim];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw unauthenticated(`${kind} must carry ${claim} as whole seconds since the epoch`);
  return value;
}

function optionalString(payload: JwtPayload, claim: string, max = MAX_CLAIM_LENGTH): string | undefined {
  const value = payload[claim];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw unauthenticated(`The token ${claim} claim must be a string of 1 to ${max} characters`);
  return value;
}

interface CommonClaims {
  scopes: Scope[];
  purposeOfUse?: string;
  breakGlassReason?: string;
}

/** scope, purpose_of_use and break_glass_reason, as both token kinds carry them. */
function commonClaims(payload: JwtPayload): CommonClaims {
  const scope = payload.scope;
  if (scope !== undefined && typeof scope !== 'string') throw unauthenticated('The token scope claim must be a space-separated string');
  let scopes: Scope[] = [];
  try {
    scopes = parseScopes(scope ?? '').scopes;
  } catch (err) {
    if (err instanceof ScopeSyntaxError) throw unauthenticated(`The token scope claim is not valid: ${err.message}`);
    throw err;
  }
  const purposeOfUse = optionalString(payload, 'purpose_of_use', 20);
  if (purposeOfUse !== undefined && !PURPOSE_OF_USE.test(purposeOfUse)) throw unauthenticated('The token purpose_of_use must be an HL7 v3 PurposeOfUse code (e.g. TREAT, ETREAT, HRESCH)');
  const breakGlassReason = optionalString(payload, 'break_glass_reason', MAX_BREAK_GLASS_REASON);
  if (breakGlassReason !== undefined && purposeOfUse !== 'ETREAT') throw unauthenticated('The token break_glass_reason is only allowed with purpose_of_use ETREAT');
  return {
    scopes,
    ...(purposeOfUse !== undefined ? { purposeOfUse } : {}),
    ...(breakGlassReason !== undefined ? { breakGlassReason } : {}),
  };
}

/** A ledger NOT_FOUND from the resolver means "not registered"; other failures pass through. */
async function resolve(resolveDid: DidResolver, did: string): Promise<DidResolution | undefined> {
  try {
    return await resolveDid(did);
  } catch (err) {
    if (err instanceof OperationOutcomeError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/** The key a DID token's kid names: a current verification method, listed for authentication or assertion. */
function keyOfDid(resolution: DidResolution, did: string, kid: string): KeyObject {
  const doc = resolution.didDocument as Partial<DidResolution['didDocument']> | undefined;
  if (!doc || doc.id !== did || !Array.isArray(doc.verificationMethod)) {
    throw new OperationOutcomeError('INTERNAL', 'The ledger returned a DID resolution this gateway cannot read');
  }
  if (resolution.didDocumentMetadata?.deactivated !== false || resolution.hdx?.status !== 'active') throw unauthenticated("The token's DID is deactivated");
  const listed = (list: unknown): boolean => Array.isArray(list) && list.includes(kid);
  const method = doc.verificationMethod.find((m) => m.id === kid);
  if (!method || !(listed(doc.authentication) || listed(doc.assertionMethod))) throw unauthenticated("The token's kid is not a current key of its DID");
  try {
    return createPublicKey({ key: { ...toP256PublicJwk(method.publicKeyJwk) }, format: 'jwk' });
  } catch {
    throw unauthenticated("The key the token's kid names is not a P-256 key");
  }
}

async function verifyDidToken(token: string, alg: TokenAlgorithm, kid: string, opts: TokenVerifierOptions): Promise<AuthContext> {
  const { resolveDid, jtiStore } = opts;
  if (!resolveDid || !jtiStore) throw unauthenticated('DID-signed tokens are not accepted by this gateway');
  if (!HDX_DID_URL.test(kid)) throw unauthenticated("A DID token's kid must be a DID URL: did:hdx:<thumbprint>#key-<n>");
  if (alg !== 'ES256') throw unauthenticated('A DID token must be signed with ES256');
  const { did } = splitDidUrl(kid);
  const resolution = await resolve(resolveDid, did);
  if (!resolution) throw unauthenticated("The token's DID is not registered on the ledger");
  const key = keyOfDid(resolution, did, kid);
  const payload = jwtVerify(token, key, 'ES256', { audience: opts.audience, issuer: did, subject: did, kind: 'DID' }, opts);

  const iat = requireSeconds(payload, 'iat', 'A DID token');
  const exp = requireSeconds(payload, 'exp', 'A DID token');
  const { nowSec, tolerance } = clockOf(opts);
  if (exp <= iat || exp - iat > MAX_DID_TOKEN_LIFETIME_SEC) throw unauthenticated(`A DID token may be valid for at most ${MAX_DID_TOKEN_LIFETIME_SEC} seconds (exp - iat)`);
  if (iat > nowSec + tolerance) throw unauthenticated('The token iat is in the future: check the clock of the machine that made it');
  const jti = optionalString(payload, 'jti');
  if (jti === undefined) throw unauthenticated('A DID token must carry a jti (a unique id per token)');
  const claims = commonClaims(payload);
  const role: Role = resolution.hdx.kind;
  if (PERSON_KINDS.has(role) && claims.scopes.some((s) => s.context === 'system')) {
    throw unauthenticated(`A ${role} DID token may not carry system/ scopes (use patient/ or user/ scopes)`);
  }
  // A member organization's gateway may act for one of its users (cross-member exchange): the token is
  // signed by the organization's DID and names the user in hdx_user. Access is then decided for that
  // user and organization (the chaincode also checks that the user's DID belongs to the organization).
  const onBehalfOf = optionalString(payload, 'hdx_user');
  if (onBehalfOf !== undefined) {
    if (role !== 'organization') throw unauthenticated('Only an organization DID may act for a user (hdx_user)');
    if (!HDX_DID.test(onBehalfOf)) throw unauthenticated('The token hdx_user claim must be a did:hdx DID');
  }
  // Last, so a token refused for another reason does not use up its jti. Keyed per DID (a jti chosen
  // by one DID cannot block another's) and kept while the token could still pass the exp check.
  if (jtiStore.seen(`${did} ${jti}`, exp + tolerance)) throw unauthenticated('The token was already used (jti replay): make a new token for each request');
  return {
    subject: did,
    did: onBehalfOf ?? did,
    role,
    organization: resolution.hdx.organization,
    ...(onBehalfOf !== undefined ? { viaOrganization: did } : {}),
    ...claims,
    tokenKind: 'did',
    jti,
    expiresAt: exp,
  };
}

async function verifyIdpToken(token: string, alg: TokenAlgorithm, kid: unknown, opts: TokenVerifierOptions): Promise<AuthContext> {
  const { idp } = opts;
  if (!idp) throw unauthenticated('Only DID-signed tokens are accepted by this gateway (header kid must be a DID URL)');
  if (kid !== undefined && typeof kid !== 'string') throw unauthenticated('The token header kid must be a string');
  const byKid = kid === undefined ? idp.keys : idp.keys.filter((k) => k.kid === kid);
  const candidates = (byKid.length > 0 ? byKid : idp.keys.filter((k) => k.kid === undefined)).filter((k) => algorithmOfKey(k.key) === alg);
  if (candidates.length === 0) throw unauthenticated('The token names no key of the configured identity provider for its kid and algorithm');

  let payload: JwtPayload | undefined;
  let lastError: AuthenticationError | undefined;
  for (const candidate of candidates) {
    try {
      payload = jwtVerify(token, candidate.key, alg, { audience: idp.audience, issuer: idp.issuer, kind: 'identity provider' }, opts);
      break;
    } catch (err) {
      // Another key of the IdP may have signed it (key rollover): only a bad signature moves on.
      if (err instanceof AuthenticationError && err.message === 'The token signature does not verify') lastError = err;
      else throw err;
    }
  }
  if (!payload) throw lastError ?? unauthenticated('The token signature does not verify');

  const exp = requireSeconds(payload, 'exp', 'An identity provider token');
  const subject = optionalString(payload, 'sub');
  if (subject === undefined) throw unauthenticated('An identity provider token must carry sub');
  const role = payload.role;
  if (typeof role !== 'string' || !(IDP_ROLES as readonly string[]).includes(role)) {
    throw unauthenticated(`The token role claim must be one of ${IDP_ROLES.join(', ')}`);
  }
  const hdxDid = optionalString(payload, 'hdx_did');
  const plainDid = optionalString(payload, 'did');
  if (hdxDid !== undefined && plainDid !== undefined && hdxDid !== plainDid) throw unauthenticated('The token hdx_did and did claims disagree');
  const did = hdxDid ?? plainDid;
  if (did !== undefined && !HDX_DID.test(did)) throw unauthenticated('The token hdx_did claim must be a did:hdx DID');
  const jti = optionalString(payload, 'jti');
  return {
    subject,
    ...(did !== undefined ? { did } : {}),
    role: role as IdpRole,
    ...(opts.mspId !== undefined ? { organization: opts.mspId } : {}),
    ...commonClaims(payload),
    tokenKind: 'idp',
    ...(jti !== undefined ? { jti } : {}),
    expiresAt: exp,
  };
}
