/**
 * Bearer token verification (DESIGN.md §3, §4), on `jose` (jwtVerify with a one-algorithm allow-list).
 * Two kinds of JWT are accepted:
 *
 * - DID tokens, self-signed with a key of a DID registered on the ledger: header `typ` JWT and `kid` =
 *   DID URL, ES256, `iss` = `sub` = the DID, `aud` = this gateway's FHIR base URL, `iat`, `exp` at most
 *   5 minutes after `iat`, a `jti` used once, `scope`, `purpose_of_use`. The DID must be active
 *   (deactivated and suspended DIDs are refused). actorAuth `did`, didKind = its registered kind.
 *   The signature is checked against a cached key (DidResolutionCache, 30 s) before any ledger call
 *   when the DID was resolved recently; a status change is seen within that TTL.
 * - Delegated DID tokens: an organization DID's token with `hdx_user` = an ACTIVE practitioner DID
 *   registered by the same organization (review #1). actorAuth `delegated`, role practitioner.
 * - Identity-provider tokens: signed by one of the configured IdP keys (ES256 for P-256 keys, RS256
 *   for RSA keys), `iss` = the IdP, `aud` = the configured audience, `sub`, `role`, `iat`, `exp` at
 *   most IdpOptions.maxLifetimeSec (default 3600 s) after `iat`, `scope`, `purpose_of_use`, optional
 *   `hdx_did` (or `did`) and `break_glass_reason`. A `hdx_did` must be an active DID of this gateway's
 *   MSP whose kind fits the role, and match its subject link if it has one (review #6, #17). These are
 *   access tokens, reusable until `exp`: their `jti` is not checked for replay. actorAuth `idp`.
 *
 * Every failure is a 401 AuthenticationError whose message names the rule that failed and never
 * repeats anything from the token.
 */
import { createHmac, createPublicKey, type JsonWebKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import type { DidKind } from '@hdx/chaincode';
import { errors as joseErrors, jwtVerify } from 'jose';
import { OperationOutcomeError } from '../errors';
import { assertDidCacheOptions, type DidCacheOptions, DidResolutionCache, resolveOrUndefined } from './did-cache';
import { HDX_DID, HDX_DID_URL, splitDidUrl, toP256PublicJwk } from './did-key';
import { AuthenticationError, unauthenticated } from './errors';
import type { JtiStore } from './replay';
import { parseScopes, type Scope, ScopeSyntaxError } from './scopes';
import { type AuthContext, type DidResolution, type DidResolver, IDP_ROLES, type IdpRole } from './types';

export type TokenAlgorithm = 'ES256' | 'RS256';
export const TOKEN_ALGORITHMS: readonly TokenAlgorithm[] = ['ES256', 'RS256'];
/** DESIGN.md §3: a DID token is valid for at most 5 minutes. */
export const MAX_DID_TOKEN_LIFETIME_SEC = 300;
/** Longest lifetime (exp - iat) of an identity-provider token unless IdpOptions.maxLifetimeSec says otherwise. */
export const MAX_IDP_TOKEN_LIFETIME_SEC = 3600;
/** The JOSE header `typ` of DID tokens (RFC 8725 §3.11 explicit typing; signDidToken sets it). */
export const DID_TOKEN_TYP = 'JWT';
/** A kid the cached DID document does not list re-reads the DID from the ledger at most this often (ms). */
export const KID_REFRESH_FLOOR_MS = 5_000;
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
  /** Longest token lifetime accepted, exp - iat, in seconds (default MAX_IDP_TOKEN_LIFETIME_SEC = 3600). `iat` is required. */
  readonly maxLifetimeSec?: number;
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
  /**
   * The cache of DID resolutions (one per resolveDid function): options, or false for none. Default
   * 30 s / 10 000 DIDs, 5 s for unknown DIDs: a deactivation or suspension is seen within ttlMs.
   */
  readonly didCache?: DidCacheOptions | false;
  /** The secret of subjectLink(): needed to accept an IdP token whose hdx_did DID carries a subject link. At least 32 bytes. */
  readonly subjectLinkSecret?: Buffer;
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
  if (opts.didCache) assertDidCacheOptions(opts.didCache);
  if (opts.subjectLinkSecret !== undefined && (!Buffer.isBuffer(opts.subjectLinkSecret) || opts.subjectLinkSecret.length < 32)) {
    throw new Error('auth: subjectLinkSecret must be a Buffer of at least 32 bytes');
  }
  if (opts.idp) {
    const max = opts.idp.maxLifetimeSec ?? MAX_IDP_TOKEN_LIFETIME_SEC;
    if (!Number.isInteger(max) || max < 1 || max > 86_400) throw new Error('auth: idp.maxLifetimeSec must be an integer from 1 to 86400');
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

/** jose's jwtVerify with an explicit single-algorithm allow-list; its errors become PHI-free 401s. */
async function verifyJwt(
  token: string,
  key: KeyObject,
  alg: TokenAlgorithm,
  options: { audience: string; issuer?: string; subject?: string; typ?: string; kind: 'DID' | 'identity provider' },
  opts: TokenVerifierOptions,
): Promise<JwtPayload> {
  const { nowSec, tolerance } = clockOf(opts);
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [alg],
      audience: audiencesOf(options.audience),
      ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
      ...(options.subject !== undefined ? { subject: options.subject } : {}),
      ...(options.typ !== undefined ? { typ: options.typ } : {}),
      clockTolerance: tolerance,
      currentDate: new Date(nowSec * 1000),
    });
    return payload as JwtPayload;
  } catch (err) {
    throw joseErrorToOutcome(err, options);
  }
}

