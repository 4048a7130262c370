import type { DidKind } from '@hdx/chaincode';
import type { DidResolution } from '../ledger/did-resolution';

export type { DidResolution } from '../ledger/did-resolution';
import type { Scope } from './scopes';

/** Roles an identity provider may assert (`role` claim). */
export const IDP_ROLES = ['patient', 'practitioner', 'auditor', 'admin', 'system'] as const;
export type IdpRole = (typeof IDP_ROLES)[number];

/** The caller's role: an IdP role, or the kind of a DID (patient, practitioner, auditor, system, organization, device). */
export type Role = IdpRole | DidKind;

/** How the caller was authenticated (CONTRACT.md, "Caller authentication"). */
export type ActorAuth = 'did' | 'idp' | 'delegated';

/** Who is calling, as established from a verified bearer token. Never holds the token itself. */
export interface AuthContext {
  /** IdP tokens: the `sub` claim; DID tokens: the DID. */
  readonly subject: string;
  /** The caller's DID: the signer of a DID token, or the IdP's `hdx_did` (or `did`) claim. */
  readonly did?: string;
  readonly role: Role;
  /** MSP id: the DID's organization on the ledger, or this gateway's own MSP for IdP tokens. */
  readonly organization?: string;
  readonly scopes: Scope[];
  /** HL7 v3 PurposeOfUse code (TREAT, ETREAT, HRESCH, …). */
  readonly purposeOfUse?: string;
  /** Free text given with ETREAT. May hold PHI: never log it. */
  readonly breakGlassReason?: string;
  readonly tokenKind: 'idp' | 'did';
  /**
   * How the actor (`did`, else `subject`) was authenticated (CONTRACT.md, actorAuth):
   * `did` the actor signed its own DID token; `idp` this gateway's identity provider vouches for it;
   * `delegated` a member organization (signing with its organization DID) acts for one of its own
   * active practitioners.
   */
  readonly actorAuth: ActorAuth;
  /** The ledger-registered kind of `did` (absent when there is no `did`). */
  readonly didKind?: DidKind;
  /** Set when a member organization's gateway acts for one of its users: the organization's DID (the signer); `did` is then the user's. */
  readonly viaOrganization?: string;
  readonly jti?: string;
  /** The token's `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
}

/**
 * Resolves a DID on the ledger (`hdx.identity:Resolve`): undefined when it is not registered.
 * Ledger failures should be thrown as OperationOutcomeErrors (UNAVAILABLE, TIMEOUT): they are passed on
 * as they are, not turned into 401s.
 */
export type DidResolver = (did: string) => Promise<DidResolution | undefined>;
