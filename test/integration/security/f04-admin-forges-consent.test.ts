/**
 * Issue 9, finding 4: a hospital admin can forge or freeze consent. AddGuardian without the patient's
 * proof, then sign consents as that guardian; Deactivate the patient's DID, after which the patient can
 * no longer revoke and their permits stay in force.
 *
 * Attacker: hospital1's admin acting alone, with the admin identity of the hospital's MSP (what
 * `hdx.identity` accepts without the patient's proof), and a practitioner DID the admin controls.
 *
 * Assumptions about the target (docs/CONTRACT): an admin's AddGuardian without the patient's proof is at
 * most *proposed* — it may also be refused outright — and is shown to the patient in their DID resolution
 * (`hdx.pendingGuardians`, not `hdx.guardians`); it only takes effect after a second organization approves,
 * which these tests deliberately do not exercise (the approval transaction's shape is the lead's). An
 * admin's Deactivate of a patient without proof suspends (`hdx.status` "suspended"): the patient's permits
 * stop permitting and the patient's own signed revoke is still accepted. The signed revoke is the
 * authority; if the gateway does not accept a suspended patient's bearer token, the test hands the same
 * patient-signed JWS to another member's gateway (the regulator's staff), as a patient could.
 */
import { expect } from 'chai';
import { generateDidKey, signConsent } from '@hdx/gateway';
import { call, registerDid, staffToken, viewHolds } from '../../support/fhir-client';
import { OrgClient } from '../../support/ledger';
import { permitOrganizationConsent } from '../../support/jose';
import { didToken, h1Staff, newObservation, newPatient, type PatientParty, REFUSED, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 4: a hospital admin alone can neither forge nor freeze a patient’s consent', function () {
  let env: SecurityEnv;
  let admin1: OrgClient;
  let victim: PatientParty;
  let victimObs: string;
  let frozen: PatientParty;
  let frozenObs: string;
  const adminsPuppet = generateDidKey();
  /** Set when the chaincode refused the admin's AddGuardian outright (then nothing is pending either). */
  let addRefused = false;
  const h2Read = (id: string) => call(env.h1, 'GET', `/Observation/${id}`, didToken(env.drH2.privateJwk, env.h1, 'user/*.read', 'TREAT'));
  const frozenConsent = () => permitOrganizationConsent('9a1e0f3c-4b2d-4e6f-8a7c-0d1e2f3a4b5c', frozen.did, 'Hospital2MSP', 'TREAT') as { id: string } & Record<string, unknown>;

  before(async () => {
    env = await securityEnv();
    admin1 = OrgClient.admin('hospital1');
    victim = await newPatient(env, 'Victim-F4');
    victimObs = await newObservation(env, victim.patientId, { valueString: 'F4 guarded result' });
    frozen = await newPatient(env, 'Frozen-F4');
    frozenObs = await newObservation(env, frozen.patientId, { valueString: 'F4 frozen result' });
    await registerDid(env.h1, 'hospital1', 'practitioner', adminsPuppet);
  });

  after(() => admin1?.close());

  it('an admin-added guardian without the patient’s proof is not effective: a consent it signs is refused and grants nothing', async () => {
    let added: unknown;
    try {
      added = await admin1.submit('hdx.identity', 'AddGuardian', JSON.stringify({ patient: victim.did, guardian: adminsPuppet.did }));
    } catch (err) {
      added = err; // refused outright: also secure
      addRefused = true;
    }
    const forged = permitOrganizationConsent('5c2d8e1f-0a3b-4c5d-9e6f-7a8b9c0d1e2f', victim.did, 'Hospital2MSP', 'TREAT');
    const res = await call(
      env.h1,
      'POST',
      '/Consent',
      didToken(adminsPuppet.privateJwk, env.h1, 'user/Consent.write', 'TREAT'),
      signConsent(adminsPuppet.privateJwk, forged, 'grant'),
      'application/jose',
    );
    expect(res.status, `FORGED CONSENT accepted, signed by a guardian the admin added alone (AddGuardian → ${JSON.stringify(added).slice(0, 200)}): ${show(res)}`).to.be.within(
      400,
      499,
    );
    const read = await h2Read(victimObs);
    expect(read.text, 'LEAK: Hospital2 read the record under a consent forged by hospital1’s admin').to.not.include('F4 guarded result');
    expect(REFUSED, show(read)).to.include(read.status);
  });

  it('the patient sees the proposed guardian as pending in their own DID resolution, not as a guardian', async () => {
    const res = await call(
      env.h1,
      'GET',
      `${env.h1.config.baseUrl.replace(/\/fhir$/, '')}/did/${victim.did}`,
      didToken(victim.key.privateJwk, env.h1, 'patient/*.read', 'PATRQT'),
      undefined,
      'application/json',
    );
    expect(res.status, show(res)).to.equal(200);
    expect(res.body.hdx.guardians ?? [], 'the admin’s guardian is effective without the patient’s proof or a second organization').to.not.include(adminsPuppet.did);
    if (!addRefused) expect(res.body.hdx.pendingGuardians ?? [], 'the admin’s proposal is not visible to the patient (hdx.pendingGuardians)').to.include(adminsPuppet.did);
  });

  it('after an admin deactivates the patient without proof, the patient’s permit stops permitting and the patient can still revoke', async () => {
    const consent = frozenConsent();
    const granted = await call(
      env.h1,
      'POST',
      '/Consent',
      didToken(frozen.key.privateJwk, env.h1, 'patient/Consent.write', 'PATRQT'),
      signConsent(frozen.key.privateJwk, consent, 'grant'),
      'application/jose',
    );
    expect(granted.status, show(granted)).to.equal(201);
    const before = await h2Read(frozenObs);
    expect(before.status, `precondition: Hospital2 reads under the patient's permit: ${show(before)}`).to.equal(200);

    const { blockNumber } = await admin1.submitTx('hdx.identity', 'Deactivate', JSON.stringify({ did: frozen.did }));
    // The custodian decides on its ledger view, which may be one block behind its peer for a moment.
    await viewHolds(env.h1, blockNumber);

    const whileSuspended = await h2Read(frozenObs);
    expect(whileSuspended.text, 'FROZEN CONSENT: the suspended patient’s permit still releases the record to Hospital2').to.not.include('F4 frozen result');
    expect(REFUSED, show(whileSuspended)).to.include(whileSuspended.status);

    const revokeJws = signConsent(frozen.key.privateJwk, consent, 'revoke');
    let revoked = await call(env.h1, 'PUT', `/Consent/${consent.id}`, didToken(frozen.key.privateJwk, env.h1, 'patient/Consent.write', 'PATRQT'), revokeJws, 'application/jose');
    if (revoked.status === 401) {
      // The patient's bearer token is not accepted while suspended: the patient's signed revoke goes
      // through another member's gateway instead.
      revoked = await call(
        env.reg,
        'PUT',
        `/Consent/${consent.id}`,
        staffToken(env.reg, 'regulator', { scope: 'user/Consent.write', purpose: 'HOPERAT' }),
        revokeJws,
        'application/jose',
      );
    }
    expect(revoked.status, `the patient could not revoke after the admin deactivated their DID: ${show(revoked)}`).to.equal(200);
    expect(revoked.body.status).to.equal('inactive');
  });

  it('the admin’s deactivation is a reversible suspension, visible to custodian staff', async () => {
    const res = await call(env.h1, 'GET', `${env.h1.config.baseUrl.replace(/\/fhir$/, '')}/did/${frozen.did}`, h1Staff(env), undefined, 'application/json');
    expect(res.status, show(res)).to.equal(200);
    expect(res.body.hdx.status, 'the admin destroyed the patient’s DID instead of suspending it').to.equal('suspended');
  });
});
