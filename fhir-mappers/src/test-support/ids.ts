import { createHash } from 'node:crypto';
import { HDX_ID_NAMESPACE, keyedIds, type StableIds } from '../ids';

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
  const h = createHash('sha256');
  h.update(Buffer.from(HDX_ID_NAMESPACE.replace(/-/g, ''), 'hex'));
  for (const p of [kind, ...parts]) {
    const b = Buffer.from(p, 'utf8');
    const l = Buffer.alloc(4);
    l.writeUInt32BE(b.length);
    h.update(l);
    h.update(b);
  }
  const d = h.digest();
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x80;
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80;
  const x = d.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
