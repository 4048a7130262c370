import { AuditContract, ConsentContract, IdentityContract, RecordContract } from '@hdx/chaincode';
import { FakeLedger as ChaincodeLedger, identity } from '@hdx/chaincode/dist/test-support/fake-ledger';
import type { Context } from 'fabric-contract-api';
import { toLedgerError } from '../ledger/ledger-errors';
import type {
  AccessEntryInput,
  AccessRequestInput,
  AccessRequestRecord,
  AccessQuery,
  Anchor,
  AnchorInput,
  AuditEntry,
  AuthorizeRequest,
  AuthorizeResult,
  BreakGlassQuery,
  ConsentRecord,
  Decision,
  DidResolution,
  EvaluateRequest,
  GuardianChange,
  LedgerClient,
  LocateRequest,
  LocateResult,
  Page,
  PatientLink,
  PatientLinkInput,
  ReviewedEntry,
  SubjectDid,
} from '../ledger/ledger-client';

export { ChaincodeLedger };

const records = new RecordContract();
const identities = new IdentityContract();
const consents = new ConsentContract();
const audit = new AuditContract();

type Call = (ctx: Context) => Promise<string>;

/**
 * A LedgerClient that runs the REAL hdx contracts (the chaincode's own code) on the chaincode's in-memory
 * ledger, with Fabric's semantics (evaluate commits nothing, a failed submit writes nothing, unbounded
 * bookmarks). Several ContractLedgers (one per organization) may share one `chain`, like gateways share
 * a channel. Errors come back as the Fabric client's would (toLedgerError over `CODE: text`).
 */
export class ContractLedger implements LedgerClient {
  readonly chain: ChaincodeLedger;
  readonly #who: ReturnType<typeof identity>;

  constructor(
    readonly mspId = 'Hospital1MSP',
    options: { chain?: ChaincodeLedger; role?: string } = {},
  ) {
    this.chain = options.chain ?? new ChaincodeLedger();
    this.#who = identity(mspId, options.role ?? 'gateway');
  }

  async #submit<T>(call: Call, what: string): Promise<T> {
    try {
      return JSON.parse(await this.chain.invoke(this.#who, call)) as T;
    } catch (err) {
      throw toLedgerError(err, what);
    }
  }

  async #evaluate<T>(call: Call, what: string): Promise<T> {
    try {
      return JSON.parse(await this.chain.evaluate(this.#who, call)) as T;
    } catch (err) {
      throw toLedgerError(err, what);
    }
  }

  /** As #evaluate, NOT_FOUND → undefined (as FabricLedger). */
  async #find<T>(call: Call, what: string): Promise<T | undefined> {
    try {
      return await this.#evaluate<T>(call, what);
    } catch (err) {
      if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  anchor(input: AnchorInput): Promise<Anchor> {
    return this.#submit((ctx) => records.Anchor(ctx, JSON.stringify(input)), 'anchoring');
  }

  anchorBatch(inputs: AnchorInput[], links: PatientLinkInput[] = []): Promise<Anchor[]> {
    return this.#submit((ctx) => records.AnchorBatch(ctx, JSON.stringify(links.length > 0 ? { anchors: inputs, links } : inputs)), 'anchoring a batch');
  }

  anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[], links: PatientLinkInput[] = []): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    return this.#submit((ctx) => records.AnchorAndRecord(ctx, JSON.stringify(links.length > 0 ? { anchors, links } : anchors), JSON.stringify(entries)), 'anchoring and recording');
  }

  linkPatient(pseudonym: string, did: string): Promise<PatientLink> {
    return this.#submit((ctx) => records.LinkPatient(ctx, pseudonym, did), 'linking a patient');
  }

  locateRecords(request: LocateRequest): Promise<LocateResult> {
    return this.#evaluate((ctx) => records.LocateRecords(ctx, JSON.stringify(request)), 'locating records');
  }

  erasePatient(patient: string): Promise<{ erased: string[] }> {
    return this.#submit((ctx) => records.ErasePatient(ctx, patient), 'erasing a patient');
  }

  getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    return this.#find((ctx) => records.GetAnchor(ctx, resourceType, id, versionId), 'reading an anchor');
  }

  async ping(): Promise<void> {}

  resolveDid(did: string): Promise<DidResolution | undefined> {
    return this.#find((ctx) => identities.Resolve(ctx, did), 'resolving a DID');
  }

