import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';
import { Caller, REGULATOR_MSP, callerOf, hasRole } from './caller';
import { alreadyExists, conflict, forbidden, invalid, notFound } from './errors';
import {
  DID_KINDS,
  DID_LINK_INDEX,
  DID_ORG_INDEX,
  DID_SUBJECT_INDEX,
  DID_VERSION_KEY,
  DidKind,
  IdentityRecord,
  PendingGuardian,
  buildDocument,
  currentJwk,
  didKey,
  didVersionKey,
  fhirBaseUrlOf,
  findIdentity,
  getActiveIdentity,
  getIdentity,
  keyId,
  resolutionOf,
} from './identity-model';
import { parseCompactJws, parseP256Jwk, P256Jwk, thumbprintOf } from './jose';
import { INDEX_MARKER, canonicalJson, marshal, scanPartial, txInstant, unmarshal, writeState } from './ledger';
import { verifySignedRequest, verifyWithKey } from './signed-request';
import { MEMBER_EVENT, MemberRemoval, findRemoval, isRemoved, majorityOf, memberKey, refuseRemovedSubmitter } from './member-model';
import { HDX_DID, JsonObject, MSP_ID, asObject, checkString, optionalStringArray, parseJsonObject, rejectUnknownFields, requireString } from './validate';

/** A salted identifier hash: base64url of 32 bytes (e.g. HMAC-SHA-256 with the consortium salt). */
export const IDENTIFIER_HASH = /^[A-Za-z0-9_-]{43}$/;
const IDENTIFIER_HASH_RULE = 'must be base64url of a 32-byte salted hash';
/** Opaque keyed hash of an identity-provider subject (made by the gateway): base64url of 32 bytes. */
export const SUBJECT_HASH = IDENTIFIER_HASH;
/** Chaincode event of guardian and status changes: `{action, did, guardian?, status, txId}`. */
export const IDENTITY_EVENT = 'hdx.identity';

/** Staff DID kinds an organization's gateway may deactivate without the DID's proof (off-boarding). */
const OFFBOARDED_BY_GATEWAY: readonly string[] = ['practitioner', 'device', 'system'];

/** DID registry: DID documents (JsonWebKey2020, P-256), key rotation, deactivation, links, guardians. */
@Info({ title: 'IdentityContract', description: 'hdx.identity: did:hdx registry' })
export class IdentityContract extends Contract {
  public constructor() {
    super('hdx.identity');
  }

  /** No identity of a member organization removed from the consortium submits anything. */
  public override async beforeTransaction(ctx: Context): Promise<void> {
    await refuseRemovedSubmitter(ctx);
  }

