/**
 * Issue 10 on the real network: a record in several patients' compartments (an Observation of Alice
 * whose performer is Bob) is governed by both patients' consents. Hospital2's practitioner, reading at
 * hospital1 through the public API, is refused while only Alice has consented (her consent granted
 * through hospital2's gateway, and seen by hospital1's ledger view), and reads it once Bob consents too.
 * The anchor names both patients, and the access is in Bob's history as well as Alice's.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pino from 'pino';
import { DID_IDENTIFIER_SYSTEM, enrollGatewayIdentity, FabricLedger, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';

describe('a record in several patients’ compartments (issue 10, real network)', function () {
  const log = pino({ level: 'silent' });
  let h1: Gw;
  let h2: Gw;
  let peer1: FabricLedger;
  const alice = generateDidKey();
  const bob = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let observationId: string;

  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 300 });
  const read = async (): Promise<number> => (await call(h1, 'GET', `/Observation/${observationId}`, h2Token())).status;
  /** The patient grants hospital2 treatment access, through HOSPITAL2's gateway. */
  const grantAtH2 = async (key: ReturnType<typeof generateDidKey>): Promise<void> => {
    const consent = permitOrganizationConsent(randomUUID(), key.did, 'Hospital2MSP', 'TREAT');
    const token = signDidToken({ key: key.privateJwk, audience: h2.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });
    const res = await call(h2, 'POST', '/Consent', token, signConsent(key.privateJwk, consent, 'grant'), 'application/jose');
    expect(res.status, res.text).to.equal(201);
  };
  const until = async (what: string, ms: number, probe: () => Promise<boolean>): Promise<void> => {
    const end = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** Hospital1's ledger view holds every block its peer has now. */
  const viewCaughtUp = async (): Promise<void> => {
    const target = await peer1.chainHeight();
    await until('hospital1 view to reach its peer height', 60_000, async () => {
      const res = await call(h1, 'GET', `${h1.config.baseUrl.replace(/\/fhir$/, '')}/healthz`, undefined);
      const v = res.body.checks?.view as { height?: string } | undefined;
      return v === undefined || BigInt(v.height ?? '0') >= target;
    });
  };

  before(async () => {
    [h1, h2] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2')]);
    peer1 = new FabricLedger(h1.config, await enrollGatewayIdentity(h1.config, log));
    await registerDid(h1, 'hospital1', 'patient', alice);
    await registerDid(h1, 'hospital1', 'patient', bob);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const patientOf = async (key: ReturnType<typeof generateDidKey>): Promise<string> => {
      const p = await call(h1, 'POST', '/Patient', staff, { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: key.did }] });
      expect(p.status, p.text).to.equal(201);
      return String(p.body.id);
    };
    const [aliceId, bobId] = [await patientOf(alice), await patientOf(bob)];
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${aliceId}` },
      performer: [{ reference: `Patient/${bobId}` }],
      effectiveDateTime: '2026-11-20T09:30:00Z',
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = String(o.body.id);
  });

  after(async () => {
    peer1?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('anchors it under both patients', async () => {
    const anchor = await peer1.getAnchor('Observation', observationId, '1');
    expect(anchor?.patient).to.equal(alice.did);
    expect(anchor?.coPatients).to.deep.equal([bob.did]);
  });

  it("is refused to another member with one patient's consent, and read once both have consented", async () => {
    expect(await read()).to.equal(404);
    await grantAtH2(alice);
    await viewCaughtUp();
    expect(await read(), "Alice's consent alone").to.equal(404);
    await grantAtH2(bob);
    await until('the read to be permitted once Bob has consented', 30_000, async () => (await read()) === 200);
  });

  it("puts every read in Bob's history too, the refused ones included", async () => {
    await until("the reads to be in Bob's history on the ledger", 60_000, async () => {
      const page = await peer1.queryAccess({ patient: bob.did, requester: bob.did, pageSize: 200 });
      const reads = page.entries.filter((e) => e.action === 'R' && e.resources.some((r) => r.startsWith(`Observation/${observationId}/`)));
      return reads.some((e) => e.decision === 'deny') && reads.some((e) => e.decision === 'permit');
    });
  });
});
