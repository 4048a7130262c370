/**
 * The walking skeleton on a real network: the hospital1 gateway creates a Patient (validated, stored in
 * SQLite, anchored on the ledger), another organization reads the same anchor from its own peer, a read
 * checks the anchor, and a record tampered with in the store is withheld.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { down, up } from '@hdx/fabric-network';
import { commitmentOf, versionKey, enrollGatewayIdentity, FabricLedger, generateDidKey, newLogger } from '@hdx/gateway';
import { type Gw, registerDid, staffToken } from '../support/fhir-client';
import { gatewayConfig, network, startTestGateway } from '../support/network';

const patient = {
  resourceType: 'Patient',
  identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'MRN-7734-XQ' }],
  name: [{ family: 'Zwicky-Okonkwo', given: ['Henrietta'] }],
  gender: 'female',
  birthDate: '1971-04-09',
};
/** Values that must never appear on the ledger, in errors or logs. */
const PHI = ['MRN-7734-XQ', 'Zwicky', 'Henrietta', '1971-04-09'];

/** A hospital1 practitioner, DID registered, authenticated by hospital1's identity provider. */
const practitioner = generateDidKey();
let token: string;

async function post(gw: Gw, body: unknown): Promise<Response> {
  return fetch(`${gw.config.baseUrl}/Patient`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

function get(url: string): Promise<Response> {
  return fetch(url, { headers: { authorization: `Bearer ${token}` } });
}

async function ledgerOf(org: string): Promise<FabricLedger> {
  const config = await gatewayConfig(org);
  const log = newLogger('silent');
  return new FabricLedger(config, await enrollGatewayIdentity(config, log));
}

describe('walking skeleton: hospital1 gateway on the real network', () => {
  let h1: Gw;
  let hospital2: FabricLedger;

  before(async () => {
    h1 = await startTestGateway('hospital1');
    hospital2 = await ledgerOf('hospital2');
    await registerDid(h1, 'hospital1', 'practitioner', practitioner);
    token = staffToken(h1, 'hospital1', { did: practitioner.did });
  });
  after(async () => {
    hospital2?.close();
    await h1?.gateway.close();
  });

  it('reports the ledger and the store healthy', async () => {
    const res = await fetch(`http://127.0.0.1:${h1.gateway.port}/healthz`);
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { checks: Record<string, { ok: boolean }> };
    expect(body.checks.ledger?.ok).to.equal(true);
    expect(body.checks.store?.ok).to.equal(true);
  });

  it('creates a Patient, and hospital2 reads its anchor from its own peer', async () => {
    const res = await post(h1, patient);
    expect(res.status).to.equal(201);
    const created = (await res.json()) as { id: string; meta: { versionId: string; lastUpdated: string } };
    expect(res.headers.get('location')).to.equal(`${h1.config.baseUrl}/Patient/${created.id}/_history/1`);
    expect(res.headers.get('etag')).to.equal('W/"1"');
    expect(created.meta.versionId).to.equal('1');

    // Another organization, through its own peer and identity, sees the same anchor.
    const anchor = await hospital2.getAnchor('Patient', created.id, '1');
    expect(anchor, 'anchor visible from hospital2').to.not.equal(undefined);
    expect(anchor?.custodian).to.equal('Hospital1MSP');
    expect(anchor?.lastUpdated).to.equal(created.meta.lastUpdated);
    expect(anchor?.patient).to.match(/^pseudonym:[0-9a-f]{64}$/);

    // The commitment is the HMAC of the stored resource under the version's key, derived from the
    // patient's key (held only by hospital1).
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    const key = (db.prepare('SELECT hmac_key FROM patient_key WHERE patient_id = ?').get(created.id) as { hmac_key: Buffer }).hmac_key;
    db.close();
    expect(anchor?.commitment.value).to.equal(commitmentOf(versionKey(key, 'Patient', created.id, '1'), created));

    // Nothing identifying reaches the ledger.
    const onLedger = JSON.stringify(anchor);
    for (const value of PHI) expect(onLedger).to.not.include(value);
  });

  it('returns the Patient after checking it against its anchor', async () => {
    const created = (await (await post(h1, patient)).json()) as { id: string };
    const res = await get(`${h1.config.baseUrl}/Patient/${created.id}`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/fhir\+json/);
    const read = (await res.json()) as Record<string, unknown>;
    expect(read).to.deep.equal(created);
    const vread = await get(`${h1.config.baseUrl}/Patient/${created.id}/_history/1`);
    expect(vread.status).to.equal(200);
  });

  it('withholds a stored record that was tampered with, without echoing its content', async () => {
    const created = (await (await post(h1, patient)).json()) as { id: string };
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'));
    const row = db.prepare('SELECT content FROM resource_version WHERE id = ?').get(created.id) as { content: string };
    const tampered = { ...(JSON.parse(row.content) as object), birthDate: '1971-04-10' };
    db.prepare('UPDATE resource_version SET content = ? WHERE id = ?').run(JSON.stringify(tampered), created.id);
    db.close();

    const res = await get(`${h1.config.baseUrl}/Patient/${created.id}`);
    expect(res.status).to.equal(500);
    const text = await res.text();
    const outcome = JSON.parse(text) as { resourceType: string; issue: Array<{ details: { coding: Array<{ code: string }> } }> };
    expect(outcome.resourceType).to.equal('OperationOutcome');
    expect(outcome.issue[0]?.details.coding[0]?.code).to.equal('INTEGRITY');
    for (const value of [...PHI, '1971-04-10']) expect(text).to.not.include(value);
  });

  it('refuses an invalid Patient with an OperationOutcome naming the element, and anchors nothing', async () => {
    const res = await post(h1, { ...patient, gender: 'sometimes', birthDate: '09/04/1971' });
    expect(res.status).to.equal(400);
    const text = await res.text();
    const outcome = JSON.parse(text) as { issue: Array<{ expression?: string[] }> };
    const expressions = outcome.issue.flatMap((i) => i.expression ?? []);
    expect(expressions).to.include.members(['Patient.gender', 'Patient.birthDate']);
    for (const value of PHI) expect(text).to.not.include(value);
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    const pending = db.prepare("SELECT COUNT(*) AS n FROM resource_version WHERE state = 'pending'").get() as { n: number };
    db.close();
    expect(pending.n).to.equal(0);
  });
});

describe('network lifecycle: up is idempotent, and up after down resumes the same ledger', () => {
  it('keeps every anchor across down and up', async () => {
    const { options } = network();
    const h1 = await startTestGateway('hospital1');
    let id: string;
    try {
      token = staffToken(h1, 'hospital1', { did: practitioner.did });
      const created = (await (await post(h1, patient)).json()) as { id: string };
      id = created.id;
    } finally {
      await h1.gateway.close();
    }
    const again = await up(options); // already up: must change nothing
    expect(again.channel).to.equal('hdx');
    await down(options, { wipe: false });
    await up(options);
    const regulator = await ledgerOf('regulator');
    try {
      const anchor = await regulator.getAnchor('Patient', id, '1');
      expect(anchor?.custodian).to.equal('Hospital1MSP');
    } finally {
      regulator.close();
    }
  });
});
