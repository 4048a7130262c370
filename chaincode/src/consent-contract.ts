import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';
import { decideAccess, parseAccessRequest } from './access-decision';
import { listAccessRequests, requestAccess } from './access-request';
import { callerOf } from './caller';
import {
  CONSENT_PATIENT_INDEX,
  CONSENT_VERSION_KEY,
  ConsentChange,
  ConsentRecord,
  ConsentResource,
  consentKey,
  consentPatientKey,
  consentVersionKey,
  parseConsent,
  parsePatientReference,
} from './consent-model';
import { alreadyExists, conflict, forbidden, invalid, notFound } from './errors';
import { getActiveIdentity, getIdentity } from './identity-model';
import { INDEX_MARKER, canonicalJson, marshal, pagePartial, parseBookmark, parsePageSize, readState, scanPartial, txInstant, unmarshal, writeState } from './ledger';
import { verifySignedRequest } from './signed-request';
import { FHIR_ID, HDX_DID, asObject, checkString, parseJsonObject, rejectUnknownFields, requireString } from './validate';
import { refuseRemovedSubmitter } from './member-model';

export const CONSENT_EVENT = 'hdx.consent';

/**
 * Patient consents. Every change carries a compact JWS (ES256) by the patient or a registered guardian
 * over the canonical JSON of `{consent, action, nonce, iat}`; the gateway only relays it.
 */
@Info({ title: 'ConsentContract', description: 'hdx.consent: signed FHIR-shaped consents and access decisions' })
export class ConsentContract extends Contract {
  public constructor() {
    super('hdx.consent');
  }

  /** No identity of a member organization removed from the consortium submits anything. */
  public override async beforeTransaction(ctx: Context): Promise<void> {
    await refuseRemovedSubmitter(ctx);
  }

  /** Records a new consent (`action: "grant"`). Returns the stored consent record. */
  @Transaction()
  @Returns('string')
  public async Grant(ctx: Context, signedConsent: string): Promise<string> {
    return changeConsent(ctx, signedConsent, 'grant');
  }

  /** Replaces an active consent (`action: "update"`); the signature must be newer than the last change. */
  @Transaction()
  @Returns('string')
  public async Update(ctx: Context, signedConsent: string): Promise<string> {
    return changeConsent(ctx, signedConsent, 'update');
  }

  /** Revokes an active consent (`action: "revoke"`, consent needs only resourceType, id and patient). */
  @Transaction()
  @Returns('string')
  public async Revoke(ctx: Context, signedConsent: string): Promise<string> {
    return changeConsent(ctx, signedConsent, 'revoke');
  }

  /** The current record of a consent (with the JWS that made it). */
  @Transaction(false)
  @Returns('string')
  public async GetConsent(ctx: Context, consentId: string): Promise<string> {
    callerOf(ctx);
    checkString(consentId, 'consentId', FHIR_ID, 'must be a FHIR id');
    return canonicalJson(await getConsentRecord(ctx, consentId));
  }

  /** Every version of a consent, oldest first. */
  @Transaction(false)
  @Returns('string')
  public async History(ctx: Context, consentId: string): Promise<string> {
    callerOf(ctx);
    checkString(consentId, 'consentId', FHIR_ID, 'must be a FHIR id');
    await getConsentRecord(ctx, consentId);
    const rows = await scanPartial(ctx, CONSENT_VERSION_KEY, [consentId]);
    return canonicalJson(rows.map((row) => unmarshal<ConsentRecord>(row.value)));
  }

  /** A patient's consents, ordered by id, paginated: `{consents, bookmark, fetchedRecordsCount}`. */
  @Transaction(false)
  @Returns('string')
  public async ListByPatient(ctx: Context, patient: string, pageSize: string, bookmark: string): Promise<string> {
    callerOf(ctx);
    checkString(patient, 'patient', HDX_DID, 'must be a did:hdx DID');
    const page = await pagePartial(ctx, CONSENT_PATIENT_INDEX, [patient], parsePageSize(pageSize), parseBookmark(bookmark));
    const consents = [];
    for (const row of page.records) {
      consents.push(await getConsentRecord(ctx, ctx.stub.splitCompositeKey(row.key).attributes[1] ?? ''));
    }
    return canonicalJson({ consents, bookmark: page.bookmark, fetchedRecordsCount: page.fetchedRecordsCount });
  }

  /**
   * Deterministic access decision: `{decision, consents, reason, breakGlass}`. Request:
   * `{actor, actorOrganization, purpose, action?, resource?: "Type/id/_history/v" | patient, custodian, resourceType, securityLabels?, dataDate?}`.
   */
  @Transaction(false)
  @Returns('string')
  public async EvaluateAccess(ctx: Context, requestJson: string): Promise<string> {
    callerOf(ctx);
    const input = parseAccessRequest(parseJsonObject(requestJson, 'request'), 'request');
    const { decision, consents, reason, breakGlass } = await decideAccess(ctx, input, 'request');
    return canonicalJson({ decision, consents, reason, breakGlass });
  }

