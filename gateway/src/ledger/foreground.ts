/**
 * The ledger writes a request waits on (anchors, consents, identities, erasure), counted while they are
 * in flight, so background ledger work gives way to them: the async audit outbox delivers one
 * transaction at a time instead of several while any is in flight (audit/outbox.ts, `busy`). On a
 * small machine several large RecordAccessBatch transactions in flight made a one-resource write wait
 * seconds behind them.
 */
import { FOREGROUND_WRITES, tapCalls } from './ledger-calls';

export class ForegroundWrites {
  #inFlight = 0;

  /** Whether a foreground write is in flight now. */
  busy(): boolean {
    return this.#inFlight > 0;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** The ledger with its foreground writes counted here (every other method passes through as is). */
  track<L extends object>(ledger: L): L {
    return tapCalls(ledger, (method) => FOREGROUND_WRITES.has(method), {
      start: () => {
        this.#inFlight++;
      },
      settled: () => {
        this.#inFlight--;
      },
    });
  }
}