  registerDid(registration: Record<string, unknown>): Promise<DidResolution> {
    return this.#submit((ctx) => identities.Register(ctx, JSON.stringify(registration)), 'registering a DID');
  }

  findBySubject(subject: string): Promise<SubjectDid[]> {
    return this.#evaluate((ctx) => identities.FindBySubject(ctx, subject), 'finding DIDs by subject');
  }

  changeGuardian(change: 'add' | 'remove', request: GuardianChange): Promise<DidResolution> {
    return this.#submit(
      (ctx) => (change === 'add' ? identities.AddGuardian(ctx, JSON.stringify(request)) : identities.RemoveGuardian(ctx, JSON.stringify(request))),
      'changing a guardian',
    );
  }

  approveGuardian(request: { patient: string; guardian: string }): Promise<DidResolution> {
    return this.#submit((ctx) => identities.ApproveGuardian(ctx, JSON.stringify(request)), 'approving a guardian');
  }

  deactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    return this.#submit((ctx) => identities.Deactivate(ctx, JSON.stringify(request)), 'deactivating a DID');
  }

  reactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    return this.#submit((ctx) => identities.Reactivate(ctx, JSON.stringify(request)), 'reactivating a DID');
  }

  approveReactivation(request: { did: string }): Promise<DidResolution> {
    return this.#submit((ctx) => identities.ApproveReactivation(ctx, JSON.stringify(request)), 'approving a reactivation');
  }

  changeConsent(action: 'grant' | 'update' | 'revoke', jws: string): Promise<ConsentRecord> {
    return this.#submit(
      (ctx) => (action === 'grant' ? consents.Grant(ctx, jws) : action === 'update' ? consents.Update(ctx, jws) : consents.Revoke(ctx, jws)),
      `recording a consent ${action}`,
    );
  }

  getConsent(id: string): Promise<ConsentRecord | undefined> {
    return this.#find((ctx) => consents.GetConsent(ctx, id), 'reading a consent');
  }

  listConsents(patient: string, pageSize: number, bookmark: string): Promise<{ consents: ConsentRecord[]; bookmark: string }> {
    return this.#evaluate((ctx) => consents.ListByPatient(ctx, patient, String(pageSize), bookmark), 'listing consents');
  }

  requestAccess(request: AccessRequestInput): Promise<AccessRequestRecord> {
    return this.#submit((ctx) => consents.RequestAccess(ctx, JSON.stringify(request)), 'recording an access request');
  }

  async listAccessRequests(patient: string): Promise<AccessRequestRecord[]> {
    return (await this.#evaluate<{ requests: AccessRequestRecord[] }>((ctx) => consents.ListAccessRequests(ctx, patient), 'listing access requests')).requests;
  }

  evaluateAccess(request: EvaluateRequest): Promise<Decision> {
    return this.#evaluate((ctx) => consents.EvaluateAccess(ctx, JSON.stringify(request)), 'evaluating consent');
  }

  recordAccess(entries: AccessEntryInput[]): Promise<AuditEntry[]> {
    return this.#submit((ctx) => audit.RecordAccessBatch(ctx, JSON.stringify(entries)), 'recording the access');
  }

  authorizeAndRecordBatch(requests: AuthorizeRequest[]): Promise<AuthorizeResult[]> {
    return this.#submit((ctx) => audit.AuthorizeAndRecordBatch(ctx, JSON.stringify(requests)), 'checking consent and recording the accesses');
  }

  authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult> {
    return this.#submit((ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify(request)), 'checking consent and recording the access');
  }

  queryAccess(query: AccessQuery): Promise<Page<AuditEntry>> {
    return this.#evaluate((ctx) => audit.QueryAccess(ctx, JSON.stringify(query)), 'reading the access history');
  }

  reviewBreakGlass(reviewJws: string): Promise<ReviewedEntry> {
    return this.#submit((ctx) => audit.ReviewBreakGlass(ctx, reviewJws), 'recording a break-glass review');
  }

  queryBreakGlass(query: BreakGlassQuery): Promise<Page<ReviewedEntry>> {
    return this.#evaluate((ctx) => audit.QueryBreakGlass(ctx, JSON.stringify(query)), 'reading the break-glass review queue');
  }

  close(): void {}
}
