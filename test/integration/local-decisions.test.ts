/**
 * Issue 11, second slice, on the real network: hospital1's gateway in async audit mode decides reads on
 * its ledger view (the chaincode's own decision, run locally). A consent revoked through HOSPITAL2's
 * gateway denies the next read at hospital1 within one block after the revoke commits, and the denial
 * is a local decision on a view holding the revoke. With the view's event stream stopped, the view goes
 * stale and the reads get the chaincode's (correct) answer: a consent granted meanwhile permits, its
 * revocation denies, and none of those entries claims a view height.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import pino from 'pino';
import { DID_IDENTIFIER_SYSTEM, enrollGatewayIdentity, FabricLedger, generateDidKey, type LedgerView, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';

/** An access entry as hospital1's outbox holds it (the flush interval keeps them there during the test). */
interface QueuedEntry {
  actor: string;
  resources?: string[];
  decision: string;
  reason?: string;
  consents?: string[];
  decidedAt?: { height: number };
}

describe('local decisions (issue 11): on a fresh ledger view, failing closed to the chaincode (real network)', function () {
  const log = pino({ level: 'silent' });
  let h1: Gw;
  let h2: Gw;
  let peer1: FabricLedger;
  let peer2: FabricLedger;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  const first = permitOrganizationConsent('5b0e8f61-3c2d-4e7a-9b1c-2d3e4f5a6b7c', patientKey.did, 'Hospital2MSP', 'TREAT');
  const second = permitOrganizationConsent('6c1f9a72-4d3e-4f8b-8c2d-3e4f5a6b7c8d', patientKey.did, 'Hospital2MSP', 'TREAT');
  let observationId: string;

  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 300 });
  const patientToken = (gw: Gw): string => signDidToken({ key: patientKey.privateJwk, audience: gw.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });
  const read = async (): Promise<number> => (await call(h1, 'GET', `/Observation/${observationId}`, h2Token())).status;
  const view = (): LedgerView => {
    const v = h1.gateway.view;
    if (!v) throw new Error('hospital1 keeps no ledger view');
    return v;
  };
  const health = async (): Promise<{ height: string; fresh: boolean; streaming: boolean; decisions: string }> => {
    const res = await call(h1, 'GET', `${h1.config.baseUrl.replace(/\/fhir$/, '')}/healthz`, undefined);
    expect(res.status, res.text).to.equal(200);
    return res.body.checks.view;
  };
  /** The reads of the observation by hospital2's practitioner, as queued in hospital1's outbox, in order. */
  const queuedReads = (): QueuedEntry[] => {
    const db = new Database(path.join(h1.config.dataDir, 'outbox.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT entry FROM outbox_entry ORDER BY seq').all() as Array<{ entry: string }>)
        .map((r) => JSON.parse(r.entry) as QueuedEntry)
        .filter((e) => e.actor === drH2.did && (e.resources ?? []).some((r) => r.startsWith(`Observation/${observationId}/`)));
    } finally {
      db.close();
    }
  };
  const until = async (what: string, ms: number, probe: () => Promise<boolean>): Promise<void> => {
    const end = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const changeConsentAtH2 = async (consent: Record<string, unknown>, action: 'grant' | 'revoke'): Promise<void> => {
    const res =
      action === 'grant'
        ? await call(h2, 'POST', '/Consent', patientToken(h2), signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose')
        : await call(h2, 'PUT', `/Consent/${String(consent.id)}`, patientToken(h2), signConsent(patientKey.privateJwk, consent, 'revoke'), 'application/jose');
    expect(res.status, res.text).to.equal(action === 'grant' ? 201 : 200);
  };

  before(async () => {
    [h1, h2] = await Promise.all([
      // Entries stay in the outbox for the whole test (a flush would commit blocks of its own), decisions local.
      startTestGateway('hospital1', { HDX_AUDIT_MODE: 'async', HDX_AUDIT_FLUSH_MS: '3600000', HDX_DECISIONS: 'local' }),
      startTestGateway('hospital2'),
    ]);
    peer1 = new FabricLedger(h1.config, await enrollGatewayIdentity(h1.config, log));
    peer2 = new FabricLedger(h2.config, await enrollGatewayIdentity(h2.config, log));
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1979-02-11',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${p.body.id}` },
      effectiveDateTime: '2026-11-20T09:30:00Z',
      valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = o.body.id;
    await changeConsentAtH2(first, 'grant');
    // The view catches up from block 0, then stays fresh.
    await until('hospital1 view to be fresh at the peer height', 120_000, async () => (await health()).fresh && BigInt((await health()).height) >= (await peer1.chainHeight()));
  });

  after(async () => {
    peer1?.close();
    peer2?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('reads are decided on the view: permitted by the consent, each entry naming the view height', async () => {
    expect((await health()).decisions).to.equal('local');
    expect(await read()).to.equal(200);
    const [entry] = queuedReads();
    expect(entry).to.deep.include({ decision: 'permit', consents: [first.id] });
    expect(entry?.decidedAt?.height).to.be.a('number');
    expect(entry?.decidedAt?.height ?? 0).to.be.at.most(Number(await peer1.chainHeight()));
  });

  it("a consent revoked through hospital2's gateway denies the next read at hospital1 within one block after the revoke commits", async () => {
    await changeConsentAtH2(first, 'revoke');
    // The revoke is committed on hospital2's peer: its block is the last one there.
    const revokeHeight = await peer2.chainHeight();
    const statuses: number[] = [];
    let deniedAtHeight: bigint | undefined;
    const end = Date.now() + 30_000;
    while (deniedAtHeight === undefined && Date.now() < end) {
      const status = await read();
      statuses.push(status);
      if (status === 404) deniedAtHeight = await peer1.chainHeight();
    }
    expect(deniedAtHeight, `reads after the revoke: ${statuses.join(',')}`).to.not.equal(undefined);
    // Nothing else commits meanwhile (the outbox holds its entries): the denial came at the revoke's own block.
    expect(Number(deniedAtHeight)).to.be.at.most(Number(revokeHeight) + 1);
    // The denial was decided locally, on a view that holds the revoke.
    const denied = queuedReads().filter((e) => e.decision === 'deny');
    expect(denied[0]?.decidedAt?.height, JSON.stringify(denied[0])).to.be.at.least(Number(revokeHeight));
    expect(denied[0]?.reason).to.equal('no-permit');
    // And stays denied.
    expect(await read()).to.equal(404);
  });

  it("with the view's event stream stopped, reads get the chaincode's answer: a consent granted meanwhile permits, its revoke denies", async () => {
    await view().stop();
    await until('the stopped view to turn stale', 10_000, async () => !(await health()).fresh);
    const before = queuedReads().length;
    await changeConsentAtH2(second, 'grant');
    // The view never saw this consent: only the chaincode can permit this read.
    expect(await read()).to.equal(200);
    await changeConsentAtH2(second, 'revoke');
    expect(await read()).to.equal(404);
    const entries = queuedReads().slice(before);
    expect(entries.map((e) => [e.decision, e.consents, e.decidedAt])).to.deep.equal([
      ['permit', [second.id], undefined],
      ['deny', [], undefined],
    ]);
  });
});
