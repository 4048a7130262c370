import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { generateDidKey } from '../auth/did-key';
import { commitmentOf, versionKey } from '../model/commitment';
import { newLogger } from '../logger';
import { FakeLedger } from '../test-support/fake-ledger';
import { ExchangeService, OPENING_KEY_EXTENSION } from './exchange-service';
import { staffCaller } from '../test-support/callers';

const PATIENT = `did:hdx:${'p'.repeat(43)}`;
const DR = `did:hdx:${'d'.repeat(43)}`;

/** A custodian gateway stand-in that serves one searchset, whatever it is asked. */
async function custodian(bundle: unknown): Promise<{ url: string; server: Server; auth: string[] }> {
  const auth: string[] = [];
  const server = createServer((req, res) => {
    auth.push(String(req.headers.authorization));
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(bundle));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`, server, auth };
}

describe('ExchangeService (requesting member)', () => {
  const patientKey = Buffer.alloc(32, 7);
  const obs = { resourceType: 'Observation', id: 'o1', meta: { versionId: '1' }, status: 'final', code: { text: 'x' }, valueQuantity: { value: 58 } };
  const opening = versionKey(patientKey, 'Observation', 'o1', '1');

  async function setup(served: object, withKey = true) {
    const ledger = new FakeLedger('Hospital1MSP');
    ledger.decide = () => ({ decision: 'permit', consents: ['c1'], reason: 'consent-permit', breakGlass: false });
    await ledger.anchor({
      resourceType: 'Observation',
      id: 'o1',
      versionId: '1',
      patient: PATIENT,
      lastUpdated: '2026-01-01T00:00:00.000Z',
      commitment: { alg: 'HMAC-SHA-256', value: commitmentOf(opening, obs) },
    });
    const extension = withKey ? [{ url: OPENING_KEY_EXTENSION, valueBase64Binary: opening.toString('base64') }] : undefined;
    const c = await custodian({ resourceType: 'Bundle', type: 'searchset', entry: [{ ...(extension ? { extension } : {}), resource: served }] });
    const svc = new ExchangeService({ ledger, log: newLogger('silent'), mspId: 'Hospital2MSP', orgKey: generateDidKey().privateJwk, memberUrls: { Hospital1MSP: c.url } });
    return { svc, c };
  }
  const caller = staffCaller({ did: DR, organization: 'Hospital2MSP' });
  type Out = { entry: Array<{ resource: { resourceType: string; issue?: Array<{ diagnostics: string }> } }> };

  it('passes on what matches its anchor, with provenance, asking as the organization for the user', async () => {
    const { svc, c } = await setup(obs);
    try {
      const out = (await svc.fetchPatientRecords(caller, PATIENT, undefined, () => true)) as Out;
      expect(out.entry.map((e) => e.resource.resourceType)).to.deep.equal(['Observation', 'Provenance']);
      const token = JSON.parse(Buffer.from(String(c.auth[0]).split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
      expect(token).to.include({ hdx_user: DR, aud: c.url, purpose_of_use: 'TREAT' });
    } finally {
      c.server.close();
    }
  });

  it('withholds content that does not match its anchor, and says so', async () => {
    const { svc, c } = await setup({ ...obs, valueQuantity: { value: 85 } });
    try {
      const out = (await svc.fetchPatientRecords(caller, PATIENT, undefined, () => true)) as Out;
      expect(out.entry.map((e) => e.resource.resourceType)).to.deep.equal(['OperationOutcome']);
      expect(out.entry[0]?.resource.issue?.[0]?.diagnostics).to.include('does not match its anchor');
      expect(JSON.stringify(out)).to.not.include('"value":85');
    } finally {
      c.server.close();
    }
  });

  it('withholds content sent without an opening key', async () => {
    const { svc, c } = await setup(obs, false);
    try {
      const out = (await svc.fetchPatientRecords(caller, PATIENT, undefined, () => true)) as Out;
      expect(out.entry.map((e) => e.resource.resourceType)).to.deep.equal(['OperationOutcome']);
    } finally {
      c.server.close();
    }
  });

  it("fetches only the types the user's scopes may read, each with a token scoped to that one type (review #14)", async () => {
    const { svc, c } = await setup(obs);
    try {
      const none = (await svc.fetchPatientRecords(caller, PATIENT, undefined, (t) => t === 'Patient')) as Out;
      expect(none.entry, 'a Patient-only scope must not bring back Observations').to.deep.equal([]);
      expect(c.auth, 'nothing was asked of the custodian').to.deep.equal([]);
      await svc.fetchPatientRecords(caller, PATIENT, undefined, (t) => t === 'Observation');
      const token = JSON.parse(Buffer.from(String(c.auth[0]).split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
      expect(token.scope).to.equal('user/Observation.read');
    } finally {
      c.server.close();
    }
  });
});
