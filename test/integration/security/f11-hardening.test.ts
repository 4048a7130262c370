/**
 * Issue 9, finding 11: a deeply nested JSON body got a 500; large bodies were parsed before
 * authentication; no rate limits; a DID token cost a ledger lookup before its signature was checked.
 *
 * Attackers: an outsider without a valid token; a valid but abusive client. Run against a gateway of its
 * own (hospital1), so the flood's limits do not touch the other files' requests.
 *
 * Assumptions: the ledger calls a request makes are visible in the gateway's Prometheus metrics
 * (`hdx_ledger_call_duration_seconds_count`, one series per LedgerClient operation) — a DID key cache must
 * sit above that instrumentation (in the token verifier), so a junk-signature token for a known DID adds
 * no count; the per-identity rate limit is below 5000 requests a minute (and above the few hundred a minute the
 * rest of this suite sends as one staff identity) and answers 429.
 */
import { expect } from 'chai';
import { generateDidKey, signDidToken } from '@hdx/gateway';
import { call, httpCall, type Gw, staffToken } from '../../support/fhir-client';
import { didToken, extraGateway, missingId, newPatient, type PatientParty, securityEnv, type SecurityEnv, show } from '../../support/security';

describe('security finding 11: hardening of the HTTP surface', function () {
  let env: SecurityEnv;
  let gw: Gw;
  let patient: PatientParty;
  const root = (): string => gw.config.baseUrl.replace(/\/fhir$/, '');

  /** Every ledger call the gateway has made so far (sum over operations and outcomes). */
  async function ledgerCalls(): Promise<number> {
    const res = await httpCall(`${root()}/metrics`, 'GET', undefined);
    expect(res.status, `the gateway's metrics: ${show(res)}`).to.equal(200);
    let sum = 0;
    for (const line of res.text.split('\n')) {
      const m = /^hdx_ledger_call_duration_seconds_count\{[^}]*\}\s+([0-9.e+]+)$/.exec(line);
      if (m?.[1]) sum += Number(m[1]);
    }
    return sum;
  }

  before(async () => {
    env = await securityEnv();
    gw = await extraGateway('hospital1');
    patient = await newPatient(env, 'Hardening-F11');
  });

  it('a deeply nested JSON body sent to POST /did (by the hospital’s admin) gets 400 with an OperationOutcome, not a 500', async () => {
    const depth = 10000; // about 60 kB, inside the route's body limit
    const body = `{"kind":"patient","publicKeyJwk":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    const res = await call(gw, 'POST', `${root()}/did`, staffToken(gw, 'hospital1', { role: 'admin' }), body, 'application/json');
    expect(res.status, `deeply nested registration (depth ${depth}): ${show(res)}`).to.equal(400);
    expect(res.body?.resourceType).to.equal('OperationOutcome');
  });

  it('guard (holds on main): a deeply nested FHIR resource gets 400 with an OperationOutcome, and the gateway keeps answering', async () => {
    const depth = 100000;
    const body = `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[{"text":"x","extension":[${'{"url":"u","extension":['.repeat(depth)}${']}'.repeat(depth)}]}]}`;
    const res = await call(gw, 'POST', '/Observation', staffToken(gw, 'hospital1', { did: env.drH1.did }), body);
    expect(res.status, `deeply nested body (depth ${depth}): ${show(res)}`).to.equal(400);
    expect(res.body?.resourceType).to.equal('OperationOutcome');
    const alive = await call(gw, 'GET', `/Observation/${missingId()}`, staffToken(gw, 'hospital1', { did: env.drH1.did }));
    expect(alive.status, 'the gateway still answers').to.equal(404);
  });

  it('a large body without a token is refused as unauthenticated (401) before it is parsed', async () => {
    const junk = `{"resourceType":"Observation","padding":"${'x'.repeat(4 * 1024 * 1024)}`; // 4 MB, not even valid JSON
    const res = await call(gw, 'POST', '/Observation', undefined, junk);
    expect(res.status, `PARSED BEFORE AUTHENTICATION: 4 MB from an outsider: ${show(res)}`).to.equal(401);
  });

  it('a DID token with a junk signature for a registered DID costs no ledger call once the DID’s key is known', async () => {
    // The patient's real token: the gateway learns the DID's key.
    const ok = await call(gw, 'GET', `/Patient/${patient.patientId}`, didToken(patient.key.privateJwk, gw, 'patient/*.read', 'PATRQT'));
    expect([200, 403, 404]).to.include(ok.status);
    const forger = generateDidKey();
    const before = await ledgerCalls();
    for (let i = 0; i < 10; i++) {
      // Signed by another key, but naming the patient's DID URL as kid.
      const forged = signDidToken({ key: forger.privateJwk, kid: `${patient.did}#key-1`, audience: gw.config.baseUrl, scope: 'patient/*.read', purposeOfUse: 'PATRQT' });
      const res = await call(gw, 'GET', `/Patient/${patient.patientId}`, forged);
      expect(res.status, show(res)).to.equal(401);
    }
    const after = await ledgerCalls();
    expect(after - before, `AMPLIFICATION: 10 unauthenticated requests with junk signatures made ${after - before} ledger calls`).to.equal(0);
  });

  it('an identity flooding the gateway is rate limited (429)', async () => {
    const token = staffToken(gw, 'hospital1', { did: env.drH1.did, scope: 'user/*.read' });
    const statuses = new Map<number, number>();
    let sent = 0;
    const total = 5000;
    const worker = async (): Promise<void> => {
      while (sent < total && !statuses.has(429)) {
        sent++;
        const res = await fetch(`${gw.config.baseUrl}/Observation/${missingId()}`, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 25 }, worker));
    expect(statuses.get(429) ?? 0, `NO RATE LIMIT: ${sent} requests from one identity, statuses ${JSON.stringify([...statuses])}`).to.be.greaterThan(0);
  });
});
