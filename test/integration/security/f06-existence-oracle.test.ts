/**
 * Issue 9, finding 6: existence oracle. A caller without consent got 403 for an existing record and 404
 * for a missing one (read, vread, _history, $everything, $verify, batch GET); the 403 text named the
 * decision reason (e.g. `consent-deny`: "this patient has an active deny naming you").
 *
 * Attacker: a Hospital2 practitioner (registered DID, own token, TREAT) with no consent of the patient,
 * probing hospital1's gateway. Secure outcome: the same answer (404) whether the id exists or not, no
 * reason in any refusal, and the denied attempt on the existing record still recorded on the ledger.
 * The "more than 1000 candidates" error came before consent: on a gateway of its own, a search matching
 * 1001 records the caller may not see must answer like one matching none.
 */
import { expect } from 'chai';
import { signConsent } from '@hdx/gateway';
import { call, type Gw, type Reply, staffToken } from '../../support/fhir-client';
import { MSP_SYSTEM, PURPOSE_SYSTEM } from '../../support/jose';
import {
  auditEventsOf,
  didToken,
  eventsBy,
  extraGateway,
  missingId,
  newObservation,
  newPatient,
  type PatientParty,
  securityEnv,
  type SecurityEnv,
  show,
} from '../../support/security';

describe('security finding 6: refusals do not reveal whether a record exists or why', function () {
  let env: SecurityEnv;
  let victim: PatientParty;
  let denier: PatientParty;
  let obs: string;
  let denierObs: string;
  const h2 = (): string => didToken(env.drH2.privateJwk, env.h1, 'user/*.read', 'TREAT');
  /** The parts of a reply an attacker compares. */
  const shape = (r: Reply) => ({ status: r.status, code: r.body?.issue?.[0]?.code, hdx: r.body?.issue?.[0]?.details?.coding?.[0]?.code });

  before(async () => {
    env = await securityEnv();
    victim = await newPatient(env, 'Victim-F6');
    obs = await newObservation(env, victim.patientId, { valueString: 'F6 result' });
    denier = await newPatient(env, 'Denier-F6');
    denierObs = await newObservation(env, denier.patientId, { valueString: 'F6 denied result' });
    // The second patient explicitly denies Hospital2 (what the 403 reason used to reveal).
    const deny = {
      resourceType: 'Consent',
      id: '6e2f1a0b-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: denier.did },
      provision: { type: 'deny', actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: 'Hospital2MSP' } } }], purpose: [{ system: PURPOSE_SYSTEM, code: 'TREAT' }] },
    };
    const granted = await call(
      env.h1,
      'POST',
      '/Consent',
      didToken(denier.key.privateJwk, env.h1, 'patient/Consent.write', 'PATRQT'),
      signConsent(denier.key.privateJwk, deny, 'grant'),
      'application/jose',
    );
    expect(granted.status, show(granted)).to.equal(201);
  });

  it('read: an existing record without consent answers exactly like a missing id (404)', async () => {
    const exists = await call(env.h1, 'GET', `/Observation/${obs}`, h2());
    const absent = await call(env.h1, 'GET', `/Observation/${missingId()}`, h2());
    expect(exists.text).to.not.include('F6 result');
    expect(shape(exists), `ORACLE: existing ${show(exists)} vs missing ${show(absent)}`).to.deep.equal(shape(absent));
    expect(exists.status).to.equal(404);
  });

  it('vread of an existing version, of a version past the last one and of a missing id: all the same 404', async () => {
    const v1 = await call(env.h1, 'GET', `/Observation/${obs}/_history/1`, h2());
    const v9 = await call(env.h1, 'GET', `/Observation/${obs}/_history/9`, h2());
    const absent = await call(env.h1, 'GET', `/Observation/${missingId()}/_history/1`, h2());
    expect(shape(v1), `ORACLE (vread): existing version ${show(v1)} vs missing ${show(absent)}`).to.deep.equal(shape(absent));
    expect(shape(v9), `ORACLE (version count): ${show(v9)} vs ${show(v1)}`).to.deep.equal(shape(v1));
    expect(v1.status).to.equal(404);
  });

  it('_history, $verify and $everything: existing and missing answer alike', async () => {
    const pairs: Array<[string, string, string]> = [
      ['_history', `/Observation/${obs}/_history`, `/Observation/${missingId()}/_history`],
      ['$verify', `/Observation/${obs}/$verify`, `/Observation/${missingId()}/$verify`],
      ['$everything', `/Patient/${victim.patientId}/$everything`, `/Patient/${missingId()}/$everything`],
    ];
    for (const [what, existing, missing] of pairs) {
      const a = await call(env.h1, 'GET', existing, h2());
      const b = await call(env.h1, 'GET', missing, h2());
      expect(a.text).to.not.include('F6 result');
      expect(shape(a), `ORACLE (${what}): existing ${show(a)} vs missing ${show(b)}`).to.deep.equal(shape(b));
    }
  });

  it('batch GET entries: existing and missing answer alike', async () => {
    const res = await call(env.h1, 'POST', '', h2(), {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [{ request: { method: 'GET', url: `Observation/${obs}` } }, { request: { method: 'GET', url: `Observation/${missingId()}` } }],
    });
    expect(res.status, show(res)).to.equal(200);
    const [a, b] = (res.body.entry as Array<{ response: { status: string } }>).map((e) => e.response.status);
    expect(a, `ORACLE (batch): existing entry ${a} vs missing entry ${b}`).to.equal(b);
    expect(res.text).to.not.include('F6 result');
  });

  it('a refusal never names a consent or a decision reason (the patient’s deny stays private)', async () => {
    const res = await call(env.h1, 'GET', `/Observation/${denierObs}`, h2());
    expect(res.text).to.not.include('F6 denied result');
    expect(res.text, `REASON LEAKED in the refusal: ${show(res)}`).to.not.match(/consent-deny|consent-permit|no-permit|custodian-treatment|\bdeny\b|denied \(/i);
    expect(res.text).to.not.include('6e2f1a0b-3c4d-4e5f-8a9b-0c1d2e3f4a5b');
    const none = await call(env.h1, 'GET', `/Observation/${obs}`, h2());
    expect(shape(res), `ORACLE (deny vs no consent): ${show(res)} vs ${show(none)}`).to.deep.equal(shape(none));
  });

  it('guard (holds on main): the denied attempt on the existing record is still recorded for the regulator’s auditor', async () => {
    await call(env.h1, 'GET', `/Observation/${obs}`, h2());
    const events = eventsBy(await auditEventsOf(env, victim.did), env.drH2.did, `Observation/${obs}`);
    expect(
      events.map((e) => e.outcome),
      'the refused read of an existing record left no access entry',
    ).to.include('4');
    expect(
      events.map((e) => e.outcome),
      'recorded as permitted',
    ).to.not.include('0');
  });

  describe('the candidate limit of search and history', function () {
    let gw: Gw;
    const manyCode = `9${Math.floor(Math.random() * 1e6)}-1`;
    const noneCode = `8${Math.floor(Math.random() * 1e6)}-2`;
    const h2At = (): string => didToken(env.drH2.privateJwk, gw, 'user/*.read', 'TREAT');

    before(async function () {
      // A gateway of its own: 1001 Observations here must not weigh on the other files' searches.
      gw = await extraGateway('hospital1');
      const staff = staffToken(gw, 'hospital1', { did: env.drH1.did });
      const p = await call(gw, 'POST', '/Patient', staff, { resourceType: 'Patient', name: [{ family: 'Many-F6' }] });
      expect(p.status, show(p)).to.equal(201);
      for (const n of [500, 500, 1]) {
        const entry = Array.from({ length: n }, () => ({
          request: { method: 'POST', url: 'Observation' },
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: manyCode }] },
            subject: { reference: `Patient/${p.body.id}` },
            effectiveDateTime: '2026-11-01T00:00:00Z',
          },
        }));
        const res = await call(gw, 'POST', '', staff, { resourceType: 'Bundle', type: 'transaction', entry });
        expect(res.status, show(res)).to.equal(200);
      }
    });

    it('a search matching over 1000 records the caller may not see answers like one matching none', async () => {
      const many = await call(gw, 'GET', `/Observation?code=http://loinc.org|${manyCode}`, h2At());
      const none = await call(gw, 'GET', `/Observation?code=http://loinc.org|${noneCode}`, h2At());
      expect({ status: many.status, total: many.body?.total }, `ORACLE (candidate limit): code with 1001 records ${show(many)} vs code with none ${show(none)}`).to.deep.equal({
        status: none.status,
        total: none.body?.total,
      });
    });

    it('type history over 1000 versions the caller may not see answers like an empty one', async () => {
      const all = await call(gw, 'GET', '/Observation/_history', h2At());
      const empty = await call(gw, 'GET', '/Condition/_history', h2At());
      expect({ status: all.status, total: all.body?.total }, `ORACLE (history limit): ${show(all)} vs ${show(empty)}`).to.deep.equal({
        status: empty.status,
        total: empty.body?.total,
      });
    });
  });
});
