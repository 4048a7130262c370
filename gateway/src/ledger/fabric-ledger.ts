import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { type Contract, connect, type Gateway, hash, type Network, signers, type Transaction } from '@hyperledger/fabric-gateway';
import { common, peer } from '@hyperledger/fabric-protos';
import type { Config } from '../config';
import type { EnrolledIdentity } from './enroll';
import { chaincodeError, isMvccConflict, toLedgerError } from './ledger-errors';
import { timeAsync } from '../util/phase-timing';
import type {
  AccessRequestInput,
  AccessRequestRecord,
  AccessEntryInput,
  AccessQuery,
  Decision,
  EvaluateRequest,
  LocateRequest,
  LocateResult,
  Anchor,
  AnchorInput,
  AuditEntry,
  AuthorizeRequest,
  AuthorizeResult,
  BreakGlassQuery,
  ConsentRecord,
  DidResolution,
  GuardianChange,
  LedgerClient,
  Page,
  PatientLink,
  PatientLinkInput,
  ReviewedEntry,
  SubjectDid,
  TransactionOutcome,
} from './ledger-client';
import { unsettledTransactionOf, withUnsettledTransaction } from './ledger-client';

const MVCC_RETRIES = 3;

/** The hdx contracts (and Fabric's system contract) this client calls. */
type ContractName = 'record' | 'identity' | 'consent' | 'audit' | 'system';
const CONSENT_TX = { grant: 'Grant', update: 'Update', revoke: 'Revoke' } as const;

/** The anchors argument of AnchorBatch / AnchorAndRecord: a plain array, or `{anchors, links}` with links. */
function anchorsArgument(anchors: AnchorInput[], links: PatientLinkInput[]): string {
  return JSON.stringify(links.length > 0 ? { anchors, links } : anchors);
}

/**
 * Sending an endorsed transaction again when its outcome is unknown: how many times, and the pause before
 * each. The same signed transaction (the same id) can commit at most once, so re-sending it is safe.
 */
const AMBIGUOUS_RESENDS = [500, 2_000] as const;

/** A transaction its block marked invalid (an MVCC conflict, say): certainly not committed, as a Fabric CommitError. */
class InvalidatedError extends Error {
  constructor(
    readonly code: number,
    readonly transactionId: string,
  ) {
    super(`transaction ${transactionId} was invalidated (validation code ${Object.entries(peer.TxValidationCode).find(([, v]) => v === code)?.[0] ?? code})`);
    this.name = 'CommitError';
  }
}

/**
 * Whether a submit whose endorsers were chosen (HDX_ENDORSING_ORGS) should be endorsed again with the
 * Fabric Gateway's own plan, after `err` left it certainly not committed:
 * - `this-transaction`: an endorsement the chosen organizations could not give (a peer down or
 *   unreachable), not the chaincode's refusal (that one refuses whoever runs it) nor a deadline;
 * - `from-now-on`: the transaction was invalidated for its endorsement policy, so the chosen
 *   organizations no longer satisfy it (a member joined the channel): they are not asked again;
 * - undefined: nothing the choice of endorsers changes.
 */
export function planFallback(err: unknown): 'this-transaction' | 'from-now-on' | undefined {
  const e = err as { name?: unknown; code?: unknown } | null;
  if (e?.name === 'CommitError' && e.code === peer.TxValidationCode.ENDORSEMENT_POLICY_FAILURE) return 'from-now-on';
  if (e?.name !== 'EndorseError' || chaincodeError(err) !== undefined) return undefined;
  return e.code === grpc.status.DEADLINE_EXCEEDED ? undefined : 'this-transaction';
}

function parse<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
}

/** The ledger through the organization's own peer, with the Fabric Gateway client. */
export class FabricLedger implements LedgerClient {
  readonly #client: grpc.Client;
  readonly #gateway: Gateway;
  readonly #contracts: Record<ContractName, Contract>;
  readonly #network: Network;
  readonly #channel: string;
  /** HDX_ENDORSING_ORGS: asked to endorse every submit at once (empty: the Fabric Gateway's plan). */
  #endorsingOrgs: readonly string[];

