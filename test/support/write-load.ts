/**
 * A steady, bounded write load at one HDX gateway for the fault tests: `count` Patient creations, one
 * started every `intervalMs` (open loop, so a stalled ledger does not slow the offered load), never more
 * than `maxInFlight` at once, each with its own deadline. What each write was answered is recorded, so a
 * test can count what was acknowledged and check that every acknowledged write is on the ledger.
 */
import type { Gw } from './fhir-client';

export interface WriteResult {
  readonly n: number;
  readonly startedAt: number;
  readonly endedAt: number;
  /** HTTP status, or 0 when no answer came before the deadline (or the connection failed). */
  readonly status: number;
  /** The created Patient's id, for an acknowledged (201) write. */
  readonly id?: string;
  readonly error?: string;
}

export interface LoadOptions {
  readonly count: number;
  readonly intervalMs: number;
  readonly maxInFlight: number;
  readonly deadlineMs: number;
  /** Called once when write number `n` is about to start (e.g. to kill a node under load). */
  readonly onStart?: (n: number) => Promise<void> | void;
}

function patient(n: number): object {
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `LOAD-${process.pid}-${n}` }],
    name: [{ family: 'Loadtest', given: [`Writer${n}`] }],
    gender: 'unknown',
    birthDate: '1980-01-01',
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function write(gw: Gw, token: string, n: number, deadlineMs: number): Promise<WriteResult> {
  const startedAt = Date.now();
  try {
    const res = await fetch(`${gw.config.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` },
      body: JSON.stringify(patient(n)),
      signal: AbortSignal.timeout(deadlineMs),
    });
    const text = await res.text();
    const id = res.status === 201 ? (JSON.parse(text) as { id: string }).id : undefined;
    return { n, startedAt, endedAt: Date.now(), status: res.status, ...(id ? { id } : { error: text.slice(0, 200) }) };
  } catch (err) {
    return { n, startedAt, endedAt: Date.now(), status: 0, error: err instanceof Error ? err.message : String(err) };
  }
}

export async function writeLoad(gw: Gw, token: string, opts: LoadOptions): Promise<WriteResult[]> {
  const results: Array<Promise<WriteResult>> = [];
  let inFlight = 0;
  const start = Date.now();
  for (let n = 0; n < opts.count; n++) {
    // Open loop on a fixed schedule; if the ledger stalls, wait (bounded) for a slot instead of piling up.
    const due = start + n * opts.intervalMs;
    if (due > Date.now()) await sleep(due - Date.now());
    while (inFlight >= opts.maxInFlight) await sleep(20);
    await opts.onStart?.(n);
    inFlight++;
    results.push(
      write(gw, token, n, opts.deadlineMs).finally(() => {
        inFlight--;
      }),
    );
  }
  return Promise.all(results);
}

/**
 * Acknowledgements per `windowMs` window, from `windowsBefore` windows before the fault on, e.g.
 * "-10s:50 -5s:25 0s:3 5s:0 ..." — where the load stalled and for how long.
 */
export function timeline(results: readonly WriteResult[], faultAt: number, windowMs = 5000, windowsBefore = 2): string {
  const acked = results.filter((r) => r.status === 201);
  const last = Math.max(faultAt, ...acked.map((r) => r.endedAt));
  const out: string[] = [];
  for (let from = faultAt - windowsBefore * windowMs; from <= last; from += windowMs) {
    const n = acked.filter((r) => r.endedAt >= from && r.endedAt < from + windowMs).length;
    out.push(`${Math.round((from - faultAt) / 1000)}s:${n}`);
  }
  return out.join(' ');
}

/** Figures of a load run around a fault injected at `faultAt` (ms since the epoch). */
export function summarize(
  results: readonly WriteResult[],
  faultAt: number,
): { acknowledged: number; failed: number; statuses: Record<string, number>; resumeMs: number | undefined; stallMs: number; slowest: { n: number; ms: number } | undefined } {
  const acked = results.filter((r) => r.status === 201);
  const statuses: Record<string, number> = {};
  for (const r of results) statuses[String(r.status)] = (statuses[String(r.status)] ?? 0) + 1;
  // Time to resume: from the fault to the first acknowledgement of a write started after it.
  const after = acked.filter((r) => r.startedAt >= faultAt).map((r) => r.endedAt);
  const resumeMs = after.length > 0 ? Math.min(...after) - faultAt : undefined;
  // The longest time without any acknowledgement while load was still offered (fault to last start).
  const lastStart = Math.max(...results.map((r) => r.startedAt));
  const ends = [faultAt, ...acked.map((r) => r.endedAt).filter((t) => t >= faultAt && t <= lastStart), lastStart].sort((a, b) => a - b);
  let stallMs = 0;
  for (let i = 1; i < ends.length; i++) stallMs = Math.max(stallMs, (ends[i] ?? 0) - (ends[i - 1] ?? 0));
  // The slowest acknowledged write (a write caught by the fault is answered last).
  let slowest: { n: number; ms: number } | undefined;
  for (const r of acked) if (!slowest || r.endedAt - r.startedAt > slowest.ms) slowest = { n: r.n, ms: r.endedAt - r.startedAt };
  return { acknowledged: acked.length, failed: results.length - acked.length, statuses, resumeMs, stallMs, slowest };
}
