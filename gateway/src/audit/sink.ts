import { MAX_AUDIT_BATCH } from '@hdx/chaincode/dist/protocol';
import type { AccessEntryInput, LedgerClient } from '../ledger/ledger-client';

/** hdx.audit:RecordAccessBatch takes at most this many entries per transaction (the chaincode's MAX_AUDIT_BATCH). */
export const MAX_LEDGER_BATCH = MAX_AUDIT_BATCH;

/** What a sink did with one entry. */
export interface RecordedEntry {
  /** The gateway's id of the entry (set by the caller or by the sink); makes resends idempotent. */
  readonly entryId: string;
  /** The ledger's id of the entry: known only once it is on the ledger (sync mode). */
  readonly eventId?: string;
  readonly breakGlass: boolean;
}

/**
 * Where the enforcement point records access entries. When `record()` resolves, the entries are
 * committed somewhere that survives a crash, so the data they describe may be released:
 *
 * - `ledger` (sync audit mode): committed on the ledger.
 * - `outbox` (async audit mode): committed to the gateway's durable outbox, delivered to the ledger
 *   later in batches (audit/outbox.ts).
 */
export interface AuditSink {
  readonly kind: 'ledger' | 'outbox';
  record(entries: readonly AccessEntryInput[]): Promise<RecordedEntry[]>;
}

/** Sync audit mode: straight to the ledger, at most 200 entries per transaction, each waited for. */
export class LedgerAuditSink implements AuditSink {
  readonly kind = 'ledger';

  constructor(private readonly ledger: Pick<LedgerClient, 'recordAccess'>) {}

  async record(entries: readonly AccessEntryInput[]): Promise<RecordedEntry[]> {
    const out: RecordedEntry[] = [];
    for (let i = 0; i < entries.length; i += MAX_LEDGER_BATCH) {
      const chunk = entries.slice(i, i + MAX_LEDGER_BATCH);
      const recorded = await this.ledger.recordAccess(chunk);
      recorded.forEach((e, j) => out.push({ entryId: e.entryId ?? chunk[j]?.entryId ?? '', eventId: e.eventId, breakGlass: e.breakGlass }));
    }
    return out;
  }
}
