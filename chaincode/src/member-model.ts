/**
 * The member registry: which member organizations (MSP ids) were removed from the consortium.
 *
 * The chaincode cannot read the channel configuration, so the removal of a member is also decided on the
 * ledger, by a majority of the member organizations that remain (hdx.identity:ProposeMemberRemoval, then
 * ApproveMemberRemoval). Once removed, an MSP id is removed for good: no identity it registered acts in an
 * access decision (reason `actor-organization-removed`), no consent provision naming it permits anything,
 * no request signed by one of its DIDs is accepted, and no transaction submitted by one of its identities
 * runs (each contract's beforeTransaction).
 *
 * The members are the MSP ids holding an active organization DID (`hdx.did~org`) and not removed.
 */
import type { Context } from 'fabric-contract-api';
import { forbidden } from './errors';
import { readState } from './ledger';

/** `hdx.member` [MSP id]: the MemberRemoval of that organization (absent while it is a member). */
export const MEMBER_KEY = 'hdx.member';
/** Chaincode event of membership changes: `{action, mspId, status, approvals, required, txId}`. */
export const MEMBER_EVENT = 'hdx.member';

export interface MemberApproval {
  /** MSP id of the approving organization (its admin submitted the transaction). */
  mspId: string;
  at: string;
  txId: string;
}

/**
 * A member's removal: `proposed` until a majority of the members other than it approved (the proposal is
 * the first approval), then `removed` (final).
 */
export interface MemberRemoval {
  mspId: string;
  status: 'proposed' | 'removed';
  proposedBy: string;
  proposedAt: string;
  approvals: MemberApproval[];
  /** Approvals the removal needed when it was last changed: a majority of the other members then. */
  required: number;
  removedAt?: string;
  txId: string;
}

export function memberKey(ctx: Context, mspId: string): string {
  return ctx.stub.createCompositeKey(MEMBER_KEY, [mspId]);
}

export async function findRemoval(ctx: Context, mspId: string): Promise<MemberRemoval | undefined> {
  return readState<MemberRemoval>(ctx, memberKey(ctx, mspId));
}

/** Whether `mspId` was removed from the consortium (a proposal alone removes nothing). */
export function isRemoved(removal: MemberRemoval | undefined): boolean {
  return removal?.status === 'removed';
}

/** Refuses a transaction submitted by an identity of a removed organization. */
export async function refuseRemovedSubmitter(ctx: Context): Promise<void> {
  const mspId = ctx.clientIdentity.getMSPID();
  if (mspId && isRemoved(await findRemoval(ctx, mspId))) {
    throw forbidden(`${mspId} was removed from the consortium`);
  }
}

/** Approvals a removal needs: a majority of the members that remain (the removed one does not count). */
export function majorityOf(remaining: number): number {
  return Math.floor(remaining / 2) + 1;
}
