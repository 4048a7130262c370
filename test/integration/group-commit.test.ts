/**
 * Issue 11, sync audit mode with group commit, on the real network: concurrent reads at hospital1 (the
 * default sync mode) share AuthorizeAndRecordBatch transactions, each read answered only after the
 * transaction carrying its own access entry is committed; a denied read grouped with permitted ones is
 * denied alone, and recorded.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pino from 'pino';
import { DID_IDENTIFIER_SYSTEM, enrollGatewayIdentity, FabricLedger, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';

describe('sync audit mode: group commit (real network)', function () {
  const log = pino({ level: 'silent' });
  let h1: Gw;
  let h2: Gw;
  let peer1: FabricLedger;
  const consenting = generateDidKey();
  const other = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let permittedObs: string;
  let deniedObs: string;

  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 300 });

  before(async () => {
    [h1, h2] = await Promise.all([startTestGateway('hospital1', { HDX_AUDIT_MODE: 'sync' }), startTestGateway('hospital2')]);
    expect(h1.config.auditMode).to.equal('sync');
    expect(h1.config.groupCommitInFlight).to.be.greaterThan(0);
    peer1 = new FabricLedger(h1.config, await enrollGatewayIdentity(h1.config, log));
    await registerDid(h1, 'hospital1', 'patient', consenting);
    await registerDid(h1, 'hospital1', 'patient', other);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const observationOf = async (patientDid: string): Promise<string> => {
      const p = await call(h1, 'POST', '/Patient', staff, { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientDid }] });
      expect(p.status, p.text).to.equal(201);
      const o = await call(h1, 'POST', '/Observation', staff, {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${String(p.body.id)}` },
        effectiveDateTime: '2026-11-20T09:30:00Z',
      });
      expect(o.status, o.text).to.equal(201);
      return String(o.body.id);
    };
    permittedObs = await observationOf(consenting.did);
    deniedObs = await observationOf(other.did);
    const consent = permitOrganizationConsent(randomUUID(), consenting.did, 'Hospital2MSP', 'TREAT');
    const granted = await call(
      h1,
      'POST',
      '/Consent',
      signDidToken({ key: consenting.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 }),
      signConsent(consenting.privateJwk, consent, 'grant'),
      'application/jose',
    );
    expect(granted.status, granted.text).to.equal(201);
  });

  after(async () => {
    peer1?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('24 concurrent reads share transactions; each is recorded; the denied one is denied alone', async () => {
    const reads = Array.from({ length: 24 }, (_, i) => (i === 11 ? deniedObs : permittedObs));
    const tokens = reads.map(() => h2Token());
    const results = await Promise.all(reads.map((id, i) => call(h1, 'GET', `/Observation/${id}`, tokens[i])));
    expect(results.map((r) => r.status)).to.deep.equal(reads.map((id) => (id === deniedObs ? 404 : 200)));

    // On the ledger: one entry per read (permit or deny), in fewer transactions than reads.
    const entries = [];
    let bookmark = '';
    do {
      const page = await peer1.queryAccess({ actor: drH2.did, requester: drH2.did, pageSize: 100, ...(bookmark ? { bookmark } : {}) });
      entries.push(...page.entries);
      bookmark = page.bookmark;
    } while (bookmark);
    const reads24 = entries.filter((e) => e.subtype === 'read');
    expect(reads24).to.have.length(24);
    expect(reads24.filter((e) => e.decision === 'deny').map((e) => e.resources[0]?.split('/')[1])).to.deep.equal([deniedObs]);
    expect(reads24.filter((e) => e.decision === 'permit')).to.have.length(23);
    const transactions = new Set(reads24.map((e) => e.txId));
    expect(transactions.size).to.be.lessThan(24);
  });
});