  /**
   * Registers a DID: `{kind, publicKeyJwk, proof, did?, fhirBaseUrl?, identifiers?}`. The DID is the
   * RFC 7638 thumbprint of publicKeyJwk; `proof` is a JWS by that key over `{action:"register", did, kind, nonce, iat}`.
   */
  @Transaction()
  @Returns('string')
  public async Register(ctx: Context, registrationJson: string): Promise<string> {
    const caller = callerOf(ctx);
    const input = parseJsonObject(registrationJson, 'registration');
    rejectUnknownFields(input, ['kind', 'publicKeyJwk', 'proof', 'did', 'fhirBaseUrl', 'identifiers', 'subject'], 'registration');
    const kind = parseKind(input.kind);
    mayRegister(caller, kind);
    const jwk = parseP256Jwk(input.publicKeyJwk, 'registration.publicKeyJwk');
    const did = `did:hdx:${await thumbprintOf(jwk)}`;
    if (input.did !== undefined && input.did !== did) {
      throw invalid('registration.did does not match the RFC 7638 thumbprint of publicKeyJwk');
    }
    const fhirBaseUrl = input.fhirBaseUrl === undefined ? undefined : parseFhirBaseUrl(input.fhirBaseUrl);
    if (kind === 'organization' && fhirBaseUrl === undefined) {
      throw invalid('registration.fhirBaseUrl is required for an organization');
    }
    if (kind !== 'organization' && fhirBaseUrl !== undefined) {
      throw invalid('registration.fhirBaseUrl is only allowed for an organization');
    }
    const identifiers = optionalStringArray(input, 'identifiers', 'registration', IDENTIFIER_HASH, IDENTIFIER_HASH_RULE) ?? [];
    const subject =
      input.subject === undefined ? undefined : requireString(input, 'subject', 'registration', SUBJECT_HASH, 'must be base64url of a 32-byte keyed hash of the IdP subject');

    const proof = parseCompactJws(input.proof, 'registration.proof');
    if (proof.header.kid !== keyId(did, 1)) {
      throw invalid('registration.proof header.kid must be <did>#key-1');
    }
    rejectUnknownFields(proof.payload, ['action', 'did', 'kind', 'nonce', 'iat'], 'registration.proof payload');
    if (proof.payload.did !== did || proof.payload.kind !== kind) {
      throw invalid('registration.proof payload must name the registered did and kind');
    }
    if (await findIdentity(ctx, did)) {
      throw alreadyExists(`${did} is already registered`);
    }
    if (kind === 'organization' && (await scanPartial(ctx, DID_ORG_INDEX, [caller.mspId])).length > 0) {
      throw alreadyExists(`${caller.mspId} already has an active organization DID`);
    }
    await verifyWithKey(ctx, proof, jwk, ['register'], 'registration.proof', did, input.proof as string);

    const now = txInstant(ctx);
    const record: IdentityRecord = {
      did,
      kind,
      status: 'active',
      version: 1,
      created: now,
      updated: now,
      organization: caller.mspId,
      keyNumber: 1,
      document: buildDocument(did, jwk, 1, fhirBaseUrl),
      links: {
        registeredBy: { mspId: caller.mspId, id: caller.id },
        identifiers: identifiers.map((hash) => ({ hash, mspId: caller.mspId })).sort(byHashThenMsp),
        ...(subject === undefined ? {} : { subject }),
      },
      guardians: [],
      txId: ctx.stub.getTxID(),
    };
    await saveIdentity(ctx, record);
    for (const hash of identifiers) {
      await ctx.stub.putState(ctx.stub.createCompositeKey(DID_LINK_INDEX, [hash, did]), INDEX_MARKER);
    }
    if (kind === 'organization') {
      await ctx.stub.putState(ctx.stub.createCompositeKey(DID_ORG_INDEX, [caller.mspId, did]), INDEX_MARKER);
    }
    if (subject !== undefined) {
      await ctx.stub.putState(ctx.stub.createCompositeKey(DID_SUBJECT_INDEX, [caller.mspId, subject, did]), INDEX_MARKER);
    }
    return canonicalJson(resolutionOf(record));
  }

  /**
   * DIDs the caller's organization registered for an identity-provider subject (off-boarding):
   * `[{did, kind, status}]` in DID order. Gateway or admin of that organization.
   */
  @Transaction(false)
  @Returns('string')
  public async FindBySubject(ctx: Context, subject: string): Promise<string> {
    const caller = callerOf(ctx);
    if (!hasRole(caller, 'gateway', 'admin')) {
      throw forbidden('subject lookups need a gateway or admin identity');
    }
    checkString(subject, 'subject', SUBJECT_HASH, 'must be base64url of a 32-byte keyed hash of the IdP subject');
    const found = [];
    for (const row of await scanPartial(ctx, DID_SUBJECT_INDEX, [caller.mspId, subject])) {
      const record = await getIdentity(ctx, ctx.stub.splitCompositeKey(row.key).attributes[2] ?? '');
      found.push({ did: record.did, kind: record.kind, status: record.status });
    }
    return canonicalJson(found);
  }

  /** W3C DID resolution: `{didDocument, didDocumentMetadata: {versionId, created, updated, deactivated}, …}`. */
  @Transaction(false)
  @Returns('string')
  public async Resolve(ctx: Context, did: string): Promise<string> {
    checkDid(did, 'did');
    return canonicalJson(resolutionOf(await getIdentity(ctx, did)));
  }

  /** Every version of a DID document, oldest first, as resolution results. */
  @Transaction(false)
  @Returns('string')
  public async History(ctx: Context, did: string): Promise<string> {
    checkDid(did, 'did');
    await getIdentity(ctx, did);
    const rows = await scanPartial(ctx, DID_VERSION_KEY, [did]);
    return canonicalJson(rows.map((row) => resolutionOf(unmarshal<IdentityRecord>(row.value))));
  }

