/**
 * Issue 9, finding 7: any practitioner registered DIDs of any kind through `POST /did` (at the regulator,
 * auditor DIDs); anyone resolved a patient's DID document (registering hospital, guardians) without a
 * token; anyone authenticated listed any patient's consents.
 *
 * Attackers: a practitioner of hospital1 and one of the regulator (identity-provider tokens, role
 * practitioner); an outsider without a token; another patient; another member's practitioner without a
 * relation to the patient. Secure outcome: only admins register DIDs (auditors only by the regulator's
 * admin); `GET /did` and Consent reads need authentication and a relation to the patient.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as path from 'node:path';
import { expect } from 'chai';
import { generateDidKey, registrationRequest, signConsent } from '@hdx/gateway';
import { call, type Gw, staffToken } from '../../support/fhir-client';
import { MSP_SYSTEM, PURPOSE_SYSTEM } from '../../support/jose';
import { didToken, h1Staff, newPatient, type PatientParty, REFUSED, resourcesOf, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 7: DID registration by admins only; DID documents and consents only for related parties', function () {
  let env: SecurityEnv;
  let victim: PatientParty;
  let other: PatientParty;
  const consentId = '7b3c2d1e-0f4a-4b5c-8d6e-9f0a1b2c3d4e';
  const root = (gw: Gw): string => gw.config.baseUrl.replace(/\/fhir$/, '');
  const register = (gw: Gw, org: string, kind: string, role: string) =>
    call(gw, 'POST', `${root(gw)}/did`, staffToken(gw, org, { role, scope: 'user/*.*' }), registrationRequest(generateDidKey().privateJwk, kind), 'application/json');

  before(async () => {
    env = await securityEnv();
    victim = await newPatient(env, 'Victim-F7');
    other = await newPatient(env, 'Other-F7');
    // A sensitive consent: "no research use of my psychiatric data".
    const consent = {
      resourceType: 'Consent',
      id: consentId,
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: victim.did },
      provision: {
        type: 'deny',
        actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: 'RegulatorMSP' } } }],
        purpose: [{ system: PURPOSE_SYSTEM, code: 'HRESCH' }],
        securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }],
      },
    };
    const granted = await call(
      env.h1,
      'POST',
      '/Consent',
      didToken(victim.key.privateJwk, env.h1, 'patient/Consent.write', 'PATRQT'),
      signConsent(victim.key.privateJwk, consent, 'grant'),
      'application/jose',
    );
    expect(granted.status, show(granted)).to.equal(201);
  });

  it('a practitioner (identity-provider role practitioner) registers no DID of any kind', async () => {
    for (const kind of ['device', 'practitioner', 'patient', 'system']) {
      const res = await register(env.h1, 'hospital1', kind, 'practitioner');
      expect(res.status, `a hospital1 practitioner registered a ${kind} DID: ${show(res)}`).to.equal(403);
    }
  });

  it('at the regulator, a practitioner cannot mint an auditor DID (only the regulator’s admin may)', async () => {
    const res = await register(env.reg, 'regulator', 'auditor', 'practitioner');
    expect(res.status, `a regulator practitioner minted an AUDITOR DID: ${show(res)}`).to.equal(403);
  });

  it('guard (holds on main): a hospital admin cannot register an auditor DID', async () => {
    const res = await register(env.h1, 'hospital1', 'auditor', 'admin');
    expect(res.status, show(res)).to.be.within(400, 403);
  });

  it('guard (holds on main): the regulator’s admin registers an auditor, a hospital admin a patient', async () => {
    expect((await register(env.reg, 'regulator', 'auditor', 'admin')).status).to.equal(201);
    expect((await register(env.h1, 'hospital1', 'patient', 'admin')).status).to.equal(201);
  });

  it('GET /did/<patient> without a token: 401, nothing about the patient', async () => {
    const res = await call(env.h1, 'GET', `${root(env.h1)}/did/${victim.did}`, undefined);
    expect(res.text, 'LEAK: the patient’s registering hospital is public').to.not.include('Hospital1MSP');
    expect(res.status, `unauthenticated DID resolution: ${show(res)}`).to.equal(401);
  });

  it('GET /did/<patient> by another patient or another member’s practitioner: refused', async () => {
    const byPatient = await call(env.h1, 'GET', `${root(env.h1)}/did/${victim.did}`, didToken(other.key.privateJwk, env.h1, 'patient/*.read', 'PATRQT'));
    expect(byPatient.text, 'LEAK: another patient resolved the victim’s DID document').to.not.include('Hospital1MSP');
    expect([401, 403, 404], show(byPatient)).to.include(byPatient.status);
    const byH2 = await call(env.h2, 'GET', `${root(env.h2)}/did/${victim.did}`, didToken(env.drH2.privateJwk, env.h2, 'user/*.read', 'TREAT'));
    expect(byH2.text, 'LEAK: an unrelated practitioner resolved the victim’s DID document').to.not.include('Hospital1MSP');
    expect([401, 403, 404], show(byH2)).to.include(byH2.status);
  });

  it('guard: the patient and the custodian’s staff resolve the patient’s DID', async () => {
    const own = await call(env.h1, 'GET', `${root(env.h1)}/did/${victim.did}`, didToken(victim.key.privateJwk, env.h1, 'patient/*.read', 'PATRQT'));
    expect(own.status, show(own)).to.equal(200);
    const staff = await call(env.h1, 'GET', `${root(env.h1)}/did/${victim.did}`, h1Staff(env));
    expect(staff.status, show(staff)).to.equal(200);
  });

  it('another patient cannot list or read the victim’s consents', async () => {
    const list = await call(env.h1, 'GET', `/Consent?patient=${victim.did}`, didToken(other.key.privateJwk, env.h1, 'patient/Consent.read', 'PATRQT'));
    expect(list.text, `LEAK: another patient listed the victim's consents: ${show(list)}`).to.not.include(consentId);
    expect([401, 403], show(list)).to.include(list.status);
    const one = await call(env.h1, 'GET', `/Consent/${consentId}`, didToken(other.key.privateJwk, env.h1, 'patient/Consent.read', 'PATRQT'));
    expect(one.text, 'LEAK: another patient read the victim’s consent').to.not.include('PSY');
    expect(REFUSED, show(one)).to.include(one.status);
  });

  it('another member’s practitioner without a relation cannot list or read the patient’s consents (at its own gateway either)', async () => {
    for (const gw of [env.h1, env.h2]) {
      const list = await call(gw, 'GET', `/Consent?patient=${victim.did}`, didToken(env.drH2.privateJwk, gw, 'user/Consent.read', 'TREAT'));
      expect(list.text, `LEAK: a Hospital2 practitioner listed the victim's consents at ${gw.config.mspId}: ${show(list)}`).to.not.include(consentId);
      expect([401, 403], show(list)).to.include(list.status);
      const one = await call(gw, 'GET', `/Consent/${consentId}`, didToken(env.drH2.privateJwk, gw, 'user/Consent.read', 'TREAT'));
      expect(one.text, 'LEAK: a Hospital2 practitioner read the victim’s consent').to.not.include('PSY');
      expect(REFUSED, show(one)).to.include(one.status);
    }
  });

  it('guard (holds on main): the patient lists their own consents', async () => {
    const own = await call(env.h1, 'GET', `/Consent?patient=${victim.did}`, didToken(victim.key.privateJwk, env.h1, 'patient/Consent.read', 'PATRQT'));
    expect(own.status, show(own)).to.equal(200);
    expect(resourcesOf(own.body).map((c) => c.id)).to.include(consentId);
  });

  it("a staff DID tied to an IdP subject is refused to any other subject's token, and off-boarding the subject deactivates it", async () => {
    const key = generateDidKey();
    const registration = { ...(registrationRequest(key.privateJwk, 'practitioner') as Record<string, unknown>), subject: 'dr-jones-f07' };
    const admin = staffToken(env.h1, 'hospital1', { role: 'admin', scope: 'user/*.*' });
    const registered = await call(env.h1, 'POST', `${root(env.h1)}/did`, admin, registration, 'application/json');
    expect(registered.status, show(registered)).to.equal(201);
    expect(JSON.stringify(registered.body), 'only a keyed hash of the subject is on the ledger').to.not.include('dr-jones');
    const asOther = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, staffToken(env.h1, 'hospital1', { did: key.did, subject: 'staff-hospital1' }));
    expect(asOther.status, `another IdP subject used the staff DID: ${show(asOther)}`).to.equal(401);
    const asHolder = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, staffToken(env.h1, 'hospital1', { did: key.did, subject: 'dr-jones-f07' }));
    expect(asHolder.status, show(asHolder)).to.equal(200);
    // Off-boarding through the CLI, as the hospital's admin would.
    // (Asynchronously: the gateway under test serves the CLI's request from this very process.)
    const run = await promisify(execFile)(process.execPath, [
      path.join(__dirname, '..', '..', '..', 'gateway', 'dist', 'cli.js'),
      'offboard',
      '--gateway',
      root(env.h1),
      '--token',
      admin,
      '--subject',
      'dr-jones-f07',
    ]);
    expect(JSON.parse(run.stdout).deactivated).to.deep.equal([key.did]);
    const resolved = await call(env.h1, 'GET', `${root(env.h1)}/did/${key.did}`, h1Staff(env));
    expect(resolved.body?.hdx?.status, show(resolved)).to.equal('deactivated');
  });
});
