/**
 * A guardian acting for a ward. A guardian is a patient DID whose guardianship of another patient (the
 * ward) is on the ledger (hdx.identity AddGuardian with the ward's proof, or proposed by the ward's
 * hospital and approved by the regulator). Nothing on the ledger lists a guardian's wards, so the guardian
 * names a ward once by DID; the page asks the gateway whether it may act for that DID (the ward's consent
 * list, which the gateway shows only to the patient, their guardians, their custodian's staff and
 * auditors) and keeps the wards it accepted on this device. Every later request is decided again by the
 * gateway and the chaincode: the list here only chooses what to ask for.
 *
 * Acting for a ward: the consent form writes `Consent.patient` = the ward's DID and signs with the
 * guardian's own key (the chaincode accepts the signature of a registered guardian); the access history
 * is searched with `patient=<ward>`; the records are the ward's Patient here (`Patient?patient=<ward>`).
 */
import { get, set } from 'idb-keyval';
import { ApiError, type AppConfig, fhirRequest } from './api';
import { HDX_DID, type PatientKey } from './keys';

/** Whose data the page shows and manages: the key holder's own, or one ward's. */
export interface Subject {
  did: string;
  /** True for the key holder themselves. */
  self: boolean;
}

/** A DID the guardian typed, checked before anything is asked of the gateway; throws a sentence to show. */
export function parseWardDid(value: string, self: string, known: readonly string[]): string {
  const did = value.trim();
  if (!HDX_DID.test(did)) throw new Error('A ward is named by their DID: did:hdx: followed by 43 letters, digits, - or _.');
  if (did === self) throw new Error('That is your own DID: choose "Me" to manage your own data.');
  if (known.includes(did)) throw new Error('That ward is already in your list.');
  return did;
}

/**
 * Asks the gateway whether the key holder may act for `ward`: the ward's consent list, which the gateway
 * answers only for the patient and their guardians (among patients). Resolves when it may; rejects with
 * the gateway's refusal (an ApiError with its OperationOutcome text) when it may not.
 */
export async function confirmWard(config: AppConfig, key: PatientKey, ward: string): Promise<void> {
  try {
    await fhirRequest(config, key, 'patient/Consent.read', 'GET', `/Consent?patient=${encodeURIComponent(ward)}&_count=1`);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
      throw new ApiError(err.status, `The gateway refused: you are not a guardian of ${ward} on the ledger. ${err.message}`);
    }
    throw err;
  }
}

/** The choices of the "whose data" selector: the key holder first, then each ward. */
export function subjects(self: string, wards: readonly string[]): Subject[] {
  return [{ did: self, self: true }, ...wards.filter((w) => w !== self).map((did) => ({ did, self: false }))];
}

const slot = (guardian: string): string => `hdx.wards.${guardian}`;

/** The wards this guardian confirmed on this device (none if nothing was stored, or if what was stored is not a list of DIDs). */
export async function loadWards(guardian: string): Promise<string[]> {
  const stored = await get<unknown>(slot(guardian));
  return Array.isArray(stored) ? stored.filter((d): d is string => typeof d === 'string' && HDX_DID.test(d) && d !== guardian) : [];
}

export async function saveWards(guardian: string, wards: readonly string[]): Promise<void> {
  await set(slot(guardian), [...new Set(wards)]);
}

/**
 * Whether an access row belongs in the history of `subject`: a ward's rows are those about the ward; the
 * key holder's own are all the others (the live stream sends entries about the holder and every ward).
 */
export function rowIsAbout(rowPatient: string, subject: Subject, wards: readonly string[]): boolean {
  return subject.self ? !wards.includes(rowPatient) : rowPatient === subject.did;
}
