/**
 * A small generic Fabric Gateway client for the integration tests: any transaction of any hdx contract,
 * submitted or evaluated through one organization's own peer, with the organization's gateway identity
 * (enrolled from its Fabric CA exactly as the HDX gateway does) or its admin identity (from the MSP the
 * launcher wrote). Results are parsed JSON; failures are LedgerErrors carrying the chaincode's `CODE`
 * (from `CODE: message`) or the commit's validation code (e.g. MVCC_READ_CONFLICT).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Contract, connect, type Gateway, hash, type Network, signers, StatusCode } from '@hyperledger/fabric-gateway';
import { enrollGatewayIdentity, newLogger } from '@hdx/gateway';
import { gatewayConfig, network } from './network';

const CHAINCODE_CODES = ['NOT_FOUND', 'ALREADY_EXISTS', 'CONFLICT', 'UNAUTHENTICATED', 'FORBIDDEN', 'INVALID'] as const;
const CODE_PATTERN = new RegExp(`\\b(${CHAINCODE_CODES.join('|')}): (.*)$`, 's');

/** A failed call: `code` is the chaincode's code, a validation code name, or `GRPC_<status>`. */
export class LedgerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly transactionId?: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'LedgerError';
  }
}

interface GatewayLikeError {
  code?: unknown;
  message?: string;
  details?: Array<{ message?: string }>;
  transactionId?: string;
}

/** The chaincode's `CODE: message`, found in an evaluate error's message or an endorse error's details. */
function toLedgerError(err: unknown): LedgerError {
  if (err instanceof LedgerError) return err;
  const e = err as GatewayLikeError;
  for (const text of [...(e.details ?? []).map((d) => d.message ?? ''), e.message ?? '']) {
    const m = CODE_PATTERN.exec(text);
    if (m?.[1] && m[2] !== undefined) return new LedgerError(m[1], m[2].trim(), e.transactionId);
  }
  const details = (e.details ?? []).map((d) => d.message).join('; ');
  return new LedgerError(typeof e.code === 'number' ? `GRPC_${e.code}` : 'UNKNOWN', `${e.message ?? String(err)}${details ? ` (${details})` : ''}`, e.transactionId);
}

export interface Submitted<T> {
  result: T;
  txId: string;
  blockNumber: bigint;
}

const DEADLINE_MS = 30_000;

export class OrgClient {
  readonly #client: grpc.Client;
  readonly #gateway: Gateway;
  readonly #network: Network;
  readonly #contracts = new Map<string, Contract>();
  readonly #cleanup: () => void;