  /**
   * Updates a DID: `{fhirBaseUrl?, addIdentifiers?, removeIdentifiers?}`. The FHIR endpoint of an
   * organization: an admin of its MSP. Identifier links: a gateway or admin of any member MSP adds its
   * own links and removes only its own.
   */
  @Transaction()
  @Returns('string')
  public async Update(ctx: Context, did: string, updateJson: string): Promise<string> {
    const caller = callerOf(ctx);
    checkDid(did, 'did');
    const update = parseJsonObject(updateJson, 'update');
    rejectUnknownFields(update, ['fhirBaseUrl', 'addIdentifiers', 'removeIdentifiers'], 'update');
    const add = optionalStringArray(update, 'addIdentifiers', 'update', IDENTIFIER_HASH, IDENTIFIER_HASH_RULE) ?? [];
    const remove = optionalStringArray(update, 'removeIdentifiers', 'update', IDENTIFIER_HASH, IDENTIFIER_HASH_RULE) ?? [];
    if (update.fhirBaseUrl === undefined && add.length === 0 && remove.length === 0) {
      throw invalid('update must change fhirBaseUrl, addIdentifiers or removeIdentifiers');
    }
    const record = await getActiveIdentity(ctx, did);
    let document = record.document;
    if (update.fhirBaseUrl !== undefined) {
      const url = parseFhirBaseUrl(update.fhirBaseUrl);
      if (record.kind !== 'organization') {
        throw invalid('update.fhirBaseUrl is only allowed for an organization');
      }
      if (!(caller.mspId === record.organization && hasRole(caller, 'admin'))) {
        throw forbidden('only an admin of the organization may change its FHIR endpoint');
      }
      document = buildDocument(did, currentJwk(record), record.keyNumber, url);
    }
    if ((add.length > 0 || remove.length > 0) && !hasRole(caller, 'gateway', 'admin')) {
      throw forbidden('identifier links are managed by a gateway or admin of a member organization');
    }
    let identifiers = record.links.identifiers;
    for (const hash of remove) {
      if (!identifiers.some((link) => link.hash === hash && link.mspId === caller.mspId)) {
        throw notFound(`update.removeIdentifiers: no such link of ${caller.mspId} on ${did}`);
      }
      identifiers = identifiers.filter((link) => !(link.hash === hash && link.mspId === caller.mspId));
      if (!identifiers.some((link) => link.hash === hash)) {
        await ctx.stub.deleteState(ctx.stub.createCompositeKey(DID_LINK_INDEX, [hash, did]));
      }
    }
    for (const hash of add) {
      if (!identifiers.some((link) => link.hash === hash && link.mspId === caller.mspId)) {
        identifiers = [...identifiers, { hash, mspId: caller.mspId }];
        await ctx.stub.putState(ctx.stub.createCompositeKey(DID_LINK_INDEX, [hash, did]), INDEX_MARKER);
      }
    }
    const next = nextVersion(ctx, record, { document, links: { ...record.links, identifiers: [...identifiers].sort(byHashThenMsp) } });
    await saveIdentity(ctx, next);
    return canonicalJson(resolutionOf(next));
  }

  /**
   * Replaces the key: `{did, publicKeyJwk, proof?}`. With `proof`: a JWS by the current key over
   * `{action:"rotate", did, publicKeyJwk, nonce, iat}`. Without: an admin of the owning MSP, for
   * every kind except patient (a hospital cannot take over a patient's DID).
   */
  @Transaction()
  @Returns('string')
  public async RotateKey(ctx: Context, rotationJson: string): Promise<string> {
    const caller = callerOf(ctx);
    const input = parseJsonObject(rotationJson, 'rotation');
    rejectUnknownFields(input, ['did', 'publicKeyJwk', 'proof'], 'rotation');
    const did = requireString(input, 'did', 'rotation', HDX_DID, 'must be a did:hdx DID');
    const jwk = parseP256Jwk(input.publicKeyJwk, 'rotation.publicKeyJwk');
    const record = await getActiveIdentity(ctx, did);
    if ((await thumbprintOf(jwk)) === (await thumbprintOf(currentJwk(record)))) {
      throw invalid('rotation.publicKeyJwk is the current key');
    }
    if (input.proof !== undefined) {
      const verified = await verifySignedRequest(ctx, input.proof, ['rotate'], 'rotation.proof');
      rejectUnknownFields(verified.payload, ['action', 'did', 'publicKeyJwk', 'nonce', 'iat'], 'rotation.proof payload');
      if (verified.signer !== did || verified.payload.did !== did || !sameJwk(verified.payload.publicKeyJwk, jwk)) {
        throw forbidden('rotation.proof must be signed by the DID itself over the new key');
      }
    } else if (!(record.kind !== 'patient' && caller.mspId === record.organization && hasRole(caller, 'admin'))) {
      throw forbidden('rotating this key needs a proof signed by its current key');
    }
    const keyNumber = record.keyNumber + 1;
    const next = nextVersion(ctx, record, { keyNumber, document: buildDocument(did, jwk, keyNumber, fhirBaseUrlOf(record)) });
    await saveIdentity(ctx, next);
    return canonicalJson(resolutionOf(next));
  }