function joseErrorToOutcome(err: unknown, options: { audience: string; typ?: string; kind: 'DID' | 'identity provider' }): AuthenticationError {
  if (err instanceof joseErrors.JWTExpired) return unauthenticated('The token has expired');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return unauthenticated('The token signature does not verify');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthenticated('The token signing algorithm is not accepted');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return unauthenticated(`The token is not meant for this gateway: its aud must be ${options.audience}`);
      case 'iss':
        return unauthenticated(options.kind === 'DID' ? "A DID token's iss must be the DID of its kid" : 'The token issuer is not the configured identity provider');
      case 'sub':
        return unauthenticated(options.kind === 'DID' ? "A DID token's sub must be the DID of its kid" : 'The token sub is not valid');
      case 'typ':
        return unauthenticated(`A ${options.kind} token must carry the JOSE header typ ${options.typ ?? 'JWT'}`);
      case 'nbf':
        return err.reason === 'check_failed'
          ? unauthenticated('The token is not valid yet (nbf is in the future)')
          : unauthenticated('The token exp and nbf must be numbers of seconds');
      case 'exp':
      case 'iat':
        return unauthenticated(`The token ${err.claim} must be a number of seconds`);
      default:
        return unauthenticated('The token claims could not be verified');
    }
  }
  if (err instanceof joseErrors.JWTInvalid) return unauthenticated('The bearer token payload is not base64url JSON');
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JOSENotSupported) return unauthenticated('The bearer token is not a well-formed signed JWT');
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
  if (purposeOfUse !== undefined && !PURPOSE_OF_USE.test(purposeOfUse))
    throw unauthenticated('The token purpose_of_use must be an HL7 v3 PurposeOfUse code (e.g. TREAT, ETREAT, HRESCH)');
  const breakGlassReason = optionalString(payload, 'break_glass_reason', MAX_BREAK_GLASS_REASON);
  if (breakGlassReason !== undefined && purposeOfUse !== 'ETREAT') throw unauthenticated('The token break_glass_reason is only allowed with purpose_of_use ETREAT');
  return {
    scopes,
    ...(purposeOfUse !== undefined ? { purposeOfUse } : {}),
    ...(breakGlassReason !== undefined ? { breakGlassReason } : {}),
  };
}

/** The per-resolver DID cache (one per `resolveDid` function, so one per gateway), or none when disabled. */
const caches = new WeakMap<DidResolver, DidResolutionCache>();
function cacheOf(opts: TokenVerifierOptions): DidResolutionCache | undefined {
  const { resolveDid } = opts;
  if (!resolveDid || opts.didCache === false) return undefined;
  let cache = caches.get(resolveDid);
  if (!cache) {
    cache = new DidResolutionCache(resolveDid, opts.didCache ?? {});
    caches.set(resolveDid, cache);
  }
  return cache;
}

