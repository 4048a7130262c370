/**
 * The browser key (WebCrypto, as in the page: Node 20 has the same globalThis.crypto.subtle) against the
 * gateway's own code: the DID derivation of `hdx keygen`, the token verification of the gateway, and the
 * chaincode's verification of the registration proof.
 */
import { expect } from 'chai';
import { generateDidKey, didOf as gatewayDidOf } from '@hdx/gateway/dist/auth/did-key';
import { verifyBearerToken } from '@hdx/gateway/dist/auth/token';
import { MemoryJtiStore } from '@hdx/gateway/dist/auth/replay';
import type { DidResolution } from '@hdx/gateway/dist/auth/types';
import { parseCompactJws, verifyJws } from '@hdx/chaincode/dist/jose';
import { didOf, didToken, generatePatientKey, importPrivateJwk, type P256PublicJwk, registrationRequest } from './keys';

const AUDIENCE = 'http://127.0.0.1:8080/fhir';

function resolutionOf(did: string, kid: string, publicKeyJwk: P256PublicJwk): DidResolution {
  return {
    didDocument: {
      '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
      id: did,
      controller: did,
      verificationMethod: [{ id: kid, type: 'JsonWebKey2020', controller: did, publicKeyJwk }],
      authentication: [kid],
      assertionMethod: [kid],
    },
    didDocumentMetadata: { versionId: '1', created: '2026-01-01T00:00:00.000Z', updated: '2026-01-01T00:00:00.000Z', deactivated: false },
    didResolutionMetadata: { contentType: 'application/did+json' },
    hdx: { kind: 'patient', status: 'active', organization: 'Hospital1MSP', guardians: [] },
  } as DidResolution;
}

describe('webapp keys (WebCrypto + jose)', () => {
  it('derives the DID exactly as the gateway and hdx keygen do (RFC 7638 thumbprint)', async () => {
    for (let i = 0; i < 5; i += 1) {
      const cli = generateDidKey();
      expect(await didOf(cli.publicJwk)).to.equal(cli.did);
    }
    const { key } = await generatePatientKey();
    expect(key.did).to.equal(gatewayDidOf(key.publicJwk));
    expect(key.kid).to.equal(`${key.did}#key-1`);
  });

  it('keeps the signing key non-extractable; the backup is the hdx keygen JWK and imports to the same DID', async () => {
    const { key, backup } = await generatePatientKey();
    expect(key.privateKey.extractable).to.equal(false);
    let refused = false;
    await crypto.subtle.exportKey('jwk', key.privateKey).catch(() => (refused = true));
    expect(refused).to.equal(true);
    expect(Object.keys(backup).sort()).to.deep.equal(['crv', 'd', 'kid', 'kty', 'x', 'y']);
    const again = await importPrivateJwk(JSON.parse(JSON.stringify(backup)));
    expect(again.key.did).to.equal(key.did);
    expect(again.key.privateKey.extractable).to.equal(false);
    // A key made by the CLI (hdx keygen --out) imports too.
    const cli = generateDidKey();
    expect((await importPrivateJwk(cli.privateJwk)).key.did).to.equal(cli.did);
  });

  it('refuses files that are not a usable private key, saying why', async () => {
    const cli = generateDidKey();
    const other = generateDidKey();
    const cases: Array<[unknown, RegExp]> = [
      ['not an object', /JSON object/],
      [{ ...cli.publicJwk }, /no private key/],
      [{ ...cli.privateJwk, crv: 'P-384' }, /P-256/],
      // WebCrypto refuses the pair at import (Node) or the probe signature does not verify (browsers that accept it).
      [{ ...cli.privateJwk, d: other.privateJwk.d }, /damaged: (it is not a valid P-256 key pair|its private part does not match)/],
      [{ ...cli.privateJwk, kid: `${other.did}#key-1` }, /kid must be a DID URL of this key/],
      [{ ...cli.privateJwk, x: 'short' }, /x and y/],
    ];
    for (const [value, message] of cases) {
      let error: unknown;
      await importPrivateJwk(value).catch((err: unknown) => (error = err));
      expect(String(error), JSON.stringify(value)).to.match(message);
    }
  });

  it("makes a DID token the gateway's own verifier accepts, once (single use)", async () => {
    const { key } = await generatePatientKey();
    const opts = {
      audience: AUDIENCE,
      resolveDid: async (did: string) => (did === key.did ? resolutionOf(key.did, key.kid, key.publicJwk) : undefined),
      didCache: false as const,
      jtiStore: new MemoryJtiStore(),
    };
    const token = await didToken(key, AUDIENCE, 'patient/Consent.write');
    const auth = await verifyBearerToken(`Bearer ${token}`, opts);
    expect(auth.did).to.equal(key.did);
    expect(auth.tokenKind).to.equal('did');
    let replay: unknown;
    await verifyBearerToken(`Bearer ${token}`, opts).catch((err: unknown) => (replay = err));
    expect(String(replay)).to.match(/replay|already been used|used before/i);
    // Another audience (another member's gateway) is refused.
    let wrongAudience: unknown;
    await verifyBearerToken(`Bearer ${await didToken(key, 'http://127.0.0.1:9090/fhir', 'patient/*.read')}`, opts).catch((err: unknown) => (wrongAudience = err));
    expect(wrongAudience).to.be.instanceOf(Error);
  });

  it("makes the registration request whose proof the chaincode's verifier accepts", async () => {
    const { key } = await generatePatientKey();
    const request = (await registrationRequest(key)) as { did: string; kind: string; publicKeyJwk: P256PublicJwk; proof: string };
    expect(request.did).to.equal(key.did);
    expect(request.kind).to.equal('patient');
    const parsed = parseCompactJws(request.proof, 'proof');
    expect(parsed.header).to.deep.equal({ alg: 'ES256', kid: `${key.did}#key-1` });
    expect(parsed.payload).to.include({ action: 'register', did: key.did, kind: 'patient' });
    await verifyJws(parsed, request.publicKeyJwk, 'proof');
  });
});
