/**
 * Who may do what here: the one table of interactions per caller kind, and the binding of an
 * authenticated request to the caller every service decides for (Medplum's getRepoForLogin is the
 * model). Routes never decide access: they build the Caller with `bindCaller` and hand it to the
 * services, which check it here and then ask the chaincode (consent) through AccessControl.
 *
 * The chaincode applies the same kind and purpose rules again (purposeAllowed is imported from it), so
 * a gateway bug or a member organization bypassing its own gateway cannot lift them.
 */
import type { DidKind } from '@hdx/chaincode';
// The chaincode's own purpose table (actor-rules is plain data: importing it loads no contract).
import { purposeAllowed } from '@hdx/chaincode/dist/actor-rules';
import { grantingScope, type ScopeAction, requireScope } from '../auth/scopes';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';

/** What the caller is, for access decisions: an IdP role or the registered kind of its DID. */
export type CallerKind = 'patient' | 'practitioner' | 'admin' | 'auditor' | 'system' | 'device' | 'organization';

/** How the actor was authenticated (recorded with every access entry). */
export type ActorAuth = 'did' | 'idp' | 'delegated';

/** Who is asking, as established by authentication and bound to this request, and why. */
export interface Caller {
  /** The user's DID; consented access is decided for a DID, so disclosure needs one. */
  readonly did: string | undefined;
  /** MSP id of the caller's organization. */
  readonly organization: string;
  /** HL7 v3 PurposeOfUse code (TREAT, ETREAT, PATRQT, ...). */
  readonly purpose: string | undefined;
  /** Required for ETREAT (break-glass); kept off the ledger (free text). */
  readonly breakGlassReason?: string | undefined;
  /** Patient, practitioner, admin, auditor, system, device or organization. */
  readonly kind: CallerKind;
  readonly actorAuth: ActorAuth;
  /**
   * Set when the caller may only touch one patient's compartment (a patient, or a guardian acting for a
   * ward): its own DID. Every patient-data interaction is then limited to the patients this DID is, or
   * is a registered guardian of.
   */
  readonly compartmentOf?: string;
  /** True for users of this gateway's own organization (never for a delegated or other-member caller). */
  readonly local: boolean;
}

/** The interactions on patient data, as the table below names them. */
export type Interaction = 'read' | 'search' | 'create' | 'update' | 'delete' | '$erase' | '$exchange';

type Row = Readonly<{ read: boolean; write: ReadonlySet<string> | 'all' | 'none'; erase: boolean; exchange: boolean }>;

/** Resource types a patient may write in their own compartment (patient-reported data). */
export const PATIENT_WRITABLE_TYPES: ReadonlySet<string> = new Set(['Observation', 'DocumentReference']);

/**
 * The interaction table (SECURITY.md repeats it). `read` covers read, vread, history, search,
 * $everything and $verify, always subject to consent on the ledger. `write` is create, update and
 * delete, only ever for users of the custodian's own organization.
 */
export const INTERACTIONS: Readonly<Record<CallerKind, Row>> = {
  practitioner: { read: true, write: 'all', erase: false, exchange: true },
  system: { read: true, write: 'all', erase: false, exchange: false },
  device: { read: false, write: 'all', erase: false, exchange: false },
  patient: { read: true, write: PATIENT_WRITABLE_TYPES, erase: false, exchange: false },
  admin: { read: false, write: new Set(['Patient']), erase: true, exchange: false },
  auditor: { read: false, write: 'none', erase: false, exchange: false },
  organization: { read: false, write: 'none', erase: false, exchange: false },
};

const CALLER_KINDS = new Set<string>(Object.keys(INTERACTIONS));

/** The caller of a request for one interaction on one resource type: scope, kind and purpose checked. */
export function bindCaller(auth: AuthContext, ownMsp: string, resourceType: string, action: ScopeAction): Caller {
  const scope = requireScope(auth, resourceType, action);
  const kind = auth.role;
  if (!CALLER_KINDS.has(kind)) throw new OperationOutcomeError('FORBIDDEN', `A caller of role ${kind} has no access to patient data`);
  const organization = auth.organization ?? ownMsp;
  const actorAuth: ActorAuth = auth.actorAuth ?? (auth.viaOrganization !== undefined ? 'delegated' : auth.tokenKind === 'idp' ? 'idp' : 'did');
  const caller: Caller = {
    did: auth.did,
    organization,
    purpose: auth.purposeOfUse,
    breakGlassReason: auth.breakGlassReason,
    kind: kind as CallerKind,
    actorAuth,
    local: organization === ownMsp && actorAuth !== 'delegated',
    ...(kind === 'patient' && auth.did !== undefined ? { compartmentOf: auth.did } : {}),
  };
  // SMART: a patient/ scope grants access to the patient in context only. Here the only patient
  // context is the caller's own DID (a patient, or a guardian for their wards).
  if (scope.context === 'patient' && kind !== 'patient') {
    throw new OperationOutcomeError('FORBIDDEN', `patient/ scopes bind to the patient signed in; a ${kind} uses user/ scopes`);
  }
  if (scope.context === 'system' && !['system', 'device'].includes(kind)) {
    throw new OperationOutcomeError('FORBIDDEN', `system/ scopes are for systems and devices, not a ${kind}`);
  }
  if (caller.purpose !== undefined && !purposeAllowed(kindForPurpose(caller.kind), caller.purpose)) {
    throw new OperationOutcomeError('FORBIDDEN', `A ${kind} may not state purpose of use ${caller.purpose}`);
  }
  return caller;
}