function nowMsOf(opts: TokenVerifierOptions): number {
  return opts.now?.() ?? Date.now();
}

/** A DID's resolution through the cache when there is one, else straight from the ledger. */
async function lookUp(opts: TokenVerifierOptions, resolveDid: DidResolver, did: string): Promise<DidResolution | undefined> {
  const cache = cacheOf(opts);
  return cache ? cache.resolve(did, nowMsOf(opts)) : resolveOrUndefined(resolveDid, did);
}

/** The resolution as this gateway can read it: the document of `did`; an INTERNAL error otherwise. */
function checkedDocument(resolution: DidResolution, did: string): DidResolution['didDocument'] {
  const doc = resolution.didDocument as Partial<DidResolution['didDocument']> | undefined;
  if (!doc || doc.id !== did || !Array.isArray(doc.verificationMethod) || typeof resolution.hdx?.kind !== 'string') {
    throw new OperationOutcomeError('INTERNAL', 'The ledger returned a DID resolution this gateway cannot read');
  }
  return doc as DidResolution['didDocument'];
}

/** Active: neither deactivated nor suspended. */
function isActive(resolution: DidResolution): boolean {
  return resolution.didDocumentMetadata?.deactivated === false && resolution.hdx?.status === 'active';
}

/** The key a kid names when it is a current verification method listed for authentication or assertion; else undefined. */
function currentKeyOf(resolution: DidResolution, did: string, kid: string): KeyObject | undefined {
  const doc = checkedDocument(resolution, did);
  const listed = (list: unknown): boolean => Array.isArray(list) && list.includes(kid);
  const method = doc.verificationMethod.find((m) => m.id === kid);
  if (!method || !(listed(doc.authentication) || listed(doc.assertionMethod))) return undefined;
  try {
    return createPublicKey({ key: { ...toP256PublicJwk(method.publicKeyJwk) }, format: 'jwk' });
  } catch {
    throw unauthenticated("The key the token's kid names is not a P-256 key");
  }
}

/**
 * The signer's resolution and key. A fresh cached resolution is used without a ledger call, so the
 * signature is then checked before anything reaches the ledger; a kid the cached document does not
 * list (a key rotated in since) asks the ledger again, at most once per KID_REFRESH_FLOOR_MS per DID.
 */
async function signerOf(opts: TokenVerifierOptions, resolveDid: DidResolver, did: string, kid: string): Promise<{ resolution: DidResolution; key: KeyObject }> {
  const cache = cacheOf(opts);
  const nowMs = nowMsOf(opts);
  const cached = cache?.peek(did, nowMs);
  let resolution: DidResolution | undefined;
  if (cache && cached) {
    resolution = cached.resolution;
    if (resolution && isActive(resolution) && !currentKeyOf(resolution, did, kid) && cached.ageMs >= KID_REFRESH_FLOOR_MS) resolution = await cache.refresh(did, nowMs);
  } else {
    resolution = cache ? await cache.refresh(did, nowMs) : await resolveOrUndefined(resolveDid, did);
  }
  if (!resolution) throw unauthenticated("The token's DID is not registered on the ledger");
  checkedDocument(resolution, did);
  if (!isActive(resolution)) throw unauthenticated("The token's DID is deactivated or suspended");
  const key = currentKeyOf(resolution, did, kid);
  if (!key) throw unauthenticated("The token's kid is not a current key of its DID");
  return { resolution, key };
}

const ORGANIZATION_ACTS_FOR = 'an organization may act only for its own active practitioners';

