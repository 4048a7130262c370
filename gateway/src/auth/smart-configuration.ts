/**
 * SMART App Launch 2.x discovery (`/.well-known/smart-configuration`), true to what this gateway does:
 * it is a resource server only. It issues no tokens and runs no authorization endpoint, so it names none
 * (no grant types, no PKCE methods, no launch capabilities). What it accepts is said in the `hdx_*`
 * fields (SMART allows further fields): tokens of this organization's identity provider (its `iss`),
 * DID tokens self-signed by a DID registered on the ledger (`aud` = this FHIR base URL), and a member
 * organization's DID token acting for one of its practitioners (`hdx_user`). See token.ts.
 */
import { TOKEN_ALGORITHMS } from './token';

export interface SmartConfigurationOptions {
  /** This gateway's FHIR base URL: the audience of DID tokens. */
  readonly baseUrl: string;
  /** `iss` of this organization's identity provider (HDX_IDP_ISSUER), when one is configured. */
  readonly idpIssuer?: string | undefined;
}

/** Resource scopes for every type in each context: SMART v1 (read, write, *) and v2 (letters of cruds). */
const SCOPES_SUPPORTED = (['patient', 'user', 'system'] as const).flatMap((context) => ['read', 'write', '*', 'rs', 'cud', 'cruds'].map((p) => `${context}/*.${p}`));

export function smartConfiguration(opts: SmartConfigurationOptions): Record<string, unknown> {
  return {
    // Scope contexts and syntaxes the gateway enforces (scopes.ts, policy.ts). No launch, no SSO, no client kinds: it authorizes nobody.
    capabilities: ['permission-patient', 'permission-user', 'permission-v1', 'permission-v2'],
    scopes_supported: SCOPES_SUPPORTED,
    grant_types_supported: [],
    code_challenge_methods_supported: [],
    response_types_supported: [],
    hdx_token_endpoint: 'none: this gateway issues no tokens; present a token from one of hdx_accepted_tokens',
    hdx_accepted_tokens: [
      ...(opts.idpIssuer
        ? [
            {
              kind: 'identity-provider',
              issuer: opts.idpIssuer,
              audience: opts.baseUrl,
              algorithms: [...TOKEN_ALGORITHMS],
              max_lifetime_seconds: 3600,
              claims: ['iss', 'sub', 'aud', 'iat', 'exp', 'role', 'scope', 'purpose_of_use', 'hdx_did', 'break_glass_reason'],
            },
          ]
        : []),
      {
        kind: 'did',
        issuer: 'the caller’s own did:hdx DID (iss = sub = the DID), registered and active on the ledger',
        audience: opts.baseUrl,
        algorithms: ['ES256'],
        max_lifetime_seconds: 300,
        claims: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti', 'scope', 'purpose_of_use', 'break_glass_reason'],
      },
      {
        kind: 'delegated',
        issuer: "a member organization's did:hdx DID, acting for one of its active practitioners",
        audience: opts.baseUrl,
        algorithms: ['ES256'],
        max_lifetime_seconds: 300,
        claims: ['iss', 'sub', 'aud', 'iat', 'exp', 'jti', 'hdx_user', 'scope', 'purpose_of_use'],
      },
    ],
  };
}
