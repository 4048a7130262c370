/**
 * A small bounded cache of DID resolutions (`hdx.identity:Resolve`) for the token verifier, so that:
 *
 * - a DID token whose kid names a recently resolved DID is checked against the cached key BEFORE any
 *   ledger call: a junk signature on a known kid costs no ledger evaluate (review #16);
 * - an unknown DID is remembered briefly (negative entry), so naming it again and again does not reach
 *   the ledger either;
 * - concurrent look-ups of one DID share one ledger call.
 *
 * Staleness bound: a status change on the ledger (deactivation, suspension, key rotation, a new
 * registration) is seen by this gateway at most `ttlMs` (default 30 s) after it commits, `negativeTtlMs`
 * (default 5 s) for a DID that was unknown. Ledger failures are never cached.
 */
import { OperationOutcomeError } from '../errors';
import type { DidResolution, DidResolver } from './types';

export interface DidCacheOptions {
  /** How long a resolution is used without asking the ledger again, in ms (default 30 000, at most 300 000). */
  readonly ttlMs?: number;
  /** How long "not registered" is remembered, in ms (default 5 000, at most ttlMs). */
  readonly negativeTtlMs?: number;
  /** Most DIDs kept (default 10 000); the oldest entry goes first. */
  readonly maxEntries?: number;
}

export const DEFAULT_DID_CACHE_TTL_MS = 30_000;
export const DEFAULT_DID_CACHE_NEGATIVE_TTL_MS = 5_000;
export const DEFAULT_DID_CACHE_MAX_ENTRIES = 10_000;

interface Entry {
  readonly resolution: DidResolution | undefined;
  /** When it was fetched from the ledger (ms). */
  readonly at: number;
}

/** A fresh cached look-up: `resolution` undefined means "not registered" (a negative entry). */
export interface CachedResolution {
  readonly resolution: DidResolution | undefined;
  readonly ageMs: number;
}

export function assertDidCacheOptions(opts: DidCacheOptions): void {
  const ttl = opts.ttlMs ?? DEFAULT_DID_CACHE_TTL_MS;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 300_000) throw new Error('auth: didCache.ttlMs must be an integer from 0 to 300000');
  const negative = opts.negativeTtlMs ?? Math.min(DEFAULT_DID_CACHE_NEGATIVE_TTL_MS, ttl);
  if (!Number.isInteger(negative) || negative < 0 || negative > ttl) throw new Error('auth: didCache.negativeTtlMs must be an integer from 0 to ttlMs');
  const max = opts.maxEntries ?? DEFAULT_DID_CACHE_MAX_ENTRIES;
  if (!Number.isInteger(max) || max < 1) throw new Error('auth: didCache.maxEntries must be a positive integer');
}

/** A ledger NOT_FOUND from the resolver means "not registered"; other failures pass through. */
export async function resolveOrUndefined(resolveDid: DidResolver, did: string): Promise<DidResolution | undefined> {
  try {
    return await resolveDid(did);
  } catch (err) {
    if (err instanceof OperationOutcomeError && err.code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

export class DidResolutionCache {
  readonly #resolveDid: DidResolver;
  readonly #ttlMs: number;
  readonly #negativeTtlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<DidResolution | undefined>>();

  constructor(resolveDid: DidResolver, opts: DidCacheOptions = {}) {
    assertDidCacheOptions(opts);
    this.#resolveDid = resolveDid;
    this.#ttlMs = opts.ttlMs ?? DEFAULT_DID_CACHE_TTL_MS;
    this.#negativeTtlMs = opts.negativeTtlMs ?? Math.min(DEFAULT_DID_CACHE_NEGATIVE_TTL_MS, this.#ttlMs);
    this.#maxEntries = opts.maxEntries ?? DEFAULT_DID_CACHE_MAX_ENTRIES;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached look-up of a DID if it is still fresh at `nowMs`; never calls the ledger. */
  peek(did: string, nowMs: number): CachedResolution | undefined {
    const entry = this.#entries.get(did);
    if (!entry) return undefined;
    const ageMs = nowMs - entry.at;
    const ttl = entry.resolution ? this.#ttlMs : this.#negativeTtlMs;
    if (ageMs < 0 || ageMs >= ttl) {
      this.#entries.delete(did);
      return undefined;
    }
    return { resolution: entry.resolution, ageMs };
  }

  /** The cached look-up when fresh, else one from the ledger (shared by concurrent callers), then cached. */
  async resolve(did: string, nowMs: number): Promise<DidResolution | undefined> {
    const cached = this.peek(did, nowMs);
    if (cached) return cached.resolution;
    return this.refresh(did, nowMs);
  }

  /** Asks the ledger now (shared by concurrent callers) and caches the answer. */
  async refresh(did: string, nowMs: number): Promise<DidResolution | undefined> {
    const pending = this.#inFlight.get(did);
    if (pending) return pending;
    const lookup = resolveOrUndefined(this.#resolveDid, did).then(
      (resolution) => {
        this.#inFlight.delete(did);
        this.#store(did, { resolution, at: nowMs });
        return resolution;
      },
      (err: unknown) => {
        this.#inFlight.delete(did);
        throw err;
      },
    );
    this.#inFlight.set(did, lookup);
    return lookup;
  }

  #store(did: string, entry: Entry): void {
    if ((entry.resolution ? this.#ttlMs : this.#negativeTtlMs) === 0) return;
    this.#entries.delete(did);
    this.#entries.set(did, entry);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
  }
}
