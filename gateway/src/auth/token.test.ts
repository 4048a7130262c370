import { createHmac, generateKeyPairSync, type KeyObject, sign as cryptoSign } from 'node:crypto';
import { expect } from 'chai';
import { OperationOutcomeError } from '../fhir/outcome';
import { generateDidKey, type GeneratedDidKey, privateKeyOf } from './did-key';
import { AuthenticationError } from './errors';
import { registrationRequest, signConsent, signDidToken, signIdpToken } from './issue';
import { MemoryJtiStore } from './replay';
import { fakeResolver, resolutionOf } from './test-support/fixtures';
import { assertTokenVerifierOptions, idpKeysFromText, type TokenVerifierOptions, verifyBearerToken } from './token';
import type { AuthContext } from './types';

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
      expect(ctx).to.deep.include({ subject: key.did, did: key.did, role: 'patient', organization: 'Hospital2MSP', purposeOfUse: 'TREAT', tokenKind: 'did', jti: 'j-1' });
      expect(ctx.scopes.map((s) => s.text)).to.deep.equal(['patient/*.read', 'user/Observation.rs']);
      expect(ctx.expiresAt).to.be.within(nowSec() + 298, nowSec() + 300);
      expect(ctx).to.not.have.property('breakGlassReason');
      expect(resolver.calls).to.deep.equal([key.did]);
    });

    it('an organization DID may act for one of its users (hdx_user); nobody else may', async () => {
      const user = generateDidKey();
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { kind: 'organization', organization: 'Hospital2MSP' })) };
      const token = signDidToken({ key: key.privateJwk, audience: BASE, scope: 'user/*.read', purposeOfUse: 'TREAT', onBehalfOf: user.did });
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ subject: key.did, did: user.did, viaOrganization: key.did, role: 'organization', organization: 'Hospital2MSP' });
      opts = { ...opts, resolveDid: fakeResolver(resolutionOf(key, { kind: 'practitioner' })) };
      const byPerson = signDidToken({ key: key.privateJwk, audience: BASE, scope: 'user/*.read', purposeOfUse: 'TREAT', onBehalfOf: user.did });
      const err = await verifyBearerToken(`Bearer ${byPerson}`, opts).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).to.match(/Only an organization DID may act for a user/);
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
      const good = didToken(key).split('.');
      await rejects(verifyBearerToken(`Bearer ${good[0]}.${b64('not json')}.${good[2]}`, opts), /payload is not base64url JSON/);
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
      await rejects(verifyBearerToken(`Bearer ${didToken(key, { aud: 'http://127.0.0.1:9090/fhir' })}`, opts), /not meant for this gateway: its aud must be http:\/\/127\.0\.0\.1:8080\/fhir/);
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
      await rejects(verifyBearerToken(`Bearer ${signConsent(key.privateJwk, consent, 'grant')}`, opts), /not meant for this gateway/);
      const proof = String(registrationRequest(key.privateJwk, 'patient').proof);
      await rejects(verifyBearerToken(`Bearer ${proof}`, opts), /not meant for this gateway/);
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
      const idpOnly: TokenVerifierOptions = { audience: BASE, idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey }] } };
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

  describe('identity provider tokens', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const patientDid = generateDidKey().did;
    let opts: TokenVerifierOptions;

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
      opts = { audience: BASE, mspId: 'Hospital1MSP', idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ key: ec.publicKey }, { key: rsa.publicKey }] } };
    });

    it('accepts an ES256 token and reads its claims; organization is this gateway', async () => {
      const token = signIdpToken({ key: ec.privateKey, issuer: ISSUER, audience: IDP_AUD, subject: 'dr-house', role: 'practitioner', scope: 'user/*.read launch', purposeOfUse: 'TREAT', did: patientDid, jti: 'x' });
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ subject: 'dr-house', did: patientDid, role: 'practitioner', organization: 'Hospital1MSP', purposeOfUse: 'TREAT', tokenKind: 'idp', jti: 'x' });
      expect(ctx.scopes.map((s) => s.text)).to.deep.equal(['user/*.read']);
      // an access token is reusable until it expires
      await verifyBearerToken(`Bearer ${token}`, opts);
    });

    it('accepts RS256 with an RSA key, the did claim, and break-glass', async () => {
      const token = handmade({ alg: 'RS256', typ: 'JWT' }, claims({ did: patientDid, purpose_of_use: 'ETREAT', break_glass_reason: 'cardiac arrest' }), rsa.privateKey);
      const ctx = await verifyBearerToken(`Bearer ${token}`, opts);
      expect(ctx).to.deep.include({ did: patientDid, purposeOfUse: 'ETREAT', breakGlassReason: 'cardiac arrest' });
    });

    it('401 for a wrong issuer, a wrong audience, an expired token or no exp', async () => {
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ iss: 'https://evil.example' }), ec.privateKey)}`, opts), /issuer is not the configured identity provider/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ aud: BASE }), ec.privateKey)}`, opts), /aud must be hdx-gateway-hospital1/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ exp: nowSec() - 60 }), ec.privateKey)}`, opts), /has expired/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ exp: undefined }), ec.privateKey)}`, opts), /must carry exp/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ nbf: nowSec() + 600 }), ec.privateKey)}`, opts), /not valid yet/);
    });

    it('401 for a missing sub, an unknown role, a bad did', async () => {
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ sub: undefined }), ec.privateKey)}`, opts), /must carry sub/);
      await rejects(verifyBearerToken(`Bearer ${handmade({ alg: 'ES256' }, claims({ role: 'superuser' }), ec.privateKey)}`, opts), /role claim must be one of patient, practitioner, auditor, admin, system/);
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
      const withKids: TokenVerifierOptions = { ...opts, idp: { issuer: ISSUER, audience: IDP_AUD, keys: [{ kid: 'k1', key: ec.publicKey }, { kid: 'k2', key: next.publicKey }] } };
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
