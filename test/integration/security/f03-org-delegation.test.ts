/**
 * Issue 9, finding 3: a member organization's DID key acts as anyone via `hdx_user`. Naming a patient DID
 * it read that patient's records at every custodian (with opening keys), recorded as the patient's own
 * access; naming the regulator's auditor DID at the regulator's gateway it read the whole consortium's
 * access history; an unregistered `hdx_user` with ETREAT broke the glass.
 *
 * Attacker: Hospital2 as an organization, signing with its own organization DID key (the key file its
 * gateway is configured with, HDX_ORG_KEY_FILE). Secure outcome: the organization may act only for an
 * active practitioner it registered; every other `hdx_user` is refused (401/403), nothing is served.
 */
import { generateDidKey } from '@hdx/gateway';
import { expect } from 'chai';
import { call, registerDid } from '../../support/fhir-client';
import { auditEventsOf, didToken, newObservation, newPatient, orgDidKey, type PatientParty, REFUSED, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 3: a member organization acts only for its own active practitioners', function () {
  let env: SecurityEnv;
  let victim: PatientParty;
  let victimObs: string;
  let h2Org: ReturnType<typeof orgDidKey>;
  const h2Patient = generateDidKey();
  const h2Device = generateDidKey();

  before(async () => {
    env = await securityEnv();
    h2Org = orgDidKey('hospital2');
    victim = await newPatient(env, 'Victim-F3');
    victimObs = await newObservation(env, victim.patientId, { valueString: 'HIV-1 RNA detected (F3)' });
    await registerDid(env.h2, 'hospital2', 'patient', h2Patient);
    await registerDid(env.h2, 'hospital2', 'device', h2Device);
  });

  const asHospital2For = (user: string, scope = 'user/*.read', purpose = 'TREAT', extra: { breakGlassReason?: string } = {}) =>
    didToken(h2Org, env.h1, scope, purpose, { onBehalfOf: user, ...extra });

  it('hdx_user = the victim patient’s DID: hospital1 refuses; no record, no opening key is served', async () => {
    const read = await call(env.h1, 'GET', `/Observation/${victimObs}`, asHospital2For(victim.did));
    expect(read.text, 'LEAK: Hospital2 impersonated the patient and read the Observation').to.not.include('HIV-1 RNA detected');
    expect(REFUSED, `Hospital2 acting as patient A: ${show(read)}`).to.include(read.status);

    const search = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, asHospital2For(victim.did));
    expect(search.text, 'LEAK: opening keys handed to Hospital2 acting as the patient').to.not.include('commitment-opening-key');
    expect(search.text).to.not.include('HIV-1 RNA detected');
    // Refused when the token is verified, or authenticated and then nothing permitted.
    if (search.status === 200) expect(search.body.total, show(search)).to.equal(0);
    else expect(REFUSED, show(search)).to.include(search.status);

    const everything = await call(env.h1, 'GET', `/Patient/${victim.patientId}/$everything`, asHospital2For(victim.did));
    expect(everything.text).to.not.include('HIV-1 RNA detected');
    expect(REFUSED, show(everything)).to.include(everything.status);
  });

  it('no access entry claims the patient read their own record through Hospital2', async () => {
    const events = await auditEventsOf(env, victim.did);
    const forged = events.filter((e) => e.outcome === '0' && e.agent?.some((a: { who?: { identifier?: { value?: string } } }) => a.who?.identifier?.value === victim.did));
    expect(
      forged.map((e) => e.outcomeDesc),
      'FORGED HISTORY: a permitted access is recorded as the patient’s own, made by Hospital2',
    ).to.have.length(0);
  });

  it('hdx_user = the regulator’s auditor DID at the regulator’s gateway: the access history is refused', async () => {
    const token = didToken(h2Org, env.reg, 'user/AuditEvent.read', 'HOPERAT', { onBehalfOf: env.auditor.did });
    const res = await call(env.reg, 'GET', '/AuditEvent?_count=100', token);
    expect(res.body?.entry ?? [], `LEAK: Hospital2 acting as the auditor read ${(res.body?.entry ?? []).length} access entries`).to.have.length(0);
    expect([200, 401, 403], show(res)).to.include(res.status);
  });

  it('hdx_user = an unregistered DID with ETREAT and a reason: no break-glass', async () => {
    const ghost = generateDidKey().did;
    const res = await call(env.h1, 'GET', `/Observation/${victimObs}`, asHospital2For(ghost, 'user/*.read', 'ETREAT', { breakGlassReason: 'unconscious patient' }));
    expect(res.text, 'LEAK: break-glass for an unregistered user named by Hospital2').to.not.include('HIV-1 RNA detected');
    expect(REFUSED, show(res)).to.include(res.status);
  });

  it('hdx_user = a patient or a device Hospital2 registered itself, or hospital1’s own practitioner: refused', async () => {
    for (const [who, did] of [
      ['a Hospital2 patient', h2Patient.did],
      ['a Hospital2 device', h2Device.did],
      ['a hospital1 practitioner', env.drH1.did],
    ] as const) {
      const res = await call(env.h1, 'GET', `/Observation/${victimObs}`, asHospital2For(did, 'user/*.read', 'ETREAT', { breakGlassReason: 'emergency' }));
      expect(res.text, `LEAK: Hospital2 acting as ${who} read the Observation`).to.not.include('HIV-1 RNA detected');
      expect(REFUSED, `Hospital2 acting as ${who}: ${show(res)}`).to.include(res.status);
    }
  });

  it('guard: Hospital2 acting for its own registered practitioner is still authenticated (no consent: nothing served)', async () => {
    const res = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, asHospital2For(env.drH2.did));
    expect(res.status, show(res)).to.equal(200);
    expect(res.body.total, 'without consent the practitioner sees nothing').to.equal(0);
  });
});
