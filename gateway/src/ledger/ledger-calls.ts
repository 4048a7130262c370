/**
 * LedgerClient calls seen from the outside: which methods write what, and a proxy that runs hooks around
 * the calls a caller picks (ledger/foreground.ts counts the writes callers wait on; view/local-decisions.ts
 * notes the writes that change what decisions read).
 */

/** LedgerClient writes that change what decisions read (consents, identities, guardians, patient links, erasure). */
export const DECISION_INPUT_WRITES: ReadonlySet<string> = new Set([
  'changeConsent',
  'registerDid',
  'changeGuardian',
  'approveGuardian',
  'deactivateDid',
  'reactivateDid',
  'approveReactivation',
  'linkPatient',
  'erasePatient',
]);

/** LedgerClient methods that submit a transaction a caller is waiting for: those above, anchoring, and sync mode's decide-and-record. */
export const FOREGROUND_WRITES: ReadonlySet<string> = new Set([
  ...DECISION_INPUT_WRITES,
  'anchor',
  'anchorBatch',
  'anchorAndRecord',
  'authorizeAndRecord',
  'authorizeAndRecordBatch',
]);

/**
 * The ledger with `hooks` run around every call `select` picks: `start` before it, `settled` once it
 * has resolved or failed (also when it throws at once). Other members pass through, bound to the ledger.
 */
export function tapCalls<L extends object>(
  ledger: L,
  select: (method: string, args: readonly unknown[]) => boolean,
  hooks: { readonly start?: () => void; readonly settled: () => void },
): L {
  return new Proxy(ledger, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof prop !== 'string') return method.bind(target);
      return (...args: unknown[]): unknown => {
        if (!select(prop, args)) return method.apply(target, args);
        hooks.start?.();
        let result: Promise<unknown>;
        try {
          result = Promise.resolve(method.apply(target, args));
        } catch (err) {
          hooks.settled();
          throw err;
        }
        return result.finally(hooks.settled);
      };
    },
  });
}
