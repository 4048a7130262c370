import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';
import { EvaluationInputs, decide, loadEvaluationInputs, parseActorAuth } from './access-decision';
import { effectiveAction } from './actor-rules';
import { callerMayRecord, parseAuditEntries, recordEntries } from './audit-contract';
import { Caller, callerOf, hasRole } from './caller';
import { AccessRequest, allOf } from './consent-evaluate';
import { ConsentAction, PURPOSE_CODE, parseConsentAction } from './consent-model';
import { conflict, forbidden, invalid, notFound } from './errors';
import { DID_ORG_INDEX, IdentityRecord, fhirBaseUrlOf, findIdentity } from './identity-model';
import { canonicalJson, parseBookmark, parsePageSize, readState, scanPartial, txInstant, unmarshal, writeState } from './ledger';
import { flushPackedRows, membersOfRow, packedRows, pageMembers, partialKeyRange } from './packed-index';
import {
  ANCHOR_KEY,
  Anchor,
  AnchorInput,
  Commitment,
  LOCATOR_INDEX,
  LocatorEntry,
  PATIENT_RESOURCE_INDEX,
  anchorKey,
  checkResourceKey,
  governingPatients,
  legacyPatientIndexKey,
  parseAnchorInput,
  parseCommitment,
  patientRowKey,
  resourceRef,
  sameCommitment,
  toLocatorEntry,
} from './record-model';
import { LinkInput, PatientLink, findLink, linkPatient, linkedPseudonyms, parseLinkInput } from './patient-link';
import { MAX_ANCHOR_BATCH, MAX_LINKS } from './protocol';
import {
  FHIR_ID,
  FHIR_RESOURCE_TYPE,
  HDX_DID,
  MSP_ID,
  PATIENT_REF_RULE,
  asObject,
  checkString,
  isBase64UrlOfLength,
  isPatientRef,
  optionalString,
  parseJsonArray,
  parseJsonObject,
  rejectUnknownFields,
  requireString,
} from './validate';
import { refuseRemovedSubmitter } from './member-model';

/** Most anchors in one AnchorBatch transaction (protocol.ts). */
export const MAX_BATCH = MAX_ANCHOR_BATCH;
export { MAX_LINKS };

/** Anchors FHIR resource versions: commitments to content held off chain by the custodian. */
@Info({ title: 'RecordContract', description: 'hdx.record: FHIR resource version anchors and the record locator' })
export class RecordContract extends Contract {
  public constructor() {
    super('hdx.record');
  }

  /** No identity of a member organization removed from the consortium submits anything. */
  public override async beforeTransaction(ctx: Context): Promise<void> {
    await refuseRemovedSubmitter(ctx);
  }

  /**
   * Anchors one resource version for the caller's organization (the custodian is the caller's MSP id).
   * Idempotent: the same version with the same commitment and custodian returns the stored anchor.
   */
  @Transaction()
  @Returns('string')
  public async Anchor(ctx: Context, anchorJson: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    const input = parseAnchorInput(parseJsonObject(anchorJson, 'anchor'), 'anchor');
    const anchor = await anchorOne(ctx, caller, input);
    await flushPackedRows(ctx);
    return canonicalJson(anchor);
  }

  /** The stored anchor of one resource version. */
  @Transaction(false)
  @Returns('string')
  public async GetAnchor(ctx: Context, resourceType: string, id: string, versionId: string): Promise<string> {
    checkResourceKey(resourceType, id, versionId);
    const anchor = await readState<Anchor>(ctx, anchorKey(ctx, resourceType, id, versionId));
    if (!anchor) {
      throw notFound(`${resourceRef(resourceType, id, versionId)} is not anchored`);
    }
    return canonicalJson(anchor);
  }

