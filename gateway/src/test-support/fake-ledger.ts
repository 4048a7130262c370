import type { Anchor, AnchorInput, LedgerClient } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../fhir/outcome';

/**
 * An in-memory ledger with the hdx.record rules that matter to the gateway (an anchored version never
 * changes; identical re-anchoring is idempotent). Unit tests only: the real path is tested in test/.
 */
export class FakeLedger implements LedgerClient {
  readonly anchors = new Map<string, Anchor>();
  /** When set, the next calls fail with this error (e.g. the ledger is down). */
  failWith: OperationOutcomeError | undefined;
  constructor(readonly mspId = 'Hospital1MSP') {}

  async anchor(input: AnchorInput): Promise<Anchor> {
    if (this.failWith) throw this.failWith;
    const key = `${input.resourceType}/${input.id}/_history/${input.versionId}`;
    const existing = this.anchors.get(key);
    if (existing) {
      if (existing.commitment.value !== input.commitment.value) throw new OperationOutcomeError('CONFLICT', `${key} is already anchored with a different commitment`);
      return existing;
    }
    const anchor: Anchor = { ...input, custodian: this.mspId, txId: `tx${this.anchors.size}`, anchoredAt: new Date().toISOString() };
    this.anchors.set(key, anchor);
    return anchor;
  }

  async getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    if (this.failWith) throw this.failWith;
    return this.anchors.get(`${resourceType}/${id}/_history/${versionId}`);
  }

  async ping(): Promise<void> {
    if (this.failWith) throw this.failWith;
  }

  close(): void {}
}
