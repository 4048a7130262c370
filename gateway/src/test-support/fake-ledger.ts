import type {
  AccessEntryInput,
  AccessRequestInput,
  AccessRequestRecord,
  AccessQuery,
  EvaluateRequest,
  LocateRequest,
  LocateResult,
  Anchor,
  AnchorInput,
  AuditEntry,
  AuthorizeRequest,
  AuthorizeResult,
  BreakGlassQuery,
  BreakGlassReview,
  ConsentRecord,
  Decision,
  DidResolution,
  GuardianChange,
  LedgerClient,
  Page,
  PatientLink,
  PatientLinkInput,
  ReviewedEntry,
  ReviewOutcome,
  ReviewState,
  SubjectDid,
} from '../ledger/ledger-client';
import { allOf } from '@hdx/chaincode/dist/consent-evaluate';
import { coPatientEntryId, REVIEW_OUTCOMES } from '@hdx/chaincode/dist/protocol';
import { MAX_ANCHOR_BATCH } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../errors';

/**
 * An in-memory ledger for unit tests, with the hdx rules that matter to the gateway: an anchored version
 * never changes (identical re-anchoring is idempotent); access decisions come from `decide` (default:
 * the custodian may use its records for TREAT, everything else is denied) and every authorization is
 * recorded. Consents are stored unverified. The real rules are tested against the real network in test/.
 *
 * Where Fabric and the chaincode have semantics the gateway depends on, the fake keeps them: the locator
 * lists the request patient's anchors plus those under pseudonyms linked to it (nothing else), decides
 * each row with the row's own patient (the linked DID), pages in key order with a bookmark that must
 * belong to the query (a foreign one is INVALID; a bookmark is never clamped into range), and patient
 * links are never re-pointed.
 */
export class FakeLedger implements LedgerClient {
  readonly anchors = new Map<string, Anchor>();
  readonly dids = new Map<string, DidResolution>();
  readonly consents = new Map<string, ConsentRecord>();
  readonly audit: AuditEntry[] = [];
  /** `${custodian}|${pseudonym}` → link (hdx.record:LinkPatient). */
  readonly links = new Map<string, PatientLink>();
  /** DID → keyed IdP subject hash given at registration. */
  readonly subjects = new Map<string, string>();
  /** patient DID → proposed guardian changes (`add:<did>` / `remove:<did>`), as the chaincode's pendingGuardians. */
  readonly pendingGuardians = new Map<string, Set<string>>();
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

