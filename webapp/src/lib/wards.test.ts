/**
 * A guardian acting for a ward: the consent the page makes for a ward, signed with the guardian's own
 * key in the browser, is accepted by the REAL chaincode (hdx.consent Grant and Revoke on the chaincode's
 * test ledger) once the ward's guardianship is on the ledger, and refused for anyone else; the gateway's
 * own relation rule (relatedTo, which guards the ward's consent list the page asks to confirm a ward)
 * says the same; the page's ward check shows the gateway's refusal.
 */
import { expect } from 'chai';
import { ConsentContract } from '@hdx/chaincode/dist/consent-contract';
import { IdentityContract } from '@hdx/chaincode/dist/identity-contract';
import { FakeLedger, identity, rejectsWith } from '@hdx/chaincode/dist/test-support/fake-ledger';
import { H1_GATEWAY, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import type { TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { relatedTo } from '@hdx/gateway/dist/fhir/policy';
import type { AuthContext } from '@hdx/gateway/dist/auth/types';
import { ApiError, type AppConfig } from './api';
import { emptyForm, toFhirConsent } from './consent-form';
import { signConsentChange } from './consent-sign';
import { signCompact } from './jws';
import { generatePatientKey, newNonce, type PatientKey } from './keys';
import { confirmWard, parseWardDid, rowIsAbout, subjects } from './wards';

const consents = new ConsentContract();
const identities = new IdentityContract();
const CONFIG: AppConfig = { fhirBaseUrl: 'https://h1.example/fhir', mspId: 'Hospital1MSP' };

async function registerBrowserKey(ledger: FakeLedger, key: PatientKey): Promise<void> {
  const proof = await signCompact({ action: 'register', did: key.did, kind: 'patient', nonce: newNonce(), iat: ledger.clock }, key.privateKey, key.kid);
  await ledger.invoke(H1_GATEWAY, (ctx) => identities.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.publicJwk, proof })));
}

describe('a guardian acting for a ward (browser code, real chaincode)', () => {
  let ledger: FakeLedger;
  let guardian: PatientKey;
  let stranger: PatientKey;
  let ward: TestKey;

  beforeEach(async () => {
    ledger = new FakeLedger();
    // The browser signs with the time of day: the test ledger's transactions happen now too.
    ledger.clock = Math.floor(Date.now() / 1000);
    ({ key: guardian } = await generatePatientKey());
    ({ key: stranger } = await generatePatientKey());
    await registerBrowserKey(ledger, guardian);
    await registerBrowserKey(ledger, stranger);
    ward = await registerDid(ledger, 'patient');
    // The ward's own word: in force at once.
    const proof = signedBy(ledger, ward, { action: 'add-guardian', patient: ward.did, guardian: guardian.did });
    await ledger.invoke(H1_GATEWAY, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: ward.did, guardian: guardian.did, proof })));
  });

  const wardConsent = () => toFhirConsent({ ...emptyForm(), who: [{ kind: 'organization', value: 'Hospital2MSP' }] }, ward.did, crypto.randomUUID());

  it('a consent for the ward, signed in the browser with the guardian’s key, is granted and revoked on the ledger', async () => {
    const consent = wardConsent();
    const granted = JSON.parse(await ledger.invoke(H1_GATEWAY, async (ctx) => consents.Grant(ctx, await signConsentChange(guardian, consent, 'grant')))) as {
      id: string;
      signer: string;
      consent: { patient: { reference: string } };
    };
    expect(granted).to.include({ id: consent.id, signer: guardian.did });
    expect(granted.consent.patient.reference).to.equal(ward.did);
    const listed = JSON.parse(await ledger.evaluate(H1_GATEWAY, (ctx) => consents.ListByPatient(ctx, ward.did, '', ''))) as { consents: Array<{ id: string }> };
    expect(listed.consents.map((c) => c.id)).to.deep.equal([consent.id]);
    const revoked = JSON.parse(await ledger.invoke(H1_GATEWAY, async (ctx) => consents.Revoke(ctx, await signConsentChange(guardian, consent, 'revoke')))) as { status: string };
    expect(revoked.status).to.equal('inactive');
  });

  it('someone who is not the ward’s guardian cannot grant for them, and nothing is written', async () => {
    const consent = wardConsent();
    const jws = await signConsentChange(stranger, consent, 'grant');
    await rejectsWith(
      ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, jws)),
      'FORBIDDEN',
    );
    const listed = JSON.parse(await ledger.evaluate(H1_GATEWAY, (ctx) => consents.ListByPatient(ctx, ward.did, '', ''))) as { consents: unknown[] };
    expect(listed.consents).to.deep.equal([]);
  });

  it('the gateway’s relation rule (which guards the ward’s consent list the page asks) admits the guardian and not the stranger', async () => {
    const resolve = async (did: string) => {
      try {
        return JSON.parse(await ledger.evaluate(identity('Hospital1MSP', 'gateway'), (ctx) => identities.Resolve(ctx, did))) as {
          hdx: { kind: string; status: string; organization: string; guardians: string[] };
        };
      } catch {
        return undefined;
      }
    };
    const asPatient = (did: string) => ({ subject: did, did, role: 'patient', tokenKind: 'did', actorAuth: 'did', scopes: [], expiresAt: 0 }) as unknown as AuthContext;
    const deps = { resolve, holdsPatient: async () => false };
    expect(await relatedTo(asPatient(guardian.did), ward.did, 'Hospital1MSP', deps)).to.equal(true);
    expect(await relatedTo(asPatient(stranger.did), ward.did, 'Hospital1MSP', deps)).to.equal(false);
  });
});

