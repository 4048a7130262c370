/**
 * LedgerView: a local copy of the hdx chaincode state that access decisions read (identities,
 * organization DIDs, consents, patient links, anchors), fed from the organization's own peer's
 * committed blocks (Fabric Gateway block events), with a durable checkpoint in the same SQLite
 * transaction as each block's rows (ViewStore), and a bounded-staleness rule for using it.
 *
 * Freshness: the view polls its peer's height (qscc GetChainInfo) every `pollMs`. It is *caught up* at
 * a poll when its block stream is connected and its height is at least the height the peer reported;
 * the instant recorded is the poll's start, so it is never later than the truth. `fresh(maxLagMs)` is
 * true only when the view was caught up within the last `maxLagMs`. When the stream is down, the peer
 * unreachable, or the view behind, nothing renews it, and it turns false at most `maxLagMs` after the
 * last confirmation: a decision that asks fresh() fails closed.
 *
 * Not yet used by any decision (issue 11, first slice).
 */
import type { common } from '@hyperledger/fabric-protos';
import type { Logger } from 'pino';
import { parseBlock } from './block-parser';
import type { ViewStore } from './view-store';

/** A stream of committed blocks from a start block on, as the Fabric Gateway client gives it. */
export interface BlockStream extends AsyncIterable<common.Block> {
  close(): void;
}

/** The peer as the view needs it (FabricLedger implements it). */
export interface BlockSource {
  /** Committed blocks from `startBlock` on, in order, then each new one as it commits. */
  blockEvents(startBlock: bigint): Promise<BlockStream>;
  /** The peer's ledger height (its last block number + 1). */
  chainHeight(): Promise<bigint>;
}

/** Default bound for fresh(): three polls. */
export const DEFAULT_MAX_LAG_MS = 1_500;
export const DEFAULT_POLL_MS = 500;
const MAX_RETRY_MS = 30_000;

export interface LedgerViewOptions {
  readonly store: ViewStore;
  readonly source: BlockSource;
  /** The chaincode's name: the namespace of its writes. */
  readonly namespace: string;
  readonly log: Logger;
  readonly pollMs?: number;
  /** First pause before reconnecting a failed stream (doubling, at most 30 s). */
  readonly retryMs?: number;
  readonly now?: () => number;
}

export interface ViewStatus {
  readonly height: string;
  readonly peerHeight: string | undefined;
  readonly lagBlocks: string | undefined;
  readonly streaming: boolean;
  readonly lastEventAt: string | undefined;
  readonly caughtUpAt: string | undefined;
  readonly fresh: boolean;
}

type BlockListener = (blockNumber: bigint, applied: boolean) => void;

export class LedgerView {
  readonly #store: ViewStore;
  readonly #source: BlockSource;
  readonly #namespace: string;
  readonly #log: Logger;
  readonly #pollMs: number;
  readonly #retryMs: number;
  readonly #now: () => number;
  readonly #listeners = new Set<BlockListener>();
  #stopped = true;
  #stream: BlockStream | undefined;
  #streaming = false;
  #run: Promise<void> | undefined;
  #poller: NodeJS.Timeout | undefined;
  /** The poll in progress: a second caller waits for it rather than returning before it has answered. */
  #polling: Promise<void> | undefined;
  #peerHeight: bigint | undefined;
  #lastEventAt: number | undefined;
  #caughtUpAt: number | undefined;
  #wake: (() => void) | undefined;

  constructor(options: LedgerViewOptions) {
    this.#store = options.store;
    this.#source = options.source;
    this.#namespace = options.namespace;
    this.#log = options.log;
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.#retryMs = options.retryMs ?? 1_000;
    this.#now = options.now ?? Date.now;
  }