  /**
   * Deactivates a DID: `{did, proof?}`. With `proof`: a JWS by its current key over
   * `{action:"deactivate", did, nonce, iat}` (final; a suspended patient may sign it). Without: an admin of
   * the owning MSP; for a patient DID that only SUSPENDS it (reversible, see Reactivate), other kinds are
   * deactivated.
   */
  @Transaction()
  @Returns('string')
  public async Deactivate(ctx: Context, deactivationJson: string): Promise<string> {
    const caller = callerOf(ctx);
    const input = parseJsonObject(deactivationJson, 'deactivation');
    rejectUnknownFields(input, ['did', 'proof'], 'deactivation');
    const did = requireString(input, 'did', 'deactivation', HDX_DID, 'must be a did:hdx DID');
    const record = await getIdentity(ctx, did);
    if (record.status === 'deactivated') {
      throw conflict(`${did} is already deactivated`);
    }
    let status: IdentityRecord['status'] = 'deactivated';
    if (input.proof !== undefined) {
      const verified = await verifySignedRequest(ctx, input.proof, ['deactivate'], 'deactivation.proof', { allowSuspended: true });
      rejectUnknownFields(verified.payload, ['action', 'did', 'nonce', 'iat'], 'deactivation.proof payload');
      if (verified.signer !== did || verified.payload.did !== did) {
        throw forbidden('deactivation.proof must be signed by the DID itself');
      }
    } else if (!(caller.mspId === record.organization && (hasRole(caller, 'admin') || (hasRole(caller, 'gateway') && OFFBOARDED_BY_GATEWAY.includes(record.kind))))) {
      // The organization's gateway off-boards its own staff DIDs (its admin asked, through the identity
      // provider); a patient's DID is suspended only by an admin identity.
      throw forbidden('deactivating this DID needs its own proof or an admin of its organization');
    } else if (record.kind === 'patient') {
      if (record.status === 'suspended') {
        throw conflict(`${did} is already suspended`);
      }
      status = 'suspended';
    }
    if (record.kind === 'organization') {
      await ctx.stub.deleteState(ctx.stub.createCompositeKey(DID_ORG_INDEX, [record.organization, did]));
    }
    const next = nextVersion(ctx, record, { status });
    delete next.pendingReactivation;
    await saveIdentity(ctx, next);
    emitIdentityEvent(ctx, status === 'suspended' ? 'suspend' : 'deactivate', next);
    return canonicalJson(resolutionOf(next));
  }

  /**
   * Reactivates a SUSPENDED patient DID: `{did, proof?}`. With `proof`: a JWS by the patient over
   * `{action:"reactivate", did, nonce, iat}` → active at once. Without: an admin of the patient's MSP
   * proposes it (`hdx.pendingReactivation`), and it takes effect on ApproveReactivation by RegulatorMSP.
   */
  @Transaction()
  @Returns('string')
  public async Reactivate(ctx: Context, reactivationJson: string): Promise<string> {
    const caller = callerOf(ctx);
    const input = parseJsonObject(reactivationJson, 'reactivation');
    rejectUnknownFields(input, ['did', 'proof'], 'reactivation');
    const did = requireString(input, 'did', 'reactivation', HDX_DID, 'must be a did:hdx DID');
    const record = await getIdentity(ctx, did);
    if (record.status !== 'suspended') {
      throw conflict(`${did} is ${record.status}, not suspended`);
    }
    let next: IdentityRecord;
    if (input.proof !== undefined) {
      const verified = await verifySignedRequest(ctx, input.proof, ['reactivate'], 'reactivation.proof', { allowSuspended: true });
      rejectUnknownFields(verified.payload, ['action', 'did', 'nonce', 'iat'], 'reactivation.proof payload');
      if (verified.signer !== did || verified.payload.did !== did) {
        throw forbidden('reactivation.proof must be signed by the DID itself');
      }
      next = nextVersion(ctx, record, { status: 'active' });
      delete next.pendingReactivation;
    } else if (caller.mspId === record.organization && hasRole(caller, 'admin')) {
      next = nextVersion(ctx, record, { pendingReactivation: { proposedBy: caller.mspId, proposedAt: txInstant(ctx), txId: ctx.stub.getTxID() } });
    } else {
      throw forbidden("reactivating this DID needs the patient's proof or an admin of the patient's organization");
    }
    await saveIdentity(ctx, next);
    emitIdentityEvent(ctx, next.status === 'active' ? 'reactivate' : 'propose-reactivate', next);
    return canonicalJson(resolutionOf(next));
  }