describe('choosing whose data the page manages', () => {
  const SELF = `did:hdx:${'S'.repeat(43)}`;
  const WARD = `did:hdx:${'W'.repeat(43)}`;
  const OTHER = `did:hdx:${'O'.repeat(43)}`;

  it('accepts a ward DID, and refuses what is not one with a sentence to act on', () => {
    expect(parseWardDid(`  ${WARD} `, SELF, [])).to.equal(WARD);
    expect(() => parseWardDid('Mia Jensen', SELF, [])).to.throw('did:hdx:');
    expect(() => parseWardDid('did:hdx:short', SELF, [])).to.throw('43');
    expect(() => parseWardDid(SELF, SELF, [])).to.throw('your own DID');
    expect(() => parseWardDid(WARD, SELF, [WARD])).to.throw('already');
  });

  it('offers the key holder first, then each ward once', () => {
    expect(subjects(SELF, [WARD, SELF, OTHER])).to.deep.equal([
      { did: SELF, self: true },
      { did: WARD, self: false },
      { did: OTHER, self: false },
    ]);
  });

  it('shows a ward’s live entries only in the ward’s history, and the holder’s (and unnamed ones) in their own', () => {
    const me = { did: SELF, self: true };
    const ward = { did: WARD, self: false };
    expect(rowIsAbout(WARD, ward, [WARD])).to.equal(true);
    expect(rowIsAbout(SELF, ward, [WARD])).to.equal(false);
    expect(rowIsAbout(WARD, me, [WARD])).to.equal(false);
    expect(rowIsAbout(SELF, me, [WARD])).to.equal(true);
    expect(rowIsAbout('', me, [WARD])).to.equal(true);
  });

  describe('confirmWard asks the gateway with the holder’s own token', () => {
    const realFetch = globalThis.fetch;
    let asked: Array<{ url: string; auth: string }>;
    afterEach(() => {
      globalThis.fetch = realFetch;
    });
    const answer = (status: number, body: unknown) => {
      asked = [];
      globalThis.fetch = (async (url: string | URL | Request, init?: RequestInit) => {
        asked.push({ url: String(url), auth: String((init?.headers as Record<string, string>).authorization) });
        return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/fhir+json' } });
      }) as typeof fetch;
    };

    it('resolves when the gateway lists the ward’s consents to the holder', async () => {
      const { key } = await generatePatientKey();
      answer(200, { resourceType: 'Bundle', type: 'searchset', entry: [] });
      await confirmWard(CONFIG, key, WARD);
      expect(asked).to.have.length(1);
      expect(asked[0]!.url).to.equal(`../fhir/Consent?patient=${encodeURIComponent(WARD)}&_count=1`);
      const payload = JSON.parse(Buffer.from(asked[0]!.auth.replace(/^Bearer /, '').split('.')[1]!, 'base64url').toString('utf8')) as { sub: string; scope: string };
      expect(payload).to.include({ sub: key.did, scope: 'patient/Consent.read' });
    });

    it('rejects with the gateway’s refusal, said plainly, when the holder is not the ward’s guardian', async () => {
      const { key } = await generatePatientKey();
      // The gateway's answer to a patient who is not the guardian (consent-routes.ts, GET /Consent).
      answer(403, {
        resourceType: 'OperationOutcome',
        issue: [
          {
            severity: 'error',
            code: 'forbidden',
            diagnostics: "A patient's consents are listed only for the patient, their guardians, the staff of a custodian holding the patient, and auditors",
          },
        ],
      });
      let error: unknown;
      await confirmWard(CONFIG, key, WARD).catch((err: unknown) => (error = err));
      expect(error).to.be.instanceOf(ApiError);
      expect((error as ApiError).status).to.equal(403);
      expect((error as ApiError).message).to.include(`you are not a guardian of ${WARD}`);
      expect((error as ApiError).message).to.include('listed only for the patient, their guardians');
    });

    it('passes any other failure on as it is', async () => {
      const { key } = await generatePatientKey();
      answer(503, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'ledger unavailable' }] });
      let error: unknown;
      await confirmWard(CONFIG, key, WARD).catch((err: unknown) => (error = err));
      expect((error as ApiError).status).to.equal(503);
      expect((error as ApiError).message).to.equal('ledger unavailable');
    });
  });
});