  constructor(config: Config, identity: EnrolledIdentity) {
    this.#endorsingOrgs = config.endorsingOrgs;
    const tlsRoot = fs.readFileSync(config.peerTlsCaFile);
    this.#client = new grpc.Client(config.peerEndpoint, grpc.credentials.createSsl(tlsRoot), {
      'grpc.keepalive_time_ms': 120_000,
      // After its peer went away, gRPC waits longer and longer between reconnection attempts (up to 120 s
      // by default), so a gateway stayed unavailable long after its peer was back (19 s after a 35 s
      // outage, measured). At most 5 s between attempts: the gateway recovers within seconds of its peer.
      'grpc.initial_reconnect_backoff_ms': 1_000,
      'grpc.max_reconnect_backoff_ms': 5_000,
      // The TLS name to expect from the peer when it differs from the endpoint's host (an IP address as
      // TLS ServerName is deprecated, RFC 6066); the peer's certificate must carry it.
      ...(config.peerHostAlias ? { 'grpc.ssl_target_name_override': config.peerHostAlias, 'grpc.default_authority': config.peerHostAlias } : {}),
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
      // A commit normally shows within a second or two. A transaction an orderer accepted and then lost (a
      // Raft follower forwarding it to a leader that died: see fabric-network/README.md, Faults) never
      // shows: the wait must end soon enough for #sendUntilKnown to re-send it while the client waits.
      commitStatusOptions: () => ({ deadline: Date.now() + t }),
    });
    const network = this.#gateway.getNetwork(config.channel);
    this.#network = network;
    this.#channel = config.channel;
    const c = (name: string): Contract => network.getContract(config.chaincode, name);
    this.#contracts = {
      record: c('hdx.record'),
      identity: c('hdx.identity'),
      consent: c('hdx.consent'),
      audit: c('hdx.audit'),
      system: c('org.hyperledger.fabric'),
    };
  }

  /** Submits (endorse, order, wait for commit), retrying read-write conflicts a few times. */
  async #submit<T>(contract: ContractName, tx: string, args: string[], what: string): Promise<T> {
    let chosen = this.#endorsingOrgs.length > 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return parse<T>(await this.#submitSettled(this.#contracts[contract], tx, args, chosen ? this.#endorsingOrgs : undefined));
      } catch (err) {
        if (isMvccConflict(err) && attempt < MVCC_RETRIES) continue;
        // Chosen endorsers that could not endorse, or no longer satisfy the policy: certainly not
        // committed, so endorsed again (a new transaction) with the Fabric Gateway's own plan.
        const fallback = chosen ? planFallback(err) : undefined;
        if (fallback !== undefined) {
          chosen = false;
          if (fallback === 'from-now-on') this.#endorsingOrgs = [];
          continue;
        }
        const e = toLedgerError(err, what);
        const transaction = unsettledTransactionOf(err);
        throw transaction === undefined ? e : withUnsettledTransaction(e, transaction);
      }
    }
  }

  async settleTransaction(transaction: unknown): Promise<TransactionOutcome> {
    const tx = transaction as Transaction;
    if (typeof (tx as Partial<Transaction> | null)?.submit !== 'function') return 'unknown';
    try {
      await this.#sendUntilKnown(tx, [0]);
      return 'committed';
    } catch (err) {
      return (err as { name?: unknown }).name === 'CommitError' ? 'not-committed' : 'unknown';
    }
  }

  /**
   * Endorses, submits and waits for the commit. When the submit or the commit-status wait fails in a way
   * that leaves the outcome unknown (the orderer may have the transaction: review #7), the SAME endorsed
   * transaction is sent again and its status read: valid → committed now; DUPLICATE_TXID → an earlier copy
   * is in a block, and that copy's own validation code decides; any other code → never committed. Only
   * when the ledger stays unreachable through every re-send does the unknown outcome reach the caller,
   * which then settles it by asking the ledger.
   */
  async #submitSettled(contract: Contract, name: string, args: string[], endorsingOrganizations?: readonly string[]): Promise<Uint8Array> {
    // Endorsers named: the Fabric Gateway asks them all at once, instead of its own peer first and then
    // the others it plans from that first endorsement.
    const options = { arguments: args, ...(endorsingOrganizations ? { endorsingOrganizations: [...endorsingOrganizations] } : {}) };
    const transaction = await timeAsync('endorse', () => contract.newProposal(name, options).endorse(), name);
    return timeAsync('commit-wait', () => this.#sendUntilKnown(transaction, [0, ...AMBIGUOUS_RESENDS], true), name);
  }

  /**
   * Sends an endorsed transaction once per delay until its commit status is known. `first` says the
   * first send is the original one (a duplicate txid then cannot mean an earlier copy). Throws an
   * InvalidatedError when it never committed, and the last unknown-outcome error (carrying the
   * transaction, for settleTransaction) when the ledger never told.
   */
  async #sendUntilKnown(transaction: Transaction, delays: readonly number[], first = false): Promise<Uint8Array> {
    let unknown: unknown;
    for (let send = 0; send < delays.length; send++) {
      if ((delays[send] ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, delays[send]));
      let status: Awaited<ReturnType<Awaited<ReturnType<Transaction['submit']>>['getStatus']>>;
      try {
        status = await (await transaction.submit()).getStatus();
      } catch (err) {
        // SubmitError: the orderer may have it; CommitStatusError: the commit was not seen in time.
        const kind = (err as { name?: unknown } | null)?.name;
        if (kind !== 'SubmitError' && kind !== 'CommitStatusError') throw err;
        unknown = err;
        continue;
      }
      if (status.successful) return transaction.getResult();
      if (
        (send > 0 || !first) &&
        status.code === peer.TxValidationCode.DUPLICATE_TXID &&
        (await this.#validationCodeOf(transaction.getTransactionId())) === peer.TxValidationCode.VALID
      ) {
        return transaction.getResult();
      }
      throw new InvalidatedError(status.code, status.transactionId);
    }
    throw withUnsettledTransaction(unknown as object, transaction);
  }

  /** The validation code the ledger recorded for a committed transaction (qscc GetTransactionByID). */
  async #validationCodeOf(txId: string): Promise<number> {
    const bytes = await this.#network.getContract('qscc').evaluateTransaction('GetTransactionByID', this.#channel, txId);
    return peer.ProcessedTransaction.deserializeBinary(bytes).getValidationcode();
  }

  /** Evaluates on the org's peer; `NOT_FOUND` becomes undefined when `notFound` is 'undefined'. */
  async #evaluate<T>(contract: ContractName, tx: string, args: string[], what: string): Promise<T | undefined> {
    try {
      return parse<T>(await this.#contracts[contract].evaluateTransaction(tx, ...args));
    } catch (err) {
      const e = toLedgerError(err, what);
      if (e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  anchor(input: AnchorInput): Promise<Anchor> {
    return this.#submit('record', 'Anchor', [JSON.stringify(input)], `anchoring ${input.resourceType}/${input.id}/_history/${input.versionId}`);
  }

  anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[], links: PatientLinkInput[] = []): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    return this.#submit('record', 'AnchorAndRecord', [anchorsArgument(anchors, links), JSON.stringify(entries)], `anchoring ${anchors.length} version(s) and recording the change`);
  }

  anchorBatch(inputs: AnchorInput[], links: PatientLinkInput[] = []): Promise<Anchor[]> {
    return this.#submit('record', 'AnchorBatch', [anchorsArgument(inputs, links)], `anchoring ${inputs.length} versions`);
  }

  linkPatient(pseudonym: string, did: string): Promise<PatientLink> {
    return this.#submit('record', 'LinkPatient', [pseudonym, did], 'linking a patient pseudonym to a DID');
  }

  async locateRecords(request: LocateRequest): Promise<LocateResult> {
    const r = await this.#evaluate<LocateResult>('record', 'LocateRecords', [JSON.stringify(request)], 'locating records');
    return r ?? { custodians: [], withheld: 0, breakGlass: false, bookmark: '', fetchedRecordsCount: 0 };
  }

  erasePatient(patient: string): Promise<{ erased: string[] }> {
    return this.#submit('record', 'ErasePatient', [patient], "erasing the patient's anchors");
  }

  getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    return this.#evaluate('record', 'GetAnchor', [resourceType, id, versionId], `reading the anchor of ${resourceType}/${id}/_history/${versionId}`);
  }

  async ping(): Promise<void> {
    try {
      await this.#contracts.system.evaluateTransaction('GetMetadata');
    } catch (err) {
      throw toLedgerError(err, 'reaching the ledger');
    }
  }

  resolveDid(did: string): Promise<DidResolution | undefined> {
    return this.#evaluate('identity', 'Resolve', [did], 'resolving a DID');
  }

  registerDid(registration: Record<string, unknown>): Promise<DidResolution> {
    return this.#submit('identity', 'Register', [JSON.stringify(registration)], 'registering a DID');
  }

  async findBySubject(subject: string): Promise<SubjectDid[]> {
    return (await this.#evaluate<SubjectDid[]>('identity', 'FindBySubject', [subject], 'finding DIDs by subject')) ?? [];
  }

  changeGuardian(change: 'add' | 'remove', request: GuardianChange): Promise<DidResolution> {
    return this.#submit('identity', change === 'add' ? 'AddGuardian' : 'RemoveGuardian', [JSON.stringify(request)], `${change === 'add' ? 'adding' : 'removing'} a guardian`);
  }

  approveGuardian(request: { patient: string; guardian: string }): Promise<DidResolution> {
    return this.#submit('identity', 'ApproveGuardian', [JSON.stringify(request)], 'approving a guardian change');
  }

  deactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    return this.#submit('identity', 'Deactivate', [JSON.stringify(request)], 'deactivating a DID');
  }

  reactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    return this.#submit('identity', 'Reactivate', [JSON.stringify(request)], 'reactivating a DID');
  }

  approveReactivation(request: { did: string }): Promise<DidResolution> {
    return this.#submit('identity', 'ApproveReactivation', [JSON.stringify(request)], 'approving a reactivation');
  }

  changeConsent(action: 'grant' | 'update' | 'revoke', jws: string): Promise<ConsentRecord> {
    return this.#submit('consent', CONSENT_TX[action], [jws], `recording a consent ${action}`);
  }

  getConsent(id: string): Promise<ConsentRecord | undefined> {
    return this.#evaluate('consent', 'GetConsent', [id], `reading Consent/${id}`);
  }

  async listConsents(patient: string, pageSize: number, bookmark: string): Promise<{ consents: ConsentRecord[]; bookmark: string }> {
    const page = await this.#evaluate<{ consents: ConsentRecord[]; bookmark: string }>('consent', 'ListByPatient', [patient, String(pageSize), bookmark], 'listing consents');
    return page ?? { consents: [], bookmark: '' };
  }

  requestAccess(request: AccessRequestInput): Promise<AccessRequestRecord> {
    return this.#submit('consent', 'RequestAccess', [JSON.stringify(request)], 'recording an access request');
  }

  async listAccessRequests(patient: string): Promise<AccessRequestRecord[]> {
    const page = await this.#evaluate<{ requests: AccessRequestRecord[] }>('consent', 'ListAccessRequests', [patient], 'listing access requests');
    return page?.requests ?? [];
  }

  async evaluateAccess(request: EvaluateRequest): Promise<Decision> {
    const d = await this.#evaluate<Decision>('consent', 'EvaluateAccess', [JSON.stringify(request)], 'evaluating consent');
    if (!d) throw toLedgerError(new Error('NOT_FOUND: no decision'), 'evaluating consent');
    return d;
  }

  recordAccess(entries: AccessEntryInput[]): Promise<AuditEntry[]> {
    return this.#submit('audit', 'RecordAccessBatch', [JSON.stringify(entries)], 'recording the access');
  }

  authorizeAndRecordBatch(requests: AuthorizeRequest[]): Promise<AuthorizeResult[]> {
    return this.#submit('audit', 'AuthorizeAndRecordBatch', [JSON.stringify(requests)], 'checking consent and recording the accesses');
  }

  authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult> {
    return this.#submit('audit', 'AuthorizeAndRecord', [JSON.stringify(request)], 'checking consent and recording the access');
  }

  async queryAccess(query: AccessQuery): Promise<Page<AuditEntry>> {
    const page = await this.#evaluate<Page<AuditEntry>>('audit', 'QueryAccess', [JSON.stringify(query)], 'reading the access history');
    return page ?? { entries: [], bookmark: '', fetchedRecordsCount: 0 };
  }

  reviewBreakGlass(reviewJws: string): Promise<ReviewedEntry> {
    return this.#submit('audit', 'ReviewBreakGlass', [reviewJws], 'recording a break-glass review');
  }

  async queryBreakGlass(query: BreakGlassQuery): Promise<Page<ReviewedEntry>> {
    const page = await this.#evaluate<Page<ReviewedEntry>>('audit', 'QueryBreakGlass', [JSON.stringify(query)], 'reading the break-glass review queue');
    return page ?? { entries: [], bookmark: '', fetchedRecordsCount: 0 };
  }

  /** `hdx.audit:GetEntry`: one access entry as `requester` may see it; undefined when missing or not visible to them. */
  async auditEntry(eventId: string, requester: string): Promise<AuditEntry | undefined> {
    try {
      return parse<AuditEntry>(await this.#contracts.audit.evaluateTransaction('GetEntry', eventId, requester));
    } catch (err) {
      const e = toLedgerError(err, 'reading an access entry');
      // Not visible is answered as missing: the caller cannot tell an entry exists.
      if (e.code === 'NOT_FOUND' || e.code === 'FORBIDDEN') return undefined;
      throw e;
    }
  }

  /** The block holding a transaction, as the peer stores it (qscc GetBlockByTxID). */
  async blockByTxId(txId: string): Promise<Uint8Array> {
    try {
      return await this.#network.getContract('qscc').evaluateTransaction('GetBlockByTxID', this.#channel, txId);
    } catch (err) {
      throw toLedgerError(err, 'reading the block of a transaction');
    }
  }

  /** One block by number, as the peer stores it (qscc GetBlockByNumber). */
  async blockByNumber(blockNumber: bigint): Promise<Uint8Array> {
    try {
      return await this.#network.getContract('qscc').evaluateTransaction('GetBlockByNumber', this.#channel, blockNumber.toString());
    } catch (err) {
      throw toLedgerError(err, 'reading a block');
    }
  }

  /** Committed blocks of the channel from `startBlock` on, then each new one (the ledger view's feed). */
  blockEvents(startBlock: bigint): Promise<AsyncIterable<common.Block> & { close(): void }> {
    return this.#network.getBlockEvents({ startBlock });
  }

  /** The peer's ledger height (qscc GetChainInfo): its last block number + 1. */
  async chainHeight(): Promise<bigint> {
    try {
      const bytes = await this.#network.getContract('qscc').evaluateTransaction('GetChainInfo', this.#channel);
      return BigInt(common.BlockchainInfo.deserializeBinary(bytes).getHeight());
    } catch (err) {
      throw toLedgerError(err, 'reading the ledger height');
    }
  }

  close(): void {
    this.#gateway.close();
    this.#client.close();
  }
}
