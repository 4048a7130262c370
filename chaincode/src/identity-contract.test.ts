import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { IdentityContract } from './identity-contract';
import { thumbprintOf } from './jose';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { newKey, nonce, signJws } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_ADMIN, REG_AUDITOR, registerDid, registrationJson, registrationProof, signedBy } from './test-support/registry';

const HASH_A = Buffer.alloc(32, 1).toString('base64url');
const HASH_B = Buffer.alloc(32, 2).toString('base64url');

describe('hdx.identity', () => {
  let ledger: FakeLedger;
  const contract = new IdentityContract();
  const call = <T>(who: FakeIdentity, fn: (ctx: Parameters<IdentityContract['Resolve']>[0]) => Promise<T>) => ledger.invoke(who, fn);
  const resolve = async (did: string) => JSON.parse(await call(H2_GATEWAY, (ctx) => contract.Resolve(ctx, did)));

  beforeEach(() => {
    ledger = new FakeLedger();
  });

  it('is the contract hdx.identity', () => {
    expect(contract.getName()).to.equal('hdx.identity');
  });

  describe('Register and Resolve', () => {
    it('derives the DID from the RFC 7638 thumbprint of the key', async () => {
      const key = newKey();
      const expected = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${key.jwk.x}","y":"${key.jwk.y}"}`).digest('base64url');
      expect(await thumbprintOf(key.jwk)).to.equal(expected);
      expect(key.did).to.equal(`did:hdx:${expected}`);
    });

    it('registers a patient and resolves a W3C DID document with metadata', async () => {
      const key = await registerDid(ledger, 'patient');
      const result = await resolve(key.did);
      const kid = `${key.did}#key-1`;
      expect(result.didDocument).to.deep.equal({
        '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
        id: key.did,
        controller: key.did,
        verificationMethod: [{ id: kid, type: 'JsonWebKey2020', controller: key.did, publicKeyJwk: key.jwk }],
        authentication: [kid],
        assertionMethod: [kid],
      });
      expect(result.didDocumentMetadata).to.deep.include({ versionId: '1', deactivated: false });
      expect(result.didDocumentMetadata.created).to.equal(result.didDocumentMetadata.updated);
      expect(result.hdx).to.deep.equal({ kind: 'patient', status: 'active', organization: 'Hospital1MSP', guardians: [], pendingGuardians: [] });
    });

    it('gives an organization a FhirEndpoint service', async () => {
      const key = await registerDid(ledger, 'organization', H2_ADMIN, { fhirBaseUrl: 'https://h2.example/fhir' });
      const { didDocument } = await resolve(key.did);
      expect(didDocument.service).to.deep.equal([{ id: `${key.did}#fhir`, type: 'FhirEndpoint', serviceEndpoint: 'https://h2.example/fhir' }]);
    });

    it('accepts a matching did and refuses one that is not the thumbprint', async () => {
      const key = newKey();
      await call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'patient', { did: key.did })));
      const other = newKey();
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, other, 'patient', { did: key.did }))),
        'INVALID',
      );
    });

    it('refuses a second registration of the same DID with ALREADY_EXISTS', async () => {
      const key = newKey();
      await call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'patient')));
      await rejectsWith(
        call(H2_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'device'))),
        'ALREADY_EXISTS',
      );
    });

    it('refuses a proof by another key (UNAUTHENTICATED) or for another kid, DID or kind (INVALID)', async () => {
      const key = newKey();
      const intruder = newKey();
      const forged = signJws(intruder.privateKey, `${key.did}#key-1`, { action: 'register', did: key.did, kind: 'patient', nonce: nonce(), iat: ledger.clock });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof: forged }))),
        'UNAUTHENTICATED',
      );
      const wrongKid = signJws(key.privateKey, `${key.did}#key-2`, { action: 'register', did: key.did, kind: 'patient', nonce: nonce(), iat: ledger.clock });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof: wrongKid }))),
        'INVALID',
      );
      const wrongKind = registrationProof(ledger, key, 'device');
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof: wrongKind }))),
        'INVALID',
      );
      const wrongAction = registrationProof(ledger, key, 'patient', { action: 'rotate' });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof: wrongAction }))),
        'INVALID',
      );
      expect(ledger.state.size).to.equal(0);
    });

    it('refuses a proof that is stale or from the future', async () => {
      const key = newKey();
      for (const iat of [ledger.clock - 2 * 86400, ledger.clock + 3600]) {
        const proof = registrationProof(ledger, key, 'patient', { iat });
        await rejectsWith(
          call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof }))),
          'INVALID',
        );
      }
    });

    it('refuses a non-canonical JWS payload', async () => {
      const key = newKey();
      const h = Buffer.from(JSON.stringify({ alg: 'ES256', kid: `${key.did}#key-1` })).toString('base64url');
      const p = Buffer.from(JSON.stringify({ nonce: nonce(), action: 'register', did: key.did, kind: 'patient', iat: ledger.clock })).toString('base64url');
      const proof = `${h}.${p}.${Buffer.alloc(64).toString('base64url')}`;
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ kind: 'patient', publicKeyJwk: key.jwk, proof }))),
        'INVALID',
      );
    });

    it('refuses private keys, other curves and points off the curve', async () => {
      const key = newKey();
      const base = { kind: 'patient', proof: registrationProof(ledger, key, 'patient') };
      const cases = [
        { ...key.jwk, d: Buffer.alloc(32, 1).toString('base64url') },
        { ...key.jwk, crv: 'P-384' },
        { ...key.jwk, y: key.jwk.x },
        { ...key.jwk, x: 'short' },
      ];
      for (const publicKeyJwk of cases) {
        await rejectsWith(
          call(H1_GATEWAY, (ctx) => contract.Register(ctx, JSON.stringify({ ...base, publicKeyJwk }))),
          'INVALID',
        );
      }
    });

    it('refuses unknown kinds and fields', async () => {
      const key = newKey();
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'robot'))),
        'INVALID',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'patient', { name: 'x' }))),
        'INVALID',
      );
    });

    it('stores salted identifier links and finds the DID by them', async () => {
      const key = await registerDid(ledger, 'patient', H1_GATEWAY, { identifiers: [HASH_A] });
      const found = JSON.parse(await call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, HASH_A)));
      expect(found).to.deep.equal([{ did: key.did, kind: 'patient', status: 'active', organization: 'Hospital1MSP', linkedBy: ['Hospital1MSP'] }]);
      expect(JSON.parse(await call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, HASH_B)))).to.deep.equal([]);
    });

    it('refuses identifiers that are not salted hashes', async () => {
      const key = newKey();
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Register(ctx, registrationJson(ledger, key, 'patient', { identifiers: ['MRN-0001'] }))),
        'INVALID',
      );
    });

    describe('who may register what', () => {
      const allowed: Array<[string, FakeIdentity]> = [
        ['patient', H1_GATEWAY],
        ['patient', H2_ADMIN],
        ['practitioner', H1_GATEWAY],
        ['device', H2_GATEWAY],
        ['system', H1_ADMIN],
        ['organization', H1_ADMIN],
        ['auditor', REG_ADMIN],
        // The regulator's gateway registers auditors for the regulator's IdP admins only (the gateway
        // refuses every other caller of POST /did; see gateway/src/http/caller-binding.test.ts).
        ['auditor', identity('RegulatorMSP', 'gateway')],
      ];
      for (const [kind, who] of allowed) {
        it(`allows ${kind} by ${who.mspId} ${who.attributes?.['hdx.role']}`, async () => {
          const key = await registerDid(ledger, kind, who);
          expect((await resolve(key.did)).hdx.organization).to.equal(who.mspId);
        });
      }
      const refused: Array<[string, FakeIdentity]> = [
        ['patient', identity('Hospital1MSP')],
        ['patient', identity('Hospital1MSP', 'auditor')],
        ['practitioner', identity('Hospital1MSP', 'nurse')],
        ['system', H1_GATEWAY],
        ['organization', H1_GATEWAY],
        ['auditor', H1_ADMIN],
        ['auditor', REG_AUDITOR],
        ['auditor', H1_GATEWAY],
      ];
      for (const [kind, who] of refused) {
        it(`refuses ${kind} by ${who.mspId} ${who.attributes?.['hdx.role'] ?? '(no role)'} with FORBIDDEN`, async () => {
          const extra = kind === 'organization' ? { fhirBaseUrl: 'https://x.example/fhir' } : {};
          await rejectsWith(
            call(who, (ctx) => contract.Register(ctx, registrationJson(ledger, newKey(), kind, extra))),
            'FORBIDDEN',
          );
        });
      }
      it('refuses the ordering organization with UNAUTHENTICATED', async () => {
        await rejectsWith(
          call(identity('OrdererMSP', 'admin'), (ctx) => contract.Register(ctx, registrationJson(ledger, newKey(), 'patient'))),
          'UNAUTHENTICATED',
        );
      });
      it('allows one active organization DID per MSP', async () => {
        await registerDid(ledger, 'organization', H1_ADMIN);
        await rejectsWith(registerDid(ledger, 'organization', H1_ADMIN), 'ALREADY_EXISTS');
        await registerDid(ledger, 'organization', H2_ADMIN);
      });
      it('requires a FHIR base URL for organizations only', async () => {
        await rejectsWith(registerDid(ledger, 'organization', H1_ADMIN, {}), 'INVALID');
        await rejectsWith(registerDid(ledger, 'organization', H1_ADMIN, { fhirBaseUrl: 'ftp://h1.example/fhir' }), 'INVALID');
        await rejectsWith(registerDid(ledger, 'organization', H1_ADMIN, { fhirBaseUrl: 'https://u:p@h1.example/fhir' }), 'INVALID');
        await rejectsWith(registerDid(ledger, 'patient', H1_GATEWAY, { fhirBaseUrl: 'https://h1.example/fhir' }), 'INVALID');
      });
    });

    it('Resolve: NOT_FOUND for an unknown DID, INVALID for a malformed one', async () => {
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Resolve(ctx, newKey().did)),
        'NOT_FOUND',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Resolve(ctx, 'did:hdx:nope')),
        'INVALID',
      );
    });
  });

  describe('Update', () => {
    it('lets any member gateway add and remove its own identifier links', async () => {
      const key = await registerDid(ledger, 'patient', H1_GATEWAY, { identifiers: [HASH_A] });
      await call(H2_GATEWAY, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ addIdentifiers: [HASH_A, HASH_B] })));
      let found = JSON.parse(await call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, HASH_A)));
      expect(found[0].linkedBy).to.deep.equal(['Hospital1MSP', 'Hospital2MSP']);
      expect((await resolve(key.did)).didDocumentMetadata.versionId).to.equal('2');

      await call(H2_GATEWAY, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ removeIdentifiers: [HASH_A, HASH_B] })));
      found = JSON.parse(await call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, HASH_A)));
      expect(found[0].linkedBy).to.deep.equal(['Hospital1MSP']);
      expect(JSON.parse(await call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, HASH_B)))).to.deep.equal([]);
    });

    it("refuses to remove another organization's link (NOT_FOUND) and links by non-gateway roles (FORBIDDEN)", async () => {
      const key = await registerDid(ledger, 'patient', H1_GATEWAY, { identifiers: [HASH_A] });
      await rejectsWith(
        call(H2_GATEWAY, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ removeIdentifiers: [HASH_A] }))),
        'NOT_FOUND',
      );
      await rejectsWith(
        call(REG_AUDITOR, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ addIdentifiers: [HASH_B] }))),
        'FORBIDDEN',
      );
    });

    it("changes an organization's FHIR endpoint only by its own admin", async () => {
      const key = await registerDid(ledger, 'organization', H1_ADMIN);
      const update = JSON.stringify({ fhirBaseUrl: 'https://new.h1.example/fhir' });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Update(ctx, key.did, update)),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H2_ADMIN, (ctx) => contract.Update(ctx, key.did, update)),
        'FORBIDDEN',
      );
      await call(H1_ADMIN, (ctx) => contract.Update(ctx, key.did, update));
      expect((await resolve(key.did)).didDocument.service[0].serviceEndpoint).to.equal('https://new.h1.example/fhir');
    });

    it('refuses a FHIR endpoint on a patient, an empty update and unknown fields', async () => {
      const key = await registerDid(ledger, 'patient');
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ fhirBaseUrl: 'https://x.example/fhir' }))),
        'INVALID',
      );
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.Update(ctx, key.did, '{}')),
        'INVALID',
      );
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ kind: 'device' }))),
        'INVALID',
      );
    });
  });

  describe('RotateKey', () => {
    it('rotates with a proof by the current key; the old key no longer signs', async () => {
      const key = await registerDid(ledger, 'patient');
      const next = newKey();
      const proof = signedBy(ledger, key, { action: 'rotate', did: key.did, publicKeyJwk: next.jwk });
      await call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: next.jwk, proof })));
      const { didDocument, didDocumentMetadata } = await resolve(key.did);
      expect(didDocument.id).to.equal(key.did);
      expect(didDocument.verificationMethod).to.have.length(1);
      expect(didDocument.verificationMethod[0]).to.deep.include({ id: `${key.did}#key-2`, publicKeyJwk: next.jwk });
      expect(didDocument.assertionMethod).to.deep.equal([`${key.did}#key-2`]);
      expect(didDocumentMetadata.versionId).to.equal('2');

      const third = newKey();
      const stale = signedBy(ledger, key, { action: 'rotate', did: key.did, publicKeyJwk: third.jwk });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: third.jwk, proof: stale }))),
        'UNAUTHENTICATED',
      );
      const fresh = signedBy(ledger, next, { action: 'rotate', did: key.did, publicKeyJwk: third.jwk }, 2, key.did);
      await call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: third.jwk, proof: fresh })));
      expect((await resolve(key.did)).didDocument.verificationMethod[0].id).to.equal(`${key.did}#key-3`);
    });

    it("never lets a hospital rotate a patient's key without the patient's proof", async () => {
      const key = await registerDid(ledger, 'patient');
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: newKey().jwk }))),
        'FORBIDDEN',
      );
    });

    it('lets the owning admin rotate a practitioner key, not another organization', async () => {
      const key = await registerDid(ledger, 'practitioner');
      await rejectsWith(
        call(H2_ADMIN, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: newKey().jwk }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: newKey().jwk }))),
        'FORBIDDEN',
      );
      await call(H1_ADMIN, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: newKey().jwk })));
      expect((await resolve(key.did)).didDocumentMetadata.versionId).to.equal('2');
    });

    it('refuses a proof by another DID, a replayed nonce and the current key', async () => {
      const key = await registerDid(ledger, 'patient');
      const other = await registerDid(ledger, 'patient');
      const next = newKey();
      const byOther = signedBy(ledger, other, { action: 'rotate', did: key.did, publicKeyJwk: next.jwk });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: next.jwk, proof: byOther }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: key.jwk }))),
        'INVALID',
      );
      const proof = signedBy(ledger, key, { action: 'rotate', did: key.did, publicKeyJwk: next.jwk });
      const otherKey = newKey();
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: otherKey.jwk, proof }))),
        'FORBIDDEN',
      );
    });

    it('refuses to reuse a nonce (replay) with CONFLICT', async () => {
      const key = await registerDid(ledger, 'patient');
      const next = newKey();
      const rotate = signedBy(ledger, key, { action: 'rotate', did: key.did, publicKeyJwk: next.jwk, nonce: 'fixed-nonce-000000001' });
      await call(H1_GATEWAY, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: next.jwk, proof: rotate })));
      const again = signedBy(ledger, next, { action: 'deactivate', did: key.did, nonce: 'fixed-nonce-000000001' }, 2, key.did);
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did, proof: again }))),
        'CONFLICT',
      );
      expect((await resolve(key.did)).didDocumentMetadata.deactivated).to.equal(false);
    });
  });

  describe('Deactivate and History', () => {
    it('deactivates with the own proof; afterwards changes are refused with CONFLICT', async () => {
      const key = await registerDid(ledger, 'patient');
      const proof = signedBy(ledger, key, { action: 'deactivate', did: key.did });
      await call(H2_GATEWAY, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did, proof })));
      const result = await resolve(key.did);
      expect(result.didDocumentMetadata).to.deep.include({ deactivated: true, versionId: '2' });
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did }))),
        'CONFLICT',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Update(ctx, key.did, JSON.stringify({ addIdentifiers: [HASH_A] }))),
        'CONFLICT',
      );
    });

    it('lets the owning admin deactivate, not a gateway or another organization', async () => {
      const key = await registerDid(ledger, 'patient');
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H2_ADMIN, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did }))),
        'FORBIDDEN',
      );
      await call(H1_ADMIN, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did })));
    });

    it('frees the MSP for a new organization DID after deactivation', async () => {
      const org = await registerDid(ledger, 'organization', H1_ADMIN);
      await call(H1_ADMIN, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: org.did })));
      await registerDid(ledger, 'organization', H1_ADMIN);
    });

    it('keeps every version in History, oldest first', async () => {
      const key = await registerDid(ledger, 'practitioner');
      await call(H1_ADMIN, (ctx) => contract.RotateKey(ctx, JSON.stringify({ did: key.did, publicKeyJwk: newKey().jwk })));
      await call(H1_ADMIN, (ctx) => contract.Deactivate(ctx, JSON.stringify({ did: key.did })));
      const history = JSON.parse(await call(REG_AUDITOR, (ctx) => contract.History(ctx, key.did)));
      expect(history.map((h: { didDocumentMetadata: { versionId: string } }) => h.didDocumentMetadata.versionId)).to.deep.equal(['1', '2', '3']);
      expect(history[0].didDocument.verificationMethod[0].publicKeyJwk).to.deep.equal(key.jwk);
      expect(history[2].didDocumentMetadata.deactivated).to.equal(true);
      await rejectsWith(
        call(REG_AUDITOR, (ctx) => contract.History(ctx, newKey().did)),
        'NOT_FOUND',
      );
    });
  });

  describe('guardians', () => {
    it('adds a guardian with the patient proof and removes it again', async () => {
      const patient = await registerDid(ledger, 'patient');
      const guardian = await registerDid(ledger, 'patient');
      const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
      await call(H2_GATEWAY, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did, proof })));
      expect((await resolve(patient.did)).hdx.guardians).to.deep.equal([guardian.did]);
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did }))),
        'ALREADY_EXISTS',
      );
      // Without the patient's proof the admin only proposes the removal; the regulator approves it.
      await call(H1_ADMIN, (ctx) => contract.RemoveGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did })));
      expect((await resolve(patient.did)).hdx.guardians).to.deep.equal([guardian.did]);
      await call(REG_ADMIN, (ctx) => contract.ApproveGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did })));
      expect((await resolve(patient.did)).hdx.guardians).to.deep.equal([]);
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.RemoveGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did }))),
        'NOT_FOUND',
      );
    });

    it('refuses a gateway or another organization without the patient proof', async () => {
      const patient = await registerDid(ledger, 'patient');
      const guardian = await registerDid(ledger, 'patient');
      const body = JSON.stringify({ patient: patient.did, guardian: guardian.did });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.AddGuardian(ctx, body)),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H2_ADMIN, (ctx) => contract.AddGuardian(ctx, body)),
        'FORBIDDEN',
      );
      const byGuardian = signedBy(ledger, guardian, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did, proof: byGuardian }))),
        'FORBIDDEN',
      );
    });

    it('refuses a device, an unknown DID or the patient as guardian', async () => {
      const patient = await registerDid(ledger, 'patient');
      const device = await registerDid(ledger, 'device');
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: device.did }))),
        'INVALID',
      );
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: newKey().did }))),
        'NOT_FOUND',
      );
      await rejectsWith(
        call(H1_ADMIN, (ctx) => contract.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: patient.did }))),
        'INVALID',
      );
    });
  });

  it('FindByIdentifier needs a gateway, admin or auditor role', async () => {
    await rejectsWith(
      call(identity('Hospital2MSP'), (ctx) => contract.FindByIdentifier(ctx, HASH_A)),
      'FORBIDDEN',
    );
    await rejectsWith(
      call(H2_GATEWAY, (ctx) => contract.FindByIdentifier(ctx, 'MRN-1')),
      'INVALID',
    );
  });
});
