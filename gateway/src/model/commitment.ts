import { createHmac, timingSafeEqual } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * The commitment anchored on the ledger for a resource version: HMAC-SHA-256, keyed with the patient's
 * own key (held only by the custodian), over the RFC 8785 canonical JSON of the resource as stored.
 * A bare hash of a small FHIR resource could be guessed; without the key it cannot.
 */
export function commitmentOf(key: Buffer, resource: unknown): string {
  const canonical = canonicalize(resource);
  if (canonical === undefined) throw new Error('resource cannot be canonicalized');
  return createHmac('sha256', key).update(canonical, 'utf8').digest('base64url');
}

/** Bundle.entry extension in which a custodian reveals the key that opens one version's commitment. */
export const OPENING_KEY_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/commitment-opening-key';

export function commitmentsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'base64url');
  const y = Buffer.from(b, 'base64url');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The key that opens one version's commitment: derived from the patient's key and the version's
 * reference. The custodian reveals it, with the resource, to another member so that member can check
 * the content against the anchor on the ledger; it opens that version only.
 */
export function versionKey(patientKey: Buffer, resourceType: string, id: string, versionId: number | string): Buffer {
  return createHmac('sha256', patientKey)
    .update(`hdx:version-key:v1|${resourceType}/${id}/_history/${String(versionId)}`, 'utf8')
    .digest();
}

/**
 * The patient reference put on the ledger before the patient has a DID: derived from the patient's key,
 * so it links the patient's anchors to each other and to nothing else, and is unlinkable once the key
 * is destroyed (erasure).
 */
export function patientPseudonym(key: Buffer): string {
  return `pseudonym:${createHmac('sha256', key).update('hdx:patient-pseudonym:v1', 'utf8').digest('hex')}`;
}
