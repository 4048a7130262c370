import type { FabricLedger } from '@hdx/gateway';

/**
 * Which of the given Patients (version 1) have an anchor on the ledger, read through `ledger`'s own peer.
 * Waits (bounded, 60 s) for the peer to receive the last blocks before reporting any as missing.
 */
export async function anchoredOf(ledger: FabricLedger, ids: readonly string[], timeoutMs = 60_000): Promise<{ found: number; missing: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let missing = [...ids];
  for (;;) {
    const still: string[] = [];
    for (const id of missing) if ((await ledger.getAnchor('Patient', id, '1')) === undefined) still.push(id);
    missing = still;
    if (missing.length === 0 || Date.now() > deadline) return { found: ids.length - missing.length, missing };
    await new Promise((r) => setTimeout(r, 1000));
  }
}