/** The practitioner an organization DID acts for (hdx_user): registered, active, a practitioner, of the signer's organization. */
async function delegatedUser(opts: TokenVerifierOptions, resolveDid: DidResolver, userDid: string, organization: string): Promise<DidResolution> {
  const user = await lookUp(opts, resolveDid, userDid);
  if (!user) throw unauthenticated(`The token hdx_user DID is not registered on the ledger: ${ORGANIZATION_ACTS_FOR}`);
  checkedDocument(user, userDid);
  if (!isActive(user)) throw unauthenticated(`The token hdx_user DID is deactivated or suspended: ${ORGANIZATION_ACTS_FOR}`);
  if (user.hdx.kind !== 'practitioner') throw unauthenticated(`The token hdx_user DID is a ${user.hdx.kind} DID: ${ORGANIZATION_ACTS_FOR}`);
  if (user.hdx.organization !== organization) throw unauthenticated(`The token hdx_user DID is registered by another organization: ${ORGANIZATION_ACTS_FOR}`);
  return user;
}

async function verifyDidToken(token: string, alg: TokenAlgorithm, kid: string, opts: TokenVerifierOptions): Promise<AuthContext> {
  const { resolveDid, jtiStore } = opts;
  if (!resolveDid || !jtiStore) throw unauthenticated('DID-signed tokens are not accepted by this gateway');
  if (!HDX_DID_URL.test(kid)) throw unauthenticated("A DID token's kid must be a DID URL: did:hdx:<thumbprint>#key-<n>");
  if (alg !== 'ES256') throw unauthenticated('A DID token must be signed with ES256');
  const { did } = splitDidUrl(kid);
  const { resolution, key } = await signerOf(opts, resolveDid, did, kid);
  const payload = await verifyJwt(token, key, 'ES256', { audience: opts.audience, issuer: did, subject: did, typ: DID_TOKEN_TYP, kind: 'DID' }, opts);

  const iat = requireSeconds(payload, 'iat', 'A DID token');
  const exp = requireSeconds(payload, 'exp', 'A DID token');
  const { nowSec, tolerance } = clockOf(opts);
  if (exp <= iat || exp - iat > MAX_DID_TOKEN_LIFETIME_SEC) throw unauthenticated(`A DID token may be valid for at most ${MAX_DID_TOKEN_LIFETIME_SEC} seconds (exp - iat)`);
  if (iat > nowSec + tolerance) throw unauthenticated('The token iat is in the future: check the clock of the machine that made it');
  const jti = optionalString(payload, 'jti');
  if (jti === undefined) throw unauthenticated('A DID token must carry a jti (a unique id per token)');
  const claims = commonClaims(payload);
  const signerKind = resolution.hdx.kind;
  const organization = resolution.hdx.organization;

  // A member organization's gateway may act for one of its own practitioners (cross-member exchange):
  // the token is signed by the organization's DID and names the user in hdx_user. Only an active
  // practitioner DID registered by that organization; patients, guardians, auditors, devices,
  // unregistered DIDs and other organizations' DIDs are refused (review #1).
  const onBehalfOf = optionalString(payload, 'hdx_user');
  let actor: Pick<AuthContext, 'did' | 'role' | 'didKind' | 'actorAuth' | 'viaOrganization'>;
  if (onBehalfOf !== undefined) {
    if (signerKind !== 'organization') throw unauthenticated('Only an organization DID may act for a user (hdx_user)');
    if (!HDX_DID.test(onBehalfOf)) throw unauthenticated('The token hdx_user claim must be a did:hdx DID');
    await delegatedUser(opts, resolveDid, onBehalfOf, organization);
    actor = { did: onBehalfOf, role: 'practitioner', didKind: 'practitioner', actorAuth: 'delegated', viaOrganization: did };
  } else {
    actor = { did, role: signerKind, didKind: signerKind, actorAuth: 'did' };
  }
  if (PERSON_KINDS.has(actor.role) && claims.scopes.some((s) => s.context === 'system')) {
    throw unauthenticated(`A ${actor.role} DID token may not carry system/ scopes (use patient/ or user/ scopes)`);
  }
  // Last, so a token refused for another reason does not use up its jti. Keyed per DID (a jti chosen
  // by one DID cannot block another's) and kept while the token could still pass the exp check.
  if (await jtiStore.seen(`${did} ${jti}`, exp + tolerance)) throw unauthenticated('The token was already used (jti replay): make a new token for each request');
  return {
    subject: did,
    did: actor.did,
    role: actor.role,
    organization,
    ...(actor.viaOrganization !== undefined ? { viaOrganization: actor.viaOrganization } : {}),
    ...claims,
    tokenKind: 'did',
    actorAuth: actor.actorAuth,
    ...(actor.didKind !== undefined ? { didKind: actor.didKind } : {}),
    jti,
    expiresAt: exp,
  };
}

