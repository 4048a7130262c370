import type { Anchor, AnchorInput } from '@hdx/chaincode';

export type { Anchor, AnchorInput };

/**
 * What the gateway asks of the ledger. The Fabric implementation is fabric-ledger.ts; unit tests use
 * an in-memory fake with the same rules. Failures are OperationOutcomeErrors (see ledger-errors.ts).
 */
export interface LedgerClient {
  /** Anchors one resource version (submit; waits for the commit). Idempotent for identical input. */
  anchor(input: AnchorInput): Promise<Anchor>;
  /** The anchor of a version, or undefined if it was never anchored. */
  getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined>;
  /** Resolves when the ledger answers a query through this organization's peer. */
  ping(): Promise<void>;
  close(): void;
}
