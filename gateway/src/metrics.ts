import client from 'prom-client';
import type { LedgerClient } from './ledger/ledger-client';

/** One registry per gateway (tests run several gateways in one process). */
export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'hdx_gateway_' });
  const httpRequests = new client.Counter({
    name: 'hdx_http_requests_total',
    help: 'HTTP requests by method, route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new client.Histogram({
    name: 'hdx_http_request_duration_seconds',
    help: 'HTTP request duration by method and route pattern',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const ledgerCalls = new client.Histogram({
    name: 'hdx_ledger_call_duration_seconds',
    help: 'Ledger calls (evaluate or submit-and-commit) by operation and outcome',
    labelNames: ['op', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const decisions = new client.Counter({
    name: 'hdx_access_decisions_total',
    help: 'Consent decisions returned by the ledger (permit/deny; break-glass flagged)',
    labelNames: ['decision', 'break_glass'] as const,
    registers: [registry],
  });
  const errors = new client.Counter({
    name: 'hdx_errors_total',
    help: 'OperationOutcome errors returned, by HDX error code (e.g. INTEGRITY, FORBIDDEN)',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  return { registry, httpRequests, httpDuration, ledgerCalls, decisions, errors };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Wraps a LedgerClient so every call is timed and every consent decision counted. */
export function instrumentLedger(ledger: LedgerClient, metrics: Metrics): LedgerClient {
  const timed =
    <A extends unknown[], R>(op: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const end = metrics.ledgerCalls.startTimer({ op });
      try {
        const result = await fn(...args);
        end({ outcome: 'ok' });
        // One decision, or one per request of a batch (AuthorizeAndRecordBatch).
        for (const d of (Array.isArray(result) ? result : [result]) as Array<{ decision?: unknown; breakGlass?: unknown } | undefined>) {
          if (d && (d.decision === 'permit' || d.decision === 'deny')) metrics.decisions.inc({ decision: d.decision, break_glass: String(d.breakGlass === true) });
        }
        return result;
      } catch (err) {
        end({ outcome: (err as { code?: string }).code ?? 'error' });
        throw err;
      }
    };
  return new Proxy(ledger, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      // Bound to the real client, so its private fields keep working.
      const bound = (value as (...a: unknown[]) => unknown).bind(target);
      return prop === 'close' ? bound : timed(String(prop), bound as (...a: unknown[]) => Promise<unknown>);
    },
  });
}
