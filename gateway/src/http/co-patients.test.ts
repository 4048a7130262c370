/**
 * A record in several patients' compartments (issue 10), through HTTP on the REAL hdx contracts
 * (ContractLedger, sync audit mode: the chaincode decides and records): an Observation of Alice whose
 * performer is Bob is governed by both patients' consents. Its anchor names both, a read or a search by
 * another member needs both consents, each patient's history gets the access, a patient may not write
 * into another patient's compartment, and erasing either patient erases it.
 */
import { expect } from 'chai';
import request from 'supertest';
import { AuditContract } from '@hdx/chaincode';
import { MAX_CO_PATIENTS } from '@hdx/chaincode/dist/protocol';
import { grantConsent, H1_ADMIN, H2_GATEWAY, REG_AUDITOR, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import type { TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { ErasureService } from '../fhir/erasure';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { newLogger } from '../logger';
import type { ResourceStore } from '../store/store';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import { asCaller } from '../test-support/fake-auth';
import { testApp } from '../test-support/test-app';
import { testStore } from '../test-support/test-store';

const audit = new AuditContract();
const FHIR = 'application/fhir+json';

describe('a record in several patients’ compartments (HTTP, real contracts)', () => {
  let chain: ChaincodeLedger;
  let h1: ContractLedger;
  let store: ResourceStore;
  let app: ReturnType<typeof testApp>['app'];
  let alice: TestKey;
  let bob: TestKey;
  let h1Doctor: TestKey;
  let h2Doctor: TestKey;
  let aliceId: string;
  let bobId: string;

  const staff = (): [string, string] => asCaller({ did: h1Doctor.did, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
  const h2 = (): [string, string] => asCaller({ did: h2Doctor.did, role: 'practitioner', organization: 'Hospital2MSP', tokenKind: 'did', purpose: 'TREAT', scope: 'user/*.read' });
  const asPatient = (key: TestKey, scope = 'patient/*.*'): [string, string] =>
    asCaller({ did: key.did, role: 'patient', organization: 'Hospital1MSP', tokenKind: 'did', purpose: 'PATRQT', scope });
  const post = (type: string, body: object, as: [string, string] = staff()) =>
    request(app)
      .post(`/fhir/${type}`)
      .set(...as)
      .set('content-type', FHIR)
      .send(body);
  const get = (path: string, as: [string, string] = h2()) =>
    request(app)
      .get(`/fhir/${path}`)
      .set(...as);
  const observation = (performers: string[], subject = aliceId) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/${subject}` },
    ...(performers.length > 0 ? { performer: performers.map((p) => ({ reference: `Patient/${p}` })) } : {}),
    effectiveDateTime: '2024-04-02',
    valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  });
  const toHospital2 = (key: TestKey, id: string, actor: object = { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } }) =>
    grantConsent(chain, key, id, { type: 'permit', actor: [{ reference: actor }] }, H1_ADMIN);
  const historyOf = async (key: TestKey): Promise<Array<{ resources: string[]; decision: string; action: string }>> =>
    JSON.parse(await chain.invoke(REG_AUDITOR, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ patient: key.did })))).entries;
  const diagnostics = (res: request.Response): string => String((res.body as { issue?: Array<{ diagnostics?: string }> }).issue?.[0]?.diagnostics);

  beforeEach(async () => {
    chain = new ChaincodeLedger();
    alice = await registerDid(chain, 'patient');
    bob = await registerDid(chain, 'patient');
    h1Doctor = await registerDid(chain, 'practitioner');
    h2Doctor = await registerDid(chain, 'practitioner', H2_GATEWAY);
    h1 = new ContractLedger('Hospital1MSP', { chain });
    store = testStore();
    const erasure = new ErasureService(store, h1, newLogger('silent'), 'Hospital1MSP');
    app = testApp({ store, ledger: h1, erasure }).app;
    aliceId = String((await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: alice.did }] })).body.id);
    bobId = String((await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: bob.did }] })).body.id);
  });

  it('anchors it under both patients, and another member reads or finds it only when both consent', async () => {
    const created = await post('Observation', observation([bobId]));
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const id = String(created.body.id);
    const anchor = await h1.getAnchor('Observation', id, '1');
    expect(anchor?.patient).to.equal(alice.did);
    expect(anchor?.coPatients).to.deep.equal([bob.did]);
    expect((await store.readCurrent('Observation', id))?.coPatientIds).to.deep.equal([bobId]);

    const seen = async (): Promise<{ read: number; total: unknown; ids: string[] }> => {
      const read = await get(`Observation/${id}`);
      const search = await get(`Observation?patient=${alice.did}&code=8867-4`);
      expect(search.status, JSON.stringify(search.body)).to.equal(200);
      const ids = ((search.body.entry ?? []) as Array<{ resource: { id: string } }>).map((e) => e.resource.id);
      return { read: read.status, total: search.body.total, ids };
    };
    expect(await seen()).to.deep.equal({ read: 404, total: 0, ids: [] });
    // Alice's consent alone does not release what is Bob's too, nor does Bob's alone.
    await toHospital2(alice, 'c-alice');
    expect(await seen()).to.deep.equal({ read: 404, total: 0, ids: [] });
    await toHospital2(bob, 'c-bob');
    expect(await seen()).to.deep.equal({ read: 200, total: 1, ids: [id] });

    // The creation and every read, permitted or refused, are in both patients' histories.
    for (const key of [alice, bob]) {
      const entries = (await historyOf(key)).filter((e) => e.resources.some((r) => r.startsWith(`Observation/${id}`)));
      expect(entries.map((e) => `${e.action}:${e.decision}`)).to.include.members(['C:permit', 'R:deny', 'R:permit']);
    }
  });

  it('a patient reads it in their own compartment only when the other patient consents, and may not write into another compartment', async () => {
    const id = String((await post('Observation', observation([bobId]))).body.id);
    const asBob = asPatient(bob);
    expect((await get(`Observation/${id}`, asBob)).status).to.equal(404);
    const own = await get('Observation', asBob);
    expect(own.body.total).to.equal(0);
    // Alice lets Bob see her records: the shared one is then Bob's to read, and his search finds it.
    await toHospital2(alice, 'c-alice-bob', { reference: bob.did });
    expect((await get(`Observation/${id}`, asBob)).status).to.equal(200);
    expect((await get('Observation', asBob)).body.total).to.equal(1);
    // Bob may not record an Observation in Alice's compartment, even one naming him too: answered as for
    // a Patient not held here, so a patient cannot probe which patients are.
    const written = await post('Observation', observation([bobId]), asPatient(bob));
    expect(written.status).to.equal(400);
    expect(diagnostics(written)).to.equal('Observation.subject must reference a Patient held by this server');
    expect((await post('Observation', observation([], bobId), asPatient(bob))).status).to.equal(201);
  });

  it('refuses a co-patient not held here and more patients than an anchor may name; nothing is written', async () => {
    const unknown = await post('Observation', observation([bobId, 'not-held']));
    expect(unknown.status).to.be.oneOf([400, 422]);
    const others: string[] = [];
    for (let i = 0; i < MAX_CO_PATIENTS + 1; i++) others.push(String((await post('Patient', { resourceType: 'Patient', active: true })).body.id));
    const many = await post('Observation', observation(others));
    expect(many.status).to.equal(400);
    expect(diagnostics(many)).to.include(`at most ${1 + MAX_CO_PATIENTS} patients' compartments`);
    expect((await get('Observation', staff())).body.total).to.equal(0);
  });

  it("erasing either patient erases it (both here and its anchor), and leaves the other patient's own records", async () => {
    const shared = String((await post('Observation', observation([bobId]))).body.id);
    const alicesOwn = String((await post('Observation', observation([]))).body.id);
    const admin = asCaller({ did: h1Doctor.did, role: 'admin', organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
    const erased = await request(app)
      .post(`/fhir/Patient/${bobId}/$erase`)
      .set(...admin);
    expect(erased.status, JSON.stringify(erased.body)).to.equal(200);
    expect((await get(`Observation/${shared}`, staff())).status).to.equal(404);
    expect((await h1.getAnchor('Observation', shared, '1'))?.tombstone).to.be.an('object');
    const own = await get(`Observation/${alicesOwn}`, staff());
    expect(own.status, diagnostics(own)).to.equal(200);
  });
});
