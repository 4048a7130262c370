/**
 * Opt-in timing of the phases of a write, for bench/ingest-profile.ts: where the time of one FHIR
 * transaction Bundle goes. Off unless a sink is set (setPhaseSink), and then it only reports durations to
 * the sink: what it measures runs exactly as it would without it, and a sink that throws is ignored.
 * The sink is process-wide (a benchmark runs one gateway); phases of concurrent writes are reported as
 * they end, each with its own duration. Phase names and details carry no resource ids (no PHI).
 */
import { performance } from 'node:perf_hooks';

export type Phase =
  /** The request body's JSON parse (with the depth check before it). */
  | 'parse'
  /** FHIR validation; detail `bundle` (the whole Bundle) or `resource` (one resource, inside plan for a Bundle). */
  | 'validate'
  /** The write plan: every version prepared (patient resolved, meta, row); includes the entries' validate, index and commitment, reported on their own too. */
  | 'plan'
  /** Search index entries of a version (FHIRPath over its type's search parameters). */
  | 'index'
  /** A version's commitment and ledger anchor input (HMAC). */
  | 'commitment'
  /** Earlier pending writes of the same resources looked up before a write is stored. */
  | 'pending-check'
  /** The write's versions stored pending (one SQLite transaction). */
  | 'store-pending'
  /** A ledger transaction endorsed (the peers ran the chaincode); detail: the transaction's name. */
  | 'endorse'
  /** A ledger transaction sent to ordering and its commit waited for; detail: the transaction's name. */
  | 'commit-wait'
  /** The write's search index rows stored (while its anchors are on their way to the ledger). */
  | 'store-index'
  /** The write's versions marked anchored (one SQLite transaction). */
  | 'mark-anchored'
  /** The change's access entries built and, in sync mode when they did not travel with the anchors, delivered. */
  | 'audit';

export type PhaseSink = (phase: Phase, ms: number, detail?: string) => void;

let sink: PhaseSink | undefined;

/** Sets (or, with undefined, removes) the process-wide sink. */
export function setPhaseSink(next: PhaseSink | undefined): void {
  sink = next;
}

function report(to: PhaseSink, phase: Phase, t0: number, detail: string | undefined): void {
  try {
    to(phase, performance.now() - t0, detail);
  } catch {
    // A measurement never changes what is measured.
  }
}

/** Runs `fn`, reporting its duration when a sink is set. */
export function timeSync<T>(phase: Phase, fn: () => T, detail?: string): T {
  const to = sink;
  if (!to) return fn();
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    report(to, phase, t0, detail);
  }
}

/** Awaits `fn`, reporting its duration (success or failure) when a sink is set. */
export async function timeAsync<T>(phase: Phase, fn: () => Promise<T>, detail?: string): Promise<T> {
  const to = sink;
  if (!to) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    report(to, phase, t0, detail);
  }
}

/**
 * A clock started now when a sink is set (undefined otherwise): calling it reports the time since, for a
 * phase that spans several statements (a loop); nested phases inside it are reported on their own too.
 */
export function phaseClock(): ((phase: Phase, detail?: string) => void) | undefined {
  const to = sink;
  if (!to) return undefined;
  const t0 = performance.now();
  return (phase, detail) => {
    report(to, phase, t0, detail);
  };
}
