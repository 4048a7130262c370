import type { ConsentRecord, LedgerClient } from '../ledger/ledger-client';
import { OperationOutcomeError } from '../errors';

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_JWS_LENGTH = 256 * 1024;

export type ConsentChange = 'grant' | 'update' | 'revoke';

/** What the gateway reads of a signed consent change before the chaincode verifies it. */
function peek(jws: string): { action: ConsentChange; consentId: string } {
  if (jws.length > MAX_JWS_LENGTH || !COMPACT_JWS.test(jws)) {
    throw new OperationOutcomeError(
      'INVALID',
      'The body must be the patient-signed consent change as a compact JWS (Content-Type: application/jose); make one with `hdx consent-sign`',
    );
  }
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    throw new OperationOutcomeError('INVALID', 'The JWS payload is not JSON');
  }
  const p = payload as { action?: unknown; consent?: { id?: unknown; resourceType?: unknown } };
  if (p.action !== 'grant' && p.action !== 'update' && p.action !== 'revoke') {
    throw new OperationOutcomeError('INVALID', 'The JWS payload must have action grant, update or revoke');
  }
  if (p.consent?.resourceType !== 'Consent' || typeof p.consent.id !== 'string') {
    throw new OperationOutcomeError('INVALID', 'The JWS payload must carry a Consent resource with an id');
  }
  return { action: p.action, consentId: p.consent.id };
}

/** The FHIR Consent as held on the ledger, with the ledger version as meta.versionId. */
export function toFhirConsent(record: ConsentRecord): Record<string, unknown> {
  return {
    ...record.consent,
    id: record.id,
    status: record.status === 'inactive' ? 'inactive' : record.consent.status,
    meta: {
      versionId: String(record.version),
      lastUpdated: record.updated,
      tag: [{ system: 'https://hdx.example/fhir/CodeSystem/ledger', code: record.txId ? `tx-${record.txId}` : 'ledger' }],
    },
  };
}

/**
 * Patient consents live on the ledger, not in this gateway: creating, updating or revoking one relays
 * the patient's (or guardian's) signed change to `hdx.consent`, which verifies the signature against the
 * DID document on the ledger and refuses replays. Reads come from the ledger too.
 */
export class ConsentService {
  constructor(private readonly ledger: LedgerClient) {}

  /** POST /Consent: a grant. PUT /Consent/:id: an update or revoke of that consent. */
  async change(jws: string, expect: { id?: string; actions: ConsentChange[] }): Promise<{ record: ConsentRecord; action: ConsentChange }> {
    const { action, consentId } = peek(jws.trim());
    if (!expect.actions.includes(action)) {
      throw new OperationOutcomeError('INVALID', `This interaction takes a signed ${expect.actions.join(' or ')}, not a ${action}`);
    }
    if (expect.id !== undefined && expect.id !== consentId) throw new OperationOutcomeError('INVALID', 'The signed Consent.id must equal the id in the URL');
    try {
      const record = await this.ledger.changeConsent(action, jws.trim());
      return { record, action };
    } catch (err) {
      // The bearer token was fine; it is the consent's own signature that did not verify.
      if (err instanceof OperationOutcomeError && err.code === 'UNAUTHENTICATED') {
        throw new OperationOutcomeError('INVALID', `The consent signature does not verify against the signer's DID document on the ledger (${err.message})`);
      }
      throw err;
    }
  }

  async read(id: string): Promise<ConsentRecord> {
    const record = await this.ledger.getConsent(id);
    if (!record) throw new OperationOutcomeError('NOT_FOUND', `Consent/${id} is not on the ledger`);
    return record;
  }

  async listByPatient(patient: string, count: number, bookmark: string): Promise<{ records: ConsentRecord[]; bookmark: string }> {
    const page = await this.ledger.listConsents(patient, count, bookmark);
    return { records: page.consents, bookmark: page.bookmark };
  }
}
