/**
 * Exchange between members on the real network: a hospital2 practitioner asks hospital2's gateway for a
 * patient's records held by hospital1. The gateway locates them through the ledger (consent-checked),
 * fetches them from hospital1's gateway as Hospital2's organization DID acting for the practitioner,
 * checks each against its anchor and returns them with provenance. Consent granted, revoked and
 * break-glass.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { OrgClient } from '../support/ledger';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';

type Entry = { resource: { resourceType: string; id: string; valueQuantity?: { value: number }; issue?: Array<{ diagnostics: string }>; target?: unknown[] } };

describe('exchange between members (real network, two gateways)', function () {
  let h1: Gw;
  let h2: Gw;
  let regulator: OrgClient;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let obsId: string;
  const consent = permitOrganizationConsent('7d0c2a9e-5b4f-4e1a-8c3d-2f6e9a1b0c4d', patientKey.did, 'Hospital2MSP', 'TREAT') as { id: string } & Record<string, unknown>;

  const exchange = (purpose = 'TREAT', reason?: string) => call(h2, 'GET', `/Patient/$exchange?patient=${patientKey.did}`, staffTokenWithReason(purpose, reason));
  function staffTokenWithReason(purpose: string, reason?: string): string {
    if (!reason) return staffToken(h2, 'hospital2', { did: drH2.did, scope: 'user/*.read', purpose });
    // Break-glass needs a reason: a DID token of the practitioner carries it.
    return signDidToken({ key: drH2.privateJwk, audience: h2.config.baseUrl, scope: 'user/*.read', purposeOfUse: purpose, breakGlassReason: reason });
  }
  const observations = (bundle: { entry?: Entry[] }) => (bundle.entry ?? []).filter((e) => e.resource.resourceType === 'Observation');

  before(async () => {
    h1 = await startTestGateway('hospital1');
    h2 = await startTestGateway('hospital2', { HDX_MEMBER_GATEWAYS: `Hospital1MSP=${h1.config.baseUrl}` });
    regulator = OrgClient.admin('regulator');
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Achterberg' }],
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${p.body.id}` },
      effectiveDateTime: '2026-11-20T08:00:00Z',
      valueQuantity: { value: 58, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    obsId = o.body.id;
  });

  after(async () => {
    regulator?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('without consent the ledger locates nothing for the practitioner, so nothing is fetched', async () => {
    const res = await exchange();
    expect(res.status, res.text).to.equal(200);
    expect(res.body.type).to.equal('collection');
    expect(observations(res.body)).to.have.length(0);
    expect(res.text).to.not.include('Achterberg');
  });

  it('with the patient’s consent: fetched from hospital1, checked against the anchors, with provenance; hospital1 recorded the access', async () => {
    const granted = await call(
      h1,
      'POST',
      '/Consent',
      signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write' }),
      signConsent(patientKey.privateJwk, consent, 'grant'),
      'application/jose',
    );
    expect(granted.status, granted.text).to.equal(201);
    const res = await exchange();
    expect(res.status, res.text).to.equal(200);
    const obs = observations(res.body);
    expect(obs.map((e) => e.resource.id)).to.deep.equal([obsId]);
    expect(obs[0]?.resource.valueQuantity?.value).to.equal(58);
    const prov = (res.body.entry as Entry[]).find((e) => e.resource.resourceType === 'Provenance');
    expect(prov?.resource.target).to.have.length(2); // the Patient and the Observation
    expect((res.body.entry as Entry[]).some((e) => e.resource.resourceType === 'OperationOutcome')).to.equal(false);

    // Async audit mode (the default): both gateways' entries reach the ledger within a flush interval.
    await Promise.all([auditDelivered(h1), auditDelivered(h2)]);
    const history = await regulator.evaluate<{ entries: Array<{ actor: string; actorOrganization: string; gateway: string; decision: string; resources: string[] }> }>(
      'hdx.audit',
      'QueryAccess',
      JSON.stringify({ actor: drH2.did, pageSize: 100 }),
    );
    const disclosed = history.entries.filter((e) => e.gateway === 'Hospital1MSP' && e.decision === 'permit');
    expect(disclosed.length).to.be.greaterThan(0);
    expect(disclosed.every((e) => e.actorOrganization === 'Hospital2MSP')).to.equal(true);
    expect(disclosed.flatMap((e) => e.resources)).to.include(`Observation/${obsId}/_history/1`);
  });

  it('a record altered at the custodian is not passed on as valid', async () => {
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'));
    const row = db.prepare('SELECT content FROM resource_version WHERE id = ?').get(obsId) as { content: string };
    db.prepare('UPDATE resource_version SET content = ? WHERE id = ?').run(row.content.replace('"value":58', '"value":85'), obsId);
    try {
      const res = await exchange();
      expect(res.status, res.text).to.equal(200);
      expect(observations(res.body).map((e) => e.resource.valueQuantity?.value)).to.not.include(85);
      const outcome = (res.body.entry as Entry[]).find((e) => e.resource.resourceType === 'OperationOutcome');
      expect(outcome?.resource.issue?.length).to.be.greaterThan(0);
    } finally {
      db.prepare('UPDATE resource_version SET content = ? WHERE id = ?').run(row.content, obsId);
      db.close();
    }
  });

  it('after the patient revokes, nothing is fetched; break-glass (with a reason) still reaches the record and is flagged', async () => {
    const revoked = await call(
      h1,
      'PUT',
      `/Consent/${consent.id}`,
      signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write' }),
      signConsent(patientKey.privateJwk, consent, 'revoke'),
      'application/jose',
    );
    expect(revoked.status, revoked.text).to.equal(200);
    expect(observations((await exchange()).body)).to.have.length(0);

    const emergency = await exchange('ETREAT', 'unconscious on arrival, allergy history needed');
    expect(emergency.status, emergency.text).to.equal(200);
    expect(observations(emergency.body).map((e) => e.resource.id)).to.deep.equal([obsId]);
    // Async audit mode (the default): both gateways' entries reach the ledger within a flush interval.
    await Promise.all([auditDelivered(h1), auditDelivered(h2)]);
    const history = await regulator.evaluate<{ entries: Array<{ breakGlass: boolean; purpose: string; gateway: string }> }>(
      'hdx.audit',
      'QueryAccess',
      JSON.stringify({ actor: drH2.did, pageSize: 100 }),
    );
    expect(history.entries.some((e) => e.breakGlass && e.purpose === 'ETREAT' && e.gateway === 'Hospital1MSP')).to.equal(true);
    expect(JSON.stringify(history.entries)).to.not.include('unconscious');
  });
});
