/**
 * Issue 10: every disclosure path leaks nothing the caller may not see, shown with callers who may see
 * PART of a patient's data (the patient's consent permits them except what is labelled restricted).
 *
 * Attackers: a Hospital2 practitioner treating the patient, and a hospital1 user under an operations
 * purpose (no custodian-treatment), each trying every path that discloses more than one record at once:
 * search (with _include, _revinclude, _summary=count), instance history, Patient/$everything, batch GET
 * entries (reads and searches) and Bulk Data $export.
 * Secure outcome: the restricted records never appear, are never counted, and are answered exactly like
 * missing ones; the permitted records do appear (so the test would see a path that returns nothing).
 */
import { expect } from 'chai';
import { signConsent } from '@hdx/gateway';
import { call, type Reply, staffToken } from '../../support/fhir-client';
import { MSP_SYSTEM, PURPOSE_SYSTEM } from '../../support/jose';
import { didToken, h1Staff, newObservation, newPatient, type PatientParty, REFUSED, securityEnv, type SecurityEnv, show } from '../../support/security';

const RESTRICTED = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];

/** The ids of a searchset's entries (matches and includes alike). */
function ids(res: Reply): string[] {
  return ((res.body?.entry ?? []) as Array<{ resource?: { id?: string } }>).map((e) => String(e.resource?.id));
}

