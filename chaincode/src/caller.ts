/**
 * Who is calling: the Fabric identity of the submitter (MSP id, certificate id) and its CA attributes
 * (`hdx.role`, `hdx.did`). Roles: `admin`, `gateway`, `auditor`.
 */
import type { Context } from 'fabric-contract-api';
import { unauthenticated } from './errors';

export const REGULATOR_MSP = 'RegulatorMSP';
export const ORDERER_MSP = 'OrdererMSP';

export type Role = 'admin' | 'gateway' | 'auditor';
const ROLES: readonly Role[] = ['admin', 'gateway', 'auditor'];

export interface Caller {
  mspId: string;
  /** The certificate id (`x509::<subject>::<issuer>`). */
  id: string;
  /** `hdx.role` CA attribute; undefined when absent or not a known role. */
  role: Role | undefined;
  /** `hdx.did` CA attribute (the DID of an end user holding their own Fabric identity). */
  did: string | undefined;
}

export function callerOf(ctx: Context): Caller {
  const identity = ctx.clientIdentity;
  const mspId = identity.getMSPID();
  if (!mspId) {
    throw unauthenticated('the caller has no MSP id');
  }
  if (mspId === ORDERER_MSP) {
    throw unauthenticated('ordering service identities cannot call the hdx chaincode');
  }
  const role = identity.getAttributeValue('hdx.role') ?? undefined;
  const did = identity.getAttributeValue('hdx.did') ?? undefined;
  return {
    mspId,
    id: identity.getID(),
    role: ROLES.includes(role as Role) ? (role as Role) : undefined,
    did: did || undefined,
  };
}

export function hasRole(caller: Caller, ...roles: Role[]): boolean {
  return caller.role !== undefined && roles.includes(caller.role);
}