/** An IdP admin acts with the purposes of a practitioner (the DID kinds the chaincode knows). */
function kindForPurpose(kind: CallerKind): DidKind {
  return kind === 'admin' ? 'practitioner' : kind;
}

/** Throws FORBIDDEN unless the table lets this caller perform the interaction on the type here. */
export function assertInteraction(caller: Caller, interaction: Interaction, resourceType: string, ownMsp: string): void {
  const row = INTERACTIONS[caller.kind];
  if (interaction === 'read' || interaction === 'search') {
    if (!row.read) throw new OperationOutcomeError('FORBIDDEN', `A ${caller.kind} does not read patient data`);
    return;
  }
  if (interaction === '$erase') {
    if (!row.erase || !caller.local || caller.actorAuth !== 'idp')
      throw new OperationOutcomeError('FORBIDDEN', 'Erasure needs an admin of this organization, with a token from its identity provider');
    return;
  }
  if (interaction === '$exchange') {
    if (!row.exchange || !caller.local) throw new OperationOutcomeError('FORBIDDEN', "Exchange is for this organization's practitioners");
    return;
  }
  if (caller.organization !== ownMsp || caller.actorAuth === 'delegated') throw new OperationOutcomeError('FORBIDDEN', `Only users of ${ownMsp} may change its records`);
  const write = row.write;
  if (write === 'none' || (write !== 'all' && !write.has(resourceType))) {
    throw new OperationOutcomeError('FORBIDDEN', `A ${caller.kind} may not ${interaction} ${resourceType} resources`);
  }
}

/** The levels of a Bulk Data $export: every type, every patient's data, a Group's patients' data. */
export type ExportLevel = 'system' | 'patient' | 'group';

/**
 * Who may run a bulk export (SECURITY.md, "Bulk export"); FORBIDDEN otherwise. The system level and a
 * Group: this organization's practitioners and systems. Patient/$export: those too (every patient held
 * here), or a patient (its own compartment). Never another member's user or a delegated request (they
 * ask one patient at a time), nobody who reads no clinical data, and never under break-glass (ETREAT
 * opens one patient's records in an emergency, not a bulk copy). Scopes are checked per type when the
 * caller is bound.
 */
export function assertMayExport(caller: Caller, level: ExportLevel): void {
  if (caller.purpose === 'ETREAT') throw new OperationOutcomeError('FORBIDDEN', "Break-glass (ETREAT) opens one patient's records when needed, never a bulk export");
  const staff = caller.local && (caller.kind === 'practitioner' || caller.kind === 'system') && caller.compartmentOf === undefined;
  const patient = caller.kind === 'patient' && caller.compartmentOf !== undefined;
  if (level === 'patient' ? staff || patient : staff) return;
  throw new OperationOutcomeError(
    'FORBIDDEN',
    level === 'patient'
      ? 'Patient/$export is for the practitioners and systems of this organization, or a patient for its own records'
      : `${level === 'system' ? 'A system-level' : 'A Group'} $export is for the practitioners and systems of this organization`,
  );
}

/** Whether a scope of the caller grants reading the type (for $exchange, which fetches on the user's scopes only). */
export function mayRead(auth: AuthContext, resourceType: string): boolean {
  return grantingScope(auth.scopes, resourceType, 'read') !== undefined;
}

/** A DID's resolution as far as the patient checks below read it (guardians, status). */
type PatientResolver = (did: string) => Promise<{ hdx: { status: string; guardians: string[] } } | undefined>;

/** Whether `did` is the patient `patientDid` itself or an active guardian of that (active) patient. */
export async function isPatientOrGuardian(did: string, patientDid: string, resolve: PatientResolver): Promise<boolean> {
  if (did === patientDid) return true;
  const resolution = await resolve(patientDid);
  return resolution?.hdx.status === 'active' && resolution.hdx.guardians.includes(did);
}

/** What relatedTo needs to know of a patient DID. */
export interface RelationDeps {
  /** The patient's DID resolution (guardians, status, registering organization), undefined if unknown. */
  readonly resolve: (did: string) => Promise<{ hdx: { kind: string; status: string; organization: string; guardians: string[] } } | undefined>;
  /** Whether this gateway holds a Patient linked to the DID. */
  readonly holdsPatient: (did: string) => Promise<boolean>;
}

/**
 * Whether the caller has a relation to a patient that lets it see the patient's consents and DID
 * metadata: the patient, a registered guardian, staff of this organization holding the patient, or an
 * auditor. A delegated caller (another member acting for its user) has none.
 */
export async function relatedTo(auth: AuthContext, patientDid: string, ownMsp: string, deps: RelationDeps): Promise<boolean> {
  if (auth.viaOrganization !== undefined || auth.actorAuth === 'delegated') return false;
  if (auth.role === 'auditor') return auth.did !== undefined || auth.tokenKind === 'idp';
  if (auth.did === patientDid) return true;
  const staff = (auth.organization ?? ownMsp) === ownMsp && ['practitioner', 'admin', 'system'].includes(auth.role);
  if (staff && (await deps.holdsPatient(patientDid))) return true;
  return auth.did !== undefined && isPatientOrGuardian(auth.did, patientDid, deps.resolve);
}
