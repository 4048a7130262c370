/**
 * The signed consent change `hdx.consent:Grant/Update/Revoke` takes, as `hdx consent-sign` makes it
 * (gateway/src/auth/issue.ts, signConsent): a compact JWS over the canonical `{consent, action, nonce,
 * iat}`; a revocation carries only `{resourceType, id, patient}`.
 */
import { signCompact } from './jws';
import { newNonce, type PatientKey } from './keys';

export type ConsentChange = 'grant' | 'update' | 'revoke';

export async function signConsentChange(key: PatientKey, consent: Record<string, unknown>, action: ConsentChange, options: { iat?: number; nonce?: string } = {}): Promise<string> {
  const body = action === 'revoke' ? { resourceType: consent.resourceType, id: consent.id, patient: consent.patient } : consent;
  const payload = { consent: body, action, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) };
  return signCompact(payload, key.privateKey, key.kid);
}
