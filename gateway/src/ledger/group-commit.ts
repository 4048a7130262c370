/**
 * Group commit for sync audit mode: the single reads a gateway serves at the same time share one ledger
 * transaction (hdx.audit:AuthorizeAndRecordBatch), and each still gets its answer only once that
 * transaction is committed with its own entry in it. Nothing is waited for on purpose: while fewer than
 * `maxInFlight` transactions are in flight, a request goes at once (alone, at low load); beyond that, the
 * requests that arrive meanwhile wait for the next transaction and go together (at most `maxBatch`). So
 * throughput grows with concurrency, and at low load a read costs what it did.
 *
 * A batch the chaincode refuses as a whole because of one request (INVALID, FORBIDDEN, NOT_FOUND: a
 * deterministic answer) is sent again one request at a time, so each request gets its own answer and no
 * other request fails for it. Any other failure (the ledger unreachable, an unknown outcome) fails every
 * request of the batch, as it would have failed each alone; their entryIds make a resend idempotent.
 */
import { MAX_AUDIT_BATCH } from '@hdx/chaincode/dist/protocol';
import { OperationOutcomeError } from '../errors';
import type { AuthorizeRequest, AuthorizeResult, LedgerClient } from './ledger-client';
import { REQUEST_REFUSALS } from './ledger-errors';

export interface GroupCommitOptions {
  /** Transactions in flight at once before requests wait to be grouped (default 4). */
  readonly maxInFlight?: number;
  /** Requests in one transaction at most (default and at most: the chaincode's MAX_AUDIT_BATCH, 200). */
  readonly maxBatch?: number;
  /**
   * Under load (a transaction already in flight), how long a free slot waits for more requests before it
   * sends the ones waiting (default 0: at once). Requests of concurrent clients reach the gateway a few
   * milliseconds apart, so without it a freed slot often leaves with the first request alone and the
   * others wait for the next slot. Never applies at low load: with nothing in flight a request goes at once.
   */
  readonly lingerMs?: number;
}

/** Counts, for /metrics and tests. */
export interface GroupCommitStats {
  /** Transactions sent (batches and single resends). */
  transactions: number;
  /** Requests answered. */
  requests: number;
  /** The largest batch sent. */
  largestBatch: number;
  /** Batches refused as a whole and resent one request at a time. */
  splits: number;
}

interface Waiting {
  readonly request: AuthorizeRequest;
  readonly resolve: (r: AuthorizeResult) => void;
  readonly reject: (err: unknown) => void;
}

export class AuthorizeGroupCommit {
  readonly #ledger: Pick<LedgerClient, 'authorizeAndRecord' | 'authorizeAndRecordBatch'>;
  readonly #maxInFlight: number;
  readonly #maxBatch: number;
  readonly #queue: Waiting[] = [];
  #inFlight = 0;
  readonly #lingerMs: number;
  #lingering: ReturnType<typeof setTimeout> | undefined;
  readonly stats: GroupCommitStats = { transactions: 0, requests: 0, largestBatch: 0, splits: 0 };

  constructor(ledger: Pick<LedgerClient, 'authorizeAndRecord' | 'authorizeAndRecordBatch'>, options: GroupCommitOptions = {}) {
    this.#ledger = ledger;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 4);
    this.#maxBatch = Math.min(MAX_AUDIT_BATCH, Math.max(1, options.maxBatch ?? MAX_AUDIT_BATCH));
    this.#lingerMs = Math.max(0, options.lingerMs ?? 0);
  }

  /** AuthorizeAndRecord, answered once the transaction carrying this request's entry is committed. */
  authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult> {
    return new Promise<AuthorizeResult>((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#pump();
    });
  }

  #pump(lingered = false): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      if (!lingered && this.#inFlight > 0 && this.#lingerMs > 0 && this.#queue.length < this.#maxBatch) {
        // Under load: the slot waits (once) for the requests about to arrive, then leaves with all of them.
        if (this.#lingering === undefined)
          this.#lingering = setTimeout(() => {
            this.#lingering = undefined;
            this.#pump(true);
          }, this.#lingerMs);
        return;
      }
      lingered = false;
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight += 1;
      void this.#send(batch).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
      });
    }
  }

  async #send(batch: readonly Waiting[]): Promise<void> {
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    if (batch.length === 1) {
      await this.#one(batch[0] as Waiting);
      return;
    }
    this.stats.transactions += 1;
    let results: AuthorizeResult[];
    try {
      results = await this.#ledger.authorizeAndRecordBatch(batch.map((w) => w.request));
    } catch (err) {
      if (err instanceof OperationOutcomeError && REQUEST_REFUSALS.has(err.code)) {
        this.stats.splits += 1;
        await Promise.all(batch.map((w) => this.#one(w)));
        return;
      }
      batch.forEach((w) => w.reject(err));
      return;
    }
    if (results.length !== batch.length) {
      const err = new Error(`AuthorizeAndRecordBatch answered ${results.length} decisions for ${batch.length} requests`);
      batch.forEach((w) => w.reject(err));
      return;
    }
    this.stats.requests += batch.length;
    batch.forEach((w, i) => w.resolve(results[i] as AuthorizeResult));
  }

  async #one(w: Waiting): Promise<void> {
    this.stats.transactions += 1;
    try {
      const result = await this.#ledger.authorizeAndRecord(w.request);
      this.stats.requests += 1;
      w.resolve(result);
    } catch (err) {
      w.reject(err);
    }
  }
}

/**
 * The ledger client with AuthorizeAndRecord going through group commit (everything else as it is): what
 * the sync audit mode's enforcement point uses.
 */
export function withGroupCommit<L extends LedgerClient>(ledger: L, group: AuthorizeGroupCommit): L {
  return new Proxy(ledger, {
    get(target, prop, receiver): unknown {
      if (prop === 'authorizeAndRecord') return (request: AuthorizeRequest) => group.authorizeAndRecord(request);
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