  /**
   * Anchors many versions in one transaction, all or nothing: a JSON array of Anchor inputs. Returns
   * the stored anchors in input order. Repeating an identical entry is harmless; conflicting ones fail all.
   */
  @Transaction()
  @Returns('string')
  public async AnchorBatch(ctx: Context, anchorsJson: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    const batch = parseAnchorBatch(anchorsJson);
    await linkMany(ctx, caller, batch.links);
    return canonicalJson(await anchorMany(ctx, caller, batch.anchors));
  }

  /**
   * Anchors resource versions (as AnchorBatch) and records the access entries of those changes (as
   * hdx.audit:RecordAccessBatch) in ONE transaction: a write and its record on the ledger commit
   * together or not at all, in one block. Returns `{anchors, entries}`.
   */
  @Transaction()
  @Returns('string')
  public async AnchorAndRecord(ctx: Context, anchorsJson: string, entriesJson: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    callerMayRecord(ctx);
    const batch = parseAnchorBatch(anchorsJson);
    const entries = parseAuditEntries(entriesJson);
    const links = await linkMany(ctx, caller, batch.links);
    const anchors = await anchorMany(ctx, caller, batch.anchors);
    const fresh = new Map(anchors.map((anchor) => [resourceRef(anchor.resourceType, anchor.id, anchor.versionId), anchor]));
    return canonicalJson({ anchors, entries: await recordEntries(ctx, caller, entries, { fresh, links }) });
  }

  /**
   * Links the caller's (custodian's) pseudonym of a patient to the patient's DID: decisions on anchors
   * under the pseudonym then follow the DID, and LocateRecords by the DID lists them. Idempotent;
   * `CONFLICT` when the pseudonym is already linked to another DID. Returns the link.
   */
  @Transaction()
  @Returns('string')
  public async LinkPatient(ctx: Context, pseudonym: string, did: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    const input = parseLinkInput({ pseudonym, did }, 'link');
    return canonicalJson(await linkPatient(ctx, caller.mspId, input));
  }

  /** The DID a custodian's pseudonym is linked to: the link, or `NOT_FOUND`. */
  @Transaction(false)
  @Returns('string')
  public async GetPatientLink(ctx: Context, custodian: string, pseudonym: string): Promise<string> {
    callerOf(ctx);
    checkString(custodian, 'custodian', MSP_ID, 'must be an MSP id');
    const link = await findLink(ctx, custodian, pseudonym);
    if (!link) {
      throw notFound('the pseudonym is not linked');
    }
    return canonicalJson(link);
  }

  /**
   * Checks a commitment against the anchor: `{verified, erased, resource, custodian, anchoredAt, txId}`.
   * `commitment` is the base64url value or the JSON `{alg, value}`.
   */
  @Transaction(false)
  @Returns('string')
  public async Verify(ctx: Context, resourceType: string, id: string, versionId: string, commitment: string): Promise<string> {
    checkResourceKey(resourceType, id, versionId);
    const given: Commitment = commitment.startsWith('{')
      ? parseCommitment(parseJsonObject(commitment, 'commitment'), 'commitment')
      : isBase64UrlOfLength(commitment, 32)
        ? { alg: 'HMAC-SHA-256', value: commitment }
        : parseCommitment({ alg: 'HMAC-SHA-256', value: commitment }, 'commitment');
    const anchor = await getAnchor(ctx, resourceType, id, versionId);
    return canonicalJson({
      verified: sameCommitment(anchor.commitment, given),
      erased: anchor.tombstone !== undefined,
      resource: resourceRef(resourceType, id, versionId),
      custodian: anchor.custodian,
      anchoredAt: anchor.anchoredAt,
      txId: anchor.txId,
    });
  }

