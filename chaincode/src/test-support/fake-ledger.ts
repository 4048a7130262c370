/**
 * An in-memory ledger for unit tests. Each `invoke` is one transaction with Fabric's semantics:
 * reads see committed state only (not the transaction's own writes), writes apply only when the
 * transaction succeeds (all-or-nothing), paginated queries are refused in a transaction that writes,
 * range queries walk keys in sorted order, and a non-empty bookmark replaces a paginated query's start
 * key without any bound (the peer's handler.go does so: the chaincode must check bookmarks itself).
 * Built into dist/ so the gateway's tests can run the real contracts on it (ContractLedger).
 */
import { Context } from 'fabric-contract-api';

const MIN = '\u0000';
const MAX = '\u{10ffff}';

type KV = { namespace: string; key: string; value: Uint8Array };

export interface FakeIdentity {
  mspId: string;
  id?: string;
  attributes?: Record<string, string>;
}

export interface ChaincodeEvent {
  txId: string;
  name: string;
  payload: Uint8Array;
}

function iteratorOf(rows: KV[]): { next(): Promise<{ value?: KV; done: boolean }>; close(): Promise<void> } {
  let index = 0;
  return {
    next: async () => (index < rows.length ? { value: rows[index++], done: false } : { done: true }),
    close: async () => undefined,
  };
}

export class FakeTx {
  public readonly writes = new Map<string, Uint8Array | null>();
  public readonly events: ChaincodeEvent[] = [];
  private paginated = false;

  public constructor(
    private readonly ledger: FakeLedger,
    public readonly txId: string,
    public readonly seconds: number,
    public readonly nanos: number,
  ) {}

  public getTxID(): string {
    return this.txId;
  }

  public getTxTimestamp(): { seconds: { toNumber(): number; toString(): string }; nanos: number } {
    const seconds = this.seconds;
    return { seconds: { toNumber: () => seconds, toString: () => String(seconds) }, nanos: this.nanos };
  }

  public async getState(key: string): Promise<Uint8Array> {
    return this.ledger.state.get(key) ?? new Uint8Array(0);
  }

  public async putState(key: string, value: Uint8Array): Promise<void> {
    this.assertWritable();
    if (typeof key !== 'string' || key.length === 0) {
      throw new Error('key must not be empty');
    }
    if (!value || value.length === 0) {
      throw new Error('test ledger: an empty value would be a delete; use deleteState');
    }
    this.writes.set(key, Buffer.from(value));
  }

  public async deleteState(key: string): Promise<void> {
    this.assertWritable();
    this.writes.set(key, null);
  }

  public setEvent(name: string, payload: Uint8Array): void {
    this.events.push({ txId: this.txId, name, payload: Buffer.from(payload) });
  }

  public createCompositeKey(objectType: string, attributes: string[]): string {
    for (const part of [objectType, ...attributes]) {
      if (typeof part !== 'string' || part.length === 0) {
        throw new Error('object type or attribute not a non-zero length string');
      }
    }
    return `${MIN}${objectType}${MIN}${attributes.map((a) => `${a}${MIN}`).join('')}`;
  }

  public splitCompositeKey(key: string): { objectType: string | null; attributes: string[] } {
    if (!key.startsWith(MIN)) {
      return { objectType: null, attributes: [] };
    }
    const parts = key.slice(1).split(MIN);
    parts.pop();
    const [objectType, ...attributes] = parts;
    return { objectType: objectType ?? null, attributes };
  }

  public async getStateByRange(startKey: string, endKey: string): Promise<ReturnType<typeof iteratorOf>> {
    this.assertSimple(startKey, endKey);
    return iteratorOf(this.rows(startKey || '\u0001', endKey || MAX));
  }

  public async getStateByRangeWithPagination(startKey: string, endKey: string, pageSize: number, bookmark?: string) {
    this.assertSimple(startKey, endKey);
    return this.page(startKey || '\u0001', endKey || MAX, pageSize, bookmark);
  }

  public async getStateByPartialCompositeKey(objectType: string, attributes: string[]) {
    const prefix = this.createCompositeKey(objectType, attributes);
    return iteratorOf(this.rows(prefix, prefix + MAX));
  }

  public async getStateByPartialCompositeKeyWithPagination(objectType: string, attributes: string[], pageSize: number, bookmark?: string) {
    const prefix = this.createCompositeKey(objectType, attributes);
    return this.page(prefix, prefix + MAX, pageSize, bookmark);
  }

  public async getQueryResult(): Promise<never> {
    throw new Error('ExecuteQuery not supported for leveldb');
  }

