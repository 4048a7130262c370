import { createHash, createHmac } from 'node:crypto';
import canonicalize from 'canonicalize';

/** Namespace of every HDX id (a fixed, random UUID): the domain separation label of the keyed ids. */
export const HDX_ID_NAMESPACE = '3c5e2b9a-8f1d-4c6e-9a7b-5d2f0e4c1a83';

/** The shortest custodian id secret accepted (HMAC-SHA-256 keys shorter than the hash add nothing but risk). */
export const MIN_ID_SECRET_BYTES = 32;

/**
 * Where the mappers get their ids from (an explicit parameter: the mappers hold no secret and no state).
 * Ids are keyed with the custodian's secret, so nobody without it can test a guessed natural key (an MRN,
 * an order number) against an id seen on the ledger, and two custodians give different ids for the same key.
 */
export interface StableIds {
  /**
   * The id of a resource from its natural key and the key's erasure epoch: the same key (and secret, and
   * epoch) always gives the same id; after the custodian erased the resource's patient (and bumped the
   * epoch), the same key maps to a new id that cannot be linked to the old one.
   */
  id(kind: string, ...parts: ReadonlyArray<string>): string;
}

/**
 * The custodian's erasure epoch of a natural key, looked up by `epochKey(secret, kind, ...parts)` (a keyed
 * hash: the custodian's table never holds the natural key). 0 for a key never erased.
 */
export type EpochLookup = (epochKey: string) => number;

function mac(secret: Uint8Array, label: string, parts: ReadonlyArray<string>): Buffer {
  return namespacedDigest(createHmac('sha256', secret), label, parts);
}

/**
 * The digest of the HDX namespace and the length-prefixed label and parts, by the hash given (keyed ids
 * use an HMAC; the test-support's copy of the old unkeyed ids a plain SHA-256).
 */
export function namespacedDigest(h: { update(data: Uint8Array): unknown; digest(): Buffer }, label: string, parts: ReadonlyArray<string>): Buffer {
  h.update(Buffer.from(HDX_ID_NAMESPACE.replace(/-/g, ''), 'hex'));
  // Length-prefixed, so ['ab','c'] ≠ ['a','bc'].
  for (const p of [label, ...parts]) {
    const b = Buffer.from(p, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len);
    h.update(b);
  }
  return h.digest();
}

/** 128 bits of a digest as a UUID with the RFC 9562 version 8 (custom) and variant bits set. */
export function uuidOf(d: Buffer): string {
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x80; // version 8
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80; // RFC 4122/9562 variant
  const x = d.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function checkSecret(secret: Uint8Array): void {
  if (!(secret instanceof Uint8Array) || secret.length < MIN_ID_SECRET_BYTES) {
    throw new RangeError(`the id secret must be at least ${MIN_ID_SECRET_BYTES} bytes`);
  }
}

/**
 * The key under which a custodian keeps a natural key's erasure epoch: HMAC-SHA-256 (hex) of the natural
 * key under the id secret, with a label of its own (it is never an id, and no id can be derived from it).
 */
export function epochKey(secret: Uint8Array, kind: string, ...parts: ReadonlyArray<string>): string {
  checkSecret(secret);
  return mac(secret, 'epoch', [kind, ...parts]).toString('hex');
}

/**
 * Keyed stable ids: HMAC-SHA-256 under `secret` (the custodian's, kept off chain) over the namespace,
 * the kind, the erasure epoch `epochOf` gives for the key (0 by default) and the parts, truncated to a
 * version 8 UUID.
 */
export function keyedIds(secret: Uint8Array, epochOf: EpochLookup = () => 0): StableIds {
  checkSecret(secret);
  const key = Buffer.from(secret);
  return Object.freeze({
    id: (kind: string, ...parts: ReadonlyArray<string>): string => {
      const epoch = epochOf(epochKey(key, kind, ...parts));
      if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError('an erasure epoch must be a whole number ≥ 0');
      return uuidOf(mac(key, 'id', [kind, String(epoch), ...parts]));
    },
  });
}

/** RFC 8785 (JCS) canonical JSON (the `canonicalize` package). */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError(`not JSON: ${typeof value}`);
  return text;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
