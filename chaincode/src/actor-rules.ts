/**
 * Who may ask for what, by the actor's REGISTERED identity: how the actor was authenticated
 * (`actorAuth`), which purposes of use each DID kind may claim, and which consent action a read is.
 * Pure data and functions: the chaincode evaluator and the gateway import the same table
 * (`PURPOSES_BY_KIND`, `purposeAllowed`) from `@hdx/chaincode`. Documented in chaincode/README.md.
 */
import type { ConsentAction } from './consent-model';
import type { DidKind } from './identity-model';

/**
 * How the actor was authenticated:
 * - `did`: the actor signed its own DID token, verified by the custodian gateway;
 * - `idp`: vouched for by the identity provider of the submitting organization (then
 *   actorOrganization must be the submitting MSP);
 * - `delegated`: a member organization (actorOrganization) acts for one of its own practitioners.
 * An absent `actorAuth` is `delegated` (fail safe: the weakest claim).
 */
export const ACTOR_AUTHS = ['did', 'idp', 'delegated'] as const;
export type ActorAuth = (typeof ACTOR_AUTHS)[number];
export const DEFAULT_ACTOR_AUTH: ActorAuth = 'delegated';

/** Purposes a patient (or a guardian, also a patient DID) acts under. */
export const PATIENT_PURPOSES = ['PATRQT', 'FAMRQT'] as const;
/** Purposes of an auditor DID. */
export const AUDITOR_PURPOSES = ['HCOMPL', 'HOPERAT', 'HLEGAL', 'PUBHLTH'] as const;

/**
 * Purposes of use per DID kind: `only` lists the allowed codes, `except` the refused ones (every other
 * HL7 v3 PurposeOfUse code is allowed).
 */
export type PurposeRule = { readonly only: readonly string[] } | { readonly except: readonly string[] };

export const PURPOSES_BY_KIND: Readonly<Record<DidKind, PurposeRule>> = Object.freeze({
  patient: { only: PATIENT_PURPOSES },
  practitioner: { except: PATIENT_PURPOSES },
  device: { except: ['ETREAT', ...PATIENT_PURPOSES] },
  system: { except: ['ETREAT', ...PATIENT_PURPOSES] },
  auditor: { only: AUDITOR_PURPOSES },
  organization: { only: [] },
});

/** Whether an actor of `kind` may claim `purpose` for patient data (an unknown kind may claim nothing). */
export function purposeAllowed(kind: DidKind | string, purpose: string): boolean {
  const rule = Object.prototype.hasOwnProperty.call(PURPOSES_BY_KIND, kind) ? PURPOSES_BY_KIND[kind as DidKind] : undefined;
  if (!rule) {
    return false;
  }
  return 'only' in rule ? rule.only.includes(purpose) : !rule.except.includes(purpose);
}

/** Kinds the custodian-treatment default applies to (TREAT by the custodian's own users). */
export const CUSTODIAN_TREATMENT_KINDS: readonly DidKind[] = ['practitioner', 'system'];
/** Kinds that may break the glass (ETREAT). */
export const BREAK_GLASS_KINDS: readonly DidKind[] = ['practitioner'];
/**
 * Kinds a consent provision naming an ORGANIZATION (by MSP id or organization DID) covers: its staff and
 * its systems. A patient (or an auditor) registered by that organization is not "the organization":
 * "permit Hospital2" lets Hospital2's practitioners in, never Hospital2's other patients.
 */
export const ORGANIZATION_ACTOR_KINDS: readonly DidKind[] = ['practitioner', 'system', 'device'];
/** Kinds an organization may act for (actorAuth `delegated`). */
export const DELEGABLE_KINDS: readonly DidKind[] = ['practitioner'];

/**
 * The consent action of a read: `access` by the custodian's own users, `disclose` when another
 * member's user asks. A stated action is kept only for the custodian's own users; a cross-organization
 * request is always `disclose` (so a gateway cannot dodge a "deny disclose" by stating `access`).
 */
export function effectiveAction(stated: ConsentAction | undefined, actorOrganization: string, custodian: string): ConsentAction {
  if (actorOrganization !== custodian) {
    return 'disclose';
  }
  return stated ?? 'access';
}

/**
 * The provision action codes that cover a request action: `access` is covered by `access` or `use`;
 * `disclose` by `disclose` or `access`; the others only by themselves.
 */
export const ACTIONS_COVERING: Readonly<Record<ConsentAction, readonly ConsentAction[]>> = Object.freeze({
  access: ['access', 'use'],
  disclose: ['disclose', 'access'],
  use: ['use'],
  collect: ['collect'],
  correct: ['correct'],
});

export function actionCovers(provisionAction: string, requested: ConsentAction): boolean {
  return (ACTIONS_COVERING[requested] as readonly string[]).includes(provisionAction);
}
