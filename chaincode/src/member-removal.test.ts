/**
 * Removing a member organization (hdx.identity:ProposeMemberRemoval / ApproveMemberRemoval): a majority
 * of the members that remain decides; once removed, no identity of the departed MSP acts and no consent
 * naming it permits anything. Who it holds against: the departed member itself (its admin, its
 * practitioners' DIDs at the other members' gateways), one remaining member acting alone, an admin
 * bringing the departed member back.
 */
import { expect } from 'chai';
import type { Context } from 'fabric-contract-api';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey, newKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, REG_ADMIN, registerDid, registrationJson, signedBy } from './test-support/registry';

const audit = new AuditContract();
const consents = new ConsentContract();
const identities = new IdentityContract();
const records = new RecordContract();
const H3 = 'Hospital3MSP';
const H3_ADMIN = identity(H3, 'admin');
const H3_GATEWAY = identity(H3, 'gateway');
const COMMITMENT = Buffer.alloc(32, 7).toString('base64url');
const RESOURCE = 'Observation/obs-1/_history/1';

describe('hdx.identity: removing a member organization', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let org3: TestKey;
  let doc3: TestKey;
  let h3Patient: TestKey;

  /** A transaction as the peer runs it: the contract's beforeTransaction first. */
  const tx = (who: FakeIdentity, contract: { beforeTransaction(ctx: Context): Promise<void> }, fn: (ctx: Context) => Promise<string>) =>
    ledger.invoke(who, async (ctx) => {
      await contract.beforeTransaction(ctx);
      return fn(ctx);
    });
  const propose = (who: FakeIdentity, mspId: string) => tx(who, identities, (ctx) => identities.ProposeMemberRemoval(ctx, JSON.stringify({ mspId })));
  const approve = (who: FakeIdentity, mspId: string) => tx(who, identities, (ctx) => identities.ApproveMemberRemoval(ctx, JSON.stringify({ mspId })));
  const status = async (mspId: string) => JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => identities.MemberStatus(ctx, mspId)));
  const resolve = async (did: string) => JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => identities.Resolve(ctx, did)));
  const evaluate = async (req: Record<string, unknown>, who = H1_GATEWAY) =>
    JSON.parse(await tx(who, consents, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify({ purpose: 'TREAT', resource: RESOURCE, ...req }))));
  const authorize = async (req: Record<string, unknown>) =>
    JSON.parse(await tx(H1_GATEWAY, audit, (ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify({ purpose: 'TREAT', resource: RESOURCE, ...req }))));
  const h3Consent = (id: string) => ({ resourceType: 'Consent', id, status: 'active', patient: { reference: h3Patient.did }, provision: { type: 'permit' } });
  const consentFor = (id: string, actor: Record<string, unknown>) => ({
    resourceType: 'Consent',
    id,
    status: 'active',
    patient: { reference: patient.did },
    provision: { type: 'permit', actor: [{ reference: actor }] },
  });

  beforeEach(async () => {
    ledger = new FakeLedger();
    // Four members, each with its organization DID (as `up` and add-org register them).
    await registerDid(ledger, 'organization', H1_ADMIN);
    await registerDid(ledger, 'organization', H2_ADMIN);
    await registerDid(ledger, 'organization', REG_ADMIN);
    org3 = await registerDid(ledger, 'organization', H3_ADMIN);
    patient = await registerDid(ledger, 'patient');
    doc3 = await registerDid(ledger, 'practitioner', H3_GATEWAY);
    h3Patient = await registerDid(ledger, 'patient', H3_GATEWAY);
    await ledger.invoke(H1_GATEWAY, (ctx) =>
      records.Anchor(
        ctx,
        JSON.stringify({
          resourceType: 'Observation',
          id: 'obs-1',
          versionId: '1',
          patient: patient.did,
          securityLabels: [],
          lastUpdated: '2024-05-01T10:00:00.000Z',
          commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT },
        }),
      ),
    );
    // The patient's consents name the departing member three ways: its MSP id, its organization DID, its practitioner's DID.
    const grants = [
      consentFor('c-msp', { identifier: { system: 'urn:hdx:msp', value: H3 } }),
      consentFor('c-org', { reference: org3.did }),
      consentFor('c-doc', { reference: doc3.did }),
    ];
    for (const consent of grants) {
      await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patient, { action: 'grant', consent })));
    }
    // A patient the departing member registered, with a consent of its own.
    await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, h3Patient, { action: 'grant', consent: h3Consent('h3p-1') })));
  });

  it('before: the consents let the practitioner of the member read, directly and through its organization', async () => {
    for (const actorAuth of ['did', 'delegated']) {
      expect(await evaluate({ actor: doc3.did, actorOrganization: H3, actorAuth })).to.deep.include({
        decision: 'permit',
        reason: 'consent-permit',
        consents: ['c-doc', 'c-msp', 'c-org'],
      });
    }
    expect(await status(H3)).to.deep.equal({ mspId: H3, member: true });
  });

  it('takes a majority of the members that remain: a proposal by one, in force at the approval of a second (2 of 3)', async () => {
    const proposed = JSON.parse(await propose(H1_ADMIN, H3));
    expect(proposed).to.deep.include({ mspId: H3, status: 'proposed', proposedBy: 'Hospital1MSP', required: 2 });
    expect(JSON.parse(Buffer.from(ledger.events.at(-1)?.payload ?? []).toString())).to.deep.include({ action: 'approve-member-removal', mspId: H3, approvals: 1, required: 2 });
    // A proposal alone removes nothing.
    expect(await evaluate({ actor: doc3.did, actorOrganization: H3, actorAuth: 'did' })).to.deep.include({ decision: 'permit' });
    const removed = JSON.parse(await approve(H2_ADMIN, H3));
    expect(removed).to.deep.include({ status: 'removed', required: 2 });
    expect(removed.approvals.map((a: { mspId: string }) => a.mspId)).to.deep.equal(['Hospital1MSP', 'Hospital2MSP']);
    expect(JSON.parse(Buffer.from(ledger.events.at(-1)?.payload ?? []).toString())).to.deep.include({ action: 'remove-member', mspId: H3, status: 'removed' });
    expect((await status(H3)).member).to.equal(false);
    // Its organization DID is deactivated, and it no longer counts as a member.
    expect((await resolve(org3.did)).hdx.status).to.equal('deactivated');
    expect((await status('Hospital1MSP')).member).to.equal(true);
  });

  describe('after the removal', () => {
    beforeEach(async () => {
      await propose(REG_ADMIN, H3);
      await approve(H1_ADMIN, H3);
    });

    it("refuses the departed member's practitioner at the other members, however authenticated, although the consents stay", async () => {
      for (const actorAuth of ['did', 'delegated', 'idp']) {
        expect(await evaluate({ actor: doc3.did, actorOrganization: H3, actorAuth }), actorAuth).to.deep.include({
          decision: 'deny',
          reason: 'actor-organization-removed',
          consents: [],
        });
      }
      // Break-glass neither.
      expect(await evaluate({ actor: doc3.did, actorOrganization: H3, actorAuth: 'did', purpose: 'ETREAT' })).to.deep.include({
        decision: 'deny',
        reason: 'actor-organization-removed',
      });
      // Claiming another organization is the mismatch it always was.
      expect(await evaluate({ actor: doc3.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did' })).to.deep.include({ decision: 'deny', reason: 'actor-organization-mismatch' });
      // The refusal is on the ledger (AuthorizeAndRecord records the deny).
      const recorded = await authorize({ actor: doc3.did, actorOrganization: H3, actorAuth: 'did' });
      expect(recorded).to.deep.include({ decision: 'deny', reason: 'actor-organization-removed' });
      expect(recorded.eventId).to.be.a('string');
      // History is immutable: the consents naming it are still there, still active.
      for (const id of ['c-msp', 'c-org', 'c-doc']) {
        expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.GetConsent(ctx, id))).status, id).to.equal('active');
      }
      // The remaining members' own users are unaffected.
      expect(await evaluate({ actor: patient.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT' })).to.deep.include({ decision: 'permit' });
    });

    it('refuses every transaction of the departed member itself: its admin and its gateway', async () => {
      const newOrg = newKey();
      await rejectsWith(
        tx(H3_ADMIN, identities, (ctx) => identities.Register(ctx, registrationJson(ledger, newOrg, 'organization', { fhirBaseUrl: 'https://h3.example/fhir' }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        tx(H3_GATEWAY, identities, (ctx) => identities.Register(ctx, registrationJson(ledger, newKey(), 'practitioner'))),
        'FORBIDDEN',
      );
      await rejectsWith(
        tx(H3_ADMIN, identities, (ctx) => identities.RotateKey(ctx, JSON.stringify({ did: doc3.did, publicKeyJwk: newKey().jwk }))),
        'FORBIDDEN',
      );
      await rejectsWith(propose(H3_ADMIN, 'Hospital2MSP'), 'FORBIDDEN');
      await rejectsWith(
        tx(H3_GATEWAY, consents, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify({ actor: doc3.did, actorOrganization: H3, purpose: 'TREAT', resource: RESOURCE }))),
        'FORBIDDEN',
      );
      await rejectsWith(
        tx(H3_GATEWAY, records, (ctx) =>
          records.Anchor(
            ctx,
            JSON.stringify({
              resourceType: 'Observation',
              id: 'x',
              versionId: '1',
              securityLabels: [],
              lastUpdated: '2024-05-01T10:00:00.000Z',
              commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT },
            }),
          ),
        ),
        'FORBIDDEN',
      );
    });

    it("refuses what a departed member's staff DID signs; a patient it registered keeps their say and their records", async () => {
      const next = newKey();
      const rotation = signedBy(ledger, doc3, { action: 'rotate', did: doc3.did, publicKeyJwk: next.jwk });
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => identities.RotateKey(ctx, JSON.stringify({ did: doc3.did, publicKeyJwk: next.jwk, proof: rotation }))),
        'FORBIDDEN',
      );
      // The patient is not the departed member's agent: they still grant, revoke and read their own records.
      const granted = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, h3Patient, { action: 'grant', consent: h3Consent('h3p-2') }))));
      expect(granted.status).to.equal('active');
      const revoke = { resourceType: 'Consent', id: 'h3p-1', patient: { reference: h3Patient.did } };
      const revoked = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.Revoke(ctx, signedBy(ledger, h3Patient, { action: 'revoke', consent: revoke }))));
      expect(revoked.status).to.equal('inactive');
      // Their record at hospital1 is theirs to read (a patient reads their own records under any consent).
      const own = { resourceType: 'Observation', id: 'obs-h3p', versionId: '1', patient: h3Patient.did, securityLabels: [], lastUpdated: '2024-05-02T10:00:00.000Z' };
      await ledger.invoke(H1_GATEWAY, (ctx) => records.Anchor(ctx, JSON.stringify({ ...own, commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT } })));
      const read = { actor: h3Patient.did, actorOrganization: H3, actorAuth: 'did', purpose: 'PATRQT', resource: 'Observation/obs-h3p/_history/1' };
      expect(await evaluate(read)).to.deep.include({ decision: 'permit' });
      // Their DID is not deactivated with the organization's.
      expect((await resolve(h3Patient.did)).didDocumentMetadata.deactivated ?? false).to.equal(false);
    });

    it('an admin cannot bring it back: no second removal, no approval, and the departed admin cannot register a new organization DID', async () => {
      await rejectsWith(propose(H2_ADMIN, H3), 'CONFLICT');
      await rejectsWith(approve(H2_ADMIN, H3), 'CONFLICT');
      await rejectsWith(
        tx(H3_ADMIN, identities, (ctx) => identities.Reactivate(ctx, JSON.stringify({ did: org3.did }))),
        'FORBIDDEN',
      );
      // A remaining admin reactivating the departed organization's DID: not a suspended patient, refused.
      await rejectsWith(
        tx(H1_ADMIN, identities, (ctx) => identities.Reactivate(ctx, JSON.stringify({ did: org3.did }))),
        'CONFLICT',
      );
      expect(await evaluate({ actor: doc3.did, actorOrganization: H3, actorAuth: 'did' })).to.deep.include({ decision: 'deny', reason: 'actor-organization-removed' });
    });

    it('counts only the members that remain: with three left, removing one needs both others; the regulator is never removed', async () => {
      // Three members now: removing Hospital2MSP needs both others (a majority of two is two).
      expect(JSON.parse(await propose(H1_ADMIN, 'Hospital2MSP'))).to.deep.include({ status: 'proposed', required: 2 });
      await rejectsWith(propose(H1_ADMIN, 'RegulatorMSP'), 'FORBIDDEN');
    });
  });

  describe('who cannot remove a member', () => {
    it('one member alone: its proposal stays a proposal, and it cannot approve it again', async () => {
      expect(JSON.parse(await propose(H1_ADMIN, 'Hospital2MSP'))).to.deep.include({ status: 'proposed', required: 2 });
      await rejectsWith(approve(H1_ADMIN, 'Hospital2MSP'), 'ALREADY_EXISTS');
      await rejectsWith(propose(H1_ADMIN, 'Hospital2MSP'), 'ALREADY_EXISTS');
      expect((await status('Hospital2MSP')).member).to.equal(true);
    });

    it('the member being removed: it neither proposes nor approves its own removal, and its approval never counts', async () => {
      await propose(H1_ADMIN, H3);
      await rejectsWith(approve(H3_ADMIN, H3), 'FORBIDDEN');
      await rejectsWith(propose(H3_ADMIN, H3), 'FORBIDDEN');
      expect((await status(H3)).removal.status).to.equal('proposed');
    });

    it('a gateway identity, a non-member, or against the regulator', async () => {
      await rejectsWith(propose(H1_GATEWAY, H3), 'FORBIDDEN');
      await rejectsWith(propose(identity('Clinic9MSP', 'admin'), H3), 'FORBIDDEN');
      await rejectsWith(propose(H1_ADMIN, 'RegulatorMSP'), 'FORBIDDEN');
      await rejectsWith(propose(H1_ADMIN, 'Clinic9MSP'), 'NOT_FOUND');
      await rejectsWith(approve(H2_ADMIN, H3), 'NOT_FOUND');
      await rejectsWith(
        ledger.invoke(H1_ADMIN, (ctx) => identities.ProposeMemberRemoval(ctx, JSON.stringify({ mspId: H3, extra: 1 }))),
        'INVALID',
      );
    });
  });
});
