/**
 * The security review's chaincode PoCs F1–F6 (shared/reviews/security-poc/chaincode-zz-review-poc.test.ts)
 * turned around: the same attacks on the real contracts and the in-memory ledger (which now keeps
 * Fabric's unbounded-bookmark semantics, no patching needed), each asserting that the attack fails.
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_GATEWAY, REG_ADMIN, registerDid, registrationJson, signedBy } from './test-support/registry';
import { newKey } from './test-support/keys';

const audit = new AuditContract();
const consents = new ConsentContract();
const identities = new IdentityContract();
const records = new RecordContract();
const COMMITMENT = Buffer.alloc(32, 7).toString('base64url');
const REG_GATEWAY = identity('RegulatorMSP', 'gateway');
const STRANGER = `did:hdx:${'z'.repeat(43)}`;

describe('security review PoCs F1–F6, turned around (chaincode)', () => {
  let ledger: FakeLedger;
  let patientA: TestKey;
  let patientB: TestKey;
  let h1Doctor: TestKey;
  let h2Doctor: TestKey;

  const anchor = (patient: string, id: string, who = H1_GATEWAY) =>
    ledger.invoke(who, (ctx) =>
      records.Anchor(
        ctx,
        JSON.stringify({
          resourceType: 'Observation',
          id,
          versionId: '1',
          patient,
          securityLabels: [],
          lastUpdated: '2024-05-01T10:00:00.000Z',
          commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT },
        }),
      ),
    );
  const authorize = async (req: Record<string, unknown>, who = H2_GATEWAY) => JSON.parse(await ledger.invoke(who, (ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify(req))));
  const evaluate = async (req: Record<string, unknown>, who = H2_GATEWAY) => JSON.parse(await ledger.invoke(who, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(req))));
  const resolve = async (did: string) => JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => identities.Resolve(ctx, did)));
  const permitH2 = (patient: string, id: string) => ({
    resourceType: 'Consent',
    id,
    status: 'active',
    patient: { reference: patient },
    provision: { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }] },
  });

  beforeEach(async () => {
    ledger = new FakeLedger();
    patientA = await registerDid(ledger, 'patient');
    patientB = await registerDid(ledger, 'patient');
    h1Doctor = await registerDid(ledger, 'practitioner');
    h2Doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    await anchor(patientA.did, 'obs-a');
    await anchor(patientB.did, 'obs-b');
  });

  it('F1: a member naming the PATIENT DID as a delegated actor is denied, and with any auth from another MSP too', async () => {
    const delegated = await authorize({ actor: patientA.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' });
    expect(delegated).to.deep.include({ decision: 'deny', reason: 'actor-organization-mismatch' });
    for (const actorAuth of ['did', 'idp', 'delegated']) {
      const d = await authorize({ actor: patientA.did, actorOrganization: 'Hospital2MSP', actorAuth, purpose: 'PATRQT', resource: 'Observation/obs-a/_history/1' });
      expect(d.decision, actorAuth).to.equal('deny');
    }
    // Even under its own MSP, an organization cannot act for a patient (delegation is for practitioners only).
    const own = await authorize(
      { actor: patientA.did, actorOrganization: 'Hospital1MSP', actorAuth: 'delegated', purpose: 'PATRQT', resource: 'Observation/obs-a/_history/1' },
      H1_GATEWAY,
    );
    expect(own).to.deep.include({ decision: 'deny', reason: 'delegation-not-allowed' });
    // And an unregistered hdx_user is refused (not "taken as stated").
    expect(await authorize({ actor: STRANGER, actorOrganization: 'Hospital2MSP', purpose: 'ETREAT', resource: 'Observation/obs-a/_history/1' })).to.deep.include({
      decision: 'deny',
      reason: 'actor-unregistered',
    });
  });

  it('F2: another patient of the custodian gets no custodian-treatment and cannot break the glass', async () => {
    for (const actorAuth of ['did', 'idp']) {
      const d = await evaluate({ actor: patientB.did, actorOrganization: 'Hospital1MSP', actorAuth, purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' }, H1_GATEWAY);
      expect(d).to.deep.include({ decision: 'deny', reason: 'purpose-not-allowed' });
      const own = await evaluate({ actor: patientB.did, actorOrganization: 'Hospital1MSP', actorAuth, purpose: 'PATRQT', resource: 'Observation/obs-a/_history/1' }, H1_GATEWAY);
      expect(own).to.deep.include({ decision: 'deny', reason: 'no-permit' });
    }
    const bg = await evaluate({ actor: patientB.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'ETREAT', resource: 'Observation/obs-a/_history/1' });
    expect(bg).to.deep.include({ decision: 'deny', reason: 'purpose-not-allowed', breakGlass: true });
    // The practitioner still gets both.
    expect(
      (await evaluate({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' }, H1_GATEWAY)).reason,
    ).to.equal('custodian-treatment');
    expect((await evaluate({ actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'ETREAT', resource: 'Observation/obs-a/_history/1' })).reason).to.equal(
      'break-glass',
    );
  });

  it('F3: a hospital admin cannot make itself a guardian and forge a consent', async () => {
    // A practitioner DID the admin controls is no guardian at all (guardians are patient-kind DIDs).
    await rejectsWith(
      ledger.invoke(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: patientA.did, guardian: h1Doctor.did }))),
      'INVALID',
    );
    // A patient-kind DID the admin controls is only PROPOSED, visible in the resolution and as an event.
    const puppet = await registerDid(ledger, 'patient');
    await ledger.invoke(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: patientA.did, guardian: puppet.did })));
    const event = ledger.events.at(-1);
    expect(event?.name).to.equal('hdx.identity');
    expect(JSON.parse(Buffer.from(event?.payload ?? []).toString())).to.deep.include({ action: 'propose-add-guardian', did: patientA.did, guardian: puppet.did });
    const resolution = await resolve(patientA.did);
    expect(resolution.hdx.guardians).to.deep.equal([]);
    expect(resolution.hdx.pendingGuardians).to.have.length(1);
    expect(resolution.hdx.pendingGuardians[0]).to.deep.include({ guardian: puppet.did, change: 'add', proposedBy: 'Hospital1MSP' });
    // The forged consent is refused, and nothing permits Hospital2.
    const jws = signedBy(ledger, puppet, { action: 'grant', consent: permitH2(patientA.did, 'forged-1') });
    await rejectsWith(
      ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, jws)),
      'FORBIDDEN',
    );
    expect(await evaluate({ actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' })).to.deep.include({
      decision: 'deny',
      reason: 'no-permit',
    });
    // The proposing organization cannot approve its own proposal; only the regulator's admin can.
    await rejectsWith(
      ledger.invoke(H1_ADMIN, (ctx) => identities.ApproveGuardian(ctx, JSON.stringify({ patient: patientA.did, guardian: puppet.did }))),
      'FORBIDDEN',
    );
    await rejectsWith(
      ledger.invoke(REG_GATEWAY, (ctx) => identities.ApproveGuardian(ctx, JSON.stringify({ patient: patientA.did, guardian: puppet.did }))),
      'FORBIDDEN',
    );
  });

  it('F4: an admin deactivation only suspends: the patient can still revoke, and the permit stops permitting at once', async () => {
    await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patientA, { action: 'grant', consent: permitH2(patientA.did, 'c-1') })));
    const request = { actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' };
    expect((await evaluate(request)).reason).to.equal('consent-permit');
    await ledger.invoke(H1_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: patientA.did })));
    expect((await resolve(patientA.did)).hdx.status).to.equal('suspended');
    expect(await evaluate(request)).to.deep.include({ decision: 'deny', reason: 'no-permit' });
    const revoke = signedBy(ledger, patientA, { action: 'revoke', consent: { resourceType: 'Consent', id: 'c-1', patient: { reference: patientA.did } } });
    const revoked = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.Revoke(ctx, revoke)));
    expect(revoked).to.deep.include({ status: 'inactive', signer: patientA.did });
    // A suspended patient signs nothing else (no new grants).
    await rejectsWith(
      ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patientA, { action: 'grant', consent: permitH2(patientA.did, 'c-2') }))),
      'FORBIDDEN',
    );
  });

  it("F5: LocateRecords refuses a bookmark outside the patient's prefix (Fabric semantics, no clamping in the fake)", async () => {
    const [low, high] = [patientA, patientB].sort((x, y) => (x.did < y.did ? -1 : 1)) as [TestKey, TestKey];
    const locate = (bookmark: string) =>
      ledger.invoke(H2_GATEWAY, (ctx) =>
        records.LocateRecords(
          ctx,
          JSON.stringify({ patient: high.did, actor: high.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT', ...(bookmark ? { bookmark } : {}) }),
        ),
      );
    expect(await rejectsWith(locate('\u0000hdx.anchor~patient\u0000'), 'INVALID')).to.match(/bookmark/);
    expect(await rejectsWith(locate(`\u0000hdx.anchor~patient\u0000${low.did}\u0000`), 'INVALID')).to.match(/bookmark/);
    // Its own listing (no bookmark) has only its own record.
    const own = JSON.parse(await locate(''));
    const ids = own.custodians.flatMap((c: { resources: Array<{ id: string }> }) => c.resources.map((x) => x.id));
    expect(ids).to.deep.equal([high === patientA ? 'obs-a' : 'obs-b']);
  });

  it("F6: no member mints or borrows the auditor read-all (auditors are registered only by the regulator's admin or gateway, which serves its IdP admins only)", async () => {
    for (const other of [H1_GATEWAY, H2_GATEWAY]) {
      await rejectsWith(
        ledger.invoke(other, (ctx) => identities.Register(ctx, registrationJson(ledger, newKey(), 'auditor'))),
        'FORBIDDEN',
      );
    }
    const auditor = await registerDid(ledger, 'auditor', REG_ADMIN);
    await authorize({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' }, H1_GATEWAY);
    await rejectsWith(
      ledger.invoke(H2_GATEWAY, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ requester: auditor.did }))),
      'FORBIDDEN',
    );
    // A non-auditor requester never widens a read: a practitioner named as requester sees only its own actions.
    await rejectsWith(
      ledger.invoke(REG_GATEWAY, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ requester: h2Doctor.did }))),
      'FORBIDDEN',
    );
    const mine = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ actor: h2Doctor.did, requester: h2Doctor.did }))));
    expect(mine.entries).to.deep.equal([]);
    // The auditor through the regulator's own gateway keeps its read-all (the gateway refuses delegated callers).
    const all = JSON.parse(await ledger.invoke(REG_GATEWAY, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ requester: auditor.did }))));
    expect(all.entries.map((e: { patient: string }) => e.patient)).to.include(patientA.did);
  });

  it('F2b: a consent permitting an organization lets its staff in, never its other patients', async () => {
    await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patientA, { action: 'grant', consent: permitH2(patientA.did, 'org-permit') })));
    const h2Patient = await registerDid(ledger, 'patient', H2_GATEWAY);
    const byPatient = JSON.parse(
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        consents.EvaluateAccess(
          ctx,
          JSON.stringify({ actor: h2Patient.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'PATRQT', resource: 'Observation/obs-a/_history/1' }),
        ),
      ),
    );
    expect(byPatient).to.deep.include({ decision: 'deny', reason: 'no-permit' });
    const byDoctor = JSON.parse(
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        consents.EvaluateAccess(
          ctx,
          JSON.stringify({ actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'TREAT', resource: 'Observation/obs-a/_history/1' }),
        ),
      ),
    );
    expect(byDoctor).to.deep.include({ decision: 'permit', reason: 'consent-permit', consents: ['org-permit'] });
  });
});
