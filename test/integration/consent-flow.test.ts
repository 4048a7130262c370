/**
 * Issue 5's consent flow, on the real network, through three real gateways:
 *
 * a hospital2 practitioner is denied a hospital1 record without consent → the patient signs a consent
 * → access succeeds and is recorded → the patient revokes → the next read is denied → the regulator and
 * the patient see all of it as AuditEvents. Plus: search totals do not leak, bad tokens get 401 and
 * scope violations 403, and $verify catches a tampered record.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';

describe('consent flow across organizations (real network, three gateways)', function () {
  let h1: Gw;
  let h2: Gw;
  let reg: Gw;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  const auditor = generateDidKey();
  let patientId: string;
  let observationId: string;
  const consentId = '3f6c1d5e-8a2b-4c7d-9e0f-1a2b3c4d5e6f';
  const consent = permitOrganizationConsent(consentId, patientKey.did, 'Hospital2MSP', 'TREAT') as { id: string } & Record<string, unknown>;

  /** A fresh DID token of the hospital2 practitioner, for hospital1's gateway. */
  const h2Token = (scope = 'user/*.read', purpose = 'TREAT'): string =>
    signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope, purposeOfUse: purpose, ttlSec: 120 });
  const patientToken = (gw: Gw, scope: string): string => signDidToken({ key: patientKey.privateJwk, audience: gw.config.baseUrl, scope, ttlSec: 120 });

  before(async () => {
    [h1, h2, reg] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2'), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await registerDid(reg, 'regulator', 'auditor', auditor);

    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Okonkwo-Lindqvist', given: ['Marisol'] }],
      birthDate: '1984-06-30',
    });
    expect(p.status, p.text).to.equal(201);
    patientId = p.body.id;
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${patientId}` },
      effectiveDateTime: '2026-11-20T09:30:00Z',
      valueQuantity: { value: 64, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = o.body.id;
  });

  after(async () => {
    await Promise.all([h1, h2, reg].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('denies a hospital2 practitioner without consent, and search totals do not leak the record', async () => {
    const read = await call(h1, 'GET', `/Observation/${observationId}`, h2Token());
    // Denied is answered as absent: the caller cannot tell an existing record from a missing one.
    expect(read.status, read.text).to.equal(404);
    expect(read.text).to.not.include('Okonkwo');
    const search = await call(h1, 'GET', `/Observation?patient=${patientKey.did}`, h2Token());
    expect(search.status).to.equal(200);
    expect(search.body.total).to.equal(0);
    expect(search.body.entry ?? []).to.have.length(0);
  });

  let grantJws: string;

  it('the patient grants consent with their signature; access then succeeds and is recorded', async () => {
    grantJws = signConsent(patientKey.privateJwk, consent, 'grant');
    const granted = await call(h1, 'POST', '/Consent', patientToken(h1, 'patient/Consent.write'), grantJws, 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    expect(granted.body.id).to.equal(consentId);

    const read = await call(h1, 'GET', `/Observation/${observationId}`, h2Token());
    expect(read.status, read.text).to.equal(200);
    expect(read.body.valueQuantity.value).to.equal(64);
    const search = await call(h1, 'GET', `/Observation?patient=${patientKey.did}`, h2Token());
    expect(search.status, search.text).to.equal(200);
    expect(search.body.total).to.equal(1);
  });

  it('refuses a replayed consent signature and a consent signed by someone else', async () => {
    const forged = signConsent(drH2.privateJwk, { ...consent, id: 'a1b2c3d4-0000-4000-8000-000000000001' }, 'grant', { kid: patientKey.kid });
    const res = await call(h1, 'POST', '/Consent', patientToken(h1, 'patient/Consent.write'), forged, 'application/jose');
    expect(res.status, res.text).to.equal(400);
    expect(res.body.issue[0].diagnostics).to.include('signature does not verify');
    const replay = await call(h1, 'POST', '/Consent', patientToken(h1, 'patient/Consent.write'), grantJws, 'application/jose');
    expect(replay.status, replay.text).to.equal(409);
  });

  it('the patient revokes; the very next read is denied', async () => {
    const revoked = await call(
      h1,
      'PUT',
      `/Consent/${consentId}`,
      patientToken(h1, 'patient/Consent.write'),
      signConsent(patientKey.privateJwk, consent, 'revoke'),
      'application/jose',
    );
    expect(revoked.status, revoked.text).to.equal(200);
    expect(revoked.body.status).to.equal('inactive');
    const read = await call(h1, 'GET', `/Observation/${observationId}`, h2Token());
    expect(read.status, read.text).to.equal(404);
  });

  it('the regulator and the patient see all of it as AuditEvents', async () => {
    const asAuditor = signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 });
    const byRegulator = await call(reg, 'GET', `/AuditEvent?patient=${patientKey.did}&_count=100`, asAuditor);
    expect(byRegulator.status, byRegulator.text).to.equal(200);
    type Event = { outcome: string; agent: Array<{ who: { identifier: { value: string } }; policy?: string[] }>; entity: Array<{ what: { reference?: string } }> };
    const events = (byRegulator.body.entry as Array<{ resource: Event }>).map((e) => e.resource);
    const h2Reads = events.filter((e) => e.agent[0]?.who.identifier.value === drH2.did && e.entity.some((x) => x.what.reference?.startsWith(`Observation/${observationId}`)));
    expect(h2Reads.map((e) => e.outcome)).to.include.members(['4', '0']);
    const permitted = h2Reads.find((e) => e.outcome === '0');
    expect(permitted?.agent[0]?.policy).to.deep.equal([`Consent/${consentId}`]);

    // Through another member's gateway the auditor's read-all right does not apply.
    const elsewhere = await call(
      h1,
      'GET',
      `/AuditEvent?patient=${patientKey.did}`,
      signDidToken({ key: auditor.privateJwk, audience: h1.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 }),
    );
    expect(elsewhere.status, elsewhere.text).to.equal(403);

    const byPatient = await call(h1, 'GET', `/AuditEvent?patient=${patientKey.did}&_count=100`, patientToken(h1, 'patient/AuditEvent.read'));
    expect(byPatient.status, byPatient.text).to.equal(200);
    expect(byPatient.body.entry.length).to.equal(byRegulator.body.entry.length);
    // Nothing identifying in the access history.
    expect(byRegulator.text).to.not.include('Okonkwo');
    expect(byRegulator.text).to.not.include('1984-06-30');
  });

  it('401 for missing, unsigned (alg none), expired and wrong-audience tokens; 403 for a scope violation', async () => {
    expect((await call(h1, 'GET', `/Observation/${observationId}`, undefined)).status).to.equal(401);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: drH2.did, sub: drH2.did, aud: h1.config.baseUrl, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`;
    expect((await call(h1, 'GET', `/Observation/${observationId}`, none)).status).to.equal(401);
    const expired = signDidToken({
      key: drH2.privateJwk,
      audience: h1.config.baseUrl,
      scope: 'user/*.read',
      purposeOfUse: 'TREAT',
      iat: Math.floor(Date.now() / 1000) - 600,
      ttlSec: 60,
    });
    expect((await call(h1, 'GET', `/Observation/${observationId}`, expired)).status).to.equal(401);
    const wrongAud = signDidToken({ key: drH2.privateJwk, audience: h2.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT' });
    expect((await call(h1, 'GET', `/Observation/${observationId}`, wrongAud)).status).to.equal(401);
    const scoped = await call(h1, 'GET', `/Observation/${observationId}`, h2Token('user/Patient.read'));
    expect(scoped.status).to.equal(403);
  });

  it('$verify reports a tampered record, and it is not served as valid', async () => {
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    expect((await call(h1, 'GET', `/Observation/${observationId}/$verify`, staff)).body.parameter[0].valueBoolean).to.equal(true);
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'));
    const row = db.prepare('SELECT content FROM resource_version WHERE id = ?').get(observationId) as { content: string };
    db.prepare('UPDATE resource_version SET content = ? WHERE id = ?').run(row.content.replace('"value":64', '"value":46'), observationId);
    db.close();
    const verify = await call(h1, 'GET', `/Observation/${observationId}/$verify`, staff);
    expect(verify.body.parameter[0].valueBoolean).to.equal(false);
    const read = await call(h1, 'GET', `/Observation/${observationId}`, staff);
    expect(read.status).to.equal(500);
    expect(read.body.issue[0].details.coding[0].code).to.equal('INTEGRITY');
  });
});
