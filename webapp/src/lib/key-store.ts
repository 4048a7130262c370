/**
 * Keeps the patient's key in this browser's IndexedDB (idb-keyval): the non-extractable CryptoKey is
 * stored as a structured clone, so the private key never exists as bytes the page can read.
 */
import { del, get, set } from 'idb-keyval';
import type { P256PublicJwk, PatientKey } from './keys';

const SLOT = 'hdx.patient-key';

interface Stored {
  did: string;
  kid: string;
  publicJwk: P256PublicJwk;
  privateKey: CryptoKey;
}

export async function loadKey(): Promise<PatientKey | undefined> {
  const stored = await get<Stored>(SLOT);
  if (!stored || typeof stored.did !== 'string' || !(stored.privateKey instanceof CryptoKey)) return undefined;
  return { did: stored.did, kid: stored.kid, publicJwk: stored.publicJwk, privateKey: stored.privateKey };
}

export async function saveKey(key: PatientKey): Promise<void> {
  const stored: Stored = { did: key.did, kid: key.kid, publicJwk: key.publicJwk, privateKey: key.privateKey };
  await set(SLOT, stored);
}

export async function forgetKey(): Promise<void> {
  await del(SLOT);
}