  /** Starts following the peer from the checkpoint (block 0 for a new view). */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#run = this.#follow();
    this.#poller = setInterval(() => void this.poll(), this.#pollMs);
    void this.poll();
  }

  /** Stops following; the checkpoint stays where the last applied block left it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#poller) clearInterval(this.#poller);
    this.#poller = undefined;
    this.#stream?.close();
    this.#wake?.();
    await this.#run;
    this.#run = undefined;
  }

  /** The height the view reflects: the number of blocks applied (last block number + 1). */
  height(): bigint {
    return this.#store.height();
  }

  /** Blocks the peer has that the view has not applied, at the last height check; undefined before one. */
  lagBlocks(): bigint | undefined {
    if (this.#peerHeight === undefined) return undefined;
    const lag = this.#peerHeight - this.height();
    return lag > 0n ? lag : 0n;
  }

  /** When the last block arrived from the stream (ms since the epoch). */
  get lastEventAt(): number | undefined {
    return this.#lastEventAt;
  }

  /** Whether decisions may use the view: caught up with the peer, stream connected, within maxLagMs. */
  /** When the last height check that found the view caught up started (ms since the epoch). */
  caughtUpAt(): number | undefined {
    return this.#caughtUpAt;
  }

  fresh(maxLagMs: number = DEFAULT_MAX_LAG_MS): boolean {
    return this.#caughtUpAt !== undefined && this.#now() - this.#caughtUpAt <= maxLagMs;
  }

  status(maxLagMs: number = DEFAULT_MAX_LAG_MS): ViewStatus {
    const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      height: String(this.height()),
      peerHeight: this.#peerHeight === undefined ? undefined : String(this.#peerHeight),
      lagBlocks: this.lagBlocks()?.toString(),
      streaming: this.#streaming,
      lastEventAt: iso(this.#lastEventAt),
      caughtUpAt: iso(this.#caughtUpAt),
      fresh: this.fresh(maxLagMs),
    };
  }

  /** Calls `listener` after each block received (applied, or skipped as already applied). */
  onBlock(listener: BlockListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves once the view reflects at least `height` blocks; rejects after timeoutMs. */
  waitForHeight(height: bigint, timeoutMs: number): Promise<void> {
    if (this.height() >= height) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`the ledger view did not reach height ${height} within ${timeoutMs} ms (at ${this.height()})`));
      }, timeoutMs);
      const off = this.onBlock(() => {
        if (this.height() >= height) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  /** One height check of the peer (also run every pollMs while started). */
  poll(): Promise<void> {
    this.#polling ??= this.#pollOnce().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async #pollOnce(): Promise<void> {
    const startedAt = this.#now();
    try {
      const peerHeight = await this.#source.chainHeight();
      this.#peerHeight = peerHeight;
      if (this.#streaming && this.height() >= peerHeight) this.#caughtUpAt = startedAt;
      // The peer answers again while the stream waits out its back-off (up to 30 s after a long outage):
      // reconnect now, so the view catches up as soon as its peer is back.
      if (!this.#streaming) this.#wake?.();
    } catch (err) {
      this.#log.warn({ reason: err instanceof Error ? err.message : String(err) }, 'ledger view: the peer height is unavailable');
    }
  }

  async #follow(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        const stream = await this.#source.blockEvents(this.height());
        this.#stream = stream;
        if (this.#stopped) break;
        this.#streaming = true;
        for await (const block of stream) {
          const parsed = parseBlock(block, this.#namespace);
          const applied = this.#store.apply(parsed, this.#now());
          this.#lastEventAt = this.#now();
          failures = 0;
          for (const listener of this.#listeners) listener(parsed.blockNumber, applied);
          if (this.#stopped) break;
        }
      } catch (err) {
        if (this.#stopped) break;
        failures += 1;
        // Messages name block numbers and error kinds, never a key or value (they can name a DID or a record).
        this.#log.warn({ reason: err instanceof Error ? err.message : String(err), failures }, 'ledger view: the block stream failed; reconnecting from the checkpoint');
      } finally {
        this.#streaming = false;
        this.#stream?.close();
        this.#stream = undefined;
      }
      if (this.#stopped) break;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, Math.min(MAX_RETRY_MS, this.#retryMs * 2 ** Math.max(0, failures - 1)));
        this.#wake = done;
      });
    }
  }
}
