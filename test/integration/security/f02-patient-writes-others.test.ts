/**
 * Issue 9, finding 2: any patient rewrites other patients' records (`PUT` with `patient/*.write`): writes
 * were checked by organization only. A patient could also re-link another patient's Patient record to
 * their own DID and so take over consent control of its future versions.
 *
 * Attacker: patient B of hospital1 with a self-signed DID token. Secure outcome: every write on A's
 * compartment is refused (403/404), and A's records are unchanged when custodian staff read them.
 */
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey } from '@hdx/gateway';
import { call, registerDid } from '../../support/fhir-client';
import { didToken, h1Staff, newObservation, newPatient, type PatientParty, securityEnv, type SecurityEnv, show, missingId } from '../../support/security';

const LOINC = { coding: [{ system: 'http://loinc.org', code: '25836-8' }] };

describe('security finding 2: a patient never writes another patient’s records', function () {
  let env: SecurityEnv;
  let victim: PatientParty;
  let attacker: PatientParty;
  let victimObs: string;
  // The patient's own purpose (PATRQT): with TREAT the purpose rule refuses the request before the
  // compartment is even looked at, which would hide a compartment hole.
  const bToken = (purpose = 'PATRQT'): string => didToken(attacker.key.privateJwk, env.h1, 'patient/*.write patient/*.read', purpose);

  /** The victim's Observation as custodian staff see it. */
  const staffRead = async (type: string, id: string) => call(env.h1, 'GET', `/${type}/${id}`, h1Staff(env));

  before(async () => {
    env = await securityEnv();
    victim = await newPatient(env, 'Victim-F2');
    attacker = await newPatient(env, 'Attacker-F2');
    victimObs = await newObservation(env, victim.patientId, { valueString: 'detected (F2 original)' });
  });

  it('PUT on another patient’s Observation with patient/*.write: 403/404, the record unchanged (still version 1)', async () => {
    const res = await call(env.h1, 'PUT', `/Observation/${victimObs}`, bToken(), {
      resourceType: 'Observation',
      id: victimObs,
      status: 'final',
      code: LOINC,
      subject: { reference: `Patient/${victim.patientId}` },
      valueString: 'not detected (forged by patient B)',
    });
    expect([403, 404], `patient B rewrote patient A's Observation: ${show(res)}`).to.include(res.status);
    const now = await staffRead('Observation', victimObs);
    expect(now.status, show(now)).to.equal(200);
    expect(now.body.valueString, 'TAMPERED: A’s result was rewritten by patient B').to.equal('detected (F2 original)');
    expect(now.body.meta.versionId).to.equal('1');
  });

  it('PUT on another patient’s Patient re-linking it to the attacker’s DID: refused, the DID link unchanged', async () => {
    // The attacker's DID must not be linked to a record here yet (the gateway refuses a second link), so
    // this attacker is a patient registered by hospital1 who holds no record of their own.
    const hijacker = generateDidKey();
    await registerDid(env.h1, 'hospital1', 'patient', hijacker);
    const res = await call(env.h1, 'PUT', `/Patient/${victim.patientId}`, didToken(hijacker.privateJwk, env.h1, 'patient/*.write patient/*.read', 'PATRQT'), {
      resourceType: 'Patient',
      id: victim.patientId,
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: hijacker.did }],
      name: [{ family: 'Victim-F2' }],
    });
    expect([403, 404], `HIJACK: another patient re-linked patient A's record to their own DID: ${show(res)}`).to.include(res.status);
    const now = await staffRead('Patient', victim.patientId);
    expect(now.body.identifier, 'HIJACK: A’s Patient record now names B’s DID').to.deep.equal([{ system: DID_IDENTIFIER_SYSTEM, value: victim.did }]);
    expect(now.body.meta.versionId).to.equal('1');
  });

  it('a new Observation in another patient’s compartment (POST) and DELETE of their record: refused, nothing changed', async () => {
    const created = await call(env.h1, 'POST', '/Observation', bToken(), {
      resourceType: 'Observation',
      status: 'final',
      code: LOINC,
      subject: { reference: `Patient/${victim.patientId}` },
      valueString: 'planted by patient B',
    });
    expect([400, 403, 404], `patient B added a record to A's compartment: ${show(created)}`).to.include(created.status);
    // Refused exactly as a reference to a Patient that does not exist: B cannot probe who is a patient here.
    const toNobody = await call(env.h1, 'POST', '/Observation', bToken(), {
      resourceType: 'Observation',
      status: 'final',
      code: LOINC,
      subject: { reference: `Patient/${missingId()}` },
      valueString: 'x',
    });
    expect(created.body, 'the refusal tells whether the Patient exists').to.deep.equal(toNobody.body);
    const search = await call(env.h1, 'GET', `/Observation?patient=Patient/${victim.patientId}`, h1Staff(env));
    expect(search.text, 'PLANTED: a record written by patient B is in A’s compartment').to.not.include('planted by patient B');

    const del = await call(env.h1, 'DELETE', `/Observation/${victimObs}`, bToken());
    // A delete of a record the caller may not see answers as a delete of a missing one (204, FHIR), and deletes nothing.
    expect([204, 403, 404], `patient B deleted A's Observation: ${show(del)}`).to.include(del.status);
    const still = await staffRead('Observation', victimObs);
    expect(still.status, `A's Observation is gone after B's DELETE: ${show(still)}`).to.equal(200);
  });

  it('a transaction Bundle writing into another patient’s compartment: refused as a whole', async () => {
    const res = await call(env.h1, 'POST', '', bToken(), {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          request: { method: 'PUT', url: `Observation/${victimObs}` },
          resource: {
            resourceType: 'Observation',
            id: victimObs,
            status: 'final',
            code: LOINC,
            subject: { reference: `Patient/${victim.patientId}` },
            valueString: 'forged in a bundle',
          },
        },
      ],
    });
    expect(res.text, `bundle PUT by patient B: ${show(res)}`).to.not.match(/"status":"200/);
    const now = await staffRead('Observation', victimObs);
    expect(now.body.valueString, 'TAMPERED through a Bundle').to.equal('detected (F2 original)');
  });

  it('the ingestion route (POST /ingest/fhir) does not take another patient’s record from a patient either', async () => {
    const res = await call(env.h1, 'POST', `${env.h1.config.baseUrl.replace(/\/fhir$/, '')}/ingest/fhir?source=wallet`, bToken(), {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: `urn:uuid:${victimObs}`,
          request: { method: 'PUT', url: `Observation/${victimObs}` },
          resource: {
            resourceType: 'Observation',
            id: victimObs,
            status: 'final',
            code: LOINC,
            subject: { reference: `Patient/${victim.patientId}` },
            valueString: 'forged through ingestion',
          },
        },
      ],
    });
    expect(res.text, `ingestion by patient B: ${show(res)}`).to.not.match(/"status":"20[01]/);
    const now = await staffRead('Observation', victimObs);
    expect(now.body.valueString, 'TAMPERED through /ingest/fhir').to.equal('detected (F2 original)');
  });
});