describe('issue 10: partial disclosure on every path (search, includes, history, $everything, batch, $export)', function () {
  let env: SecurityEnv;
  let patient: PatientParty;
  const rec: Record<'plain' | 'secret' | 'encounter' | 'condition' | 'secretCondition', string> = { plain: '', secret: '', encounter: '', condition: '', secretCondition: '' };
  const h2 = (scope = 'user/*.read'): string => didToken(env.drH2.privateJwk, env.h1, scope, 'TREAT');
  const ops = (): string => staffToken(env.h1, 'hospital1', { did: env.drH1.did, scope: 'user/*.read', purpose: 'HOPERAT' });
  const hidden = (): string[] => [rec.secret, rec.secretCondition];
  /** Nothing of a restricted record: not its content and, unless the caller named it, not its id. */
  const expectNoneHidden = (res: Reply, what: string, named: readonly string[] = []): void => {
    expect(res.text, `LEAK: ${what} disclosed restricted content`).to.not.include('F12 restricted');
    for (const id of hidden().filter((h) => !named.includes(h))) expect(res.text, `LEAK: ${what} disclosed a restricted record`).to.not.include(id);
  };

  before(async () => {
    env = await securityEnv();
    patient = await newPatient(env, 'Partial-F12');
    const staff = h1Staff(env);
    rec.plain = await newObservation(env, patient.patientId, { valueString: 'F12 plain result' });
    rec.secret = await newObservation(env, patient.patientId, { meta: { security: RESTRICTED }, valueString: 'F12 restricted result' });
    // A second version of the plain result, for history.
    const v2 = await call(env.h1, 'PUT', `/Observation/${rec.plain}`, staff, {
      resourceType: 'Observation',
      id: rec.plain,
      status: 'amended',
      code: { coding: [{ system: 'http://loinc.org', code: '25836-8' }] },
      subject: { reference: `Patient/${patient.patientId}` },
      effectiveDateTime: '2026-11-20T09:30:00Z',
      valueString: 'F12 plain result, amended',
    });
    expect(v2.status, show(v2)).to.equal(200);
    const enc = await call(env.h1, 'POST', '/Encounter', staff, {
      resourceType: 'Encounter',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: `Patient/${patient.patientId}` },
      period: { start: '2026-11-20T09:00:00Z', end: '2026-11-20T10:00:00Z' },
    });
    expect(enc.status, show(enc)).to.equal(201);
    rec.encounter = enc.body.id;
    const condition = async (secret: boolean): Promise<string> => {
      const c = await call(env.h1, 'POST', '/Condition', staff, {
        resourceType: 'Condition',
        ...(secret ? { meta: { security: RESTRICTED } } : {}),
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        code: { text: secret ? 'F12 restricted diagnosis' : 'F12 plain diagnosis' },
        subject: { reference: `Patient/${patient.patientId}` },
        encounter: { reference: `Encounter/${rec.encounter}` },
        recordedDate: '2026-11-20',
      });
      expect(c.status, show(c)).to.equal(201);
      return c.body.id;
    };
    rec.condition = await condition(false);
    rec.secretCondition = await condition(true);
    // "Hospital2 may treat me, and hospital1 may use my data for operations; never anything restricted."
    for (const [id, msp, purpose] of [
      ['1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f1', 'Hospital2MSP', 'TREAT'],
      ['2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d', 'Hospital1MSP', 'HOPERAT'],
    ] as const) {
      const consent = {
        resourceType: 'Consent',
        id,
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: patient.did },
        provision: {
          type: 'permit',
          actor: [{ reference: { identifier: { system: MSP_SYSTEM, value: msp } } }],
          purpose: [{ system: PURPOSE_SYSTEM, code: purpose }],
          provision: [{ type: 'deny', securityLabel: RESTRICTED }],
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
    }
  });

  it('search: only the permitted records, and a total that counts only them', async () => {
    const res = await call(env.h1, 'GET', `/Observation?patient=${patient.did}`, h2());
    expect(res.status, show(res)).to.equal(200);
    expect(ids(res)).to.deep.equal([rec.plain]);
    expect(res.body.total).to.equal(1);
    expectNoneHidden(res, 'search');
    const count = await call(env.h1, 'GET', `/Observation?patient=${patient.did}&_summary=count`, h2());
    expect(count.body.total, show(count)).to.equal(1);
    // Asked for by id, the restricted one is simply not there.
    const byId = await call(env.h1, 'GET', `/Observation?patient=${patient.did}&_id=${rec.secret}`, h2());
    expect(byId.body.total, show(byId)).to.equal(0);
  });

  it('_include and _revinclude bring in the permitted records only', async () => {
    const rev = await call(env.h1, 'GET', `/Encounter?patient=${patient.did}&_revinclude=Condition:encounter`, h2());
    expect(rev.status, show(rev)).to.equal(200);
    expect(ids(rev).sort()).to.deep.equal([rec.encounter, rec.condition].sort());
    expectNoneHidden(rev, '_revinclude');
    const inc = await call(env.h1, 'GET', `/Condition?patient=${patient.did}&_include=Condition:encounter`, h2());
    expect(inc.status, show(inc)).to.equal(200);
    expect(ids(inc).sort()).to.deep.equal([rec.condition, rec.encounter].sort());
    expect(inc.body.total).to.equal(1);
    expectNoneHidden(inc, '_include');
  });

  it('history: every version of a permitted record; a restricted record’s history is answered like a missing one', async () => {
    const plain = await call(env.h1, 'GET', `/Observation/${rec.plain}/_history`, h2());
    expect(plain.status, show(plain)).to.equal(200);
    expect(plain.body.total).to.equal(2);
    const secret = await call(env.h1, 'GET', `/Observation/${rec.secret}/_history`, h2());
    expect(REFUSED, show(secret)).to.include(secret.status);
    expectNoneHidden(secret, 'history', [rec.secret]);
    const missing = await call(env.h1, 'GET', `/Observation/${'0'.repeat(8)}-0000-4000-8000-000000000000/_history`, h2());
    expect(secret.status).to.equal(missing.status);
  });

  it('Patient/$everything: the permitted records, none of the restricted ones', async () => {
    const res = await call(env.h1, 'GET', `/Patient/${patient.patientId}/$everything`, h2());
    expect(res.status, show(res)).to.equal(200);
    expect(ids(res)).to.include.members([patient.patientId, rec.plain, rec.encounter, rec.condition]);
    expectNoneHidden(res, '$everything');
  });

  it('batch: a GET of a restricted record is a 404 entry like a missing one; a search entry finds only the permitted', async () => {
    const res = await call(env.h1, 'POST', '', h2(), {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Observation/${rec.plain}` } },
        { request: { method: 'GET', url: `Observation/${rec.secret}` } },
        { request: { method: 'GET', url: `Observation?patient=${patient.did}` } },
        { request: { method: 'GET', url: `Condition?patient=${patient.did}&_summary=count` } },
      ],
    });
    expect(res.status, show(res)).to.equal(200);
    const entries = res.body.entry as Array<{ response: { status: string }; resource?: { id?: string; total?: number; entry?: Array<{ resource: { id: string } }> } }>;
    expect(entries.map((e) => e.response.status.split(' ')[0])).to.deep.equal(['200', '404', '200', '200']);
    expect(entries[0]?.resource?.id).to.equal(rec.plain);
    expect((entries[2]?.resource?.entry ?? []).map((e) => e.resource.id)).to.deep.equal([rec.plain]);
    expect(entries[3]?.resource?.total).to.equal(1);
    // The 404 entry names the id asked for, exactly as for a missing one.
    expectNoneHidden(res, 'batch', [rec.secret]);
  });

  it('$export: another member’s practitioner may not export; a local operations user gets the permitted records only', async () => {
    const refused = await call(env.h1, 'GET', `/Patient/$export?_type=Observation,Condition`, h2(), undefined, 'application/fhir+json', { prefer: 'respond-async' });
    expect(REFUSED, show(refused)).to.include(refused.status);
    // hospital1, purpose operations: the consent's permit (not custodian-treatment) decides.
    const kick = await call(env.h1, 'GET', `/Patient/$export?_type=Observation,Condition`, ops(), undefined, 'application/fhir+json', { prefer: 'respond-async' });
    expect(kick.status, show(kick)).to.equal(202);
    const status = String(kick.headers.get('content-location'));
    let manifest: Reply | undefined;
    for (let i = 0; i < 600 && manifest === undefined; i++) {
      const poll = await call(env.h1, 'GET', status, ops());
      if (poll.status === 200) manifest = poll;
      else {
        expect(poll.status, show(poll)).to.equal(202);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(manifest, 'the export did not finish in 60 s').to.not.equal(undefined);
    const files = ((manifest as Reply).body.output ?? []) as Array<{ type: string; url: string }>;
    let text = '';
    for (const f of files) {
      const file = await call(env.h1, 'GET', f.url, ops());
      expect(file.status, show(file)).to.equal(200);
      text += file.text;
    }
    expect(text).to.include(rec.plain).and.to.include(rec.condition);
    for (const id of hidden()) expect(text, 'LEAK: $export wrote a restricted record').to.not.include(id);
  });
});
