/**
 * Builds committed Fabric blocks with @hyperledger/fabric-protos, nested exactly as a peer delivers them
 * (Envelope → Payload → Transaction → ChaincodeActionPayload → ProposalResponsePayload → ChaincodeAction
 * → TxReadWriteSet), with the validation code of each transaction in the TRANSACTIONS_FILTER metadata.
 * For unit tests of the ledger view: no network.
 */
import { common, ledger, peer } from '@hyperledger/fabric-protos';

export interface TestWrite {
  key: string;
  /** JSON-serialized unless bytes; absent for a delete. */
  value?: unknown;
  delete?: boolean;
}

export interface TestTransaction {
  txId: string;
  /** Writes per namespace (the chaincode's name, or another one). */
  writes: Record<string, TestWrite[]>;
  /** Default VALID. */
  validationCode?: number;
  /** A config transaction instead of an endorser one (no writes read). */
  config?: boolean;
  /** The invocation the proposal carried: chaincode `hdx` (or `chaincode`), function and string arguments. */
  call?: { fn: string; args?: string[]; chaincode?: string };
}

function bytesOf(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? value : Buffer.from(JSON.stringify(value), 'utf8');
}

function envelopeOf(tx: TestTransaction, channel: string): Uint8Array {
  const sets = Object.entries(tx.writes).map(([namespace, writes]) => {
    const kv = new ledger.rwset.kvrwset.KVRWSet();
    kv.setWritesList(
      writes.map((w) => {
        const write = new ledger.rwset.kvrwset.KVWrite();
        write.setKey(w.key);
        write.setIsDelete(w.delete === true);
        if (w.delete !== true) write.setValue(bytesOf(w.value));
        return write;
      }),
    );
    const ns = new ledger.rwset.NsReadWriteSet();
    ns.setNamespace(namespace);
    ns.setRwset(kv.serializeBinary());
    return ns;
  });
  const rwset = new ledger.rwset.TxReadWriteSet();
  rwset.setDataModel(ledger.rwset.TxReadWriteSet.DataModel.KV);
  rwset.setNsRwsetList(sets);
  const chaincodeAction = new peer.ChaincodeAction();
  chaincodeAction.setResults(rwset.serializeBinary());
  const responsePayload = new peer.ProposalResponsePayload();
  responsePayload.setExtension$(chaincodeAction.serializeBinary());
  const endorsed = new peer.ChaincodeEndorsedAction();
  endorsed.setProposalResponsePayload(responsePayload.serializeBinary());
  const actionPayload = new peer.ChaincodeActionPayload();
  actionPayload.setAction(endorsed);
  if (tx.call) {
    const input = new peer.ChaincodeInput();
    input.setArgsList([tx.call.fn, ...(tx.call.args ?? [])].map((a) => Buffer.from(a, 'utf8')));
    const chaincodeId = new peer.ChaincodeID();
    chaincodeId.setName(tx.call.chaincode ?? 'hdx');
    const spec = new peer.ChaincodeSpec();
    spec.setChaincodeId(chaincodeId);
    spec.setInput(input);
    const invocation = new peer.ChaincodeInvocationSpec();
    invocation.setChaincodeSpec(spec);
    const proposal = new peer.ChaincodeProposalPayload();
    proposal.setInput(invocation.serializeBinary());
    actionPayload.setChaincodeProposalPayload(proposal.serializeBinary());
  }
  const action = new peer.TransactionAction();
  action.setPayload(actionPayload.serializeBinary());
  const transaction = new peer.Transaction();
  transaction.setActionsList([action]);

  const channelHeader = new common.ChannelHeader();
  channelHeader.setType(tx.config === true ? common.HeaderType.CONFIG : common.HeaderType.ENDORSER_TRANSACTION);
  channelHeader.setChannelId(channel);
  channelHeader.setTxId(tx.txId);
  const header = new common.Header();
  header.setChannelHeader(channelHeader.serializeBinary());
  const payload = new common.Payload();
  payload.setHeader(header);
  payload.setData(tx.config === true ? new Uint8Array([1, 2, 3]) : transaction.serializeBinary());
  const envelope = new common.Envelope();
  envelope.setPayload(payload.serializeBinary());
  return envelope.serializeBinary();
}