  /** Every anchored version of a resource, in version order (numeric when the versions are numbers). */
  @Transaction(false)
  @Returns('string')
  public async GetHistory(ctx: Context, resourceType: string, id: string): Promise<string> {
    checkString(resourceType, 'resourceType', FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
    checkString(id, 'id', FHIR_ID, 'must be a FHIR id');
    const anchors = (await scanPartial(ctx, ANCHOR_KEY, [resourceType, id])).map((row) => unmarshal<Anchor>(row.value));
    if (anchors.length === 0) {
      throw notFound(`${resourceType}/${id} is not anchored`);
    }
    return canonicalJson(anchors.sort(byVersion));
  }

  /**
   * Erasure (GDPR art. 17) of every version of a resource, by its custodian: each anchor becomes a
   * tombstone (commitment kept, patient link removed). Returns `{erased: [refs newly tombstoned]}`.
   */
  @Transaction()
  @Returns('string')
  public async EraseResource(ctx: Context, resourceType: string, id: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    checkString(resourceType, 'resourceType', FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
    checkString(id, 'id', FHIR_ID, 'must be a FHIR id');
    const anchors = (await scanPartial(ctx, ANCHOR_KEY, [resourceType, id])).map((row) => unmarshal<Anchor>(row.value));
    if (anchors.length === 0) {
      throw notFound(`${resourceType}/${id} is not anchored`);
    }
    if (anchors.some((anchor) => anchor.custodian !== caller.mspId)) {
      throw forbidden(`${resourceType}/${id} can only be erased by its custodian`);
    }
    return canonicalJson({ erased: await tombstone(ctx, anchors.sort(byVersion)) });
  }

  /**
   * Erasure of everything the caller's organization anchored for a patient (for a DID, also under the
   * caller's pseudonyms linked to it). Returns `{erased: [refs]}`.
   */
  @Transaction()
  @Returns('string')
  public async ErasePatient(ctx: Context, patient: string): Promise<string> {
    const caller = callerMayAnchor(ctx);
    if (!isPatientRef(patient)) {
      throw invalid(`patient ${PATIENT_REF_RULE}`);
    }
    // A DID also covers the caller's own pseudonyms linked to it.
    const rows = await scanPartial(ctx, PATIENT_RESOURCE_INDEX, [patient, caller.mspId]);
    for (const link of await linkedPseudonyms(ctx, patient, caller.mspId)) {
      rows.push(...(await scanPartial(ctx, PATIENT_RESOURCE_INDEX, [link.pseudonym, caller.mspId])));
    }
    // A version filed under both the DID and a linked pseudonym (a co-patient) is erased once.
    const anchors = new Map<string, Anchor>();
    for (const row of rows) {
      for (const entry of membersOfRow(LOCATOR_INDEX, row.key, row.value)) {
        const ref = resourceRef(entry.resourceType, entry.id, entry.versionId);
        if (!anchors.has(ref)) anchors.set(ref, await getAnchor(ctx, entry.resourceType, entry.id, entry.versionId));
      }
    }
    return canonicalJson({ erased: await tombstone(ctx, [...anchors.values()]) });
  }

  /**
   * Record locator: which custodians hold which resource versions for a patient, filtered by consent
   * for the requesting actor and purpose. Request: `{patient, actor, actorOrganization, actorAuth?,
   * purpose, action?, custodian?, resourceType?, pageSize?, bookmark?}`. For a DID, anchors under
   * pseudonyms linked to it are listed too. Each entry is decided with its OWN patient (from its row's
   * key, through its custodian's link). `pageSize` counts locator entries, and a page may end inside a
   * packed row; a bookmark must come from this query. Returns `{custodians:
   * [{custodian, organization, fhirBaseUrl, resources: [{resourceType, id, versionId, lastUpdated,
   * consents, reason}]}], withheld, breakGlass, bookmark, fetchedRecordsCount}`.
   */
  @Transaction(false)
  @Returns('string')
  public async LocateRecords(ctx: Context, requestJson: string): Promise<string> {
    callerOf(ctx);
    const request = parseJsonObject(requestJson, 'request');
    rejectUnknownFields(request, ['patient', 'actor', 'actorOrganization', 'actorAuth', 'purpose', 'action', 'custodian', 'resourceType', 'pageSize', 'bookmark'], 'request');
    const patient = requireString(request, 'patient', 'request');
    if (!isPatientRef(patient)) {
      throw invalid(`request.patient ${PATIENT_REF_RULE}`);
    }
    const actor = requireString(request, 'actor', 'request', HDX_DID, 'must be a did:hdx DID');
    const actorOrganization = requireString(request, 'actorOrganization', 'request', MSP_ID, 'must be an MSP id');
    const actorAuth = parseActorAuth(request, 'request');
    const purpose = requireString(request, 'purpose', 'request', PURPOSE_CODE, 'must be an HL7 v3 PurposeOfUse code');
    const statedAction: ConsentAction | undefined = request.action === undefined ? undefined : parseConsentAction(request, 'request');
    const custodianFilter = optionalString(request, 'custodian', 'request', MSP_ID, 'must be an MSP id');
    const typeFilter = optionalString(request, 'resourceType', 'request', FHIR_RESOURCE_TYPE, 'must be a FHIR resource type');
    const pageSize = parsePageSize(request.pageSize as string | number | undefined);
    const bookmark = parseBookmark(optionalString(request, 'bookmark', 'request'));

    // The index prefixes of this query: the patient itself, then each pseudonym linked to it. A page
    // counts locator entries (a packed row lists many) and runs on from one prefix into the next.
    const prefixes: string[][] = [custodianFilter ? [patient, custodianFilter] : [patient]];
    for (const link of await linkedPseudonyms(ctx, patient, custodianFilter)) {
      prefixes.push([link.pseudonym, link.custodian]);
    }
    const ranges = prefixes.map((attributes) => partialKeyRange(ctx, PATIENT_RESOURCE_INDEX, attributes));
    const page = await pageMembers(LOCATOR_INDEX, ranges, pageSize, bookmark);

    const inputsBySubject = new Map<string, EvaluationInputs>();
    const byCustodian = new Map<string, Array<Omit<LocatorEntry, 'custodian' | 'securityLabels' | 'dataMonth'> & { consents: string[]; reason: string }>>();
    let withheld = 0;
    // A patient reference of a custodian's row (its pseudonym stands for its linked DID), with what
    // deciding for that patient reads (read once per patient).
    const subjectOf = async (custodian: string, patient: string): Promise<{ subject: string; inputs: EvaluationInputs }> => {
      const subject = (await findLink(ctx, custodian, patient))?.did ?? patient;
      let inputs = inputsBySubject.get(subject);
      if (!inputs) {
        inputs = await loadEvaluationInputs(ctx, subject, actor, actorOrganization);
        inputsBySubject.set(subject, inputs);
      }
      return { subject, inputs };
    };
    for (const { key, member: entry } of page.members) {
      if (typeFilter !== undefined && entry.resourceType !== typeFilter) {
        continue;
      }
      const [rowPatient = '', rowCustodian = entry.custodian] = ctx.stub.splitCompositeKey(key).attributes;
      const { subject, inputs } = await subjectOf(rowCustodian, rowPatient);
      const accessRequest: AccessRequest = {
        patient: subject,
        actor,
        actorOrganization,
        actorAuth,
        custodian: rowCustodian,
        action: effectiveAction(statedAction, actorOrganization, rowCustodian),
        purpose,
        resourceType: entry.resourceType,
        securityLabels: entry.securityLabels ?? [],
      };
      if (entry.dataMonth !== undefined) accessRequest.dataDate = entry.dataMonth;
      let decision = decide(accessRequest, inputs);
      // A version in several patients' compartments is released only if every one of them permits it.
      for (const other of entry.governedWith ?? []) {
        if (decision.decision !== 'permit') break;
        const co = await subjectOf(rowCustodian, other);
        decision = allOf([decision, decide({ ...accessRequest, patient: co.subject }, co.inputs)]);
      }
      if (decision.decision !== 'permit') {
        withheld += 1;
        continue;
      }
      const list = byCustodian.get(rowCustodian) ?? [];
      list.push({
        resourceType: entry.resourceType,
        id: entry.id,
        versionId: entry.versionId,
        lastUpdated: entry.lastUpdated,
        consents: decision.consents,
        reason: decision.reason,
      });
      byCustodian.set(rowCustodian, list);
    }
    const custodians = [];
    for (const custodian of [...byCustodian.keys()].sort()) {
      const organization = await organizationOf(ctx, custodian);
      custodians.push({
        custodian,
        organization: organization?.did ?? null,
        fhirBaseUrl: organization ? (fhirBaseUrlOf(organization) ?? null) : null,
        resources: byCustodian.get(custodian),
      });
    }
    return canonicalJson({ custodians, withheld, breakGlass: purpose === 'ETREAT', bookmark: page.bookmark, fetchedRecordsCount: page.fetchedRecordsCount });
  }
}

async function getAnchor(ctx: Context, resourceType: string, id: string, versionId: string): Promise<Anchor> {
  const anchor = await readState<Anchor>(ctx, anchorKey(ctx, resourceType, id, versionId));
  if (!anchor) {
    throw notFound(`${resourceRef(resourceType, id, versionId)} is not anchored`);
  }
  return anchor;
}

/**
 * Tombstones anchors not yet erased; returns their refs. Each version leaves the locator rows of its
 * patients (the row of its anchoring transaction; an emptied row is deleted), or, filed before packing,
 * its own locator key.
 */
async function tombstone(ctx: Context, anchors: Anchor[]): Promise<string[]> {
  const erased: string[] = [];
  const at = txInstant(ctx);
  const rows = packedRows(ctx);
  for (const anchor of anchors) {
    if (anchor.tombstone) {
      continue;
    }
    const same = (entry: LocatorEntry) => entry.resourceType === anchor.resourceType && entry.id === anchor.id && entry.versionId === anchor.versionId;
    for (const patient of governingPatients(anchor)) {
      if ((await rows.remove(patientRowKey(ctx, patient, anchor.custodian, anchor.txId), same)) === 0) {
        await ctx.stub.deleteState(legacyPatientIndexKey(ctx, { ...anchor, patient }));
      }
    }
    const stone: Anchor = {
      resourceType: anchor.resourceType,
      id: anchor.id,
      versionId: anchor.versionId,
      commitment: anchor.commitment,
      custodian: anchor.custodian,
      txId: anchor.txId,
      anchoredAt: anchor.anchoredAt,
      tombstone: { erasedAt: at, txId: ctx.stub.getTxID() },
    };
    await writeState(ctx, anchorKey(ctx, anchor.resourceType, anchor.id, anchor.versionId), stone);
    erased.push(resourceRef(anchor.resourceType, anchor.id, anchor.versionId));
  }
  await rows.flush();
  return erased;
}

function byVersion(a: Anchor, b: Anchor): number {
  const numeric = /^[0-9]{1,15}$/;
  if (numeric.test(a.versionId) && numeric.test(b.versionId)) {
    return Number(a.versionId) - Number(b.versionId);
  }
  return a.versionId < b.versionId ? -1 : a.versionId > b.versionId ? 1 : 0;
}

/** The active organization DID registered for an MSP (the lowest DID when there are several). */
async function organizationOf(ctx: Context, mspId: string): Promise<IdentityRecord | undefined> {
  for (const row of await scanPartial(ctx, DID_ORG_INDEX, [mspId])) {
    const record = await findIdentity(ctx, ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '');
    if (record?.status === 'active') {
      return record;
    }
  }
  return undefined;
}

/**
 * The anchors argument of AnchorBatch / AnchorAndRecord: a JSON array of 1–500 anchor inputs, or
 * `{anchors: [...], links?: [{pseudonym, did}]}` to link pseudonyms in the same transaction.
 */
export function parseAnchorBatch(anchorsJson: string): { anchors: AnchorInput[]; links: LinkInput[] } {
  const trimmed = typeof anchorsJson === 'string' ? anchorsJson.trimStart() : '';
  if (trimmed.startsWith('{')) {
    const obj = parseJsonObject(anchorsJson, 'anchors');
    rejectUnknownFields(obj, ['anchors', 'links'], 'anchors');
    const anchors = parseAnchorList(JSON.stringify(obj.anchors ?? null));
    const links =
      obj.links === undefined
        ? []
        : parseJsonArray(JSON.stringify(obj.links), 'anchors.links', MAX_LINKS).map((item, index) =>
            parseLinkInput(asObject(item, `anchors.links[${index}]`), `anchors.links[${index}]`),
          );
    return { anchors, links };
  }
  return { anchors: parseAnchorList(anchorsJson), links: [] };
}

function parseAnchorList(anchorsJson: string): AnchorInput[] {
  return parseJsonArray(anchorsJson, 'anchors', MAX_BATCH).map((item, index) => parseAnchorInput(item, `anchors[${index}]`));
}

/** Writes the caller's pseudonym links; returns them by key (for checks later in the transaction). */
async function linkMany(ctx: Context, caller: Caller, links: LinkInput[]): Promise<Map<string, PatientLink>> {
  const pending = new Map<string, PatientLink>();
  for (const link of links) {
    await linkPatient(ctx, caller.mspId, link, pending);
  }
  return pending;
}

/** Anchor inputs anchored in order; the same version twice must agree. */
async function anchorMany(ctx: Context, caller: Caller, inputs: AnchorInput[]): Promise<Anchor[]> {
  const seen = new Map<string, Commitment>();
  for (const input of inputs) {
    const ref = resourceRef(input.resourceType, input.id, input.versionId);
    const earlier = seen.get(ref);
    if (earlier && !sameCommitment(earlier, input.commitment)) {
      throw conflict(`${ref} appears twice in the batch with different commitments`);
    }
    seen.set(ref, input.commitment);
  }
  const stored = new Map<string, Anchor>();
  const out: Anchor[] = [];
  for (const input of inputs) {
    const ref = resourceRef(input.resourceType, input.id, input.versionId);
    const anchor = stored.get(ref) ?? (await anchorOne(ctx, caller, input));
    stored.set(ref, anchor);
    out.push(anchor);
  }
  await flushPackedRows(ctx);
  return out;
}

/** Anchoring (and erasure, patient links) is for a gateway or admin of the organization holding the data. */
function callerMayAnchor(ctx: Context): Caller {
  const caller = callerOf(ctx);
  if (!hasRole(caller, 'gateway', 'admin')) {
    throw forbidden('anchoring, erasure and patient links need a gateway or admin identity (hdx.role)');
  }
  return caller;
}

/**
 * Writes one anchor (or returns the identical stored one, filed nowhere again) and files it in the
 * locator row of each of its patients; the caller flushes the rows (flushPackedRows) once it is done.
 */
async function anchorOne(ctx: Context, caller: Caller, input: AnchorInput): Promise<Anchor> {
  const ref = resourceRef(input.resourceType, input.id, input.versionId);
  const key = anchorKey(ctx, input.resourceType, input.id, input.versionId);
  const existing = await readState<Anchor>(ctx, key);
  if (existing) {
    if (existing.tombstone) {
      throw conflict(`${ref} was erased and cannot be anchored again`);
    }
    if (existing.custodian !== caller.mspId) {
      throw conflict(`${ref} is already anchored by another custodian`);
    }
    if (!sameCommitment(existing.commitment, input.commitment)) {
      throw conflict(`${ref} is already anchored with a different commitment`);
    }
    return existing;
  }
  const anchor: Anchor = {
    ...input,
    custodian: caller.mspId,
    txId: ctx.stub.getTxID(),
    anchoredAt: txInstant(ctx),
  };
  await writeState(ctx, key, anchor);
  // Filed under each patient whose compartment it is in: each one's locator and erasure find it.
  for (const patient of governingPatients(anchor)) {
    packedRows(ctx).add(LOCATOR_INDEX, patientRowKey(ctx, patient, caller.mspId, anchor.txId), toLocatorEntry(anchor, patient));
  }
  return anchor;
}