  /** A version's decision, as the chaincode makes it: for a version of several patients, every one must permit (`decide` per patient). */
  #decideVersion(request: AuthorizeRequest | EvaluateRequest, anchor: Anchor | undefined): Decision {
    const own = this.decide(request, anchor);
    if (!anchor?.coPatients || anchor.coPatients.length === 0) return own;
    const { coPatients, ...single } = anchor;
    return allOf([
      own,
      ...coPatients.map((co) => {
        const patient = this.subjectOf({ ...single, patient: co }) ?? co;
        return this.decide({ ...request, patient }, { ...single, patient });
      }),
    ]);
  }

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
  async anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[], links: PatientLinkInput[] = []): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    this.#check();
    this.anchorAndRecordCalls++;
    const anchorsBefore = new Map(this.anchors);
    const linksBefore = new Map(this.links);
    const auditBefore = this.audit.length;
    const batchCalls = this.anchorBatchCalls;
    try {
      for (const link of links) await this.linkPatient(link.pseudonym, link.did);
      // One version counts like Anchor, several like one AnchorBatch (anchorBatchCalls).
      const stored = anchors.length === 1 && anchors[0] ? [await this.anchor(anchors[0])] : await this.anchorBatch(anchors);
      return { anchors: stored, entries: await this.recordAccess(entries) };
    } catch (err) {
      this.anchors.clear();
      for (const [k, v] of anchorsBefore) this.anchors.set(k, v);
      this.links.clear();
      for (const [k, v] of linksBefore) this.links.set(k, v);
      this.audit.length = auditBefore;
      this.anchorBatchCalls = batchCalls;
      throw err;
    }
  }

  async anchorBatch(inputs: AnchorInput[], links: PatientLinkInput[] = []): Promise<Anchor[]> {
    this.#check();
    this.anchorBatchCalls++;
    if (inputs.length < 1 || inputs.length > MAX_ANCHOR_BATCH) throw new OperationOutcomeError('INVALID', `anchors must hold 1 to ${MAX_ANCHOR_BATCH} entries`);
    for (const link of links) {
      const existing = this.links.get(`${this.mspId}|${link.pseudonym}`);
      if (existing && existing.did !== link.did) throw new OperationOutcomeError('CONFLICT', 'the pseudonym is already linked to another DID');
    }
    for (const link of links) await this.linkPatient(link.pseudonym, link.did);
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

  /** Like hdx.record:LinkPatient for this custodian: idempotent, never re-pointed (CONFLICT). */
  async linkPatient(pseudonym: string, did: string): Promise<PatientLink> {
    this.#check();
    const key = `${this.mspId}|${pseudonym}`;
    const existing = this.links.get(key);
    if (existing) {
      if (existing.did !== did) throw new OperationOutcomeError('CONFLICT', 'the pseudonym is already linked to another DID');
      return existing;
    }
    const link: PatientLink = { pseudonym, did, custodian: this.mspId, linkedAt: new Date().toISOString(), txId: `tx-link-${this.links.size}` };
    this.links.set(key, link);
    return link;
  }

  /** The patient a decision on this anchor is about: the linked DID of its custodian's pseudonym, else its patient. */
  subjectOf(anchor: Anchor): string | undefined {
    return anchor.patient === undefined ? undefined : (this.links.get(`${anchor.custodian}|${anchor.patient}`)?.did ?? anchor.patient);
  }

  /**
   * The locator as the chaincode runs it: the request patient's anchors and those under pseudonyms linked
   * to it, in index-key order, one page (`pageSize`, default 50) from `bookmark`; each row decided by
   * `decide` with the row's own patient. A bookmark that belongs to no prefix of the query is INVALID.
   */
  async locateRecords(request: LocateRequest): Promise<LocateResult> {
    this.#check();
    const prefixes = [request.custodian ? `${request.patient}\u0000${request.custodian}\u0000` : `${request.patient}\u0000`];
    for (const link of [...this.links.values()].sort((a, b) => (a.custodian < b.custodian ? -1 : a.custodian > b.custodian ? 1 : 0))) {
      if (link.did === request.patient && (!request.custodian || link.custodian === request.custodian)) prefixes.push(`${link.pseudonym}\u0000${link.custodian}\u0000`);
    }
    const bookmark = request.bookmark ?? '';
    if (bookmark !== '' && !prefixes.some((prefix) => bookmark.startsWith(prefix))) throw new OperationOutcomeError('INVALID', 'bookmark does not belong to this query');
    const rows: Array<{ key: string; anchor: Anchor; ref: string }> = [];
    for (const [ref, a] of this.anchors) {
      if (a.patient === undefined || a.tombstone) continue;
      const key = `${a.patient}\u0000${a.custodian}\u0000${a.resourceType}\u0000${a.id}\u0000${a.versionId}\u0000`;
      if (prefixes.some((prefix) => key.startsWith(prefix))) rows.push({ key, anchor: a, ref });
    }
    // Prefix order first (the patient, then its linked pseudonyms), key order within a prefix.
    const order = (key: string): number => prefixes.findIndex((prefix) => key.startsWith(prefix));
    rows.sort((x, y) => order(x.key) - order(y.key) || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    const from = bookmark === '' ? 0 : rows.findIndex((r) => order(r.key) > order(bookmark) || (order(r.key) === order(bookmark) && r.key >= bookmark));
    const pageSize = request.pageSize ?? 50;
    const page = from < 0 ? [] : rows.slice(from, from + pageSize);
    const next = from < 0 ? undefined : rows[from + pageSize];
    const byCustodian = new Map<string, LocateResult['custodians'][number]>();
    let withheld = 0;
    for (const { anchor: a, ref } of page) {
      if (request.resourceType && a.resourceType !== request.resourceType) continue;
      const d = this.#decideVersion({ ...request, patient: this.subjectOf(a) as string, resource: ref }, a);
      if (d.decision !== 'permit') {
        withheld++;
        continue;
      }
      const c = byCustodian.get(a.custodian) ?? { custodian: a.custodian, resources: [] };
      c.resources.push({ resourceType: a.resourceType, id: a.id, versionId: a.versionId, lastUpdated: a.lastUpdated ?? '', consents: d.consents, reason: d.reason });
      byCustodian.set(a.custodian, c);
    }
    return { custodians: [...byCustodian.values()], withheld, breakGlass: request.purpose === 'ETREAT', bookmark: next ? next.key : '', fetchedRecordsCount: page.length };
  }

  async erasePatient(patient: string): Promise<{ erased: string[] }> {
    this.#check();
    const erased: string[] = [];
    // A DID also covers this custodian's pseudonyms linked to it (as hdx.record:ErasePatient).
    const covered = new Set([patient, ...[...this.links.values()].filter((l) => l.did === patient && l.custodian === this.mspId).map((l) => l.pseudonym)]);
    for (const [key, a] of this.anchors) {
      if (a.patient === undefined || !covered.has(a.patient) || a.custodian !== this.mspId || a.tombstone) continue;
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
    if (typeof registration.subject === 'string') this.subjects.set(did, registration.subject);
    return resolution;
  }

  async findBySubject(subject: string): Promise<SubjectDid[]> {
    this.#check();
    return [...this.subjects]
      .filter(([did, s]) => s === subject && this.dids.get(did)?.hdx.organization === this.mspId)
      .map(([did]) => ({ did, kind: this.dids.get(did)?.hdx.kind as SubjectDid['kind'], status: this.dids.get(did)?.hdx.status as SubjectDid['status'] }))
      .sort((a, b) => (a.did < b.did ? -1 : 1));
  }

  #known(did: string): DidResolution {
    const resolution = this.dids.get(did);
    if (!resolution) throw new OperationOutcomeError('NOT_FOUND', 'the DID is not registered');
    return resolution;
  }

  #withStatus(did: string, status: DidResolution['hdx']['status']): DidResolution {
    const resolution = this.#known(did);
    const next: DidResolution = {
      ...resolution,
      didDocumentMetadata: { ...resolution.didDocumentMetadata, deactivated: status === 'deactivated' },
      hdx: { ...resolution.hdx, status },
    };
    this.dids.set(did, next);
    return next;
  }

  /** With a proof: in force at once (the proof is not verified here). Without: proposed, as the chaincode. */
  async changeGuardian(change: 'add' | 'remove', request: GuardianChange): Promise<DidResolution> {
    this.#check();
    const patient = this.#known(request.patient);
    if (request.proof === undefined) {
      const pending = this.pendingGuardians.get(request.patient) ?? new Set<string>();
      pending.add(`${change}:${request.guardian}`);
      this.pendingGuardians.set(request.patient, pending);
      return patient;
    }
    return this.#applyGuardian(request.patient, request.guardian, change);
  }

  #applyGuardian(patient: string, guardian: string, change: 'add' | 'remove'): DidResolution {
    const resolution = this.#known(patient);
    const guardians = change === 'add' ? [...new Set([...resolution.hdx.guardians, guardian])].sort() : resolution.hdx.guardians.filter((g) => g !== guardian);
    const next: DidResolution = { ...resolution, hdx: { ...resolution.hdx, guardians } };
    this.dids.set(patient, next);
    return next;
  }

  async approveGuardian(request: { patient: string; guardian: string }): Promise<DidResolution> {
    this.#check();
    const pending = this.pendingGuardians.get(request.patient);
    const change = pending?.has(`add:${request.guardian}`) ? 'add' : pending?.has(`remove:${request.guardian}`) ? 'remove' : undefined;
    if (!change || !pending) throw new OperationOutcomeError('NOT_FOUND', 'no guardian change is proposed');
    pending.delete(`${change}:${request.guardian}`);
    return this.#applyGuardian(request.patient, request.guardian, change);
  }

  /** An admin without proof suspends a patient (other kinds: deactivated); with a proof: deactivated. */
  async deactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    this.#check();
    const resolution = this.#known(request.did);
    if (resolution.hdx.status === 'deactivated') throw new OperationOutcomeError('CONFLICT', 'the DID is already deactivated');
    return this.#withStatus(request.did, request.proof === undefined && resolution.hdx.kind === 'patient' ? 'suspended' : 'deactivated');
  }

  /** With a proof: active again; without: proposed (approveReactivation makes it active). */
  readonly proposedReactivations = new Set<string>();

  async reactivateDid(request: { did: string; proof?: string }): Promise<DidResolution> {
    this.#check();
    const resolution = this.#known(request.did);
    if (resolution.hdx.status !== 'suspended') throw new OperationOutcomeError('CONFLICT', 'the DID is not suspended');
    if (request.proof === undefined) {
      this.proposedReactivations.add(request.did);
      return resolution;
    }
    return this.#withStatus(request.did, 'active');
  }

  async approveReactivation(request: { did: string }): Promise<DidResolution> {
    this.#check();
    if (!this.proposedReactivations.delete(request.did)) throw new OperationOutcomeError('NOT_FOUND', 'no reactivation is proposed');
    return this.#withStatus(request.did, 'active');
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

  /** Access requests by patient, requester and purpose (a repeated request replaces the open one, as on the chaincode). */
  readonly accessRequests = new Map<string, AccessRequestRecord>();

  async requestAccess(request: AccessRequestInput): Promise<AccessRequestRecord> {
    this.#check();
    const record: AccessRequestRecord = {
      ...request,
      resourceTypes: [...new Set(request.resourceTypes)].sort(),
      requesterOrganization: this.mspId,
      requestedAt: new Date().toISOString(),
      txId: `tx-${this.accessRequests.size + 1}-${Date.now()}`,
    };
    this.accessRequests.set(`${request.patient} ${request.requester} ${request.purpose}`, record);
    return record;
  }

  async listAccessRequests(patient: string): Promise<AccessRequestRecord[]> {
    this.#check();
    return [...this.accessRequests.values()].filter((r) => r.patient === patient).sort((a, b) => (a.requestedAt < b.requestedAt ? 1 : -1));
  }

  async evaluateAccess(request: EvaluateRequest): Promise<Decision> {
    this.#check();
    if (request.resource !== undefined) return this.#decideVersion(request, this.anchors.get(request.resource));
    // A request stating patient, custodian, type, labels and month is decided, as on the chaincode, as a
    // version anchored with those facts would be: `decide` sees that anchor (with no id: a decision never
    // reads one).
    const stated: Anchor = {
      resourceType: request.resourceType ?? '',
      id: '',
      versionId: '',
      ...(request.patient !== undefined ? { patient: request.patient } : {}),
      custodian: request.custodian ?? '',
      securityLabels: request.securityLabels ?? [],
      ...(request.dataDate !== undefined ? { dataMonth: request.dataDate.slice(0, 7) } : {}),
      lastUpdated: '',
      commitment: { alg: 'HMAC-SHA-256', value: '' },
      txId: '',
      anchoredAt: '',
    };
    return this.decide(request, stated);
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
        ({
          ...e,
          actorAuth: e.actorAuth ?? 'delegated',
          vouchedBy: (e.actorAuth ?? 'delegated') === 'delegated' ? e.actorOrganization : this.mspId,
          resources: e.resources ?? [],
          consents: e.consents ?? [],
          eventId: `${txId}.${i}`,
          recordedAt: now,
          occurredAt: e.occurredAt ?? now,
          gateway: this.mspId,
          txId,
        } as AuditEntry),
    );
    for (const e of stored) {
      if (e.entryId !== undefined && this.#byEntryId.has(e.entryId)) continue;
      this.audit.push(e);
      if (e.entryId !== undefined) this.#byEntryId.set(e.entryId, e);
    }
    return stored;
  }

  /** How many AuthorizeAndRecordBatch transactions were submitted. */
  authorizeBatchCalls = 0;

  /** Like hdx.audit:AuthorizeAndRecordBatch: 1–200 requests, unique entryIds, each decided and recorded; all or nothing. */
  async authorizeAndRecordBatch(requests: AuthorizeRequest[]): Promise<AuthorizeResult[]> {
    this.#check();
    if (requests.length < 1 || requests.length > 200) throw new OperationOutcomeError('INVALID', 'requests must hold 1 to 200 requests');
    const ids = requests.map((r) => r.entryId).filter((id): id is string => id !== undefined);
    if (new Set(ids).size !== ids.length) throw new OperationOutcomeError('INVALID', 'requests has a repeated entryId');
    this.authorizeBatchCalls++;
    const before = this.audit.length;
    const out: AuthorizeResult[] = [];
    try {
      for (const r of requests) out.push(await this.authorizeAndRecord(r));
    } catch (err) {
      for (const e of this.audit.splice(before)) if (e.entryId !== undefined) this.#byEntryId.delete(e.entryId);
      throw err;
    }
    return out;
  }

  async authorizeAndRecord(request: AuthorizeRequest): Promise<AuthorizeResult> {
    this.#check();
    const previous = request.entryId !== undefined ? this.#byEntryId.get(request.entryId) : undefined;
    if (previous)
      return {
        decision: previous.decision,
        consents: previous.consents,
        reason: previous.reason as Decision['reason'],
        breakGlass: previous.breakGlass,
        eventId: previous.eventId,
      };
    const anchor = request.resource ? this.anchors.get(request.resource) : undefined;
    const decision = this.#decideVersion(request, anchor);
    const eventId = `tx-audit-${this.audit.length}.0`;
    const now = new Date().toISOString();
    this.audit.push({
      eventId,
      recordedAt: now,
      occurredAt: now,
      actor: request.actor,
      actorOrganization: request.actorOrganization,
      actorAuth: request.actorAuth ?? 'delegated',
      vouchedBy: (request.actorAuth ?? 'delegated') === 'delegated' ? request.actorOrganization : this.mspId,
      patient: (anchor ? this.subjectOf(anchor) : undefined) ?? request.patient ?? '',
      resources: request.resources ?? (request.resource ? [request.resource] : []),
      action: request.auditAction ?? 'R',
      purpose: request.purpose,
      ...decision,
      gateway: this.mspId,
      txId: eventId,
      ...(request.subtype ? { subtype: request.subtype } : {}),
      ...(request.entryId ? { entryId: request.entryId } : {}),
    });
    const own = this.audit[this.audit.length - 1] as AuditEntry;
    if (request.entryId) this.#byEntryId.set(request.entryId, own);
    // The same access in each co-patient's history, as AuthorizeAndRecord records it.
    for (const [i, patient] of (anchor?.coPatients ?? []).entries()) {
      const { entryId: _entryId, ...rest } = own;
      this.audit.push({ ...rest, eventId: `${eventId.split('.')[0]}.${i + 1}`, patient, ...(request.entryId ? { entryId: coPatientEntryId(request.entryId, i + 1) } : {}) });
    }
    return { ...decision, eventId };
  }

  async queryAccess(query: AccessQuery): Promise<Page<AuditEntry>> {
    this.#check();
    const entries = this.audit.filter((e) => (!query.patient || e.patient === query.patient) && (!query.actor || e.actor === query.actor));
    const reviews = Object.fromEntries(entries.filter((e) => e.breakGlass).map((e) => [e.eventId, this.#reviewState(e.eventId)]));
    return { entries, bookmark: '', fetchedRecordsCount: entries.length, reviews };
  }

  /** Break-glass reviews by entry event id, oldest first (append-only, as hdx.review). */
  readonly reviews = new Map<string, BreakGlassReview[]>();

  #reviewState(eventId: string): ReviewState {
    const all = this.reviews.get(eventId) ?? [];
    const current = all.at(-1);
    return current === undefined ? { state: 'open', reviews: 0 } : { state: 'reviewed', reviews: all.length, current };
  }

  /**
   * Like hdx.audit:ReviewBreakGlass, with the signature NOT verified (as consents here): the signer is
   * the payload's `kid` DID. The chaincode's other rules hold: an active auditor DID of this organization,
   * not the entry's actor, a break-glass entry, an outcome of the code set, no other payload field;
   * append-only. The real contract runs in ContractLedger.
   */
  async reviewBreakGlass(reviewJws: string): Promise<ReviewedEntry> {
    this.#check();
    const [h = '', p = ''] = reviewJws.split('.');
    let header: { kid?: unknown };
    let payload: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { kid?: unknown };
      payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new OperationOutcomeError('INVALID', 'review must be a compact JWS');
    }
    const signer = String(header.kid ?? '').split('#')[0] ?? '';
    const record = this.dids.get(signer);
    if (!record) throw new OperationOutcomeError('UNAUTHENTICATED', 'review is signed by a DID that is not registered');
    if (record.hdx.status !== 'active') throw new OperationOutcomeError('FORBIDDEN', `review is signed by a ${record.hdx.status} DID`);
    if (payload.action !== 'review') throw new OperationOutcomeError('INVALID', 'review payload.action must be one of review');
    if (Object.keys(payload).some((k) => !['action', 'nonce', 'iat', 'eventId', 'outcome'].includes(k)))
      throw new OperationOutcomeError('INVALID', 'review payload has unknown fields');
    if (record.hdx.kind !== 'auditor') throw new OperationOutcomeError('FORBIDDEN', `only an auditor DID reviews break-glass access (the signer is a ${record.hdx.kind} DID)`);
    if (record.hdx.organization !== this.mspId) throw new OperationOutcomeError('FORBIDDEN', 'an auditor’s review is submitted through its own organization');
    const outcome = payload.outcome;
    if (typeof outcome !== 'string' || !(REVIEW_OUTCOMES as readonly string[]).includes(outcome))
      throw new OperationOutcomeError('INVALID', `review payload.outcome must be one of ${REVIEW_OUTCOMES.join(', ')}`);
    const entry = this.audit.find((e) => e.eventId === payload.eventId);
    if (!entry) throw new OperationOutcomeError('NOT_FOUND', 'the audit entry does not exist');
    if (!entry.breakGlass) throw new OperationOutcomeError('CONFLICT', 'the audit entry is not a break-glass access: only break-glass access is reviewed');
    if (entry.actor === signer) throw new OperationOutcomeError('FORBIDDEN', 'the actor of a break-glass access never reviews it');
    const all = this.reviews.get(entry.eventId) ?? [];
    all.push({
      eventId: entry.eventId,
      outcome: outcome as ReviewOutcome,
      reviewer: signer,
      reviewerOrganization: this.mspId,
      reviewedAt: new Date().toISOString(),
      txId: `tx-review-${all.length}`,
    });
    this.reviews.set(entry.eventId, all);
    return { entry, review: this.#reviewState(entry.eventId) };
  }

  /** Like hdx.audit:QueryBreakGlass (one page: every break-glass entry of the state asked). */
  async queryBreakGlass(query: BreakGlassQuery): Promise<Page<ReviewedEntry>> {
    this.#check();
    const entries = this.audit
      .filter((e) => e.breakGlass)
      .map((entry) => ({ entry, review: this.#reviewState(entry.eventId) }))
      .filter((e) => query.state === undefined || e.review.state === query.state);
    return { entries, bookmark: '', fetchedRecordsCount: entries.length };
  }

  close(): void {}
}
