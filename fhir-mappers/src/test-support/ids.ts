import { createHash } from 'node:crypto';
import { keyedIds, namespacedDigest, type StableIds, uuidOf } from '../ids';

/** A fixed custodian id secret for tests and golden files (32 bytes; a real custodian's is random). */
export const TEST_ID_SECRET: Uint8Array = createHash('sha256').update('hdx fhir-mappers test custodian').digest();

/** Keyed ids under TEST_ID_SECRET, every subject at epoch 0 (never erased). */
export const TEST_IDS: StableIds = keyedIds(TEST_ID_SECRET);

/**
 * The id HDX derived before ids were keyed: an unkeyed SHA-256 name-based UUID over a public namespace and
 * the length-prefixed natural key (MRN, order number). What anyone can compute from an MRN; tests use it
 * to show that nothing on the ledger is found by it any more.
 */
export function unkeyedStableUuid(kind: string, ...parts: string[]): string {
  return uuidOf(namespacedDigest(createHash('sha256'), kind, parts));
}
