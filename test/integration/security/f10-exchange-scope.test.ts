/**
 * Issue 9, finding 10: `$exchange` needed only Patient read and then fetched every type from the
 * custodians with a hard-coded `user/*.read` organization token.
 *
 * Attacker: a Hospital2 practitioner the patient allowed (consent permit), holding a token scoped to the
 * Patient resource only, asking its own gateway to fetch from hospital1. Secure outcome: only what the
 * token's scopes allow comes back (the Patient; no Observation).
 */
import { expect } from 'chai';
import { signConsent } from '@hdx/gateway';
import { call } from '../../support/fhir-client';
import { permitOrganizationConsent } from '../../support/jose';
import { didToken, newObservation, newPatient, type PatientParty, resourcesOf, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 10: $exchange passes the user’s scopes on', function () {
  let env: SecurityEnv;
  let patient: PatientParty;
  let obs: string;
  const exchange = (scope: string, query = '') => call(env.h2, 'GET', `/Patient/$exchange?patient=${patient.did}${query}`, didToken(env.drH2.privateJwk, env.h2, scope, 'TREAT'));
  const types = (bundle: unknown): string[] => resourcesOf(bundle).map((r) => r.resourceType);

  before(async () => {
    env = await securityEnv();
    patient = await newPatient(env, 'Exchange-F10');
    obs = await newObservation(env, patient.patientId, { valueString: 'F10 result' });
    const consent = permitOrganizationConsent('a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d', patient.did, 'Hospital2MSP', 'TREAT');
    const granted = await call(
      env.h1,
      'POST',
      '/Consent',
      didToken(patient.key.privateJwk, env.h1, 'patient/Consent.write', 'PATRQT'),
      signConsent(patient.key.privateJwk, consent, 'grant'),
      'application/jose',
    );
    expect(granted.status, show(granted)).to.equal(201);
  });

  it('guard (holds on main): with user/*.read the consented Observation is exchanged', async () => {
    const res = await exchange('user/*.read');
    expect(res.status, show(res)).to.equal(200);
    expect(
      resourcesOf(res.body)
        .filter((r) => r.resourceType === 'Observation')
        .map((r) => r.id),
    ).to.include(obs);
  });

  it('with user/Patient.read only the Patient comes back, no Observation', async () => {
    const res = await exchange('user/Patient.read');
    expect(res.text, `SCOPE WIDENED: an Observation came back to a user/Patient.read token (${types(res.body).join(', ')})`).to.not.include('F10 result');
    expect(res.status, show(res)).to.equal(200);
    expect(types(res.body)).to.not.include('Observation');
    expect(types(res.body)).to.include('Patient');
  });

  it('with patient/Patient.read (SMART patient context) no Observation comes back either, even when asked for by _type', async () => {
    for (const q of ['', '&_type=Observation']) {
      const res = await exchange('patient/Patient.read', q);
      expect(res.text, `SCOPE WIDENED: an Observation came back to a patient/Patient.read token (${q || 'no _type'}): ${types(res.body).join(', ')}`).to.not.include('F10 result');
      expect(types(res.body)).to.not.include('Observation');
    }
  });
});
