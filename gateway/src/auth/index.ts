/** The gateway's authentication: bearer tokens (IdP or DID-signed), SMART scopes, replay protection. */
export { authenticate, requireAuth } from './middleware';
export {
  algorithmOfKey,
  assertTokenVerifierOptions,
  idpKeysFromText,
  type IdpKey,
  type IdpOptions,
  deriveSubjectLinkSecret,
  DID_TOKEN_TYP,
  MAX_DID_TOKEN_LIFETIME_SEC,
  MAX_IDP_TOKEN_LIFETIME_SEC,
  subjectLink,
  TOKEN_ALGORITHMS,
  type TokenAlgorithm,
  type TokenVerifierOptions,
  verifyBearerToken,
} from './token';
export { AuthenticationError, InsufficientScopeError, wwwAuthenticateOf } from './errors';
export {
  grantingScope,
  hasScope,
  parseScope,
  parseScopes,
  type ParsedScopes,
  type Permission,
  requireScope,
  type Scope,
  type ScopeAction,
  type ScopeContext,
  ScopeSyntaxError,
} from './scopes';
export { type DidCacheOptions, DidResolutionCache } from './did-cache';
export { type JtiStore, MemoryJtiStore, SqliteJtiStore } from './replay';
export { type ActorAuth, type AuthContext, type DidResolution, type DidResolver, IDP_ROLES, type IdpRole, type Role } from './types';
export { didOf, generateDidKey, jwkThumbprint, type P256PrivateJwk, type P256PublicJwk, signCompactJws } from './did-key';
export { deactivationRequest, registrationRequest, rotationRequest, signConsent, signDidToken, signIdpToken } from './issue';
