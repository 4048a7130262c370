import { createHmac, generateKeyPairSync, type KeyObject, sign as cryptoSign } from 'node:crypto';
import { expect } from 'chai';
import { OperationOutcomeError } from '../errors';
import { generateDidKey, type GeneratedDidKey, privateKeyOf } from './did-key';
import { AuthenticationError } from './errors';
import { registrationRequest, signConsent, signDidToken, signIdpToken } from './issue';
import { MemoryJtiStore } from './replay';
import { DidResolutionCache } from './did-cache';
import { fakeResolver, resolutionOf } from './test-support/fixtures';
import {
  assertTokenVerifierOptions,
  deriveSubjectLinkSecret,
  idpKeysFromText,
  MAX_IDP_TOKEN_LIFETIME_SEC,
  subjectLink,
  type TokenVerifierOptions,
  verifyBearerToken,
} from './token';
import type { AuthContext, DidResolution, DidResolver } from './types';

const BASE = 'http://127.0.0.1:8080/fhir';
const ISSUER = 'https://idp.hospital1.example';
const IDP_AUD = 'hdx-gateway-hospital1';

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const nowSec = (): number => Math.floor(Date.now() / 1000);

/** A JWT built by hand, so tests control every header member and claim (ES256 r||s, RS256 or HS256). */
function handmade(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject | { hmacSecret: string } | undefined): string {
  const input = `${b64(header)}.${b64(payload)}`;
  if (key === undefined) return `${input}.`;
  if ('hmacSecret' in key) return `${input}.${createHmac('sha256', key.hmacSecret).update(input).digest('base64url')}`;
  const ec = key.asymmetricKeyType === 'ec';
  const signature = cryptoSign('sha256', Buffer.from(input), ec ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${signature.toString('base64url')}`;
}

function didClaims(key: GeneratedDidKey, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = nowSec();
  return { iss: key.did, sub: key.did, aud: BASE, iat, exp: iat + 300, jti: `jti-${Math.random()}`, scope: 'patient/*.read', purpose_of_use: 'TREAT', ...overrides };
}

function didToken(key: GeneratedDidKey, overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
  return handmade({ alg: 'ES256', typ: 'JWT', kid: key.kid, ...header }, didClaims(key, overrides), privateKeyOf(key.privateJwk));
}

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<AuthenticationError> {
  try {
    await promise;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(AuthenticationError);
    const e = err as AuthenticationError;
    expect(e.code).to.equal('UNAUTHENTICATED');
    expect(e.status).to.equal(401);
    expect(e.message).to.match(pattern);
    return e;
  }
  return expect.fail(`expected a 401 matching ${pattern}`);
}

describe('auth/token', () => {
  describe('DID self-signed tokens', () => {
    let key: GeneratedDidKey;
    let opts: TokenVerifierOptions;
    let resolver: ReturnType<typeof fakeResolver>;

    beforeEach(() => {
      key = generateDidKey();
      resolver = fakeResolver(resolutionOf(key, { kind: 'patient', organization: 'Hospital2MSP' }));
      opts = { audience: BASE, mspId: 'Hospital1MSP', resolveDid: resolver, jtiStore: new MemoryJtiStore() };
    });

    it('accepts a token made by signDidToken and returns who is calling', async () => {
      const token = signDidToken({ key: key.privateJwk, audience: BASE, scope: 'patient/*.read user/Observation.rs openid', purposeOfUse: 'TREAT', jti: 'j-1' });
      const ctx: AuthContext = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({
        subject: key.did,
        did: key.did,
        role: 'patient',
        didKind: 'patient',
        actorAuth: 'did',
        organization: 'Hospital2MSP',
        purposeOfUse: 'TREAT',
        tokenKind: 'did',
        jti: 'j-1',
      });
      expect(ctx).to.not.have.property('viaOrganization');
      expect(ctx.scopes.map((s) => s.text)).to.deep.equal(['patient/*.read', 'user/Observation.rs']);
      expect(ctx.expiresAt).to.be.within(nowSec() + 298, nowSec() + 300);
      expect(ctx).to.not.have.property('breakGlassReason');
      expect(resolver.calls).to.deep.equal([key.did]);
    });

    it('takes the role from the DID kind, and the aud with or without a trailing slash', async () => {
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { kind: 'practitioner' })) };
      const ctx = await verifyBearerToken(`bearer ${didToken(key, { aud: `${BASE}/`, scope: 'user/*.read' })}`, opts);
      expect(ctx.role).to.equal('practitioner');
    });

    it('401 without an Authorization header, with no error code in WWW-Authenticate (RFC 6750 §3.1)', async () => {
      const e = await rejects(verifyBearerToken(undefined, opts), /Authentication required/);
      expect(e.wwwAuthenticate).to.equal('Bearer realm="hdx"');
      await rejects(verifyBearerToken('  ', opts), /Authentication required/);
    });

    it('401 invalid_request for another scheme or a malformed header', async () => {
      const e = await rejects(verifyBearerToken('Basic dXNlcjpwYXNz', opts), /must be: Bearer <token>/);
      expect(e.wwwAuthenticate).to.match(/^Bearer realm="hdx", error="invalid_request", error_description="[^"]+"$/);
      await rejects(verifyBearerToken('Bearer', opts), /must be: Bearer/);
      await rejects(verifyBearerToken('Bearer a b', opts), /must be: Bearer/);
      await rejects(verifyBearerToken(`Bearer ${'a'.repeat(9000)}`, opts), /too long/);
    });

    it('401 invalid_token for a malformed token', async () => {
      for (const bad of ['abc', 'a.b', 'a.b.c.d', '!!.b.c', `${b64('not json')}.${b64({})}.c2ln`, `${b64('[1]')}.${b64({})}.c2ln`]) {
        const e = await rejects(verifyBearerToken(`Bearer ${bad}`, opts), /not a compact JWT|header is not/);
        expect(e.wwwAuthenticate).to.include('error="invalid_token"');
      }
      const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: key.kid })}.${b64('not json')}`;
      const signed = `${input}.${cryptoSign('sha256', Buffer.from(input), { key: privateKeyOf(key.privateJwk), dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      await rejects(verifyBearerToken(`Bearer ${signed}`, opts), /payload is not base64url JSON/);
    });

    it('401 for a wrong signature: another key, or a changed payload', async () => {
      const other = generateDidKey();
      const forged = handmade({ alg: 'ES256', kid: key.kid }, didClaims(key), privateKeyOf(other.privateJwk));
      await rejects(verifyBearerToken(`Bearer ${forged}`, opts), /signature does not verify/);
      const [h, , s] = didToken(key).split('.');
      const tampered = `${h}.${b64(didClaims(key, { scope: 'patient/*.*' }))}.${s}`;
      await rejects(verifyBearerToken(`Bearer ${tampered}`, opts), /signature does not verify/);
    });

    it('401 for a token meant for another gateway (aud)', async () => {
      await rejects(
        verifyBearerToken(`Bearer ${didToken(key, { aud: 'http://127.0.0.1:9090/fhir' })}`, opts),
        /not meant for this gateway: its aud must be http:\/\/127\.0\.0\.1:8080\/fhir/,
      );
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { aud: undefined })}`, opts), /not meant for this gateway/);
    });

    it('401 for an expired token, and for nbf in the future (beyond the 30 s clock tolerance)', async () => {
      const iat = nowSec() - 400;
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat, exp: iat + 300 })}`, opts), /has expired/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { nbf: nowSec() + 120 })}`, opts), /not valid yet \(nbf/);
      // within the tolerance
      const recent = nowSec() - 310;
      await verifyBearerToken(`Bearer ${didToken(key, { iat: recent, exp: recent + 300 })}`, opts);
    });

    it('401 for an unsigned token (alg none), with or without a signature part', async () => {
      const unsigned = handmade({ alg: 'none', kid: key.kid }, didClaims(key), undefined);
      await rejects(verifyBearerToken(`Bearer ${unsigned}`, opts), /Unsigned tokens \(alg none\)/);
      const withSig = `${unsigned}${didToken(key).split('.')[2]}`;
      await rejects(verifyBearerToken(`Bearer ${withSig}`, opts), /Unsigned tokens \(alg none\)/);
      const noneIdp = handmade({ alg: 'none' }, { iss: ISSUER, aud: IDP_AUD, sub: 'x', role: 'admin', exp: nowSec() + 60 }, undefined);
      await rejects(verifyBearerToken(`Bearer ${noneIdp}`, opts), /Unsigned tokens/);
    });

    it('401 for HS256 signed with the public key as the HMAC secret (algorithm confusion)', async () => {
      const publicPem = String(privateKeyOf(key.privateJwk).export({ format: 'pem', type: 'pkcs8' }));
      const confused = handmade({ alg: 'HS256', kid: key.kid }, didClaims(key), { hmacSecret: publicPem });
      await rejects(verifyBearerToken(`Bearer ${confused}`, opts), /signing algorithm is not accepted \(accepted: ES256, RS256\)/);
      expect(resolver.calls).to.deep.equal([]);
    });

    it('401 for other JWS the same key signs (a signed consent, a registration proof) presented as a bearer token', async () => {
      const consent = { resourceType: 'Consent', id: 'c1', status: 'active', patient: { reference: key.did }, provision: { type: 'permit' } };
      // Explicit typing (RFC 8725 §3.11): a bearer DID token has typ JWT, signed requests have none.
      await rejects(verifyBearerToken(`Bearer ${signConsent(key.privateJwk, consent, 'grant')}`, opts), /must carry the JOSE header typ JWT/);
      const proof = String(registrationRequest(key.privateJwk, 'patient').proof);
      await rejects(verifyBearerToken(`Bearer ${proof}`, opts), /must carry the JOSE header typ JWT/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, {}, { typ: 'hdx-consent+jws' })}`, opts), /typ JWT/);
    });

    it('401 for a DID token not signed with ES256', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'RS256', kid: key.kid }, didClaims(key), privateKey)}`, opts), /must be signed with ES256/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, {}, { alg: 'ES384' })}`, opts), /algorithm is not accepted/);
    });

    it('401 for a replayed jti, recorded per DID and only once the token passed every other check', async () => {
      const token = didToken(key, { jti: 'once' });
      await rejects(verifyBearerToken(`Bearer ${token}`, { ...opts, audience: 'http://elsewhere.example/fhir' }), /not meant for this gateway/);
      await verifyBearerToken(`Bearer ${token}`, opts);
      const e = await rejects(verifyBearerToken(`Bearer ${token}`, opts), /already used \(jti replay\)/);
      expect(e.message).to.not.include('once');
      const other = generateDidKey();
      const both = { ...opts, resolveDid: fakeResolver(resolutionOf(key), resolutionOf(other)) };
      await verifyBearerToken(`Bearer ${didToken(other, { jti: 'once' })}`, both);
    });

    it('401 for a deactivated DID, an unregistered DID and a malformed DID URL', async () => {
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { deactivated: true })) };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /DID is deactivated/);
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { status: 'suspended' })) };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /DID is deactivated or suspended/);
      opts = { ...opts, resolveDid: fakeResolver() };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /not registered on the ledger/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, {}, { kid: 'did:hdx:short#key-1' })}`, opts), /kid must be a DID URL/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, {}, { kid: key.did })}`, opts), /kid must be a DID URL/);
    });

    it('401 when the kid is not a current key of the DID document', async () => {
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { keyNumber: 2 })) };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /kid is not a current key of its DID/);
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { unlisted: true })) };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /kid is not a current key of its DID/);
    });

    it('accepts the key of a rotated DID under its #key-n', async () => {
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { keyNumber: 2 })) };
      const token = signDidToken({ key: key.privateJwk, kid: `${key.did}#key-2`, audience: BASE, scope: 'patient/*.read', purposeOfUse: 'TREAT' });
      expect((await verifyBearerToken(`Bearer ${token}`, opts)).did).to.equal(key.did);
    });

    it('401 for a lifetime over 5 minutes, a missing exp, iat or jti, and an iat in the future', async () => {
      const iat = nowSec();
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat, exp: iat + 301 })}`, opts), /at most 300 seconds/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat, exp: iat })}`, opts), /at most 300 seconds/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { exp: undefined })}`, opts), /must carry exp/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat: undefined })}`, opts), /must carry iat/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat: iat + 0.5 })}`, opts), /must carry iat/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { jti: undefined })}`, opts), /must carry a jti/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iat: iat + 120, exp: iat + 400 })}`, opts), /iat is in the future/);
    });

    it("401 when iss or sub is not the kid's DID", async () => {
      const other = generateDidKey();
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { iss: other.did })}`, opts), /iss must be the DID of its kid/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { sub: other.did })}`, opts), /sub must be the DID of its kid/);
    });

    it('401 for invalid claims: scope, purpose_of_use, break_glass_reason, system scopes of a person', async () => {
      const e = await rejects(verifyBearerToken(`Bearer ${didToken(key, { scope: 'patient/*.read patient/Secret.reed' })}`, opts), /scope claim is not valid: scope 2/);
      expect(e.message).to.not.include('Secret');
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { scope: ['patient/*.read'] })}`, opts), /space-separated string/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { purpose_of_use: 'treat' })}`, opts), /PurposeOfUse code/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { break_glass_reason: 'unconscious' })}`, opts), /only allowed with purpose_of_use ETREAT/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { scope: 'system/*.read' })}`, opts), /patient DID token may not carry system\/ scopes/);
      const ok = await verifyBearerToken(`Bearer ${didToken(key, { purpose_of_use: 'ETREAT', break_glass_reason: 'unconscious' })}`, opts);
      expect(ok).to.deep.include({ purposeOfUse: 'ETREAT', breakGlassReason: 'unconscious' });
      const device = generateDidKey();
      const deviceOpts = { ...opts, resolveDid: fakeResolver(resolutionOf(device, { kind: 'device' })) };
      expect((await verifyBearerToken(`Bearer ${didToken(device, { scope: 'system/Observation.c' })}`, deviceOpts)).role).to.equal('device');
    });

    it('passes ledger failures on as they are, and takes NOT_FOUND as not registered', async () => {
      const down = new OperationOutcomeError('UNAVAILABLE', 'The ledger is unavailable');
      opts = { ...opts, resolveDid: async () => Promise.reject(down) };
      try {
        await verifyBearerToken(`Bearer ${didToken(key)}`, opts);
        expect.fail('should throw');
      } catch (err) {
        expect(err).to.equal(down);
      }
      opts = { ...opts, resolveDid: async () => Promise.reject(new OperationOutcomeError('NOT_FOUND', 'not registered')) };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, opts), /not registered on the ledger/);
    });

    it('401 for DID tokens when the gateway takes none, and crit headers', async () => {
      const idpOnly: TokenVerifierOptions = {
        audience: BASE,
        idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey }] },
      };
      await rejects(verifyBearerToken(`Bearer ${didToken(key)}`, idpOnly), /DID-signed tokens are not accepted/);
      await rejects(verifyBearerToken(`Bearer ${didToken(key, {}, { crit: ['b64'] })}`, opts), /crit/);
    });

    it('never repeats token contents in its messages', async () => {
      const secretish = 'patient-Quist-1990';
      const messages: string[] = [];
      for (const token of [
        didToken(key, { jti: secretish, aud: secretish }),
        didToken(key, { jti: secretish, sub: `did:hdx:${secretish}` }),
        didToken(key, { jti: secretish, scope: `patient/${secretish}.read` }),
        didToken(key, { jti: secretish, purpose_of_use: secretish }),
      ]) {
        try {
          await verifyBearerToken(`Bearer ${token}`, opts);
        } catch (err) {
          messages.push((err as Error).message, (err as AuthenticationError).wwwAuthenticate);
        }
      }
      expect(messages).to.have.length(8);
      for (const m of messages) expect(m).to.not.include(secretish);
    });
  });

  describe('delegation: an organization DID acting for one of its practitioners (hdx_user)', () => {
    const org = generateDidKey();
    const people = {
      dr: generateDidKey(),
      patient: generateDidKey(),
      guardian: generateDidKey(),
      auditor: generateDidKey(),
      device: generateDidKey(),
      system: generateDidKey(),
      otherOrgDr: generateDidKey(),
      gone: generateDidKey(),
      suspended: generateDidKey(),
      unregistered: generateDidKey(),
      otherOrg: generateDidKey(),
    };
    let opts: TokenVerifierOptions;
    let resolver: ReturnType<typeof fakeResolver>;

    beforeEach(() => {
      resolver = fakeResolver(
        resolutionOf(org, { kind: 'organization', organization: 'Hospital2MSP' }),
        resolutionOf(people.dr, { kind: 'practitioner', organization: 'Hospital2MSP' }),
        resolutionOf(people.patient, { kind: 'patient', organization: 'Hospital2MSP' }),
        // a guardian is a patient-kind DID named in another patient's record
        resolutionOf(people.guardian, { kind: 'patient', organization: 'Hospital2MSP' }),
        resolutionOf(people.auditor, { kind: 'auditor', organization: 'Hospital2MSP' }),
        resolutionOf(people.device, { kind: 'device', organization: 'Hospital2MSP' }),
        resolutionOf(people.system, { kind: 'system', organization: 'Hospital2MSP' }),
        resolutionOf(people.otherOrgDr, { kind: 'practitioner', organization: 'Hospital1MSP' }),
        resolutionOf(people.gone, { kind: 'practitioner', organization: 'Hospital2MSP', deactivated: true }),
        resolutionOf(people.suspended, { kind: 'practitioner', organization: 'Hospital2MSP', status: 'suspended' }),
        resolutionOf(people.otherOrg, { kind: 'organization', organization: 'Hospital2MSP' }),
      );
      opts = { audience: BASE, mspId: 'Hospital1MSP', resolveDid: resolver, jtiStore: new MemoryJtiStore() };
    });

    const onBehalf = (user: string, scope = 'user/*.read'): string => signDidToken({ key: org.privateJwk, audience: BASE, scope, purposeOfUse: 'TREAT', onBehalfOf: user });

    it("accepts an active practitioner DID registered by the signer's organization: the practitioner acts, vouched for by the organization", async () => {
      const ctx = await verifyBearerToken(`Bearer ${onBehalf(people.dr.did)}`, opts);
      expect(ctx).to.deep.include({
        subject: org.did,
        did: people.dr.did,
        role: 'practitioner',
        didKind: 'practitioner',
        organization: 'Hospital2MSP',
        viaOrganization: org.did,
        actorAuth: 'delegated',
        tokenKind: 'did',
      });
      expect(resolver.calls).to.deep.equal([org.did, people.dr.did]);
    });

    const refused: Array<[string, keyof typeof people, RegExp]> = [
      [
        'a patient DID (review #1: reading that patient everywhere as the patient)',
        'patient',
        /hdx_user DID is a patient DID: an organization may act only for its own active practitioners/,
      ],
      ['a guardian (a patient-kind DID)', 'guardian', /hdx_user DID is a patient DID/],
      ['an auditor DID (review #1: the whole access history at the regulator)', 'auditor', /hdx_user DID is a auditor DID/],
      ['a device DID', 'device', /hdx_user DID is a device DID/],
      ['a system DID', 'system', /hdx_user DID is a system DID/],
      ['another organization DID', 'otherOrg', /hdx_user DID is a organization DID/],
      ["another organization's practitioner", 'otherOrgDr', /registered by another organization/],
      ['an unregistered DID (review #1: break-glass as nobody)', 'unregistered', /hdx_user DID is not registered on the ledger/],
      ['a deactivated practitioner', 'gone', /hdx_user DID is deactivated or suspended/],
      ['a suspended DID', 'suspended', /hdx_user DID is deactivated or suspended/],
    ];
    for (const [what, who, pattern] of refused) {
      it(`401 for ${what}`, async () => {
        await rejects(verifyBearerToken(`Bearer ${onBehalf(people[who].did)}`, opts), pattern);
      });
    }

    it('401 when a non-organization DID names hdx_user, or hdx_user is not a DID', async () => {
      const token = signDidToken({ key: people.dr.privateJwk, audience: BASE, scope: 'user/*.read', onBehalfOf: people.dr.did });
      await rejects(verifyBearerToken(`Bearer ${token}`, opts), /Only an organization DID may act for a user/);
      const patientToken = signDidToken({ key: people.patient.privateJwk, audience: BASE, scope: 'patient/*.read', onBehalfOf: people.dr.did });
      await rejects(verifyBearerToken(`Bearer ${patientToken}`, opts), /Only an organization DID may act for a user/);
      await rejects(verifyBearerToken(`Bearer ${onBehalf('MRN-123')}`, opts), /hdx_user claim must be a did:hdx DID/);
    });

    it('401 for system/ scopes on behalf of a practitioner; a refused delegation does not use up the jti', async () => {
      await rejects(verifyBearerToken(`Bearer ${onBehalf(people.dr.did, 'system/*.read')}`, opts), /practitioner DID token may not carry system\/ scopes/);
      const token = signDidToken({ key: org.privateJwk, audience: BASE, scope: 'user/*.read', onBehalfOf: people.patient.did, jti: 'd-1' });
      await rejects(verifyBearerToken(`Bearer ${token}`, opts), /patient DID/);
      const ok = signDidToken({ key: org.privateJwk, audience: BASE, scope: 'user/*.read', onBehalfOf: people.dr.did, jti: 'd-1' });
      expect((await verifyBearerToken(`Bearer ${ok}`, opts)).actorAuth).to.equal('delegated');
    });

    it('an organization DID token without hdx_user acts as the organization itself (actorAuth did)', async () => {
      const token = signDidToken({ key: org.privateJwk, audience: BASE, scope: 'user/*.read' });
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ did: org.did, role: 'organization', didKind: 'organization', actorAuth: 'did' });
      expect(ctx).to.not.have.property('viaOrganization');
    });
  });

  describe('DID resolution cache (signature checked against a cached key before any ledger call)', () => {
    const key = generateDidKey();
    let clock: number;
    let ledger: Map<string, DidResolution>;
    let calls: string[];
    let opts: TokenVerifierOptions;

    beforeEach(() => {
      clock = Date.now();
      ledger = new Map([[key.did, resolutionOf(key, { kind: 'practitioner' })]]);
      calls = [];
      const resolveDid: DidResolver = async (did) => {
        calls.push(did);
        return ledger.get(did);
      };
      opts = { audience: BASE, mspId: 'Hospital1MSP', resolveDid, jtiStore: new MemoryJtiStore(), now: () => clock };
    });

    const token = (k: GeneratedDidKey = key, kid?: string): string =>
      signDidToken({ key: k.privateJwk, audience: BASE, scope: 'user/*.read', ...(kid !== undefined ? { kid } : {}) });

    it('a junk signature on a cached kid costs no ledger call; a good token neither', async () => {
      await verifyBearerToken(`Bearer ${token()}`, opts);
      expect(calls).to.have.length(1);
      const [h, p] = token().split('.');
      for (let i = 0; i < 20; i++) await rejects(verifyBearerToken(`Bearer ${h}.${p}.${b64('x'.repeat(64))}`, opts), /signature does not verify/);
      const forged = handmade({ alg: 'ES256', typ: 'JWT', kid: key.kid }, didClaims(key), privateKeyOf(generateDidKey().privateJwk));
      await rejects(verifyBearerToken(`Bearer ${forged}`, opts), /signature does not verify/);
      await verifyBearerToken(`Bearer ${token()}`, opts);
      expect(calls).to.have.length(1);
    });

    it('remembers an unknown DID for 5 s, then asks again', async () => {
      const stranger = generateDidKey();
      await rejects(verifyBearerToken(`Bearer ${token(stranger)}`, opts), /not registered/);
      await rejects(verifyBearerToken(`Bearer ${token(stranger)}`, opts), /not registered/);
      expect(calls).to.deep.equal([stranger.did]);
      ledger.set(stranger.did, resolutionOf(stranger));
      clock += 5_000;
      expect((await verifyBearerToken(`Bearer ${token(stranger)}`, opts)).did).to.equal(stranger.did);
      expect(calls).to.deep.equal([stranger.did, stranger.did]);
    });

    it('a deactivation or suspension on the ledger is seen within the 30 s TTL', async () => {
      await verifyBearerToken(`Bearer ${token()}`, opts);
      ledger.set(key.did, resolutionOf(key, { kind: 'practitioner', status: 'suspended' }));
      clock += 29_000;
      await verifyBearerToken(`Bearer ${token()}`, opts); // within the documented bound
      clock += 1_000;
      await rejects(verifyBearerToken(`Bearer ${token()}`, opts), /DID is deactivated/);
      expect(calls).to.have.length(2);
      ledger.set(key.did, resolutionOf(key, { kind: 'practitioner', deactivated: true }));
      clock += 30_000;
      await rejects(verifyBearerToken(`Bearer ${token()}`, opts), /DID is deactivated/);
      expect(calls).to.have.length(3);
    });

    it('a kid rotated in since the DID was cached is looked up again, at most once per 5 s', async () => {
      await verifyBearerToken(`Bearer ${token()}`, opts);
      ledger.set(key.did, resolutionOf(key, { kind: 'practitioner', keyNumber: 2 }));
      const rotated = token(key, `${key.did}#key-2`);
      await rejects(verifyBearerToken(`Bearer ${rotated}`, opts), /not a current key/);
      expect(calls).to.have.length(1);
      clock += 5_000;
      expect((await verifyBearerToken(`Bearer ${rotated}`, opts)).did).to.equal(key.did);
      expect(calls).to.have.length(2);
      await rejects(verifyBearerToken(`Bearer ${token()}`, opts), /not a current key/);
      expect(calls).to.have.length(2);
    });

    it('concurrent tokens of an uncached DID share one ledger call; ledger failures are not cached', async () => {
      await Promise.all([verifyBearerToken(`Bearer ${token()}`, opts), verifyBearerToken(`Bearer ${token()}`, opts), verifyBearerToken(`Bearer ${token()}`, opts)]);
      expect(calls).to.have.length(1);
      const down = new OperationOutcomeError('UNAVAILABLE', 'The ledger is unavailable');
      let failing = true;
      const flaky: TokenVerifierOptions = { ...opts, resolveDid: async () => (failing ? Promise.reject(down) : resolutionOf(key, { kind: 'practitioner' })) };
      try {
        await verifyBearerToken(`Bearer ${token()}`, flaky);
        expect.fail('should throw');
      } catch (err) {
        expect(err).to.equal(down);
      }
      failing = false;
      expect((await verifyBearerToken(`Bearer ${token()}`, flaky)).did).to.equal(key.did);
    });

    it('didCache: false asks the ledger for every token', async () => {
      const uncached = { ...opts, didCache: false as const };
      await verifyBearerToken(`Bearer ${token()}`, uncached);
      await verifyBearerToken(`Bearer ${token()}`, uncached);
      expect(calls).to.have.length(2);
    });

    it('DidResolutionCache keeps at most maxEntries DIDs, dropping the oldest', async () => {
      const a = generateDidKey();
      const b = generateDidKey();
      const c = generateDidKey();
      const seen: string[] = [];
      const cache = new DidResolutionCache(
        async (did) => {
          seen.push(did);
          return resolutionOf([a, b, c].find((k) => k.did === did) ?? a);
        },
        { maxEntries: 2 },
      );
      await cache.resolve(a.did, clock);
      await cache.resolve(b.did, clock);
      await cache.resolve(c.did, clock);
      expect(cache.size).to.equal(2);
      expect(cache.peek(a.did, clock)).to.equal(undefined);
      expect(cache.peek(c.did, clock)?.resolution?.didDocument.id).to.equal(c.did);
      expect(() => new DidResolutionCache(async () => undefined, { ttlMs: 1_000, negativeTtlMs: 2_000 })).to.throw(/negativeTtlMs/);
    });
  });

  describe('identity provider tokens', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const drKey = generateDidKey();
    const patientDid = generateDidKey().did;
    const didOfKind = {
      practitioner: drKey,
      patient: generateDidKey(),
      auditor: generateDidKey(),
      system: generateDidKey(),
      device: generateDidKey(),
      otherOrg: generateDidKey(),
      gone: generateDidKey(),
      suspended: generateDidKey(),
      linked: generateDidKey(),
    };
    const SECRET = Buffer.alloc(32, 7);
    let opts: TokenVerifierOptions;
    let resolver: ReturnType<typeof fakeResolver>;

    const claims = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
      iss: ISSUER,
      aud: IDP_AUD,
      sub: 'dr-house',
      role: 'practitioner',
      scope: 'user/*.read',
      purpose_of_use: 'TREAT',
      iat: nowSec(),
      exp: nowSec() + 3600,
      ...overrides,
    });

    beforeEach(() => {
      resolver = fakeResolver(
        resolutionOf(drKey, { kind: 'practitioner', organization: 'Hospital1MSP' }),
        resolutionOf(didOfKind.patient, { kind: 'patient', organization: 'Hospital1MSP' }),
        resolutionOf(didOfKind.auditor, { kind: 'auditor', organization: 'Hospital1MSP' }),
        resolutionOf(didOfKind.system, { kind: 'system', organization: 'Hospital1MSP' }),
        resolutionOf(didOfKind.device, { kind: 'device', organization: 'Hospital1MSP' }),
        resolutionOf(didOfKind.otherOrg, { kind: 'practitioner', organization: 'Hospital2MSP' }),
        resolutionOf(didOfKind.gone, { kind: 'practitioner', organization: 'Hospital1MSP', deactivated: true }),
        resolutionOf(didOfKind.suspended, { kind: 'patient', organization: 'Hospital1MSP', status: 'suspended' }),
        resolutionOf(didOfKind.linked, { kind: 'practitioner', organization: 'Hospital1MSP', subject: subjectLink(SECRET, ISSUER, 'dr-house') }),
      );
      opts = { audience: BASE, mspId: 'Hospital1MSP', resolveDid: resolver, idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ec.publicKey }, { key: rsa.publicKey }] } };
    });

    it('accepts an ES256 token and reads its claims; organization is this gateway', async () => {
      const token = signIdpToken({
        key: ec.privateKey,
        issuer: ISSUER,
        audience: IDP_AUD,
        subject: 'dr-house',
        role: 'practitioner',
        scope: 'user/*.read launch',
        purposeOfUse: 'TREAT',
        did: drKey.did,
        jti: 'x',
      });
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({
        subject: 'dr-house',
        did: drKey.did,
        didKind: 'practitioner',
        role: 'practitioner',
        organization: 'Hospital1MSP',
        purposeOfUse: 'TREAT',
        tokenKind: 'idp',
        actorAuth: 'idp',
        jti: 'x',
      });
      expect(ctx.scopes.map((s) => s.text)).to.deep.equal(['user/*.read']);
      // an access token is reusable until it expires
      await verifyBearerToken(`Bearer ${token}`, opts);
    });

    it('a reused token is verified once, but its expiry, its key and its DID are checked at every use', async () => {
      let clock = Date.now();
      const keys = [{ key: ec.publicKey }, { key: rsa.publicKey }];
      const timed: TokenVerifierOptions = { ...opts, idp: { issuer: ISSUER, audience: IDP_AUD, keys }, now: () => clock };
      const iat = Math.floor(clock / 1000);
      const token = handmade({ alg: 'ES256' }, claims({ iat, exp: iat + 60, hdx_did: drKey.did }), ec.privateKey);
      expect((await verifyBearerToken(`Bearer ${token}`, timed)).did).to.equal(drKey.did);
      // The same bytes again: answered the same (the signature is not checked again; the claims are read again).
      expect(await verifyBearerToken(`Bearer ${token}`, timed)).to.deep.include({ subject: 'dr-house', did: drKey.did, didKind: 'practitioner' });
      // A token differing in one signature byte is not the cached one: it is checked, and refused.
      const [h, pl, sig] = token.split('.') as [string, string, string];
      const flipped = `${h}.${pl}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
      await rejects(verifyBearerToken(`Bearer ${flipped}`, timed), /signature does not verify|not a well-formed/);
      // Past exp (and the clock tolerance) it is refused, cached or not.
      clock += 95_000;
      await rejects(verifyBearerToken(`Bearer ${token}`, timed), /The token has expired/);
      // A key removed from the identity provider's keys stops its cached tokens at once.
      clock -= 95_000;
      const fresh = handmade({ alg: 'ES256' }, claims({ iat, exp: iat + 60, sub: 'dr-wilson' }), ec.privateKey);
      expect((await verifyBearerToken(`Bearer ${fresh}`, timed)).subject).to.equal('dr-wilson');
      keys.splice(0, 1);
      await rejects(verifyBearerToken(`Bearer ${fresh}`, timed), /signature does not verify|names no key/);
    });

    it('accepts RS256 with an RSA key, the did claim, and break-glass', async () => {
      const token = handmade({ alg: 'RS256', typ: 'JWT' }, claims({ did: drKey.did, purpose_of_use: 'ETREAT', break_glass_reason: 'cardiac arrest' }), rsa.privateKey);
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ did: drKey.did, purposeOfUse: 'ETREAT', breakGlassReason: 'cardiac arrest' });
    });

    it('without hdx_did: no DID, no ledger call, actorAuth idp', async () => {
      const ctx = await verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims(), ec.privateKey)}`, opts);
      expect(ctx).to.deep.include({ subject: 'dr-house', role: 'practitioner', actorAuth: 'idp', tokenKind: 'idp' });
      expect(ctx).to.not.have.property('did');
      expect(ctx).to.not.have.property('didKind');
      expect(resolver.calls).to.deep.equal([]);
    });

    it('401 without iat, for a lifetime over 3600 s (or the configured maximum), and for an iat in the future', async () => {
      const iat = nowSec();
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat: undefined }), ec.privateKey)}`, opts), /must carry iat/);
      await rejects(
        verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat, exp: iat + MAX_IDP_TOKEN_LIFETIME_SEC + 1 }), ec.privateKey)}`, opts),
        /at most 3600 seconds \(exp - iat\)/,
      );
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat, exp: iat }), ec.privateKey)}`, opts), /at most 3600 seconds/);
      await verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat, exp: iat + 3600 }), ec.privateKey)}`, opts);
      const short: TokenVerifierOptions = { ...opts, idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ec.publicKey }], maxLifetimeSec: 600 } };
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat, exp: iat + 601 }), ec.privateKey)}`, short), /at most 600 seconds/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iat: iat + 120, exp: iat + 600 }), ec.privateKey)}`, opts), /iat is in the future/);
    });

    it('checks hdx_did on the ledger: registered, active, of this MSP, its kind matching the role', async () => {
      const tok = (role: string, did: string): string => `Bearer ${handmade({ alg: 'ES256' }, claims({ role, hdx_did: did }), ec.privateKey)}`;
      expect((await verifyBearerToken(tok('admin', drKey.did), opts)).didKind).to.equal('practitioner');
      expect((await verifyBearerToken(tok('patient', didOfKind.patient.did), opts)).didKind).to.equal('patient');
      expect((await verifyBearerToken(tok('auditor', didOfKind.auditor.did), opts)).didKind).to.equal('auditor');
      expect((await verifyBearerToken(tok('system', didOfKind.system.did), opts)).didKind).to.equal('system');
      expect((await verifyBearerToken(tok('system', didOfKind.device.did), opts)).didKind).to.equal('device');
      await rejects(verifyBearerToken(tok('practitioner', didOfKind.otherOrg.did), opts), /registered by another organization than this gateway's/);
      await rejects(verifyBearerToken(tok('practitioner', didOfKind.gone.did), opts), /hdx_did DID is deactivated or suspended/);
      await rejects(verifyBearerToken(tok('patient', didOfKind.suspended.did), opts), /hdx_did DID is deactivated or suspended/);
      await rejects(verifyBearerToken(tok('practitioner', patientDid), opts), /hdx_did DID is not registered/);
      // review #6: an IdP practitioner naming an auditor DID, a patient naming a practitioner DID, …
      await rejects(verifyBearerToken(tok('practitioner', didOfKind.auditor.did), opts), /role practitioner does not match its hdx_did DID, a auditor DID/);
      await rejects(verifyBearerToken(tok('practitioner', didOfKind.patient.did), opts), /does not match its hdx_did DID, a patient DID/);
      await rejects(verifyBearerToken(tok('patient', drKey.did), opts), /does not match its hdx_did DID, a practitioner DID/);
      await rejects(verifyBearerToken(tok('auditor', drKey.did), opts), /does not match/);
      await rejects(verifyBearerToken(tok('system', drKey.did), opts), /does not match/);
      await rejects(verifyBearerToken(tok('admin', didOfKind.system.did), opts), /does not match/);
      const noLedger: TokenVerifierOptions = { audience: BASE, mspId: 'Hospital1MSP', ...(opts.idp ? { idp: opts.idp } : {}) };
      await rejects(verifyBearerToken(tok('practitioner', drKey.did), noLedger), /cannot check the token hdx_did/);
    });

    it("checks the DID's subject link against subjectLink(secret, issuer, sub)", async () => {
      const tok = (sub: string): string => `Bearer ${handmade({ alg: 'ES256' }, claims({ sub, hdx_did: didOfKind.linked.did }), ec.privateKey)}`;
      const withSecret: TokenVerifierOptions = { ...opts, subjectLinkSecret: SECRET };
      expect((await verifyBearerToken(tok('dr-house'), withSecret)).did).to.equal(didOfKind.linked.did);
      await rejects(verifyBearerToken(tok('dr-watson'), withSecret), /bound to another identity-provider subject/);
      await rejects(verifyBearerToken(tok('dr-house'), { ...opts, subjectLinkSecret: Buffer.alloc(32, 8) }), /bound to another identity-provider subject/);
      await rejects(verifyBearerToken(tok('dr-house'), opts), /no subject-link secret/);
      expect(subjectLink(SECRET, ISSUER, 'dr-house')).to.equal(createHmac('sha256', SECRET).update(`${ISSUER}\ndr-house`).digest('base64url'));
      expect(subjectLink(SECRET, ISSUER, 'dr-house')).to.not.equal(subjectLink(SECRET, 'https://other-idp.example', 'dr-house'));
      const derived = deriveSubjectLinkSecret(Buffer.alloc(32, 1));
      expect(derived).to.have.length(32);
      expect(derived.equals(Buffer.alloc(32, 1))).to.equal(false);
      expect(deriveSubjectLinkSecret(Buffer.alloc(32, 1)).equals(derived)).to.equal(true);
      expect(() => deriveSubjectLinkSecret(Buffer.alloc(8))).to.throw(/32 bytes/);
    });

    it('401 for a wrong issuer, a wrong audience, an expired token or no exp', async () => {
      await rejects(
        verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iss: 'https://evil.example' }), ec.privateKey)}`, opts),
        /issuer is not the configured identity provider/,
      );
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ aud: BASE }), ec.privateKey)}`, opts), /aud must be hdx-gateway-hospital1/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ exp: nowSec() - 60 }), ec.privateKey)}`, opts), /has expired/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ exp: undefined }), ec.privateKey)}`, opts), /must carry exp/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ nbf: nowSec() + 600 }), ec.privateKey)}`, opts), /not valid yet/);
    });

    it('401 for a missing sub, an unknown role, a bad did', async () => {
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ sub: undefined }), ec.privateKey)}`, opts), /must carry sub/);
      await rejects(
        verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ role: 'superuser' }), ec.privateKey)}`, opts),
        /role claim must be one of patient, practitioner, auditor, admin, system/,
      );
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ hdx_did: 'MRN-123' }), ec.privateKey)}`, opts), /hdx_did claim must be a did:hdx DID/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ hdx_did: patientDid, did: generateDidKey().did }), ec.privateKey)}`, opts), /disagree/);
    });

    it('401 for a token signed by a key the gateway does not trust', async () => {
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims(), stranger.privateKey)}`, opts), /signature does not verify/);
    });

    it('401 for HS256 signed with the IdP public key as the HMAC secret, and alg none', async () => {
      const pem = String(ec.publicKey.export({ format: 'pem', type: 'spki' }));
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'HS256' }, claims(), { hmacSecret: pem })}`, opts), /algorithm is not accepted/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'none' }, claims(), undefined)}`, opts), /alg none/);
    });

    it('401 for RS256 when only ES256 is configured', async () => {
      const esOnly: TokenVerifierOptions = { ...opts, algorithms: ['ES256'], idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ec.publicKey }] } };
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'RS256' }, claims(), rsa.privateKey)}`, esOnly), /not accepted \(accepted: ES256\)/);
    });

    it('picks keys by kid, falling back to keys without a kid; several keys allow rollover', async () => {
      const next = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const withKids: TokenVerifierOptions = {
        ...opts,
        idp: {
          issuer: ISSUER,
          audience: IDP_AUD,
          keys: [
            { kid: 'k1', key: ec.publicKey },
            { kid: 'k2', key: next.publicKey },
          ],
        },
      };
      await verifyBearerToken(`Bearer ${handmade({ alg: 'ES256', kid: 'k2' }, claims(), next.privateKey)}`, withKids);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256', kid: 'k1' }, claims(), next.privateKey)}`, withKids), /signature does not verify/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256', kid: 'k9' }, claims(), next.privateKey)}`, withKids), /names no key/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256', kid: 7 }, claims(), next.privateKey)}`, withKids), /kid must be a string/);
      const rollover: TokenVerifierOptions = { ...opts, idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ec.publicKey }, { key: next.publicKey }] } };
      await verifyBearerToken(`Bearer ${handmade({ alg: 'ES256', kid: 'any' }, claims(), next.privateKey)}`, rollover);
    });

    it('401 for IdP tokens when the gateway takes DID tokens only', async () => {
      const didOnly: TokenVerifierOptions = { audience: BASE, resolveDid: fakeResolver(), jtiStore: new MemoryJtiStore() };
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims(), ec.privateKey)}`, didOnly), /Only DID-signed tokens/);
    });
  });

  describe('options and keys', () => {
    const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

    it('assertTokenVerifierOptions names what is misconfigured', () => {
      const idp = { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ecKey.publicKey }] };
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp })).to.not.throw();
      expect(() => assertTokenVerifierOptions({ audience: 'fhir', idp })).to.throw(/audience/);
      expect(() => assertTokenVerifierOptions({ audience: BASE })).to.throw(/configure an identity provider/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, resolveDid: fakeResolver() })).to.throw(/jtiStore/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp, algorithms: [] })).to.throw(/algorithms/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp, algorithms: ['HS256' as 'ES256'] })).to.throw(/algorithms/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp, clockToleranceSec: 3600 })).to.throw(/clockToleranceSec/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp: { ...idp, maxLifetimeSec: 0 } })).to.throw(/maxLifetimeSec/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp, subjectLinkSecret: Buffer.alloc(16) })).to.throw(/subjectLinkSecret/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp, didCache: { ttlMs: -1 } })).to.throw(/ttlMs/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp: { ...idp, keys: [] } })).to.throw(/at least one/);
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp: { ...idp, keys: [{ key: ecKey.privateKey }] } })).to.throw(/public EC P-256 or RSA/);
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
      expect(() => assertTokenVerifierOptions({ audience: BASE, idp: { ...idp, keys: [{ key: p384 }] } })).to.throw(/public EC P-256 or RSA/);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
      expect(() => assertTokenVerifierOptions({ audience: BASE, algorithms: ['ES256'], idp: { ...idp, keys: [{ key: rsa }] } })).to.throw(/needs RS256/);
    });

    it('idpKeysFromText reads PEM public keys, certificates, JWKs and JWK Sets, and refuses private keys', () => {
      const pem = String(ecKey.publicKey.export({ format: 'pem', type: 'spki' }));
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
      const two = idpKeysFromText(`${pem}\n${String(rsa.export({ format: 'pem', type: 'spki' }))}`);
      expect(two.map((k) => k.key.asymmetricKeyType)).to.deep.equal(['ec', 'rsa']);
      const cert = idpKeysFromText(TEST_CERTIFICATE);
      expect(cert[0]?.key.asymmetricKeyType).to.equal('ec');
      const jwk = ecKey.publicKey.export({ format: 'jwk' });
      expect(idpKeysFromText(JSON.stringify(jwk))[0]?.key.equals(ecKey.publicKey)).to.equal(true);
      const set = idpKeysFromText(JSON.stringify({ keys: [{ ...jwk, kid: 'k1' }] }));
      expect(set[0]?.kid).to.equal('k1');
      expect(() => idpKeysFromText(String(ecKey.privateKey.export({ format: 'pem', type: 'pkcs8' })))).to.throw(/private key/);
      expect(() => idpKeysFromText(JSON.stringify(ecKey.privateKey.export({ format: 'jwk' })))).to.throw(/private key/);
      expect(() => idpKeysFromText('hello')).to.throw(/no PUBLIC KEY/);
      expect(() => idpKeysFromText('{oops')).to.throw(/neither PEM nor valid JSON/);
    });
  });
});

/** A self-signed P-256 certificate (CN=hdx-test-idp): the IdP key may be configured as a certificate. */
const TEST_CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIBgzCCASmgAwIBAgIUNjOiw1sX7XsYwhUdps6xz3rTh6wwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMaGR4LXRlc3QtaWRwMB4XDTI2MTEyMTA2MDUzOFoXDTM2MTEx
ODA2MDUzOFowFzEVMBMGA1UEAwwMaGR4LXRlc3QtaWRwMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEOVCAccQLbIqaYbMn3VpV+1OFiyJB8sjfO/iVNHbdztafnNw5
BjNoa9QPCftDD+4iHpjih+0EUoXEjUFd6TwBG6NTMFEwHQYDVR0OBBYEFPsdiXSQ
R80CADPaR345qMHnzgP6MB8GA1UdIwQYMBaAFPsdiXSQR80CADPaR345qMHnzgP6
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAK+V7M1hOHlRWf6r
1bpdMcI40qvowudUKlw4Okgwxvh3AiAaH/DNSADjjjwGLfOxQEIqvsd4eg7slh2M
AtAkmJnmgQ==
-----END CERTIFICATE-----`;