  /** Approves a proposed reactivation: `{did}`, by an admin of RegulatorMSP (not the proposing MSP). */
  @Transaction()
  @Returns('string')
  public async ApproveReactivation(ctx: Context, approvalJson: string): Promise<string> {
    const caller = callerMaySecondOrganization(ctx);
    const input = parseJsonObject(approvalJson, 'approval');
    rejectUnknownFields(input, ['did'], 'approval');
    const did = requireString(input, 'did', 'approval', HDX_DID, 'must be a did:hdx DID');
    const record = await getIdentity(ctx, did);
    if (record.status !== 'suspended' || !record.pendingReactivation) {
      throw notFound(`${did} has no proposed reactivation`);
    }
    if (record.pendingReactivation.proposedBy === caller.mspId) {
      throw forbidden('a reactivation is approved by another organization than the one that proposed it');
    }
    const next = nextVersion(ctx, record, { status: 'active' });
    delete next.pendingReactivation;
    await saveIdentity(ctx, next);
    emitIdentityEvent(ctx, 'reactivate', next);
    return canonicalJson(resolutionOf(next));
  }

  /**
   * Proposes removing a member organization from the consortium: `{mspId}`, by an admin of another member.
   * The proposal is its proposer's approval; the removal takes effect once a majority of the members other
   * than the one removed approved (ApproveMemberRemoval): with four members, two of the three that remain.
   * RegulatorMSP, which approves the two-organization changes, is not removed.
   */
  @Transaction()
  @Returns('string')
  public async ProposeMemberRemoval(ctx: Context, removalJson: string): Promise<string> {
    const mspId = parseMemberChange(removalJson, 'removal');
    const { caller, members } = await memberAdmin(ctx, mspId);
    if (mspId === REGULATOR_MSP) {
      throw forbidden(`${REGULATOR_MSP} approves the two-organization changes and is not removed`);
    }
    const existing = await findRemoval(ctx, mspId);
    if (existing?.status === 'removed') {
      throw conflict(`${mspId} was already removed`);
    }
    if (existing) {
      throw alreadyExists(`the removal of ${mspId} is already proposed: approve it`);
    }
    if (!members.includes(mspId)) {
      throw notFound(`${mspId} is not a member (no active organization DID)`);
    }
    const at = txInstant(ctx);
    const proposal: MemberRemoval = {
      mspId,
      status: 'proposed',
      proposedBy: caller.mspId,
      proposedAt: at,
      approvals: [{ mspId: caller.mspId, at, txId: ctx.stub.getTxID() }],
      required: majorityOf(members.length - 1),
      txId: ctx.stub.getTxID(),
    };
    return canonicalJson(await settleRemoval(ctx, proposal, members));
  }

  /** Approves a proposed member removal: `{mspId}`, by an admin of a member other than the proposer and the one removed. */
  @Transaction()
  @Returns('string')
  public async ApproveMemberRemoval(ctx: Context, approvalJson: string): Promise<string> {
    const mspId = parseMemberChange(approvalJson, 'approval');
    const { caller, members } = await memberAdmin(ctx, mspId);
    const existing = await findRemoval(ctx, mspId);
    if (!existing) {
      throw notFound(`no removal of ${mspId} is proposed`);
    }
    if (existing.status === 'removed') {
      throw conflict(`${mspId} was already removed`);
    }
    if (existing.approvals.some((a) => a.mspId === caller.mspId)) {
      throw alreadyExists(`${caller.mspId} already approved the removal of ${mspId}`);
    }
    const approvals = [...existing.approvals, { mspId: caller.mspId, at: txInstant(ctx), txId: ctx.stub.getTxID() }];
    return canonicalJson(await settleRemoval(ctx, { ...existing, approvals, txId: ctx.stub.getTxID() }, members));
  }

  /**
   * Where a member organization stands: `{mspId, member, removal?}`. `member` is true while it holds an
   * active organization DID and was not removed; `removal` is its proposed or final removal.
   */
  @Transaction(false)
  @Returns('string')
  public async MemberStatus(ctx: Context, mspId: string): Promise<string> {
    checkString(mspId, 'mspId', MSP_ID, 'must be an MSP id');
    const removal = await findRemoval(ctx, mspId);
    const member = (await currentMembers(ctx)).includes(mspId);
    return canonicalJson({ mspId, member, ...(removal ? { removal } : {}) });
  }

