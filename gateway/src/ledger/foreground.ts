/**
 * The ledger writes a request waits on (anchors, consents, identities, erasure), counted while they are
 * in flight, so background ledger work gives way to them: the async audit outbox delivers one
 * transaction at a time instead of several while any is in flight (audit/outbox.ts, `busy`). On a
 * small machine several large RecordAccessBatch transactions in flight made a one-resource write wait
 * seconds behind them.
 */

/** LedgerClient methods that submit a transaction a caller is waiting for. */
export const FOREGROUND_WRITES: ReadonlySet<string> = new Set([
  'anchor',
  'anchorBatch',
  'anchorAndRecord',
  'linkPatient',
  'erasePatient',
  'registerDid',
  'changeGuardian',
  'approveGuardian',
  'deactivateDid',
  'reactivateDid',
  'approveReactivation',
  'changeConsent',
  'authorizeAndRecord',
  'authorizeAndRecordBatch',
]);

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
    return new Proxy(ledger, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (typeof prop !== 'string' || !FOREGROUND_WRITES.has(prop)) return method.bind(target);
        return (...args: unknown[]): Promise<unknown> => {
          this.#inFlight++;
          let result: Promise<unknown>;
          try {
            result = Promise.resolve(method.apply(target, args));
          } catch (err) {
            this.#inFlight--;
            throw err;
          }
          return result.finally(() => {
            this.#inFlight--;
          });
        };
      },
    });
  }
}