/** The DID kinds an IdP role may name in hdx_did. */
const KINDS_OF_IDP_ROLE: Record<IdpRole, readonly DidKind[]> = {
  patient: ['patient'],
  practitioner: ['practitioner'],
  admin: ['practitioner'],
  auditor: ['auditor'],
  system: ['system', 'device'],
};

/**
 * The opaque link between a staff DID and the identity-provider subject it was registered for
 * (stored with the DID at registration, CONTRACT.md): base64url(HMAC-SHA-256(secret, issuer "\n" sub)).
 */
export function subjectLink(secret: Buffer, issuer: string, sub: string): string {
  return createHmac('sha256', secret).update(`${issuer}\n${sub}`, 'utf8').digest('base64url');
}

/**
 * A subject-link secret derived from the custodian's id secret (config.idSecretFile), domain-separated
 * so the two uses never share a key. Registration (POST /did, off-boarding) and verification must use
 * the same secret.
 */
export function deriveSubjectLinkSecret(idSecret: Buffer): Buffer {
  if (idSecret.length < 32) throw new Error('auth: the id secret must hold at least 32 bytes');
  return createHmac('sha256', idSecret).update('hdx subject-link v1', 'utf8').digest();
}

/** Checks the hdx_did of an IdP token (review #6, #17) and returns its registered kind. */
async function idpDidKind(opts: TokenVerifierOptions, did: string, role: IdpRole, subject: string, issuer: string): Promise<DidKind> {
  const { resolveDid, mspId } = opts;
  if (!resolveDid || mspId === undefined) throw unauthenticated('This gateway cannot check the token hdx_did claim (it has no ledger resolver or MSP id)');
  const resolution = await lookUp(opts, resolveDid, did);
  if (!resolution) throw unauthenticated('The token hdx_did DID is not registered on the ledger');
  checkedDocument(resolution, did);
  if (!isActive(resolution)) throw unauthenticated('The token hdx_did DID is deactivated or suspended');
  if (resolution.hdx.organization !== mspId) throw unauthenticated("The token hdx_did DID is registered by another organization than this gateway's");
  const kind = resolution.hdx.kind;
  if (!KINDS_OF_IDP_ROLE[role].includes(kind)) throw unauthenticated(`The token role ${role} does not match its hdx_did DID, a ${kind} DID`);
  const link = resolution.hdx.subject;
  if (link !== undefined) {
    if (!opts.subjectLinkSecret) throw unauthenticated('The token hdx_did DID is bound to an identity-provider subject, and this gateway has no subject-link secret to check it');
    const expected = Buffer.from(subjectLink(opts.subjectLinkSecret, issuer, subject), 'utf8');
    const actual = Buffer.from(String(link), 'utf8');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw unauthenticated('The token hdx_did DID is bound to another identity-provider subject');
  }
  return kind;
}

/**
 * Identity-provider tokens whose signature, audience and issuer have verified, by the exact token text
 * (one cache per IdpOptions, so per gateway): an EHR or a clinician's app sends the same access token
 * for its whole lifetime, and checking its ES256/RS256 signature was the largest cost of a read after
 * the audit record. Only what cannot change for the same bytes is skipped: the time claims (exp, nbf)
 * are checked again on every use, the key must still be one of the IdP's (a key removed from
 * HDX_IDP_PUBLIC_KEY_FILE stops its tokens at once), and everything after (role, DID, scopes, the DID's
 * status through the DID cache) runs as for a fresh token. DID tokens are never cached: each is
 * single-use (its jti is recorded).
 */
const VERIFIED_IDP_TOKENS = 10_000;
const verifiedIdpTokens = new WeakMap<IdpOptions, Map<string, { key: KeyObject; payload: JwtPayload; exp: number; nbf?: number }>>();

