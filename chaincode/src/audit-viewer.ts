/**
 * Who reads the access history: the rules of hdx.audit's queries (QueryAccess, GetEntry, the break-glass
 * review queue) for the calling identity and the DID a gateway acts for.
 */
import type { Context } from 'fabric-contract-api';
import type { AuditEntry, AuditIndex } from './audit-model';
import { Caller, REGULATOR_MSP, hasRole } from './caller';
import { forbidden, invalid } from './errors';
import { findIdentity } from './identity-model';
import { HDX_DID } from './validate';

/** Who is reading: everything (regulator, auditor DIDs), one organization's entries, or one DID's. */
export interface Viewer {
  all: boolean;
  organization?: string;
  did?: string;
}

export async function viewerOf(ctx: Context, caller: Caller, requester: string | undefined): Promise<Viewer> {
  if (requester !== undefined && !HDX_DID.test(requester)) {
    throw invalid('requester must be a did:hdx DID');
  }
  if (caller.did !== undefined && requester !== undefined && requester !== caller.did) {
    throw forbidden('a caller with its own DID reads only as that DID');
  }
  const did = caller.did ?? requester;
  if (did !== undefined) {
    if (caller.did === undefined && !hasRole(caller, 'gateway', 'admin', 'auditor')) {
      throw forbidden('only a gateway may read on behalf of a requester');
    }
    const record = await findIdentity(ctx, did);
    if (record?.status === 'active' && record.kind === 'auditor') {
      // An auditor's read-everything right is used only through its own organization's gateway: a
      // requester DID is public, so another member naming it must not read the whole history.
      if (caller.did === undefined && record.organization !== caller.mspId) {
        throw forbidden('an auditor DID reads the access history only through a gateway of its own organization');
      }
      return { all: true };
    }
    return { all: false, did };
  }
  if (caller.mspId === REGULATOR_MSP && hasRole(caller, 'auditor', 'admin')) {
    return { all: true };
  }
  if (hasRole(caller, 'auditor', 'admin')) {
    return { all: false, organization: caller.mspId };
  }
  throw forbidden('reading access history needs a requester DID, or an auditor or admin identity');
}

async function isGuardianOf(ctx: Context, did: string, patient: string): Promise<boolean> {
  if (!HDX_DID.test(patient)) {
    return false;
  }
  const record = await findIdentity(ctx, patient);
  return record?.status === 'active' && record.guardians.includes(did);
}

export async function mayQuery(ctx: Context, viewer: Viewer, index: AuditIndex, value: string | undefined): Promise<void> {
  if (viewer.all || viewer.organization !== undefined || viewer.did === undefined) {
    return;
  }
  const did = viewer.did;
  const ok = (index === 'patient' && (value === did || (await isGuardianOf(ctx, did, value ?? '')))) || (index === 'actor' && value === did);
  if (!ok) {
    throw forbidden('a requester reads only entries about themselves (as patient or guardian) or their own actions');
  }
}

export async function canSee(ctx: Context, viewer: Viewer, entry: AuditEntry): Promise<boolean> {
  if (viewer.all) {
    return true;
  }
  if (viewer.organization !== undefined) {
    const org = viewer.organization;
    return entry.gateway === org || entry.actorOrganization === org || entry.custodian === org;
  }
  const did = viewer.did as string;
  return entry.patient === did || entry.actor === did || (await isGuardianOf(ctx, did, entry.patient));
}
