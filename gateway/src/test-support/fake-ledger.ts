import type {
  AccessEntryInput,
  AccessQuery,
  EvaluateRequest,
  LocateRequest,
  LocateResult,
  Anchor,
  AnchorInput,
  AuditEntry,
  AuthorizeRequest,
  AuthorizeResult,
  ConsentRecord,
  Decision,
  DidResolution,
  LedgerClient,
  Page,
} from '../ledger/ledger-client';
import { MAX_ANCHOR_BATCH } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../fhir/outcome';

/**
 * An in-memory ledger for unit tests, with the hdx rules that matter to the gateway: an anchored version
 * never changes (identical re-anchoring is idempotent); access decisions come from `decide` (default:
 * the custodian may use its records for TREAT, everything else is denied) and every authorization is
 * recorded. Consents are stored unverified. The real rules are tested against the real network in test/.
 */
export class FakeLedger implements LedgerClient {
  readonly anchors = new Map<string, Anchor>();
  readonly dids = new Map<string, DidResolution>();
  readonly consents = new Map<string, ConsentRecord>();
  readonly audit: AuditEntry[] = [];
  /** (this MSP, entryId) → the recorded entry: resends are idempotent, as on the chaincode. */
  readonly #byEntryId = new Map<string, AuditEntry>();
  /** How many AnchorBatch transactions were submitted. */
  anchorBatchCalls = 0;
  /** When set, every call fails with this error (e.g. the ledger is down). */
  failWith: OperationOutcomeError | undefined;
  decide: (request: AuthorizeRequest | EvaluateRequest, anchor: Anchor | undefined) => Decision = (request, anchor) => {
    const custodian = anchor?.custodian ?? request.custodian;
    return request.purpose === 'TREAT' && custodian === request.actorOrganization
      ? { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false }
      : { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: request.purpose === 'ETREAT' };
  };

  constructor(readonly mspId = 'Hospital1MSP') {}

