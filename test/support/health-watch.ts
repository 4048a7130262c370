/**
 * For the fault tests: what a gateway's /healthz said over time (a sample every `everyMs`), so a test can
 * tell when the gateway turned unhealthy after a fault and when it was healthy again, with its ledger
 * view's lag.
 */

export interface HealthSample {
  readonly at: number;
  /** HTTP status of /healthz, 0 when it did not answer within 10 s. */
  readonly status: number;
  /** checks.ledger.ok */
  readonly ledgerOk: boolean | undefined;
  /** checks.view.lagBlocks, as a number */
  readonly lagBlocks: number | undefined;
  /** checks.view.fresh */
  readonly fresh: boolean | undefined;
  readonly ms: number;
}

interface Healthz {
  checks?: { ledger?: { ok?: boolean }; view?: { lagBlocks?: string; fresh?: boolean } };
}

/** One /healthz call to the gateway whose FHIR base URL is `baseUrl`. */
export async function healthOf(baseUrl: string): Promise<HealthSample> {
  const at = Date.now();
  try {
    const res = await fetch(`${baseUrl.replace(/\/fhir$/, '')}/healthz`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as Healthz;
    const lag = body.checks?.view?.lagBlocks;
    return {
      at,
      status: res.status,
      ledgerOk: body.checks?.ledger?.ok,
      lagBlocks: lag === undefined ? undefined : Number(lag),
      fresh: body.checks?.view?.fresh,
      ms: Date.now() - at,
    };
  } catch {
    return { at, status: 0, ledgerOk: undefined, lagBlocks: undefined, fresh: undefined, ms: Date.now() - at };
  }
}

/** Samples a gateway's /healthz every `everyMs` until stopped. */
export function watchHealth(baseUrl: string, everyMs = 500): { samples: HealthSample[]; stop: () => Promise<void> } {
  const samples: HealthSample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      samples.push(await healthOf(baseUrl));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Polls `check` every 500 ms until it is true (true) or `timeoutMs` passes (false). */
export async function waitUntil(timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}