  private constructor(
    readonly org: string,
    readonly mspId: string,
    endpoint: string,
    tlsCaFile: string,
    certificate: string,
    privateKey: string,
    channel: string,
    private readonly chaincode: string,
    cleanup: () => void,
  ) {
    this.#client = new grpc.Client(endpoint, grpc.credentials.createSsl(fs.readFileSync(tlsCaFile)));
    const deadline = (): grpc.CallOptions => ({ deadline: Date.now() + DEADLINE_MS });
    this.#gateway = connect({
      client: this.#client,
      identity: { mspId, credentials: Buffer.from(certificate) },
      signer: signers.newPrivateKeySigner(crypto.createPrivateKey(privateKey)),
      hash: hash.sha256,
      evaluateOptions: deadline,
      endorseOptions: deadline,
      submitOptions: deadline,
      commitStatusOptions: () => ({ deadline: Date.now() + 2 * DEADLINE_MS }),
      filteredBlockEventsOptions: deadline,
    });
    this.#network = this.#gateway.getNetwork(channel);
    this.#cleanup = cleanup;
  }

  /** The org's gateway identity (`hdx.role=gateway`), enrolled from its Fabric CA like the HDX gateway does. */
  static async gateway(org: string): Promise<OrgClient> {
    const config = await gatewayConfig(org);
    const identity = await enrollGatewayIdentity(config, newLogger('silent'));
    const cleanup = (): void => fs.rmSync(config.dataDir, { recursive: true, force: true });
    return new OrgClient(org, config.mspId, config.peerEndpoint, config.peerTlsCaFile, identity.certificate, identity.privateKey, config.channel, config.chaincode, cleanup);
  }

  /** The org's admin identity (`hdx.role=admin`), from the MSP folder the launcher enrolled. */
  static admin(org: string): OrgClient {
    const { info } = network();
    const conn = info.orgs[org];
    if (!conn) throw new Error(`no organization ${org} in the test network`);
    const msp = path.join(info.home, 'orgs', org, 'users', 'admin', 'msp');
    const pick = (dir: string, suffix: string): string => {
      const file = fs.readdirSync(dir).find((f) => f.endsWith(suffix));
      if (!file) throw new Error(`no *${suffix} in ${dir}`);
      return fs.readFileSync(path.join(dir, file), 'utf8');
    };
    return new OrgClient(
      org,
      conn.mspId,
      conn.peerEndpoint,
      conn.peerTlsCaFile,
      pick(path.join(msp, 'signcerts'), '.pem'),
      pick(path.join(msp, 'keystore'), '_sk'),
      info.channel,
      info.chaincode,
      () => {},
    );
  }

  #contract(name: string): Contract {
    let contract = this.#contracts.get(name);
    if (!contract) {
      contract = this.#network.getContract(this.chaincode, name);
      this.#contracts.set(name, contract);
    }
    return contract;
  }

  /** Evaluates a transaction on this org's peer and parses its JSON result. */
  async evaluate<T = unknown>(contract: string, transaction: string, ...args: string[]): Promise<T> {
    try {
      const bytes = await this.#contract(contract).evaluateTransaction(transaction, ...args);
      return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
    } catch (err) {
      throw toLedgerError(err);
    }
  }

  /**
   * Submits a transaction (endorsed as the policy requires, ordered) and waits until this org's peer has
   * committed it; a transaction the peers invalidated fails with its validation code.
   */
  async submitTx<T = unknown>(contract: string, transaction: string, ...args: string[]): Promise<Submitted<T>> {
    let submitted;
    try {
      submitted = await this.#contract(contract).submitAsync(transaction, { arguments: args });
    } catch (err) {
      throw toLedgerError(err);
    }
    const txId = submitted.getTransactionId();
    let status;
    try {
      status = await submitted.getStatus();
    } catch (err) {
      throw toLedgerError(err);
    }
    if (!status.successful) {
      const name = Object.entries(StatusCode).find(([, code]) => code === status.code)?.[0] ?? `VALIDATION_${status.code}`;
      throw new LedgerError(name, `transaction ${txId} was invalidated in block ${status.blockNumber}`, txId);
    }
    return { result: JSON.parse(Buffer.from(submitted.getResult()).toString('utf8')) as T, txId, blockNumber: status.blockNumber };
  }

  async submit<T = unknown>(contract: string, transaction: string, ...args: string[]): Promise<T> {
    return (await this.submitTx<T>(contract, transaction, ...args)).result;
  }

  /**
   * Submits, and on an MVCC_READ_CONFLICT endorses and submits again, as the HDX gateway does
   * (FabricLedger.anchor). Reports how many attempts were invalidated by a read conflict.
   */
  async submitRetryingMvcc<T = unknown>(attempts: number, contract: string, transaction: string, ...args: string[]): Promise<Submitted<T> & { mvccConflicts: number }> {
    for (let mvccConflicts = 0; ; mvccConflicts++) {
      try {
        return { ...(await this.submitTx<T>(contract, transaction, ...args)), mvccConflicts };
      } catch (err) {
        if (!(err instanceof LedgerError && err.code === 'MVCC_READ_CONFLICT') || mvccConflicts + 1 >= attempts) {
          (err as { mvccConflicts?: number }).mvccConflicts = mvccConflicts;
          throw err;
        }
      }
    }
  }

  /** Resolves once this org's peer has committed the given block (a block event from that peer). */
  async waitForBlock(blockNumber: bigint, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const events = await this.#network.getFilteredBlockEvents({ startBlock: blockNumber });
      try {
        for await (const block of events) {
          if (BigInt(block.getNumber()) >= blockNumber) return;
        }
      } catch (err) {
        // A peer's deliver service answers NOT_FOUND (status 404) when the start block is more than one
        // past its height. With a block per transaction another organization's peer can be several
        // blocks behind the one wanted: ask again once it has committed more.
        if (/status response: 404\b/.test(String((err as Error | undefined)?.message)) && Date.now() < end) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        throw toLedgerError(err);
      } finally {
        events.close();
      }
      throw new Error(`the block events of ${this.org} ended before block ${blockNumber}`);
    }
  }

  close(): void {
    this.#gateway.close();
    this.#client.close();
    this.#cleanup();
  }
}

/** Waits until every given org's peer has committed the given block: a later read sees what it holds. */
export async function syncPeers(clients: readonly OrgClient[], blockNumber: bigint): Promise<void> {
  await Promise.all(clients.map((c) => c.waitForBlock(blockNumber)));
}

/**
 * Every anchored version the record locator lists for a patient held by one custodian, as
 * `Type/id/_history/v`, sorted (read through `client`'s peer, for `actor` treating at the custodian).
 */
export async function locatedVersions(client: OrgClient, q: { patient: string; actor: string; custodian: string }): Promise<string[]> {
  const result = await client.evaluate<{ custodians: Array<{ resources: Array<{ resourceType: string; id: string; versionId: string }> }> }>(
    'hdx.record',
    'LocateRecords',
    // The custodian's own practitioner, authenticated by its own DID signature (so any member may ask).
    JSON.stringify({ patient: q.patient, actor: q.actor, actorOrganization: q.custodian, actorAuth: 'did', purpose: 'TREAT', custodian: q.custodian, pageSize: 100 }),
  );
  return result.custodians.flatMap((c) => c.resources.map((r) => `${r.resourceType}/${r.id}/_history/${r.versionId}`)).sort();
}

/**
 * An evaluate through a member's own peer of something another member's peer just committed: the
 * block reaches this peer by gossip a moment later, so NOT_FOUND is retried (every 250 ms, 15 s at most).
 */
export async function evaluateOnceThere<T>(client: OrgClient, contract: string, tx: string, ...args: string[]): Promise<T> {
  for (const until = Date.now() + 15_000; ;) {
    try {
      return await client.evaluate<T>(contract, tx, ...args);
    } catch (err) {
      if (!(err instanceof LedgerError && err.code === 'NOT_FOUND') || Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
