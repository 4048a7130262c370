/**
 * Committed blocks → the key writes of one chaincode namespace, as the peer applied them to its world
 * state: only endorser transactions the committing peer marked VALID (the block's TRANSACTIONS_FILTER
 * metadata), in block order. Pure: no network, no clock.
 *
 * The nesting is Fabric's: Block.data[i] = Envelope → Payload (ChannelHeader: type, txId) → Transaction
 * → TransactionAction[] → ChaincodeActionPayload → ChaincodeEndorsedAction → ProposalResponsePayload →
 * ChaincodeAction.results = TxReadWriteSet → NsReadWriteSet[] (one per namespace) → KVRWSet.writes.
 */
import { common, ledger, peer } from '@hyperledger/fabric-protos';

/** One key written (or deleted) by a valid transaction. */
export interface KeyWrite {
  readonly key: string;
  /** The value written; undefined for a delete. */
  readonly value: Uint8Array | undefined;
  readonly deleted: boolean;
  readonly txId: string;
  readonly blockNumber: bigint;
  /** Position of the transaction's envelope in the block (0-based). */
  readonly txIndex: number;
}

/** What a valid transaction invoked on the namespace: the chaincode function and its arguments, as proposed. */
export interface TransactionCall {
  readonly txId: string;
  readonly txIndex: number;
  /** The function, as the client named it (`hdx.audit:AuthorizeAndRecord`): args[0]. */
  readonly fn: string;
  /** The arguments after the function, as sent (UTF-8 JSON for the hdx contracts). */
  readonly args: readonly Uint8Array[];
}

export interface ParsedBlock {
  readonly blockNumber: bigint;
  /** Envelopes in the block (config and invalid transactions included). */
  readonly envelopes: number;
  /** Endorser transactions marked invalid, skipped (their txIds). */
  readonly invalid: readonly string[];
  /** The namespace's writes of the valid transactions, in block order. */
  readonly writes: readonly KeyWrite[];
  /**
   * The namespace's invocations by the valid transactions, in block order (what the proposal asked for;
   * the writes are what the chaincode did), when parseBlock was asked for them.
   */
  readonly calls?: readonly TransactionCall[];
}

/** A block that cannot be read as Fabric wrote it: the view stops rather than skip what it holds. */
export class MalformedBlockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = MalformedBlockError.name;
  }
}

function defined<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new MalformedBlockError(`${what} is missing`);
  return value;
}

/** The validation code of each envelope (index i ↔ data[i]). */
function validationCodes(block: common.Block, blockNumber: bigint): Uint8Array {
  const metadata = defined(block.getMetadata(), `block ${blockNumber}: metadata`);
  return metadata.getMetadataList_asU8()[common.BlockMetadataIndex.TRANSACTIONS_FILTER] ?? new Uint8Array();
}

/** The writes in `namespace` of one endorser transaction (every action of it). */
function namespaceWrites(transaction: peer.Transaction, namespace: string): ledger.rwset.kvrwset.KVWrite[] {
  const out: ledger.rwset.kvrwset.KVWrite[] = [];
  for (const action of transaction.getActionsList()) {
    const actionPayload = peer.ChaincodeActionPayload.deserializeBinary(action.getPayload_asU8());
    const endorsed = defined(actionPayload.getAction(), 'chaincode endorsed action');
    const response = peer.ProposalResponsePayload.deserializeBinary(endorsed.getProposalResponsePayload_asU8());
    const chaincodeAction = peer.ChaincodeAction.deserializeBinary(response.getExtension_asU8());
    const rwset = ledger.rwset.TxReadWriteSet.deserializeBinary(chaincodeAction.getResults_asU8());
    for (const ns of rwset.getNsRwsetList()) {
      if (ns.getNamespace() !== namespace) continue;
      out.push(...ledger.rwset.kvrwset.KVRWSet.deserializeBinary(ns.getRwset_asU8()).getWritesList());
    }
  }
  return out;
}

/** The namespace's invocation of an endorser transaction (its first action that invoked `namespace`). */
function namespaceCall(transaction: peer.Transaction, namespace: string): { fn: string; args: Uint8Array[] } | undefined {
  for (const action of transaction.getActionsList()) {
    const actionPayload = peer.ChaincodeActionPayload.deserializeBinary(action.getPayload_asU8());
    const proposal = peer.ChaincodeProposalPayload.deserializeBinary(actionPayload.getChaincodeProposalPayload_asU8());
    const spec = peer.ChaincodeInvocationSpec.deserializeBinary(proposal.getInput_asU8()).getChaincodeSpec();
    if (spec?.getChaincodeId()?.getName() !== namespace) continue;
    const [fn, ...args] = spec.getInput()?.getArgsList_asU8() ?? [];
    if (fn === undefined) continue;
    return { fn: Buffer.from(fn).toString('utf8'), args };
  }
  return undefined;
}

/**
 * The writes of `namespace` (the chaincode's name) in a committed block, from valid transactions only.
 * Config transactions and other namespaces are skipped; a transaction whose validation code is not
 * VALID is skipped and listed in `invalid`. With `calls`, also what each valid transaction invoked on
 * the namespace (the replay needs it; the live view does not decode it). Throws MalformedBlockError on a
 * block it cannot read.
 */
export function parseBlock(input: common.Block | Uint8Array, namespace: string, options: { calls?: boolean } = {}): ParsedBlock {
  try {
    return parseUnchecked(input instanceof Uint8Array ? common.Block.deserializeBinary(input) : input, namespace, options.calls === true);
  } catch (err) {
    if (err instanceof MalformedBlockError) throw err;
    // A protobuf that does not decode (truncated, or not what its header says).
    throw new MalformedBlockError(`the block does not decode: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseUnchecked(block: common.Block, namespace: string, withCalls: boolean): ParsedBlock {
  const blockNumber = BigInt(defined(block.getHeader(), 'block header').getNumber());
  const data = block.getData()?.getDataList_asU8() ?? [];
  const codes = validationCodes(block, blockNumber);
  const writes: KeyWrite[] = [];
  const calls: TransactionCall[] = [];
  const invalid: string[] = [];
  data.forEach((envelopeBytes, txIndex) => {
    const envelope = common.Envelope.deserializeBinary(envelopeBytes);
    const payload = common.Payload.deserializeBinary(envelope.getPayload_asU8());
    const header = defined(payload.getHeader(), `block ${blockNumber} transaction ${txIndex}: payload header`);
    const channelHeader = common.ChannelHeader.deserializeBinary(header.getChannelHeader_asU8());
    if (channelHeader.getType() !== common.HeaderType.ENDORSER_TRANSACTION) return;
    const txId = channelHeader.getTxId();
    const code = codes[txIndex];
    if (code === undefined) {
      // Skipping it could hide a valid write (a gap); reading it could apply an invalid one.
      throw new MalformedBlockError(`block ${blockNumber} has no validation code for transaction ${txIndex}`);
    }
    if (code !== peer.TxValidationCode.VALID) {
      invalid.push(txId);
      return;
    }
    const transaction = peer.Transaction.deserializeBinary(payload.getData_asU8());
    const call = withCalls ? namespaceCall(transaction, namespace) : undefined;
    if (call) calls.push({ txId, txIndex, ...call });
    for (const w of namespaceWrites(transaction, namespace)) {
      const deleted = w.getIsDelete();
      writes.push({ key: w.getKey(), value: deleted ? undefined : w.getValue_asU8(), deleted, txId, blockNumber, txIndex });
    }
  });
  return { blockNumber, envelopes: data.length, invalid, writes, ...(withCalls ? { calls } : {}) };
}