function verifiedIdpPayload(idp: IdpOptions, token: string, opts: TokenVerifierOptions): JwtPayload | undefined {
  const hit = verifiedIdpTokens.get(idp)?.get(token);
  if (!hit) return undefined;
  const { nowSec, tolerance } = clockOf(opts);
  if (!idp.keys.some((k) => k.key === hit.key)) return undefined;
  if (nowSec - tolerance >= hit.exp) throw unauthenticated('The token has expired');
  if (hit.nbf !== undefined && hit.nbf > nowSec + tolerance) throw unauthenticated('The token is not valid yet (nbf is in the future)');
  return hit.payload;
}

function rememberIdpPayload(idp: IdpOptions, token: string, key: KeyObject, payload: JwtPayload): void {
  const exp = payload.exp;
  const nbf = payload.nbf;
  // Only a token whose time claims are plain numbers is remembered (the rest is refused below anyway).
  if (typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) return;
  let cache = verifiedIdpTokens.get(idp);
  if (!cache) verifiedIdpTokens.set(idp, (cache = new Map()));
  if (cache.size >= VERIFIED_IDP_TOKENS) {
    // The oldest first (Map order is insertion order).
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(token, { key, payload, exp, ...(typeof nbf === 'number' ? { nbf } : {}) });
}

async function verifyIdpToken(token: string, alg: TokenAlgorithm, kid: unknown, opts: TokenVerifierOptions): Promise<AuthContext> {
  const { idp } = opts;
  if (!idp) throw unauthenticated('Only DID-signed tokens are accepted by this gateway (header kid must be a DID URL)');
  if (kid !== undefined && typeof kid !== 'string') throw unauthenticated('The token header kid must be a string');
  const byKid = kid === undefined ? idp.keys : idp.keys.filter((k) => k.kid === kid);
  const candidates = (byKid.length > 0 ? byKid : idp.keys.filter((k) => k.kid === undefined)).filter((k) => algorithmOfKey(k.key) === alg);
  if (candidates.length === 0) throw unauthenticated('The token names no key of the configured identity provider for its kid and algorithm');

  let payload = verifiedIdpPayload(idp, token, opts);
  let lastError: AuthenticationError | undefined;
  for (const candidate of payload ? [] : candidates) {
    try {
      payload = await verifyJwt(token, candidate.key, alg, { audience: idp.audience, issuer: idp.issuer, kind: 'identity provider' }, opts);
      rememberIdpPayload(idp, token, candidate.key, payload);
      break;
    } catch (err) {
      // Another key of the IdP may have signed it (key rollover): only a bad signature moves on.
      if (err instanceof AuthenticationError && err.message === 'The token signature does not verify') lastError = err;
      else throw err;
    }
  }
  if (!payload) throw lastError ?? unauthenticated('The token signature does not verify');

  const exp = requireSeconds(payload, 'exp', 'An identity provider token');
  const iat = requireSeconds(payload, 'iat', 'An identity provider token');
  const maxLifetime = idp.maxLifetimeSec ?? MAX_IDP_TOKEN_LIFETIME_SEC;
  const { nowSec, tolerance } = clockOf(opts);
  if (exp <= iat || exp - iat > maxLifetime) throw unauthenticated(`An identity provider token may be valid for at most ${maxLifetime} seconds (exp - iat)`);
  if (iat > nowSec + tolerance) throw unauthenticated('The token iat is in the future');
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
  const claims = commonClaims(payload);
  const jti = optionalString(payload, 'jti');
  const didKind = did !== undefined ? await idpDidKind(opts, did, role as IdpRole, subject, idp.issuer) : undefined;
  return {
    subject,
    ...(did !== undefined ? { did } : {}),
    role: role as IdpRole,
    ...(opts.mspId !== undefined ? { organization: opts.mspId } : {}),
    ...claims,
    tokenKind: 'idp',
    actorAuth: 'idp',
    ...(didKind !== undefined ? { didKind } : {}),
    ...(jti !== undefined ? { jti } : {}),
    expiresAt: exp,
  };
}
