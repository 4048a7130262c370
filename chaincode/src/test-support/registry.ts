/** Registers DIDs on a FakeLedger for tests. */
import { ConsentContract } from '../consent-contract';
import { IdentityContract } from '../identity-contract';
import { RecordContract } from '../record-contract';
import { FakeIdentity, FakeLedger, identity } from './fake-ledger';
import { TestKey, newKey, nonce, signJws } from './keys';

export const H1_GATEWAY = identity('Hospital1MSP', 'gateway');
export const H1_ADMIN = identity('Hospital1MSP', 'admin');
export const H2_GATEWAY = identity('Hospital2MSP', 'gateway');
export const H2_ADMIN = identity('Hospital2MSP', 'admin');
export const REG_ADMIN = identity('RegulatorMSP', 'admin');
export const REG_AUDITOR = identity('RegulatorMSP', 'auditor');

const identityContract = new IdentityContract();
const consentContract = new ConsentContract();

export function registrationProof(ledger: FakeLedger, key: TestKey, kind: string, overrides: Record<string, unknown> = {}): string {
  return signJws(key.privateKey, `${key.did}#key-1`, { action: 'register', did: key.did, kind, nonce: nonce(), iat: ledger.clock, ...overrides });
}

export function registrationJson(ledger: FakeLedger, key: TestKey, kind: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ kind, publicKeyJwk: key.jwk, proof: registrationProof(ledger, key, kind), ...extra });
}

/** Registers a new DID of `kind` by `who` and returns its key. */
export async function registerDid(
  ledger: FakeLedger,
  kind: string,
  who: FakeIdentity = kind === 'organization' ? H1_ADMIN : kind === 'auditor' ? REG_ADMIN : H1_GATEWAY,
  extra: Record<string, unknown> = kind === 'organization' ? { fhirBaseUrl: `https://${who.mspId.toLowerCase()}.example/fhir` } : {},
): Promise<TestKey> {
  const key = newKey();
  await ledger.invoke(who, (ctx) => identityContract.Register(ctx, registrationJson(ledger, key, kind, extra)));
  return key;
}

/** A JWS by `key` (its current key number) over `{...payload, nonce, iat}`. */
export function signedBy(ledger: FakeLedger, key: TestKey, payload: Record<string, unknown>, keyNumber = 1, did = key.did): string {
  return signJws(key.privateKey, `${did}#key-${keyNumber}`, { nonce: nonce(), iat: ledger.clock, ...payload });
}

/** The patient `key` grants an active consent `id` with this provision, signed by the patient, submitted by `who`. */
export function grantConsent(ledger: FakeLedger, key: TestKey, id: string, provision: Record<string, unknown>, who: FakeIdentity = H1_GATEWAY): Promise<string> {
  const consent = { resourceType: 'Consent', id, status: 'active', patient: { reference: key.did }, provision };
  return ledger.invoke(who, (ctx) => consentContract.Grant(ctx, signedBy(ledger, key, { action: 'grant', consent })));
}

const recordContract = new RecordContract();

/** Anchors `Observation/<id>/_history/1` of a patient as `who`'s custodian (Hospital1 by default). */
export function anchorObservation(ledger: FakeLedger, patient: string, id = 'o1', who: FakeIdentity = H1_GATEWAY): Promise<string> {
  const anchor = {
    resourceType: 'Observation',
    id,
    versionId: '1',
    patient,
    lastUpdated: '2024-05-01T10:00:00Z',
    commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
  };
  return ledger.invoke(who, (ctx) => recordContract.Anchor(ctx, JSON.stringify(anchor)));
}