  #check(): void {
    if (this.failWith) throw this.failWith;
  }

  async anchor(input: AnchorInput): Promise<Anchor> {
    this.#check();
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

  /** All or nothing, like the chaincode: every input is checked before any anchor is stored. */
  anchorAndRecordCalls = 0;

  /** Both or neither, like one chaincode transaction. */
  async anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[]): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    this.#check();
    this.anchorAndRecordCalls++;
    const anchorsBefore = new Map(this.anchors);
    const auditBefore = this.audit.length;
    const batchCalls = this.anchorBatchCalls;
    try {
      // One version counts like Anchor, several like one AnchorBatch (anchorBatchCalls).
      const stored = anchors.length === 1 && anchors[0] ? [await this.anchor(anchors[0])] : await this.anchorBatch(anchors);
      return { anchors: stored, entries: await this.recordAccess(entries) };
    } catch (err) {
      this.anchors.clear();
      for (const [k, v] of anchorsBefore) this.anchors.set(k, v);
      this.audit.length = auditBefore;
      this.anchorBatchCalls = batchCalls;
      throw err;
    }
  }

  async anchorBatch(inputs: AnchorInput[]): Promise<Anchor[]> {
    this.#check();
    this.anchorBatchCalls++;
    if (inputs.length < 1 || inputs.length > MAX_ANCHOR_BATCH) throw new OperationOutcomeError('INVALID', `anchors must hold 1 to ${MAX_ANCHOR_BATCH} entries`);
    const seen = new Map<string, string>();
    for (const input of inputs) {
      const key = `${input.resourceType}/${input.id}/_history/${input.versionId}`;
      const existing = this.anchors.get(key)?.commitment.value ?? seen.get(key);
      if (existing !== undefined && existing !== input.commitment.value) throw new OperationOutcomeError('CONFLICT', `${key} is already anchored with a different commitment`);
      seen.set(key, input.commitment.value);
    }
    const txId = `tx${this.anchors.size}`;
    const anchoredAt = new Date().toISOString();
    return inputs.map((input) => {
      const key = `${input.resourceType}/${input.id}/_history/${input.versionId}`;
      const anchor = this.anchors.get(key) ?? { ...input, custodian: this.mspId, txId, anchoredAt };
      this.anchors.set(key, anchor);
      return anchor;
    });
  }

  /** The locator over the fake's anchors, filtered by `decide` like the chaincode filters by consent. */
  async locateRecords(request: LocateRequest): Promise<LocateResult> {
    this.#check();
    const byCustodian = new Map<string, LocateResult['custodians'][number]>();
    let withheld = 0;
    for (const [key, a] of this.anchors) {
      if (a.patient !== request.patient || a.tombstone) continue;
      if (request.custodian && a.custodian !== request.custodian) continue;
      if (request.resourceType && a.resourceType !== request.resourceType) continue;
      const d = this.decide({ ...request, resource: key }, a);
      if (d.decision !== 'permit') {
        withheld++;
        continue;
      }
      const c = byCustodian.get(a.custodian) ?? { custodian: a.custodian, resources: [] };
      c.resources.push({ resourceType: a.resourceType, id: a.id, versionId: a.versionId, lastUpdated: a.lastUpdated ?? '', consents: d.consents, reason: d.reason });
      byCustodian.set(a.custodian, c);
    }
    return { custodians: [...byCustodian.values()], withheld, breakGlass: request.purpose === 'ETREAT', bookmark: '', fetchedRecordsCount: this.anchors.size };
  }

  async erasePatient(patient: string): Promise<{ erased: string[] }> {
    this.#check();
    const erased: string[] = [];
    for (const [key, a] of this.anchors) {
      if (a.patient !== patient || a.custodian !== this.mspId || a.tombstone) continue;
      const { patient: _p, securityLabels: _s, lastUpdated: _l, ...kept } = a;
      this.anchors.set(key, { ...kept, tombstone: { erasedAt: new Date().toISOString(), txId: `tx-erase-${erased.length}` } });
      erased.push(key);
    }
    return { erased };
  }

  async getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    this.#check();
    return this.anchors.get(`${resourceType}/${id}/_history/${versionId}`);
  }

  async ping(): Promise<void> {
    this.#check();
  }

  async resolveDid(did: string): Promise<DidResolution | undefined> {
    this.#check();
    return this.dids.get(did);
  }

  async registerDid(registration: Record<string, unknown>): Promise<DidResolution> {
    this.#check();
    const did = String(registration.did);
    if (this.dids.has(did)) throw new OperationOutcomeError('ALREADY_EXISTS', 'the DID is already registered');
    const now = new Date().toISOString();
    const resolution: DidResolution = {
      didDocument: { id: did } as DidResolution['didDocument'],
      didDocumentMetadata: { versionId: '1', created: now, updated: now, deactivated: false },
      hdx: { kind: registration.kind as DidResolution['hdx']['kind'], status: 'active', organization: this.mspId, guardians: [] },
    };
    this.dids.set(did, resolution);
    return resolution;
  }

  async changeConsent(action: 'grant' | 'update' | 'revoke', jws: string): Promise<ConsentRecord> {
    this.#check();
    const payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as { consent: ConsentRecord['consent'] };
    const consent = payload.consent;
    const previous = this.consents.get(consent.id);
    const now = new Date().toISOString();
    const record = {
      id: consent.id,
      patient: consent.patient.reference,
      status: action === 'revoke' ? 'inactive' : 'active',
      version: (previous?.version ?? 0) + 1,
      consent: action === 'revoke' && previous ? { ...previous.consent, status: 'inactive' } : consent,
      action,
      jws,
      created: previous?.created ?? now,
      updated: now,
      submittedBy: this.mspId,
    } as unknown as ConsentRecord;
    this.consents.set(consent.id, record);
    return record;
  }

  async getConsent(id: string): Promise<ConsentRecord | undefined> {
    this.#check();
    return this.consents.get(id);
  }

  async listConsents(patient: string): Promise<{ consents: ConsentRecord[]; bookmark: string }> {
    this.#check();
    return { consents: [...this.consents.values()].filter((c) => c.patient === patient), bookmark: '' };
  }

  async evaluateAccess(request: EvaluateRequest): Promise<Decision> {
    this.#check();
    return this.decide(request, request.resource ? this.anchors.get(request.resource) : undefined);
  }

  /** Like hdx.audit:RecordAccessBatch: 1–200 entries, all or nothing; an entryId already recorded returns the stored entry and writes nothing. */
  async recordAccess(entries: AccessEntryInput[]): Promise<AuditEntry[]> {
    this.#check();
    if (entries.length < 1 || entries.length > 200) throw new OperationOutcomeError('INVALID', 'entries must hold 1 to 200 entries');
    const ids = entries.map((e) => e.entryId).filter((id): id is string => id !== undefined);
    if (new Set(ids).size !== ids.length) throw new OperationOutcomeError('INVALID', 'entries has a repeated entryId');
    entries.forEach((e, i) => {
      if (!/^(did:hdx:[A-Za-z0-9_-]{43}|pseudonym:[0-9a-f]{64})$/.test(e.patient)) throw new OperationOutcomeError('INVALID', `entries[${i}].patient must be a DID or pseudonym`);
    });
    const now = new Date().toISOString();
    const txId = `tx-rec-${this.audit.length}`;
    const stored = entries.map(
      (e, i) =>
        (e.entryId !== undefined ? this.#byEntryId.get(e.entryId) : undefined) ??
        ({ ...e, resources: e.resources ?? [], consents: e.consents ?? [], eventId: `${txId}.${i}`, recordedAt: now, occurredAt: e.occurredAt ?? now, gateway: this.mspId, txId } as AuditEntry),
    );
    for (const e of stored) {
      if (e.entryId !== undefined && this.#byEntryId.has(e.entryId)) continue;
      this.audit.push(e);
      if (e.entryId !== undefined) this.#byEntryId.set(e.entryId, e);
    }
    return stored;
  }

  async authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult> {
    this.#check();
    const previous = request.entryId !== undefined ? this.#byEntryId.get(request.entryId) : undefined;
    if (previous) return { decision: previous.decision, consents: previous.consents, reason: previous.reason as Decision['reason'], breakGlass: previous.breakGlass, eventId: previous.eventId };
    const anchor = request.resource ? this.anchors.get(request.resource) : undefined;
    const decision = this.decide(request, anchor);
    const eventId = `tx-audit-${this.audit.length}.0`;
    const now = new Date().toISOString();
    this.audit.push({
      eventId,
      recordedAt: now,
      occurredAt: now,
      actor: request.actor,
      actorOrganization: request.actorOrganization,
      patient: anchor?.patient ?? request.patient ?? '',
      resources: request.resources ?? (request.resource ? [request.resource] : []),
      action: request.auditAction ?? 'R',
      purpose: request.purpose,
      ...decision,
      gateway: this.mspId,
      txId: eventId,
      ...(request.subtype ? { subtype: request.subtype } : {}),
      ...(request.entryId ? { entryId: request.entryId } : {}),
    });
    if (request.entryId) this.#byEntryId.set(request.entryId, this.audit[this.audit.length - 1] as AuditEntry);
    return { ...decision, eventId };
  }

  async queryAccess(query: AccessQuery): Promise<Page<AuditEntry>> {
    this.#check();
    const entries = this.audit.filter((e) => (!query.patient || e.patient === query.patient) && (!query.actor || e.actor === query.actor));
    return { entries, bookmark: '', fetchedRecordsCount: entries.length };
  }

  close(): void {}
}
