/**
 * Issue 9, finding 9: consent terms ignored. `dataPeriod` was compared with the write time, not the
 * clinical date; the consent `action` was never sent, so disclose/use provisions never matched;
 * `LocateRecords` trusted a caller's bookmark (Fabric does not bound it) and evaluated the rows it
 * returned with the request's patient.
 *
 * Attackers: a Hospital2 practitioner reading what the patient's consent withholds; a member calling
 * `hdx.record:LocateRecords` on its own peer with a bookmark outside the patient's key range.
 * Secure outcome: what the patient's provisions deny is refused; the bookmark escape lists nothing foreign.
 */
import { expect } from 'chai';
import { generateDidKey, signConsent } from '@hdx/gateway';
import { call, registerDid } from '../../support/fhir-client';
import { MSP_SYSTEM, PURPOSE_SYSTEM } from '../../support/jose';
import { OrgClient } from '../../support/ledger';
import { didToken, newObservation, newPatient, type PatientParty, REFUSED, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 9: consent terms are enforced as written', function () {
  let env: SecurityEnv;
  let patient: PatientParty;
  let old2018: string;
  let psy: string;
  let plain: string;
  const h2Read = (id: string) => call(env.h1, 'GET', `/Observation/${id}`, didToken(env.drH2.privateJwk, env.h1, 'user/*.read', 'TREAT'));

  before(async () => {
    env = await securityEnv();
    patient = await newPatient(env, 'Terms-F9');
    old2018 = await newObservation(env, patient.patientId, { effectiveDateTime: '2018-06-01T10:00:00Z', valueString: 'F9 result from 2018' });
    psy = await newObservation(env, patient.patientId, {
      meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }] },
      valueString: 'F9 psychiatric note',
    });
    plain = await newObservation(env, patient.patientId, { valueString: 'F9 plain result' });
    // "Hospital2 may treat me; but nothing from before 2020, and never disclose my psychiatric data."
    const consent = {
      resourceType: 'Consent',
      id: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: patient.did },
      provision: {
        type: 'permit',
        actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: 'Hospital2MSP' } } }],
        purpose: [{ system: PURPOSE_SYSTEM, code: 'TREAT' }],
        provision: [
          { type: 'deny', dataPeriod: { end: '2019-12-31' } },
          {
            type: 'deny',
            action: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentaction', code: 'disclose' }] }],
            securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'PSY' }],
          },
        ],
      },
    };
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

  it('guard (holds on main): the permit releases the recent, unlabelled result to Hospital2', async () => {
    const res = await h2Read(plain);
    expect(res.status, show(res)).to.equal(200);
  });

  it('a deny with dataPeriod up to 2019 covers a 2018 result, although it was written today', async () => {
    const res = await h2Read(old2018);
    expect(res.text, 'LEAK: the 2018 result went to Hospital2 despite "nothing from before 2020" (dataPeriod compared with the write time)').to.not.include('F9 result from 2018');
    expect(REFUSED, show(res)).to.include(res.status);
  });

  it('a deny of action "disclose" on PSY-labelled data covers Hospital2’s read', async () => {
    const res = await h2Read(psy);
    expect(res.text, 'LEAK: PSY data disclosed to Hospital2 despite the deny-disclose provision (consent action never sent)').to.not.include('F9 psychiatric note');
    expect(REFUSED, show(res)).to.include(res.status);
  });

  it('LocateRecords with a bookmark outside the patient’s key range lists no other patient’s records', async () => {
    // A member (Hospital2, its admin identity on its own peer) asks for its own patient's records, starting
    // the page at the beginning of the whole patient index.
    const own = generateDidKey();
    await registerDid(env.h2, 'hospital2', 'patient', own);
    const member = OrgClient.admin('hospital2');
    try {
      // The plain key, and the form that continues inside a packed index row (`<n>:<key>`).
      for (const bookmark of ['\u0000hdx.anchor~patient\u0000', '0:\u0000hdx.anchor~patient\u0000']) {
        let listed: string[] = [];
        let refusal: string | undefined;
        try {
          const result = await member.evaluate<{ custodians: Array<{ resources: Array<{ resourceType: string; id: string }> }> }>(
            'hdx.record',
            'LocateRecords',
            JSON.stringify({ patient: own.did, actor: own.did, actorOrganization: 'Hospital2MSP', purpose: 'PATRQT', pageSize: 100, bookmark }),
          );
          listed = result.custodians.flatMap((c) => c.resources.map((r) => `${r.resourceType}/${r.id}`));
        } catch (err) {
          refusal = String(err);
        }
        expect(
          listed,
          `BOOKMARK ESCAPE (${JSON.stringify(bookmark)}): LocateRecords for a patient with no records listed ${listed.length} other patients' records, e.g. ${listed.slice(0, 3).join(', ')}`,
        ).to.have.length(0);
        if (refusal !== undefined) expect(refusal).to.match(/INVALID|FORBIDDEN/);
      }
    } finally {
      member.close();
    }
  });
});
