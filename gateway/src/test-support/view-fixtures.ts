/** Values as the hdx chaincode writes them under its keys, for the ledger view's unit tests. */
import { compositeKey, type TestTransaction } from './blocks';

export const PATIENT = `did:hdx:${'P'.repeat(43)}`;
export const GUARDIAN = `did:hdx:${'G'.repeat(43)}`;
export const ORG = `did:hdx:${'O'.repeat(43)}`;
export const PSEUDONYM = `pseudonym:${'a'.repeat(64)}`;

export function identityWrite(did: string, kind: string, status = 'active', version = 1, guardians: string[] = []): TestTransaction['writes'] {
  const record = {
    did,
    kind,
    status,
    version,
    organization: 'Hospital1MSP',
    guardians,
    document: { id: did },
    links: { registeredBy: { mspId: 'Hospital1MSP', id: 'x' }, identifiers: [] },
  };
  return {
    hdx: [
      { key: compositeKey('hdx.did', [did]), value: record },
      { key: compositeKey('hdx.did~version', [did, String(version).padStart(10, '0')]), value: record },
    ],
  };
}

export function consentWrite(id: string, status: 'active' | 'inactive', version: number): TestTransaction['writes'] {
  const record = { id, patient: PATIENT, status, version, consent: { resourceType: 'Consent', id, status, patient: { reference: PATIENT }, provision: { type: 'permit' } } };
  return {
    hdx: [
      { key: compositeKey('hdx.consent', [id]), value: record },
      { key: compositeKey('hdx.consent~version', [id, String(version).padStart(10, '0')]), value: record },
      { key: compositeKey('hdx.consent~patient', [PATIENT, id]), value: new Uint8Array([0]) },
    ],
  };
}
