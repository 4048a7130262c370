import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';
import { Caller, callerOf } from './caller';
import { conflict, forbidden, notFound } from './errors';
import { canonicalJson, readState, txInstant, writeState } from './ledger';
import {
  Anchor,
  AnchorInput,
  anchorKey,
  checkResourceKey,
  parseAnchorInput,
  patientIndexKey,
  resourceRef,
  sameCommitment,
  toLocatorEntry,
} from './record-model';
import { parseJsonObject } from './validate';

/** Anchors FHIR resource versions: commitments to content held off chain by the custodian. */
@Info({ title: 'RecordContract', description: 'hdx.record: FHIR resource version anchors and the record locator' })
export class RecordContract extends Contract {
  public constructor() {
    super('hdx.record');
  }

  /**
   * Anchors one resource version for the caller's organization (the custodian is the caller's MSP id).
   * Idempotent: the same version with the same commitment and custodian returns the stored anchor.
   */
  @Transaction()
  @Returns('string')
  public async Anchor(ctx: Context, anchorJson: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    const input = parseAnchorInput(parseJsonObject(anchorJson, 'anchor'), 'anchor');
    const anchor = await anchorOne(ctx, caller, input);
    return canonicalJson(anchor);
  }

  /** The stored anchor of one resource version. */
  @Transaction(false)
  @Returns('string')
  public async GetAnchor(ctx: Context, resourceType: string, id: string, versionId: string): Promise<string> {
    checkResourceKey(resourceType, id, versionId);
    const anchor = await readState<Anchor>(ctx, anchorKey(ctx, resourceType, id, versionId));
    if (!anchor) {
      throw notFound(`${resourceRef(resourceType, id, versionId)} is not anchored`);
    }
    return canonicalJson(anchor);
  }
}

/** Anchoring is for organizations holding data: any member identity except an auditor. */
function callerMayAnchor(ctx: Context): Caller {
  const caller = callerOf(ctx);
  if (caller.role === 'auditor') {
    throw forbidden('auditors cannot anchor records');
  }
  return caller;
}

/** Writes one anchor (or returns the identical stored one) and its patient~resource index entry. */
async function anchorOne(ctx: Context, caller: Caller, input: AnchorInput): Promise<Anchor> {
  const ref = resourceRef(input.resourceType, input.id, input.versionId);
  const key = anchorKey(ctx, input.resourceType, input.id, input.versionId);
  const existing = await readState<Anchor>(ctx, key);
  if (existing) {
    if (existing.tombstone) {
      throw conflict(`${ref} was erased and cannot be anchored again`);
    }
    if (existing.custodian !== caller.mspId) {
      throw conflict(`${ref} is already anchored by another custodian`);
    }
    if (!sameCommitment(existing.commitment, input.commitment)) {
      throw conflict(`${ref} is already anchored with a different commitment`);
    }
    return existing;
  }
  const anchor: Anchor = {
    ...input,
    custodian: caller.mspId,
    txId: ctx.stub.getTxID(),
    anchoredAt: txInstant(ctx),
  };
  await writeState(ctx, key, anchor);
  await writeState(ctx, patientIndexKey(ctx, { ...input, custodian: caller.mspId }), toLocatorEntry(anchor));
  return anchor;
}
