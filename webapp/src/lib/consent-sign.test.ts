/**
 * The consent signature made in the browser verifies with the chaincode's own functions (parseCompactJws
 * and verifyJws, the ones verifySignedRequest uses), and is the same JWS `hdx consent-sign` makes.
 */
import { expect } from 'chai';
import { parseCompactJws, verifyJws } from '@hdx/chaincode/dist/jose';
import { parseConsent } from '@hdx/chaincode/dist/consent-model';
import { generateDidKey } from '@hdx/gateway/dist/auth/did-key';
import { signConsent } from '@hdx/gateway/dist/auth/issue';
import { emptyForm, toFhirConsent } from './consent-form';
import { signConsentChange } from './consent-sign';
import { generatePatientKey, importPrivateJwk } from './keys';

describe('consent signature (browser) verified by the chaincode', () => {
  it('a grant: header {alg, kid}, canonical {consent, action, nonce, iat}, a valid ES256 signature', async () => {
    const { key } = await generatePatientKey();
    const consent = toFhirConsent({ ...emptyForm(), who: [{ kind: 'organization', value: 'Hospital2MSP' }] }, key.did, crypto.randomUUID());
    const jws = await signConsentChange(key, consent, 'grant');
    const parsed = parseCompactJws(jws, 'signedConsent');
    expect(parsed.header).to.deep.equal({ alg: 'ES256', kid: key.kid });
    expect(Object.keys(parsed.payload).sort()).to.deep.equal(['action', 'consent', 'iat', 'nonce']);
    expect(parsed.payload.action).to.equal('grant');
    expect(parsed.payload.nonce).to.match(/^[A-Za-z0-9_-]{16,128}$/);
    expect(Math.abs(Number(parsed.payload.iat) - Date.now() / 1000)).to.be.below(5);
    expect(parseConsent(parsed.payload.consent)).to.deep.equal(consent);
    await verifyJws(parsed, key.publicJwk, 'signedConsent');
  });

  it('a revocation carries only resourceType, id and patient', async () => {
    const { key } = await generatePatientKey();
    // As read back from the gateway: with meta, which a revocation leaves out.
    const consent: Record<string, unknown> = toFhirConsent({ ...emptyForm(), who: [{ kind: 'organization', value: 'Hospital2MSP' }] }, key.did, crypto.randomUUID());
    consent.meta = { versionId: '1' };
    const parsed = parseCompactJws(await signConsentChange(key, consent, 'revoke'), 'signedConsent');
    expect(parsed.payload.consent).to.deep.equal({ resourceType: 'Consent', id: consent.id, patient: { reference: key.did } });
    expect(parsed.payload.action).to.equal('revoke');
    await verifyJws(parsed, key.publicJwk, 'signedConsent');
  });

  it('is byte for byte the JWS of hdx consent-sign for the same key, consent, nonce and iat', async () => {
    const cli = generateDidKey();
    const { key } = await importPrivateJwk(cli.privateJwk);
    const consent = toFhirConsent({ ...emptyForm(), who: [{ kind: 'organization', value: 'Hospital2MSP' }] }, cli.did, crypto.randomUUID());
    const options = { nonce: 'n0nce-n0nce-n0nce-n0nce', iat: 1796630400 };
    const browser = await signConsentChange(key, consent, 'grant', options);
    const node = signConsent(cli.privateJwk, consent, 'grant', options);
    // ECDSA signatures are randomized: header and payload are identical, and each signature verifies.
    expect(browser.split('.').slice(0, 2)).to.deep.equal(node.split('.').slice(0, 2));
    await verifyJws(parseCompactJws(browser, 'browser'), cli.publicJwk, 'browser');
    await verifyJws(parseCompactJws(node, 'node'), key.publicJwk, 'node');
  });

  it('a signature by another key does not verify with the patient key (the chaincode refuses it)', async () => {
    const { key } = await generatePatientKey();
    const { key: other } = await generatePatientKey();
    const consent = toFhirConsent({ ...emptyForm(), who: [{ kind: 'organization', value: 'Hospital2MSP' }] }, key.did, crypto.randomUUID());
    const forged = await signConsentChange({ ...other, kid: key.kid }, consent, 'grant');
    let error: unknown;
    await verifyJws(parseCompactJws(forged, 'signedConsent'), key.publicJwk, 'signedConsent').catch((err: unknown) => (error = err));
    expect(String((error as Error | undefined)?.message)).to.include('signature does not verify');
  });
});
