import { expect } from 'chai';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey, newKey, signJws } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_ADMIN, registerDid, signedBy } from './test-support/registry';

const consents = new ConsentContract();
const identities = new IdentityContract();
const records = new RecordContract();

function consentResource(
  id: string,
  patient: string,
  provision: unknown = { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }] },
) {
  return { resourceType: 'Consent', id, status: 'active', patient: { reference: patient }, provision };
}

describe('hdx.consent', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let doctor: TestKey;

  const sign = (key: TestKey, action: string, consent: unknown, extra: Record<string, unknown> = {}, keyNumber = 1) =>
    signedBy(ledger, key, { action, consent, ...extra }, keyNumber);
  const grant = (jws: string, who = H1_GATEWAY) => ledger.invoke(who, (ctx) => consents.Grant(ctx, jws));
  const update = (jws: string, who = H1_GATEWAY) => ledger.invoke(who, (ctx) => consents.Update(ctx, jws));
  const revoke = (jws: string, who = H1_GATEWAY) => ledger.invoke(who, (ctx) => consents.Revoke(ctx, jws));
  const get = async (id: string) => JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => consents.GetConsent(ctx, id)));
  const evaluate = async (request: Record<string, unknown>, who = H2_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(request))));

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
  });

  it('is the contract hdx.consent', () => {
    expect(consents.getName()).to.equal('hdx.consent');
  });

  describe('Grant', () => {
    it('stores a consent signed by the patient with its proof, and emits an event', async () => {
      const jws = sign(patient, 'grant', consentResource('c1', patient.did));
      const record = JSON.parse(await grant(jws));
      expect(record).to.deep.include({
        id: 'c1',
        patient: patient.did,
        status: 'active',
        version: 1,
        action: 'grant',
        signer: patient.did,
        kid: `${patient.did}#key-1`,
        jws,
        submittedBy: 'Hospital1MSP',
      });
      expect(record.consent).to.deep.equal(consentResource('c1', patient.did));
      expect(await get('c1')).to.deep.equal(record);
      const event = ledger.events.at(-1);
      expect(event?.name).to.equal('hdx.consent');
      expect(JSON.parse(Buffer.from(event?.payload ?? []).toString())).to.deep.include({ action: 'grant', consentId: 'c1', version: 1 });
    });

    it('accepts a registered guardian as signer', async () => {
      const guardian = await registerDid(ledger, 'patient');
      // An admin's guardian needs a second organization (the regulator) before it may sign (#5).
      await ledger.invoke(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did })));
      await rejectsWith(grant(sign(guardian, 'grant', consentResource('c1', patient.did))), 'FORBIDDEN');
      await ledger.invoke(REG_ADMIN, (ctx) => identities.ApproveGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did })));
      const record = JSON.parse(await grant(sign(guardian, 'grant', consentResource('c1', patient.did))));
      expect(record.signer).to.equal(guardian.did);
    });

    it('refuses a signature by anyone else: a hospital cannot forge consent', async () => {
      await rejectsWith(grant(sign(doctor, 'grant', consentResource('c1', patient.did))), 'FORBIDDEN');
      const hospitalKey = newKey();
      const forged = signJws(hospitalKey.privateKey, `${patient.did}#key-1`, {
        action: 'grant',
        consent: consentResource('c1', patient.did),
        nonce: 'n-0000000000000001',
        iat: ledger.clock,
      });
      await rejectsWith(grant(forged), 'UNAUTHENTICATED');
      const unregistered = newKey();
      await rejectsWith(grant(sign(unregistered, 'grant', consentResource('c1', patient.did))), 'UNAUTHENTICATED');
      expect(ledger.keys('hdx.consent')).to.deep.equal([]);
    });

    it('refuses a replayed nonce with CONFLICT', async () => {
      const extra = { nonce: 'same-nonce-0000000001' };
      await grant(sign(patient, 'grant', consentResource('c1', patient.did), extra));
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c2', patient.did), extra)), 'CONFLICT');
    });

    it('refuses an existing id with ALREADY_EXISTS', async () => {
      await grant(sign(patient, 'grant', consentResource('c1', patient.did)));
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c1', patient.did))), 'ALREADY_EXISTS');
    });

    it('refuses a payload whose action is not grant, or with extra fields', async () => {
      await rejectsWith(grant(sign(patient, 'update', consentResource('c1', patient.did))), 'INVALID');
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c1', patient.did), { note: 'x' })), 'INVALID');
    });

    it('refuses a signature made with a rotated-away key', async () => {
      const next = newKey();
      const proof = signedBy(ledger, patient, { action: 'rotate', did: patient.did, publicKeyJwk: next.jwk });
      await ledger.invoke(H1_GATEWAY, (ctx) => identities.RotateKey(ctx, JSON.stringify({ did: patient.did, publicKeyJwk: next.jwk, proof })));
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c1', patient.did))), 'UNAUTHENTICATED');
      await grant(signedBy(ledger, next, { action: 'grant', consent: consentResource('c1', patient.did) }, 2, patient.did));
    });

    it('refuses consents for a deactivated patient or a DID that is not a patient', async () => {
      await rejectsWith(grant(sign(doctor, 'grant', consentResource('c1', doctor.did))), 'INVALID');
      await ledger.invoke(H1_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: patient.did })));
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c1', patient.did))), 'FORBIDDEN');
    });

    const badConsents: Array<[string, (p: string) => unknown]> = [
      ['another resourceType', (p) => ({ ...consentResource('c1', p), resourceType: 'Patient' })],
      ['status draft', (p) => ({ ...consentResource('c1', p), status: 'draft' })],
      ['narrative text (possible PHI)', (p) => ({ ...consentResource('c1', p), text: { div: '<div>Jane</div>' } })],
      ['a patient that is not a DID', (p) => ({ ...consentResource('c1', p), patient: { reference: 'Patient/123' } })],
      ['no provision', (p) => ({ ...consentResource('c1', p), provision: undefined })],
      ['a provision without type', (p) => consentResource('c1', p, { actor: [] })],
      ['an unknown action code', (p) => consentResource('c1', p, { type: 'permit', action: [{ coding: [{ code: 'sell' }] }] })],
      ['a purpose from another system', (p) => consentResource('c1', p, { type: 'permit', purpose: [{ system: 'urn:x', code: 'TREAT' }] })],
      ['a lowercase purpose', (p) => consentResource('c1', p, { type: 'permit', purpose: [{ code: 'treat' }] })],
      ['an actor by name', (p) => consentResource('c1', p, { type: 'permit', actor: [{ reference: { display: 'Dr X' } }] })],
      // #17: Coding.display is free text (possible PHI), refused wherever a coding appears.
      ['a Coding.display in a security label', (p) => consentResource('c1', p, { type: 'permit', securityLabel: [{ code: 'PSY', display: 'psychiatry notes of Jane' }] })],
      ['a Coding.display in a purpose', (p) => consentResource('c1', p, { type: 'permit', purpose: [{ code: 'TREAT', display: 'treatment' }] })],
      ['a Coding.display in the category', (p) => ({ ...consentResource('c1', p), category: [{ coding: [{ code: 'INFA', display: 'information access' }] }] })],
      [
        'an actor with both DID and MSP',
        (p) => consentResource('c1', p, { type: 'permit', actor: [{ reference: { reference: p, identifier: { system: 'urn:hdx:msp', value: 'H' } } }] }),
      ],
      ['a class that is not a FHIR type', (p) => consentResource('c1', p, { type: 'permit', class: [{ code: 'labs' }] })],
      ['a period ending before it starts', (p) => consentResource('c1', p, { type: 'permit', period: { start: '2024-02-01', end: '2024-01-01' } })],
      ['a period starting on a day that does not exist', (p) => consentResource('c1', p, { type: 'permit', period: { start: '2023-02-29' } })],
      ['an empty list', (p) => consentResource('c1', p, { type: 'permit', securityLabel: [] })],
      [
        'nesting deeper than 5',
        (p) =>
          consentResource('c1', p, {
            type: 'permit',
            provision: [{ type: 'deny', provision: [{ type: 'permit', provision: [{ type: 'deny', provision: [{ type: 'permit', provision: [{ type: 'deny' }] }] }] }] }],
          }),
      ],
    ];
    for (const [what, make] of badConsents) {
      it(`refuses ${what} with INVALID`, async () => {
        await rejectsWith(grant(sign(patient, 'grant', make(patient.did))), 'INVALID');
      });
    }

    it('refuses a stale signature (iat) with INVALID', async () => {
      await rejectsWith(grant(sign(patient, 'grant', consentResource('c1', patient.did), { iat: ledger.clock - 3 * 86400 })), 'INVALID');
    });
  });

  describe('Update and Revoke', () => {
    beforeEach(async () => {
      await grant(sign(patient, 'grant', consentResource('c1', patient.did)));
    });

    it('updates with a new signed version and keeps the history', async () => {
      const narrowed = consentResource('c1', patient.did, {
        type: 'permit',
        actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
        purpose: [{ code: 'TREAT' }],
      });
      const record = JSON.parse(await update(sign(patient, 'update', narrowed), H2_GATEWAY));
      expect(record).to.deep.include({ version: 2, action: 'update', status: 'active', submittedBy: 'Hospital2MSP' });
      expect(record.created).to.not.equal(record.updated);
      const history = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => consents.History(ctx, 'c1')));
      expect(history.map((h: { version: number; action: string }) => [h.version, h.action])).to.deep.equal([
        [1, 'grant'],
        [2, 'update'],
      ]);
    });

    it('refuses an update carrying a Coding.display (free text) with INVALID', async () => {
      const withDisplay = consentResource('c1', patient.did, { type: 'deny', class: [{ code: 'Observation', display: 'HIV test of Jane' }] });
      expect(await rejectsWith(update(sign(patient, 'update', withDisplay)), 'INVALID')).to.match(/display is not allowed/);
    });

    it('refuses an update of an unknown consent (NOT_FOUND) or signed before the last change (CONFLICT)', async () => {
      await rejectsWith(update(sign(patient, 'update', consentResource('nope', patient.did))), 'NOT_FOUND');
      const older = sign(patient, 'update', consentResource('c1', patient.did), { iat: ledger.clock - 3600 });
      await rejectsWith(update(older), 'CONFLICT');
    });

    it("refuses to let another patient update or revoke someone's consent", async () => {
      const other = await registerDid(ledger, 'patient');
      await rejectsWith(update(sign(other, 'update', consentResource('c1', other.did))), 'FORBIDDEN');
      await rejectsWith(revoke(sign(other, 'revoke', { resourceType: 'Consent', id: 'c1', patient: { reference: other.did } })), 'FORBIDDEN');
    });

    it('revokes with a patient signature: status inactive, further changes refused', async () => {
      const record = JSON.parse(await revoke(sign(patient, 'revoke', { resourceType: 'Consent', id: 'c1', patient: { reference: patient.did } })));
      expect(record).to.deep.include({ status: 'inactive', version: 2, action: 'revoke' });
      expect(record.consent.status).to.equal('inactive');
      await rejectsWith(revoke(sign(patient, 'revoke', { resourceType: 'Consent', id: 'c1', patient: { reference: patient.did } })), 'CONFLICT');
      await rejectsWith(update(sign(patient, 'update', consentResource('c1', patient.did))), 'CONFLICT');
    });

    it('cannot be revoked silently by a hospital (no signature, or its own)', async () => {
      await rejectsWith(revoke('not-a-jws'), 'INVALID');
      await rejectsWith(revoke(sign(doctor, 'revoke', { resourceType: 'Consent', id: 'c1', patient: { reference: patient.did } })), 'FORBIDDEN');
      expect((await get('c1')).status).to.equal('active');
    });
  });

  describe('ListByPatient', () => {
    it("pages through a patient's consents with a bookmark", async () => {
      for (const id of ['c3', 'c1', 'c2']) {
        await grant(sign(patient, 'grant', consentResource(id, patient.did)));
      }
      const first = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '2', '')));
      expect(first.consents.map((c: { id: string }) => c.id)).to.deep.equal(['c1', 'c2']);
      expect(first.bookmark).to.not.equal('');
      const second = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '2', first.bookmark)));
      expect(second.consents.map((c: { id: string }) => c.id)).to.deep.equal(['c3']);
      expect(second.bookmark).to.equal('');
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '0', '')),
        'INVALID',
      );
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '1000', '')),
        'INVALID',
      );
    });
  });

  describe('EvaluateAccess', () => {
    const base = () => ({ patient: patient.did, actor: doctor.did, actorOrganization: 'Hospital2MSP', custodian: 'Hospital1MSP', purpose: 'TREAT', resourceType: 'Observation' });

    it('denies without consent and permits after a signed grant, naming the consent', async () => {
      expect(await evaluate(base())).to.deep.equal({ decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false });
      await grant(sign(patient, 'grant', consentResource('c1', patient.did)));
      expect(await evaluate(base())).to.deep.equal({ decision: 'permit', consents: ['c1'], reason: 'consent-permit', breakGlass: false });
      await revoke(sign(patient, 'revoke', { resourceType: 'Consent', id: 'c1', patient: { reference: patient.did } }));
      expect((await evaluate(base())).decision).to.equal('deny');
    });

    it('matches an actor given by organization DID', async () => {
      const org2 = await registerDid(ledger, 'organization', H2_ADMIN);
      await grant(sign(patient, 'grant', consentResource('c1', patient.did, { type: 'permit', actor: [{ reference: { reference: org2.did } }] })));
      expect((await evaluate(base())).decision).to.equal('permit');
    });

    it('takes patient, custodian, type and labels from the anchor when a resource is named', async () => {
      const value = Buffer.alloc(32, 9).toString('base64url');
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        records.Anchor(
          ctx,
          JSON.stringify({
            resourceType: 'Observation',
            id: 'o1',
            versionId: '1',
            patient: patient.did,
            securityLabels: ['PSY'],
            lastUpdated: '2024-01-01T00:00:00Z',
            commitment: { alg: 'HMAC-SHA-256', value },
          }),
        ),
      );
      await grant(
        sign(
          patient,
          'grant',
          consentResource('c1', patient.did, {
            type: 'permit',
            actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
            provision: [{ type: 'deny', securityLabel: [{ code: 'PSY' }] }],
          }),
        ),
      );
      const request = { actor: doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT', resource: 'Observation/o1/_history/1' };
      expect(await evaluate(request)).to.deep.equal({ decision: 'deny', consents: ['c1'], reason: 'consent-deny', breakGlass: false });
      await rejectsWith(evaluate({ ...request, custodian: 'Hospital2MSP' }), 'INVALID');
      await rejectsWith(evaluate({ ...request, resource: 'Observation/o2/_history/1' }), 'NOT_FOUND');
    });

    it('denies an actor whose DID is deactivated or belongs to another organization', async () => {
      await grant(sign(patient, 'grant', consentResource('c1', patient.did, { type: 'permit' })));
      expect(await evaluate({ ...base(), actorOrganization: 'Hospital1MSP' })).to.deep.include({ decision: 'deny', reason: 'actor-organization-mismatch' });
      await ledger.invoke(H2_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: doctor.did })));
      expect(await evaluate(base())).to.deep.include({ decision: 'deny', reason: 'actor-deactivated' });
    });

    it('permits break-glass and flags it; the patient may refuse it explicitly', async () => {
      expect(await evaluate({ ...base(), purpose: 'ETREAT' })).to.deep.equal({ decision: 'permit', consents: [], reason: 'break-glass', breakGlass: true });
      await grant(sign(patient, 'grant', consentResource('no-etreat', patient.did, { type: 'deny', purpose: [{ code: 'ETREAT' }] })));
      expect(await evaluate({ ...base(), purpose: 'ETREAT' })).to.deep.equal({ decision: 'deny', consents: ['no-etreat'], reason: 'consent-deny', breakGlass: true });
    });

    it('applies the custodian default to pseudonymous patients (no consents possible)', async () => {
      const pseudonym = `pseudonym:${'a'.repeat(64)}`;
      const actor = (await registerDid(ledger, 'practitioner')).did;
      expect((await evaluate({ ...base(), patient: pseudonym, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', actor }, H1_GATEWAY)).reason).to.equal('custodian-treatment');
    });

    it('refuses malformed requests with INVALID', async () => {
      await rejectsWith(evaluate({ ...base(), purpose: 'treat' }), 'INVALID');
      await rejectsWith(evaluate({ ...base(), actor: 'dr-house' }), 'INVALID');
      await rejectsWith(evaluate({ ...base(), action: 'sell' }), 'INVALID');
      await rejectsWith(evaluate({ actor: doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT' }), 'INVALID');
      await rejectsWith(evaluate({ ...base(), extra: 1 }), 'INVALID');
      await rejectsWith(evaluate({ ...base(), resource: 'Observation/1' }), 'INVALID');
    });

    it('is deterministic: the same state gives the same bytes', async () => {
      await grant(sign(patient, 'grant', consentResource('c1', patient.did)));
      const a = await ledger.invoke(H2_GATEWAY, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(base())));
      const b = await ledger.invoke(identity('Hospital1MSP', 'gateway'), (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(base())));
      expect(a).to.equal(b);
    });
  });
});
