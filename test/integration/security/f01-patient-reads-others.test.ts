/**
 * Issue 9, finding 1: any patient reads every patient of their hospital. A patient's own DID token with
 * `patient/*.read` and a self-chosen `purpose_of_use: TREAT` got other patients' Observations (read and
 * search) through the custodian-treatment default; `patient/` scopes were not bound to the patient.
 *
 * Attacker: patient B, registered by hospital1 like the victim A, with a token made by the `hdx token`
 * CLI exactly as the README tells a patient to make one. Secure outcome: A's records answer B exactly like
 * a missing id (404), searches find nothing of A's, and the refused attempt is on the ledger for the
 * regulator's auditor to see.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { generateDidKey } from '@hdx/gateway';
import { call, registerDid, staffToken } from '../../support/fhir-client';
import {
  auditEventsOf,
  didToken,
  eventsBy,
  missingId,
  newObservation,
  newPatient,
  type PatientParty,
  REFUSED,
  resourcesOf,
  securityEnv,
  type SecurityEnv,
  show,
} from '../../support/security';

const execFileAsync = promisify(execFile);

const repo = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(repo, 'gateway', 'dist', 'cli.js');

describe('security finding 1: a patient reads only their own compartment', function () {
  let env: SecurityEnv;
  let victim: PatientParty;
  let attacker: PatientParty;
  let victimObs: string;
  let attackerObs: string;
  let keyFile: string;

  /**
   * The attacker's token, made with `hdx token` (the CLI a patient's wallet stands in for). Run without
   * blocking: the gateway under test shares this process, and a blocked event loop lets its keep-alive
   * timer close a pooled socket just as the next request is written (ECONNRESET on a loaded machine).
   */
  const cliToken = async (scope: string, purpose: string, extra: string[] = []): Promise<string> =>
    (
      await execFileAsync(process.execPath, [cli, 'token', '--key', keyFile, '--aud', env.h1.config.baseUrl, '--scope', scope, '--purpose', purpose, '--ttl', '120', ...extra], {
        encoding: 'utf8',
      })
    ).stdout.trim();

  before(async () => {
    env = await securityEnv();
    victim = await newPatient(env, 'Victim-F1');
    attacker = await newPatient(env, 'Attacker-F1');
    victimObs = await newObservation(env, victim.patientId, { valueString: 'HIV-1 RNA detected (F1)' });
    attackerObs = await newObservation(env, attacker.patientId, { valueString: 'attacker own result' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-f1-'));
    keyFile = path.join(dir, 'patient-b.json');
    fs.writeFileSync(keyFile, JSON.stringify(attacker.key.privateJwk), { mode: 0o600 });
  });

  it('guard (holds on main): the patient reads their own Observation with their own purpose PATRQT', async () => {
    const own = await call(env.h1, 'GET', `/Observation/${attackerObs}`, await cliToken('patient/*.read', 'PATRQT'));
    expect(own.status, show(own)).to.equal(200);
    expect(own.body.valueString).to.equal('attacker own result');
  });

  it('another patient with patient/*.read and self-asserted TREAT is refused the victim’s Observation exactly as a missing id', async () => {
    const read = await call(env.h1, 'GET', `/Observation/${victimObs}`, await cliToken('patient/*.read', 'TREAT'));
    const absent = await call(env.h1, 'GET', `/Observation/${missingId()}`, await cliToken('patient/*.read', 'TREAT'));
    expect(read.text, 'LEAK: patient B read patient A’s Observation').to.not.include('HIV-1 RNA detected');
    // TREAT is not a patient's purpose: refused (403) before any record is looked at, so a missing id
    // gets the very same answer.
    expect(read.status, `patient B reading patient A's Observation: ${show(read)}`).to.equal(403);
    expect(read.status).to.equal(absent.status);
    expect(read.body?.issue?.[0]?.diagnostics).to.equal(absent.body?.issue?.[0]?.diagnostics);
    expect(read.body?.issue?.[0]?.code, 'the refusal must look like the missing-id answer').to.equal(absent.body?.issue?.[0]?.code);
  });

  it('the same with purpose PATRQT (a patient’s own purpose): 404 for another patient’s record and for their Patient resource', async () => {
    const read = await call(env.h1, 'GET', `/Observation/${victimObs}`, await cliToken('patient/*.read', 'PATRQT'));
    expect(read.status, `patient B (PATRQT) reading A's Observation: ${show(read)}`).to.equal(404);
    const patient = await call(env.h1, 'GET', `/Patient/${victim.patientId}`, await cliToken('patient/*.read', 'PATRQT'));
    expect(patient.text, 'LEAK: patient B read patient A’s demographics').to.not.include('Victim-F1');
    expect(patient.status, show(patient)).to.equal(404);
  });

  it('searches by another patient find nothing of the victim’s (total 0), whether by patient= or unfiltered', async () => {
    const byPatient = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, await cliToken('patient/*.read', 'TREAT'));
    expect(byPatient.text, 'LEAK: search patient=<A> by patient B returned A’s result').to.not.include('HIV-1 RNA detected');
    if (byPatient.status === 200) expect(byPatient.body.total, `search patient=<A> by B: ${show(byPatient)}`).to.equal(0);
    else expect(REFUSED, show(byPatient)).to.include(byPatient.status);

    const all = await call(env.h1, 'GET', '/Observation?_count=100', await cliToken('patient/*.read', 'TREAT'));
    expect([200, ...REFUSED], show(all)).to.include(all.status);
    const ids = resourcesOf(all.body).map((r) => r.id);
    expect(ids, 'LEAK: an unfiltered search by patient B lists patient A’s Observation').to.not.include(victimObs);
    const subjects = resourcesOf(all.body).map((r) => r.subject?.reference);
    expect(
      subjects.every((s) => s === `Patient/${attacker.patientId}`),
      `an unfiltered search by patient B lists other patients' records: ${JSON.stringify(subjects)}`,
    ).to.equal(true);
  });

  it('$everything and _history of the victim are refused to another patient', async () => {
    const everything = await call(env.h1, 'GET', `/Patient/${victim.patientId}/$everything`, await cliToken('patient/*.read', 'PATRQT'));
    expect(everything.text, 'LEAK: $everything of patient A by patient B').to.not.include('HIV-1 RNA detected');
    expect(everything.status, show(everything)).to.equal(404);
    const history = await call(env.h1, 'GET', `/Observation/${victimObs}/_history`, await cliToken('patient/*.read', 'PATRQT'));
    expect(history.text, 'LEAK: _history of A’s Observation by patient B').to.not.include('HIV-1 RNA detected');
    expect(history.status, show(history)).to.equal(404);
  });

  it('type-level history by another patient lists nothing of the victim’s', async () => {
    const res = await call(env.h1, 'GET', '/Observation/_history?_count=100', await cliToken('patient/*.read', 'TREAT'));
    expect(res.text, 'LEAK: /Observation/_history by patient B holds patient A’s result').to.not.include('HIV-1 RNA detected');
    expect([200, ...REFUSED], show(res)).to.include(res.status);
  });

  it('break-glass (ETREAT with a reason) is not open to a patient', async () => {
    const res = await call(env.h1, 'GET', `/Observation/${victimObs}`, await cliToken('patient/*.read', 'ETREAT', ['--break-glass-reason', 'I am a doctor, trust me']));
    expect(res.text, 'LEAK: a patient broke the glass on another patient').to.not.include('HIV-1 RNA detected');
    expect(REFUSED, show(res)).to.include(res.status);
  });

  it('break-glass is not open to a device either (ETREAT is for practitioners only)', async () => {
    const device = generateDidKey();
    await registerDid(env.h1, 'hospital1', 'device', device);
    const res = await call(
      env.h1,
      'GET',
      `/Observation/${victimObs}`,
      didToken(device.privateJwk, env.h1, 'system/Observation.read', 'ETREAT', { breakGlassReason: 'sensor says so' }),
    );
    expect(res.text, 'LEAK: a device broke the glass').to.not.include('HIV-1 RNA detected');
    expect(REFUSED, show(res)).to.include(res.status);
  });

  it('an identity-provider user with role patient (user/*.read, TREAT) cannot read another patient either', async () => {
    const idp = staffToken(env.h1, 'hospital1', { role: 'patient', did: attacker.did, scope: 'user/*.read', purpose: 'TREAT' });
    const res = await call(env.h1, 'GET', `/Observation/${victimObs}`, idp);
    expect(res.text, 'LEAK: IdP role patient read another patient’s Observation').to.not.include('HIV-1 RNA detected');
    expect(REFUSED, show(res)).to.include(res.status);
    const search = await call(env.h1, 'GET', `/Observation?patient=${victim.did}`, idp);
    expect(search.text, 'LEAK: IdP role patient searched another patient').to.not.include('HIV-1 RNA detected');
  });

  it('the refused attempt is still recorded: the regulator’s auditor sees patient B’s read of A’s record as denied, never as permitted', async () => {
    // A fresh attempt with the patient's own purpose (which certainly reaches the decision), so an entry is there.
    await call(env.h1, 'GET', `/Observation/${victimObs}`, didToken(attacker.key.privateJwk, env.h1, 'patient/*.read', 'PATRQT'));
    const events = eventsBy(await auditEventsOf(env, victim.did), attacker.did, `Observation/${victimObs}`);
    const outcomes = events.map((e) => e.outcome);
    expect(outcomes, `patient B's reads of A's Observation were recorded as PERMITTED: ${JSON.stringify(events.map((e) => e.outcomeDesc))}`).to.not.include('0');
    expect(outcomes, 'the denied attempt of patient B on A’s existing record is not in the access history').to.include('4');
  });
});
