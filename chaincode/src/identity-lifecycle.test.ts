/**
 * hdx.identity under issue 9: no single organization over a patient (#5: proposed guardians, suspension
 * and reactivation) and credentials tied to the identity provider's subject (#6).
 */
import { expect } from 'chai';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_ADMIN, registerDid, signedBy } from './test-support/registry';

const identities = new IdentityContract();
const consents = new ConsentContract();
const records = new RecordContract();
const SUBJECT = Buffer.alloc(32, 8).toString('base64url');
const SUBJECT_2 = Buffer.alloc(32, 9).toString('base64url');
const REG_GATEWAY = identity('RegulatorMSP', 'gateway');

describe('hdx.identity: guardians, suspension, reactivation, IdP subjects', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let guardian: TestKey;
  const call = (who: FakeIdentity, fn: Parameters<FakeLedger['invoke']>[1]) => ledger.invoke(who, fn) as Promise<string>;
  const resolve = async (did: string) => JSON.parse(await call(H1_GATEWAY, (ctx) => identities.Resolve(ctx, did)));
  const body = (value: Record<string, unknown>) => JSON.stringify(value);

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    guardian = await registerDid(ledger, 'patient');
  });

  describe('guardians', () => {
    it("without the patient's proof: proposed by the patient's admin, in force only after the regulator approves", async () => {
      await call(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: guardian.did })));
      expect((await resolve(patient.did)).hdx).to.deep.include({ guardians: [] });
      await rejectsWith(
        call(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: guardian.did }))),
        'ALREADY_EXISTS',
      );
      await rejectsWith(
        call(H2_ADMIN, (ctx) => identities.ApproveGuardian(ctx, body({ patient: patient.did, guardian: guardian.did }))),
        'FORBIDDEN',
      );
      const approved = JSON.parse(await call(REG_ADMIN, (ctx) => identities.ApproveGuardian(ctx, body({ patient: patient.did, guardian: guardian.did }))));
      expect(approved.hdx).to.deep.include({ guardians: [guardian.did], pendingGuardians: [] });
      const event = JSON.parse(Buffer.from(ledger.events.at(-1)?.payload ?? []).toString());
      expect(event).to.deep.include({ action: 'add-guardian', did: patient.did, guardian: guardian.did });
      await rejectsWith(
        call(REG_ADMIN, (ctx) => identities.ApproveGuardian(ctx, body({ patient: patient.did, guardian: guardian.did }))),
        'NOT_FOUND',
      );
    });

    it("with the patient's proof: in force at once, and it replaces a pending proposal", async () => {
      await call(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: guardian.did })));
      const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
      const done = JSON.parse(await call(H2_GATEWAY, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: guardian.did, proof }))));
      expect(done.hdx).to.deep.include({ guardians: [guardian.did], pendingGuardians: [] });
      const removal = signedBy(ledger, patient, { action: 'remove-guardian', patient: patient.did, guardian: guardian.did });
      expect(
        JSON.parse(await call(H1_GATEWAY, (ctx) => identities.RemoveGuardian(ctx, body({ patient: patient.did, guardian: guardian.did, proof: removal })))).hdx.guardians,
      ).to.deep.equal([]);
    });

    it('guardians are patient-kind DIDs only', async () => {
      for (const kind of ['practitioner', 'device', 'auditor']) {
        const key = await registerDid(ledger, kind);
        const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: key.did });
        await rejectsWith(
          call(H1_GATEWAY, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: key.did, proof }))),
          'INVALID',
        );
      }
    });

    it('a guardian whose own DID is no longer active does not act for the patient', async () => {
      const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
      await call(H1_GATEWAY, (ctx) => identities.AddGuardian(ctx, body({ patient: patient.did, guardian: guardian.did, proof })));
      await call(H1_GATEWAY, (ctx) =>
        records.Anchor(
          ctx,
          body({
            resourceType: 'Observation',
            id: 'g1',
            versionId: '1',
            patient: patient.did,
            lastUpdated: '2024-05-01T10:00:00Z',
            commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 2).toString('base64url') },
          }),
        ),
      );
      const ask = { actor: guardian.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'FAMRQT', resource: 'Observation/g1/_history/1' };
      expect(JSON.parse(await call(H1_GATEWAY, (ctx) => consents.EvaluateAccess(ctx, body(ask)))).reason).to.equal('patient-or-guardian');
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did })));
      // The patient is suspended: their guardians' shortcut stops too.
      expect(JSON.parse(await call(H1_GATEWAY, (ctx) => consents.EvaluateAccess(ctx, body(ask)))).reason).to.equal('no-permit');
    });
  });

  describe('suspension and reactivation', () => {
    it("an admin's deactivation of a patient suspends; staff DIDs are deactivated", async () => {
      const suspended = JSON.parse(await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did }))));
      expect(suspended.hdx.status).to.equal('suspended');
      expect(suspended.didDocumentMetadata.deactivated).to.equal(false);
      await rejectsWith(
        call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did }))),
        'CONFLICT',
      );
      const doctor = await registerDid(ledger, 'practitioner');
      expect(JSON.parse(await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: doctor.did })))).hdx.status).to.equal('deactivated');
    });

    it("the suspended patient's own proof deactivates for good (final)", async () => {
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did })));
      const proof = signedBy(ledger, patient, { action: 'deactivate', did: patient.did });
      const done = JSON.parse(await call(H1_GATEWAY, (ctx) => identities.Deactivate(ctx, body({ did: patient.did, proof }))));
      expect(done.hdx.status).to.equal('deactivated');
      expect(done.didDocumentMetadata.deactivated).to.equal(true);
      const again = signedBy(ledger, patient, { action: 'reactivate', did: patient.did });
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => identities.Reactivate(ctx, body({ did: patient.did, proof: again }))),
        'CONFLICT',
      );
    });

    it("Reactivate with the patient's proof restores at once", async () => {
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did })));
      const proof = signedBy(ledger, patient, { action: 'reactivate', did: patient.did });
      expect(JSON.parse(await call(H2_GATEWAY, (ctx) => identities.Reactivate(ctx, body({ did: patient.did, proof })))).hdx.status).to.equal('active');
      const byOther = signedBy(ledger, guardian, { action: 'reactivate', did: patient.did });
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did })));
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => identities.Reactivate(ctx, body({ did: patient.did, proof: byOther }))),
        'FORBIDDEN',
      );
    });

    it('Reactivate without proof: the admin proposes, the regulator (and only it) approves', async () => {
      await rejectsWith(
        call(H1_ADMIN, (ctx) => identities.Reactivate(ctx, body({ did: patient.did }))),
        'CONFLICT',
      );
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: patient.did })));
      await rejectsWith(
        call(H2_ADMIN, (ctx) => identities.Reactivate(ctx, body({ did: patient.did }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(REG_ADMIN, (ctx) => identities.ApproveReactivation(ctx, body({ did: patient.did }))),
        'NOT_FOUND',
      );
      const proposed = JSON.parse(await call(H1_ADMIN, (ctx) => identities.Reactivate(ctx, body({ did: patient.did }))));
      expect(proposed.hdx).to.deep.include({ status: 'suspended' });
      expect(proposed.hdx.pendingReactivation).to.deep.include({ proposedBy: 'Hospital1MSP' });
      await rejectsWith(
        call(H1_ADMIN, (ctx) => identities.ApproveReactivation(ctx, body({ did: patient.did }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(REG_GATEWAY, (ctx) => identities.ApproveReactivation(ctx, body({ did: patient.did }))),
        'FORBIDDEN',
      );
      const approved = JSON.parse(await call(REG_ADMIN, (ctx) => identities.ApproveReactivation(ctx, body({ did: patient.did }))));
      expect(approved.hdx.status).to.equal('active');
      expect(approved.hdx).to.not.have.property('pendingReactivation');
      expect(JSON.parse(Buffer.from(ledger.events.at(-1)?.payload ?? []).toString())).to.deep.include({ action: 'reactivate', did: patient.did, status: 'active' });
    });
  });

  describe('IdP subject link (#6)', () => {
    it('stores the subject and finds the DIDs by (own organization, subject) for off-boarding', async () => {
      const a = await registerDid(ledger, 'practitioner', H1_GATEWAY, { subject: SUBJECT });
      const b = await registerDid(ledger, 'device', H1_ADMIN, { subject: SUBJECT });
      await registerDid(ledger, 'practitioner', H2_GATEWAY, { subject: SUBJECT });
      await registerDid(ledger, 'practitioner', H1_GATEWAY, { subject: SUBJECT_2 });
      // The resolution carries the link, so a gateway can check IdP tokens that carry the DID.
      expect((await resolve(a.did)).hdx.subject).to.equal(SUBJECT);
      const found = JSON.parse(await call(H1_ADMIN, (ctx) => identities.FindBySubject(ctx, SUBJECT)));
      expect(found.map((f: { did: string }) => f.did).sort()).to.deep.equal([a.did, b.did].sort());
      await call(H1_ADMIN, (ctx) => identities.Deactivate(ctx, body({ did: a.did })));
      const after = JSON.parse(await call(H1_GATEWAY, (ctx) => identities.FindBySubject(ctx, SUBJECT)));
      expect(after.find((f: { did: string }) => f.did === a.did)).to.deep.include({ kind: 'practitioner', status: 'deactivated' });
      expect(JSON.parse(await call(H2_GATEWAY, (ctx) => identities.FindBySubject(ctx, SUBJECT)))).to.have.length(1);
    });

    it("off-boarding: the organization's gateway deactivates its own staff DIDs, never a patient's nor another member's", async () => {
      const staff = await registerDid(ledger, 'practitioner', H1_GATEWAY, { subject: SUBJECT });
      const other = await registerDid(ledger, 'practitioner', H2_GATEWAY, { subject: SUBJECT });
      const off = JSON.parse(await call(H1_GATEWAY, (ctx) => identities.Deactivate(ctx, body({ did: staff.did }))));
      expect(off.hdx.status).to.equal('deactivated');
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => identities.Deactivate(ctx, body({ did: other.did }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        call(H1_GATEWAY, (ctx) => identities.Deactivate(ctx, body({ did: patient.did }))),
        'FORBIDDEN',
      );
      expect((await resolve(patient.did)).hdx.status).to.equal('active');
    });

    it('refuses a malformed subject and callers without a gateway/admin role', async () => {
      await rejectsWith(registerDid(ledger, 'practitioner', H1_GATEWAY, { subject: 'alice@example.org' }), 'INVALID');
      await rejectsWith(
        call(H1_ADMIN, (ctx) => identities.FindBySubject(ctx, 'alice')),
        'INVALID',
      );
      await rejectsWith(
        call(identity('Hospital1MSP'), (ctx) => identities.FindBySubject(ctx, SUBJECT)),
        'FORBIDDEN',
      );
    });
  });
});
