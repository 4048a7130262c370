/**
 * Patient subject links (#8): a custodian states that its pseudonym for a patient is that patient's
 * DID. Decisions on anchors under the pseudonym then use the DID (its consents, guardians, status), and
 * the record locator lists them under the DID. A link never changes once made (no re-pointing a
 * patient's records to another DID).
 */
import type { Context } from 'fabric-contract-api';
import { conflict, invalid } from './errors';
import { getIdentity } from './identity-model';
import { INDEX_MARKER, readState, scanPartial, txInstant, writeState } from './ledger';
import { HDX_DID, JsonObject, PSEUDONYM, asObject, rejectUnknownFields, requireString } from './validate';

export interface PatientLink {
  pseudonym: string;
  did: string;
  /** MSP id of the custodian that made the link (the creator). */
  custodian: string;
  linkedAt: string;
  txId: string;
}

/** [custodian MSP, pseudonym] → PatientLink */
export const LINK_KEY = 'hdx.link';
/** [did, custodian MSP, pseudonym] → 0x00 */
export const LINK_DID_INDEX = 'hdx.link~did';

export interface LinkInput {
  pseudonym: string;
  did: string;
}

export function parseLinkInput(value: unknown, path: string): LinkInput {
  const obj: JsonObject = asObject(value, path);
  rejectUnknownFields(obj, ['pseudonym', 'did'], path);
  return {
    pseudonym: requireString(obj, 'pseudonym', path, PSEUDONYM, 'must be pseudonym:<64 lowercase hex>'),
    did: requireString(obj, 'did', path, HDX_DID, 'must be a did:hdx DID'),
  };
}

export async function findLink(ctx: Context, custodian: string, pseudonym: string): Promise<PatientLink | undefined> {
  if (!PSEUDONYM.test(pseudonym)) {
    return undefined;
  }
  return readState<PatientLink>(ctx, ctx.stub.createCompositeKey(LINK_KEY, [custodian, pseudonym]));
}

/** The (custodian, pseudonym) pairs linked to a DID, in key order; optionally of one custodian. */
export async function linkedPseudonyms(ctx: Context, did: string, custodian?: string): Promise<Array<{ custodian: string; pseudonym: string }>> {
  if (!HDX_DID.test(did)) {
    return [];
  }
  const rows = await scanPartial(ctx, LINK_DID_INDEX, custodian === undefined ? [did] : [did, custodian]);
  return rows.map((row) => {
    const [, linkCustodian, pseudonym] = ctx.stub.splitCompositeKey(row.key).attributes;
    return { custodian: linkCustodian ?? '', pseudonym: pseudonym ?? '' };
  });
}

/**
 * Links `pseudonym` of the custodian `custodian` to the patient DID `did` (an active patient DID).
 * Idempotent for the same DID; `CONFLICT` for another one. `pending` holds links written earlier in
 * the same transaction (Fabric reads do not see a transaction's own writes).
 */
export async function linkPatient(ctx: Context, custodian: string, input: LinkInput, pending: Map<string, PatientLink> = new Map()): Promise<PatientLink> {
  const key = ctx.stub.createCompositeKey(LINK_KEY, [custodian, input.pseudonym]);
  const existing = pending.get(key) ?? (await readState<PatientLink>(ctx, key));
  if (existing) {
    if (existing.did !== input.did) {
      throw conflict(`${input.pseudonym} of ${custodian} is already linked to another DID`);
    }
    return existing;
  }
  const record = await getIdentity(ctx, input.did);
  if (record.kind !== 'patient') {
    throw invalid('link.did must be a patient DID');
  }
  if (record.status !== 'active') {
    throw conflict(`${input.did} is ${record.status}`);
  }
  const link: PatientLink = { pseudonym: input.pseudonym, did: input.did, custodian, linkedAt: txInstant(ctx), txId: ctx.stub.getTxID() };
  await writeState(ctx, key, link);
  await ctx.stub.putState(ctx.stub.createCompositeKey(LINK_DID_INDEX, [input.did, custodian, input.pseudonym]), INDEX_MARKER);
  pending.set(key, link);
  return link;
}
