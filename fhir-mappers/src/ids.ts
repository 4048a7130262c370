import { createHash } from 'node:crypto';

/** Namespace of every HDX name-based id (a fixed, random UUID). */
export const HDX_ID_NAMESPACE = '3c5e2b9a-8f1d-4c6e-9a7b-5d2f0e4c1a83';

/**
 * A name-based UUID: SHA-256 over namespace bytes + the parts (length-prefixed, so ['ab','c'] ≠ ['a','bc']),
 * truncated to 128 bits, with the RFC 9562 version 8 (custom, the SHA-256 name-based example of RFC 9562
 * appendix B.2) and variant bits set. The same natural key always gives the same id.
 */
export function stableUuid(kind: string, ...parts: ReadonlyArray<string>): string {
  const h = createHash('sha256');
  h.update(Buffer.from(HDX_ID_NAMESPACE.replace(/-/g, ''), 'hex'));
  for (const p of [kind, ...parts]) {
    const b = Buffer.from(p, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    h.update(len);
    h.update(b);
  }
  const d = h.digest();
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x80; // version 8
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80; // RFC 4122/9562 variant
  const x = d.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/**
 * RFC 8785 (JCS) canonical JSON for the JSON values a parser produces: object keys sorted by UTF-16 code
 * units, no whitespace, numbers in ECMAScript shortest form (which is what JCS specifies).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError('non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new TypeError(`not JSON: ${typeof value}`);
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