  private page(startKey: string, endKey: string, pageSize: number, bookmark?: string) {
    if (this.writes.size > 0) {
      throw new Error('test ledger: paginated queries are not supported in a transaction that writes');
    }
    this.paginated = true;
    // Fabric (core/chaincode/handler.go): a non-empty bookmark REPLACES the start key, unbounded.
    const from = bookmark ? bookmark : startKey;
    const all = this.rows(from, endKey);
    const rows = all.slice(0, pageSize);
    const next = all[pageSize];
    return {
      iterator: iteratorOf(rows),
      metadata: { fetchedRecordsCount: rows.length, bookmark: next ? next.key : '' },
    };
  }

  private rows(startKey: string, endKey: string): KV[] {
    return [...this.ledger.state.keys()]
      .filter((key) => key >= startKey && key < endKey)
      .sort()
      .map((key) => ({ namespace: 'hdx', key, value: this.ledger.state.get(key) as Uint8Array }));
  }

  private assertSimple(...keys: string[]): void {
    for (const key of keys) {
      if (key.startsWith(MIN)) {
        throw new Error(`first character of the key [${key}] contains a null character which is not allowed`);
      }
    }
  }

  private assertWritable(): void {
    if (this.paginated) {
      throw new Error('test ledger: writes are not supported in a transaction that ran a paginated query');
    }
  }
}

export class FakeLedger {
  public readonly state = new Map<string, Uint8Array>();
  public readonly events: ChaincodeEvent[] = [];
  /** Seconds since the epoch of the next transaction; each transaction advances it by one second. */
  public clock = 1_700_000_000;
  private sequence = 0;
  public lastTx: FakeTx | undefined;

  /** Runs `fn` as one transaction of `identity`; commits its writes and events only if it succeeds. */
  public async invoke<T>(identity: FakeIdentity, fn: (ctx: Context) => Promise<T>): Promise<T> {
    return this.transact(
      (tx) => fn(contextOf(tx, identity)),
      () => true,
    );
  }

  /** Runs `fn` as an evaluate (query) of `identity`: same stub, nothing committed, as Fabric's evaluateTransaction. */
  public async evaluate<T>(identity: FakeIdentity, fn: (ctx: Context) => Promise<T>): Promise<T> {
    return this.transact(
      (tx) => fn(contextOf(tx, identity)),
      () => false,
    );
  }

  /** Runs `fn` on a fresh transaction stub; commits when `committed(result)` says so. */
  public async transact<T>(fn: (tx: FakeTx) => Promise<T>, committed: (result: T) => boolean): Promise<T> {
    this.sequence += 1;
    const txId = this.sequence.toString(16).padStart(64, '0');
    const tx = new FakeTx(this, txId, this.clock, 123_456_789);
    this.clock += 1;
    this.lastTx = tx;
    const result = await fn(tx);
    if (!committed(result)) {
      return result;
    }
    for (const [key, value] of tx.writes) {
      if (value === null) {
        this.state.delete(key);
      } else {
        this.state.set(key, value);
      }
    }
    this.events.push(...tx.events);
    return result;
  }

  public keys(objectType?: string): string[] {
    const all = [...this.state.keys()].sort();
    return objectType === undefined ? all : all.filter((key) => key.startsWith(`${MIN}${objectType}${MIN}`));
  }

  public json(key: string): unknown {
    const value = this.state.get(key);
    return value === undefined ? undefined : JSON.parse(Buffer.from(value).toString('utf8'));
  }
}

function contextOf(tx: FakeTx, identity: FakeIdentity): Context {
  const attributes = identity.attributes ?? {};
  const clientIdentity = {
    getMSPID: () => identity.mspId,
    getID: () => identity.id ?? `x509::/CN=user@${identity.mspId}::/CN=ca.${identity.mspId}`,
    getAttributeValue: (name: string) => attributes[name] ?? null,
    assertAttributeValue: (name: string, value: string) => attributes[name] === value,
    getIDBytes: () => new Uint8Array(0),
  };
  const logger = { debug() {}, info() {}, warn() {}, error() {} };
  return {
    stub: tx,
    clientIdentity,
    logging: { setLevel() {}, getLogger: () => logger },
  } as unknown as Context;
}

/** A Fabric identity of `mspId` with an optional `hdx.role` and extra attributes. */
export function identity(mspId: string, role?: string, attributes: Record<string, string> = {}): FakeIdentity {
  return { mspId, attributes: role === undefined ? attributes : { ...attributes, 'hdx.role': role } };
}

/** Asserts that `promise` rejects with a `CODE: …` message and returns the message. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!message.startsWith(`${code}: `)) {
      throw new Error(`expected ${code}, got: ${message}`);
    }
    return message;
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