  /** DIDs linked to a salted identifier hash: `[{did, kind, status, organization, linkedBy: [msp]}]`. */
  @Transaction(false)
  @Returns('string')
  public async FindByIdentifier(ctx: Context, identifierHash: string): Promise<string> {
    const caller = callerOf(ctx);
    if (!hasRole(caller, 'gateway', 'admin', 'auditor')) {
      throw forbidden('identifier lookups need a gateway, admin or auditor identity');
    }
    checkString(identifierHash, 'identifierHash', IDENTIFIER_HASH, IDENTIFIER_HASH_RULE);
    const rows = await scanPartial(ctx, DID_LINK_INDEX, [identifierHash]);
    const found = [];
    for (const row of rows) {
      const did = ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '';
      const record = await getIdentity(ctx, did);
      found.push({
        did,
        kind: record.kind,
        status: record.status,
        organization: record.organization,
        linkedBy: record.links.identifiers.filter((l) => l.hash === identifierHash).map((l) => l.mspId),
      });
    }
    return canonicalJson(found);
  }

  /**
   * Registers a guardian (an active patient-kind DID) who may sign consents for a patient:
   * `{patient, guardian, proof?}`. With `proof`: a JWS by the patient over `{action:"add-guardian",
   * patient, guardian, nonce, iat}`, in force at once. Without: an admin of the patient's organization
   * PROPOSES it (`hdx.pendingGuardians`, event `hdx.identity`); it takes effect only on ApproveGuardian by
   * an admin of RegulatorMSP.
   */
  @Transaction()
  @Returns('string')
  public async AddGuardian(ctx: Context, guardianJson: string): Promise<string> {
    return changeGuardian(ctx, guardianJson, 'add-guardian');
  }

  /** Removes a guardian: `{patient, guardian, proof?}`, authorized like AddGuardian (action "remove-guardian"). */
  @Transaction()
  @Returns('string')
  public async RemoveGuardian(ctx: Context, guardianJson: string): Promise<string> {
    return changeGuardian(ctx, guardianJson, 'remove-guardian');
  }

  /**
   * Approves a proposed guardian change: `{patient, guardian}`, by an admin of RegulatorMSP (another
   * organization than the proposing one). Applies the change and removes the proposal.
   */
  @Transaction()
  @Returns('string')
  public async ApproveGuardian(ctx: Context, approvalJson: string): Promise<string> {
    const caller = callerMaySecondOrganization(ctx);
    const input = parseJsonObject(approvalJson, 'approval');
    rejectUnknownFields(input, ['patient', 'guardian'], 'approval');
    const patient = requireString(input, 'patient', 'approval', HDX_DID, 'must be a did:hdx DID');
    const guardian = requireString(input, 'guardian', 'approval', HDX_DID, 'must be a did:hdx DID');
    const record = await getActiveIdentity(ctx, patient);
    const pending = (record.pendingGuardians ?? []).find((p) => p.guardian === guardian);
    if (!pending) {
      throw notFound(`no guardian change of ${guardian} is proposed for ${patient}`);
    }
    if (pending.proposedBy === caller.mspId) {
      throw forbidden('a guardian change is approved by another organization than the one that proposed it');
    }
    const guardians = await applyGuardianChange(ctx, record, guardian, pending.change);
    const next = nextVersion(ctx, record, { guardians, pendingGuardians: (record.pendingGuardians ?? []).filter((p) => p.guardian !== guardian) });
    await saveIdentity(ctx, next);
    emitIdentityEvent(ctx, pending.change === 'add' ? 'add-guardian' : 'remove-guardian', next, guardian);
    return canonicalJson(resolutionOf(next));
  }
}

/** `{mspId}` of a member change. */
function parseMemberChange(json: string, path: string): string {
  const input = parseJsonObject(json, path);
  rejectUnknownFields(input, ['mspId'], path);
  return requireString(input, 'mspId', path, MSP_ID, 'must be an MSP id');
}

/** The member organizations: MSP ids holding an active organization DID, not removed, sorted. */
async function currentMembers(ctx: Context): Promise<string[]> {
  const msps = new Set<string>();
  for (const row of await scanPartial(ctx, DID_ORG_INDEX, [])) {
    const mspId = ctx.stub.splitCompositeKey(row.key).attributes[0];
    if (mspId !== undefined) msps.add(mspId);
  }
  const members: string[] = [];
  for (const mspId of [...msps].sort()) {
    if (!isRemoved(await findRemoval(ctx, mspId))) members.push(mspId);
  }
  return members;
}

