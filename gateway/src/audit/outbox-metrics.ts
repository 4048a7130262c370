import client from 'prom-client';
import type { OutboxStats } from './outbox';

/** The async audit outbox on /metrics: backlog, deliveries, failed attempts, dead letters (read at scrape time). */
export function registerOutboxMetrics(registry: client.Registry, outbox: { stats(): Promise<OutboxStats> }): void {
  const gauge = (name: string, help: string, read: (s: OutboxStats) => number): void => {
    new client.Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(read(await outbox.stats()));
      },
    });
  };
  const counter = (name: string, help: string, read: (s: OutboxStats) => number): void => {
    new client.Counter({
      name,
      help,
      registers: [registry],
      async collect() {
        // The outbox keeps the running total; the counter mirrors it.
        const stats = await outbox.stats();
        this.reset();
        this.inc(read(stats));
      },
    });
  };
  gauge('hdx_audit_outbox_pending', 'Access entries committed to the outbox and not yet on the ledger', (s) => s.pending);
  gauge('hdx_audit_outbox_oldest_pending_seconds', 'Age of the oldest entry waiting in the outbox (0 when empty)', (s) => s.oldestPendingMs / 1000);
  gauge(
    'hdx_audit_outbox_dead_letters',
    'Entries the ledger refused every time: dead letters, listed and re-delivered with hdx outbox dead-letters|redeliver',
    (s) => s.deadLetters,
  );
  gauge('hdx_audit_outbox_retrying', 'Entries the ledger refused at least once, waiting for their next attempt', (s) => s.retrying);
  counter('hdx_audit_outbox_delivered_total', 'Access entries delivered to the ledger by this process', (s) => s.delivered);
  counter('hdx_audit_outbox_failures_total', 'Delivery attempts that failed (the entries stayed and were retried)', (s) => s.failures);
}