/** A committed block with these transactions, validation codes in its metadata. */
export function buildBlock(blockNumber: number, transactions: TestTransaction[], channel = 'hdx'): common.Block {
  const block = new common.Block();
  const header = new common.BlockHeader();
  header.setNumber(blockNumber);
  block.setHeader(header);
  const data = new common.BlockData();
  data.setDataList(transactions.map((tx) => envelopeOf(tx, channel)));
  block.setData(data);
  const metadata = new common.BlockMetadata();
  const entries: Uint8Array[] = [new Uint8Array(), new Uint8Array(), new Uint8Array(), new Uint8Array(), new Uint8Array()];
  entries[common.BlockMetadataIndex.TRANSACTIONS_FILTER] = Uint8Array.from(transactions.map((tx) => tx.validationCode ?? peer.TxValidationCode.VALID));
  metadata.setMetadataList(entries);
  block.setMetadata(metadata);
  return block;
}

/** Fabric's composite key: U+0000, the object type, each attribute, each followed by U+0000. */
export function compositeKey(objectType: string, attributes: string[]): string {
  return `\u0000${objectType}\u0000${attributes.map((a) => `${a}\u0000`).join('')}`;
}

/**
 * A peer's block delivery for unit tests: a chain of blocks, streams from any start block that yield
 * the stored blocks then wait for new commits (as Fabric's deliver service does), and its height. The
 * stream can be broken (every open stream fails) and the peer taken down (no stream, no height).
 */
export class FakePeer {
  readonly blocks: common.Block[] = [];
  down = false;
  /** The deliver service refuses streams while the peer still answers height queries. */
  deliveryDown = false;
  /** Start blocks of the streams opened, in order. */
  readonly opened: bigint[] = [];
  readonly #streams = new Set<{ wake: () => void; fail: (err: Error) => void }>();

  /** Commits a block with these transactions as the next block number. */
  commit(transactions: TestTransaction[]): common.Block {
    const block = buildBlock(this.blocks.length, transactions);
    this.blocks.push(block);
    for (const s of this.#streams) s.wake();
    return block;
  }

  /** Every open stream fails (a dropped connection). */
  breakStreams(): void {
    for (const s of this.#streams) s.fail(new Error('14 UNAVAILABLE: connection dropped'));
  }

  chainHeight(): Promise<bigint> {
    return this.down ? Promise.reject(new Error('14 UNAVAILABLE: peer down')) : Promise.resolve(BigInt(this.blocks.length));
  }

  blockEvents(startBlock: bigint): Promise<AsyncIterable<common.Block> & { close(): void }> {
    if (this.down || this.deliveryDown) return Promise.reject(new Error('14 UNAVAILABLE: peer down'));
    this.opened.push(startBlock);
    let next = Number(startBlock);
    let closed = false;
    let failure: Error | undefined;
    let waiting: (() => void) | undefined;
    const handle = {
      wake: (): void => waiting?.(),
      fail: (err: Error): void => {
        failure = err;
        waiting?.();
      },
    };
    this.#streams.add(handle);
    const close = (): void => {
      closed = true;
      this.#streams.delete(handle);
      waiting?.();
    };
    const iterate = async function* (peer: FakePeer): AsyncGenerator<common.Block> {
      for (;;) {
        if (failure) throw failure;
        if (closed) return;
        const block = peer.blocks[next];
        if (block) {
          next += 1;
          yield block;
          continue;
        }
        await new Promise<void>((resolve) => {
          waiting = resolve;
        });
        waiting = undefined;
      }
    };
    const generator = iterate(this);
    return Promise.resolve({ [Symbol.asyncIterator]: () => generator, close });
  }
}