/** The caller of a member change: an admin of a member organization other than `subject`. */
async function memberAdmin(ctx: Context, subject: string): Promise<{ caller: Caller; members: string[] }> {
  const caller = callerOf(ctx);
  if (!hasRole(caller, 'admin')) {
    throw forbidden('member changes are made by an admin of a member organization');
  }
  if (caller.mspId === subject) {
    throw forbidden('an organization neither proposes nor approves its own removal');
  }
  const members = await currentMembers(ctx);
  if (!members.includes(caller.mspId)) {
    throw forbidden(`${caller.mspId} is not a member organization (no active organization DID)`);
  }
  return { caller, members };
}

/**
 * Saves a removal, in force once the approvals of current members other than the one removed reach a
 * majority of them. In force: final; its organization DIDs are deactivated (so they name no one in a
 * consent and resolve as deactivated); its other DIDs stay as they are, refused by every decision.
 */
async function settleRemoval(ctx: Context, removal: MemberRemoval, members: string[]): Promise<MemberRemoval> {
  const remaining = members.filter((m) => m !== removal.mspId);
  const required = majorityOf(remaining.length);
  const counted = removal.approvals.filter((a) => remaining.includes(a.mspId)).length;
  let next: MemberRemoval = { ...removal, required };
  if (counted >= required) {
    next = { ...next, status: 'removed', removedAt: txInstant(ctx) };
    for (const row of await scanPartial(ctx, DID_ORG_INDEX, [removal.mspId])) {
      const record = await getIdentity(ctx, ctx.stub.splitCompositeKey(row.key).attributes[1] ?? '');
      await ctx.stub.deleteState(row.key);
      if (record.status === 'deactivated') continue;
      const deactivated = nextVersion(ctx, record, { status: 'deactivated' });
      await saveIdentity(ctx, deactivated);
    }
  }
  await writeState(ctx, memberKey(ctx, next.mspId), next);
  // One event per transaction: the member event (the organization DID's deactivation is in its history).
  ctx.stub.setEvent(
    MEMBER_EVENT,
    marshal({
      action: next.status === 'removed' ? 'remove-member' : 'approve-member-removal',
      mspId: next.mspId,
      status: next.status,
      approvals: counted,
      required,
      txId: ctx.stub.getTxID(),
    }),
  );
  return next;
}

/** The second organization of a two-organization change: an admin of RegulatorMSP. */
function callerMaySecondOrganization(ctx: Context): Caller {
  const caller = callerOf(ctx);
  if (!(caller.mspId === REGULATOR_MSP && hasRole(caller, 'admin'))) {
    throw forbidden('approvals are given by an admin of RegulatorMSP');
  }
  return caller;
}

function emitIdentityEvent(ctx: Context, action: string, record: IdentityRecord, guardian?: string): void {
  ctx.stub.setEvent(
    IDENTITY_EVENT,
    marshal({ action, did: record.did, ...(guardian === undefined ? {} : { guardian }), status: record.status, version: record.version, txId: ctx.stub.getTxID() }),
  );
}

/** The guardian list after one change (checks the guardian for an addition). */
async function applyGuardianChange(ctx: Context, record: IdentityRecord, guardian: string, change: 'add' | 'remove'): Promise<string[]> {
  if (change === 'add') {
    const guardianRecord = await getActiveIdentity(ctx, guardian);
    if (guardianRecord.kind !== 'patient') {
      throw invalid('guardianship.guardian must be a person: a patient-kind DID');
    }
    if (record.guardians.includes(guardian)) {
      throw alreadyExists(`${guardian} is already a guardian of ${record.did}`);
    }
    return [...record.guardians, guardian].sort();
  }
  if (!record.guardians.includes(guardian)) {
    throw notFound(`${guardian} is not a guardian of ${record.did}`);
  }
  return record.guardians.filter((g) => g !== guardian);
}

