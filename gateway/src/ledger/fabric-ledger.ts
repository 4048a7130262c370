import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { type Contract, connect, type Gateway, hash, signers } from '@hyperledger/fabric-gateway';
import type { Config } from '../config';
import type { EnrolledIdentity } from './enroll';
import { isMvccConflict, toLedgerError } from './ledger-errors';
import type { Anchor, AnchorInput, LedgerClient } from './ledger-client';

const MVCC_RETRIES = 3;

/** The ledger through the organization's own peer, with the Fabric Gateway client. */
export class FabricLedger implements LedgerClient {
  readonly #client: grpc.Client;
  readonly #gateway: Gateway;
  readonly #record: Contract;
  readonly #system: Contract;

  constructor(config: Config, identity: EnrolledIdentity) {
    const tlsRoot = fs.readFileSync(config.peerTlsCaFile);
    this.#client = new grpc.Client(config.peerEndpoint, grpc.credentials.createSsl(tlsRoot), {
      'grpc.keepalive_time_ms': 120_000,
    });
    const t = config.ledgerTimeoutMs;
    this.#gateway = connect({
      client: this.#client,
      identity: { mspId: config.mspId, credentials: Buffer.from(identity.certificate) },
      signer: signers.newPrivateKeySigner(crypto.createPrivateKey(identity.privateKey)),
      hash: hash.sha256,
      evaluateOptions: () => ({ deadline: Date.now() + t }),
      endorseOptions: () => ({ deadline: Date.now() + t }),
      submitOptions: () => ({ deadline: Date.now() + t }),
      commitStatusOptions: () => ({ deadline: Date.now() + 4 * t }),
    });
    const network = this.#gateway.getNetwork(config.channel);
    this.#record = network.getContract(config.chaincode, 'hdx.record');
    this.#system = network.getContract(config.chaincode, 'org.hyperledger.fabric');
  }

  async anchor(input: AnchorInput): Promise<Anchor> {
    const what = `anchoring ${input.resourceType}/${input.id}/_history/${input.versionId}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#record.submitTransaction('Anchor', JSON.stringify(input));
        return JSON.parse(Buffer.from(result).toString('utf8')) as Anchor;
      } catch (err) {
        if (isMvccConflict(err) && attempt < MVCC_RETRIES) continue;
        throw toLedgerError(err, what);
      }
    }
  }

  async getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    try {
      const result = await this.#record.evaluateTransaction('GetAnchor', resourceType, id, versionId);
      return JSON.parse(Buffer.from(result).toString('utf8')) as Anchor;
    } catch (err) {
      const e = toLedgerError(err, `reading the anchor of ${resourceType}/${id}/_history/${versionId}`);
      if (e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  async ping(): Promise<void> {
    try {
      await this.#system.evaluateTransaction('GetMetadata');
    } catch (err) {
      throw toLedgerError(err, 'reaching the ledger');
    }
  }

  close(): void {
    this.#gateway.close();
    this.#client.close();
  }
}