  /**
   * A practitioner asks the patient for access (access-request.ts): `{patient, requester, purpose,
   * resourceTypes}`, submitted by the requester's own organization for its active practitioner. Replaces
   * the open request of the same requester, patient and purpose. Returns the stored request.
   */
  @Transaction()
  @Returns('string')
  public async RequestAccess(ctx: Context, requestJson: string): Promise<string> {
    const caller = callerOf(ctx);
    return canonicalJson(await requestAccess(ctx, caller, parseJsonObject(requestJson, 'accessRequest')));
  }

  /** A patient's open access requests, latest first: `{requests}`. */
  @Transaction(false)
  @Returns('string')
  public async ListAccessRequests(ctx: Context, patient: string): Promise<string> {
    callerOf(ctx);
    return canonicalJson({ requests: await listAccessRequests(ctx, patient) });
  }
}

async function getConsentRecord(ctx: Context, id: string): Promise<ConsentRecord> {
  const record = await readState<ConsentRecord>(ctx, consentKey(ctx, id));
  if (!record) {
    throw notFound(`Consent/${id} is not on the ledger`);
  }
  return record;
}

function parseRevocation(value: unknown): { id: string; patient: string } {
  const obj = asObject(value, 'consent');
  if (obj.resourceType !== 'Consent') {
    throw invalid('consent.resourceType must be Consent');
  }
  const id = requireString(obj, 'id', 'consent', FHIR_ID, 'must be a FHIR id');
  return { id, patient: parsePatientReference(obj.patient, 'consent.patient') };
}

async function changeConsent(ctx: Context, signedConsent: string, action: ConsentChange): Promise<string> {
  const caller = callerOf(ctx);
  const verified = await verifySignedRequest(ctx, signedConsent, [action], 'signedConsent', { allowSuspended: action === 'revoke' });
  rejectUnknownFields(verified.payload, ['consent', 'action', 'nonce', 'iat'], 'signedConsent payload');
  const parsed = action === 'revoke' ? undefined : parseConsent(verified.payload.consent);
  const { id, patient } = parsed ? { id: parsed.id, patient: parsed.patient.reference } : parseRevocation(verified.payload.consent);

  // A suspended patient may still revoke (their permits no longer permit anyway); nothing else.
  const patientRecord = action === 'revoke' ? await getIdentity(ctx, patient) : await getActiveIdentity(ctx, patient);
  if (patientRecord.kind !== 'patient') {
    throw invalid('consent.patient must be a patient DID');
  }
  if (patientRecord.status === 'deactivated') {
    throw conflict(`${patient} is deactivated`);
  }
  if (verified.signer !== patient && !patientRecord.guardians.includes(verified.signer)) {
    throw forbidden(`Consent/${id} must be signed by the patient or a registered guardian`);
  }

  const existing = await readState<ConsentRecord>(ctx, consentKey(ctx, id));
  if (action === 'grant' && existing) {
    throw alreadyExists(`Consent/${id} already exists`);
  }
  if (action !== 'grant') {
    if (!existing) {
      throw notFound(`Consent/${id} is not on the ledger`);
    }
    if (existing.patient !== patient) {
      throw forbidden(`Consent/${id} belongs to another patient`);
    }
    if (existing.status !== 'active') {
      throw conflict(`Consent/${id} is revoked`);
    }
    if (verified.iat < existing.iat) {
      throw conflict(`Consent/${id} has a newer signed change`);
    }
  }
  const now = txInstant(ctx);
  const consent: ConsentResource = parsed ?? { ...(existing as ConsentRecord).consent, status: 'inactive' };
  const record: ConsentRecord = {
    id,
    patient,
    status: consent.status,
    version: existing ? existing.version + 1 : 1,
    consent,
    action,
    signer: verified.signer,
    kid: verified.kid,
    iat: verified.iat,
    jws: verified.jws,
    created: existing?.created ?? now,
    updated: now,
    txId: ctx.stub.getTxID(),
    submittedBy: caller.mspId,
  };
  await writeState(ctx, consentKey(ctx, id), record);
  await writeState(ctx, consentVersionKey(ctx, id, record.version), record);
  if (!existing) {
    await ctx.stub.putState(consentPatientKey(ctx, patient, id), INDEX_MARKER);
  }
  ctx.stub.setEvent(CONSENT_EVENT, marshal({ action, consentId: id, patient, version: record.version, txId: record.txId }));
  return canonicalJson(record);
}