async function changeGuardian(ctx: Context, guardianJson: string, action: 'add-guardian' | 'remove-guardian'): Promise<string> {
  const caller = callerOf(ctx);
  const input = parseJsonObject(guardianJson, 'guardianship');
  rejectUnknownFields(input, ['patient', 'guardian', 'proof'], 'guardianship');
  const patient = requireString(input, 'patient', 'guardianship', HDX_DID, 'must be a did:hdx DID');
  const guardian = requireString(input, 'guardian', 'guardianship', HDX_DID, 'must be a did:hdx DID');
  if (patient === guardian) {
    throw invalid('guardianship.guardian must differ from the patient');
  }
  const record = await getActiveIdentity(ctx, patient);
  if (record.kind !== 'patient') {
    throw invalid('guardianship.patient must be a patient DID');
  }
  const change = action === 'add-guardian' ? 'add' : 'remove';
  if (input.proof !== undefined) {
    const verified = await verifySignedRequest(ctx, input.proof, [action], 'guardianship.proof');
    rejectUnknownFields(verified.payload, ['action', 'patient', 'guardian', 'nonce', 'iat'], 'guardianship.proof payload');
    if (verified.signer !== patient || verified.payload.patient !== patient || verified.payload.guardian !== guardian) {
      throw forbidden('guardianship.proof must be signed by the patient over this guardian');
    }
    // The patient's own word: in force at once (and it replaces any proposal about this guardian).
    const guardians = await applyGuardianChange(ctx, record, guardian, change);
    const next = nextVersion(ctx, record, { guardians, pendingGuardians: (record.pendingGuardians ?? []).filter((p) => p.guardian !== guardian) });
    await saveIdentity(ctx, next);
    emitIdentityEvent(ctx, action, next, guardian);
    return canonicalJson(resolutionOf(next));
  }
  if (!(caller.mspId === record.organization && hasRole(caller, 'admin'))) {
    throw forbidden("changing guardians needs the patient's proof or an admin of the patient's organization");
  }
  // Without the patient's proof one organization only proposes: a second one (RegulatorMSP) approves.
  await applyGuardianChange(ctx, record, guardian, change);
  if ((record.pendingGuardians ?? []).some((p) => p.guardian === guardian)) {
    throw alreadyExists(`a change of ${guardian} is already proposed for ${patient}`);
  }
  const proposal: PendingGuardian = { guardian, change, proposedBy: caller.mspId, proposedAt: txInstant(ctx), txId: ctx.stub.getTxID() };
  const next = nextVersion(ctx, record, { pendingGuardians: [...(record.pendingGuardians ?? []), proposal].sort((a, b) => (a.guardian < b.guardian ? -1 : 1)) });
  await saveIdentity(ctx, next);
  emitIdentityEvent(ctx, `propose-${action}`, next, guardian);
  return canonicalJson(resolutionOf(next));
}

/** Who may register what, from the caller's MSP id and `hdx.role`. */
function mayRegister(caller: Caller, kind: DidKind): void {
  const ok =
    kind === 'auditor'
      ? caller.mspId === REGULATOR_MSP && hasRole(caller, 'admin', 'gateway')
      : kind === 'organization' || kind === 'system'
        ? hasRole(caller, 'admin')
        : hasRole(caller, 'admin', 'gateway');
  if (!ok) {
    throw forbidden(
      kind === 'auditor'
        ? 'auditor DIDs are registered only by an admin or gateway of RegulatorMSP'
        : kind === 'organization' || kind === 'system'
          ? `${kind} DIDs are registered only by an admin of the organization`
          : `${kind} DIDs are registered by a gateway or admin of a member organization`,
    );
  }
}

function parseKind(value: unknown): DidKind {
  if (typeof value !== 'string' || !(DID_KINDS as readonly string[]).includes(value)) {
    throw invalid(`registration.kind must be one of ${DID_KINDS.join(', ')}`);
  }
  return value as DidKind;
}

function parseFhirBaseUrl(value: unknown): string {
  let url: URL;
  try {
    if (typeof value !== 'string' || value.length > 2048) {
      throw new Error('not a string');
    }
    url = new URL(value);
  } catch {
    throw invalid('fhirBaseUrl must be an absolute http(s) URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) {
    throw invalid('fhirBaseUrl must be an http(s) URL without credentials, query or fragment');
  }
  return value as string;
}

function checkDid(did: string, name: string): void {
  checkString(did, name, HDX_DID, 'must be a did:hdx DID');
}

function sameJwk(value: unknown, jwk: P256Jwk): boolean {
  try {
    const other = asObject(value, 'jwk') as JsonObject;
    return canonicalJson(other) === canonicalJson(jwk);
  } catch {
    return false;
  }
}

function byHashThenMsp(a: { hash: string; mspId: string }, b: { hash: string; mspId: string }): number {
  return a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.mspId < b.mspId ? -1 : a.mspId > b.mspId ? 1 : 0;
}

function nextVersion(ctx: Context, record: IdentityRecord, changes: Partial<IdentityRecord>): IdentityRecord {
  return { ...record, ...changes, version: record.version + 1, updated: txInstant(ctx), txId: ctx.stub.getTxID() };
}

async function saveIdentity(ctx: Context, record: IdentityRecord): Promise<void> {
  await writeState(ctx, didKey(ctx, record.did), record);
  await writeState(ctx, didVersionKey(ctx, record.did, record.version), record);
}
