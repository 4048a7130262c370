/**
 * Version-aware and conditional writes through HTTP (issue 10): If-Match on PUT, DELETE and Bundle
 * entries, conditional update and delete, PATCH. Each check also runs for a caller who may not see the
 * record (a patient outside its compartment), who must get exactly the answer a missing record gets.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const ALICE = did('a');
const BOB = did('b');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const asPatient = (who: string) => asCaller({ did: who, role: 'patient', organization: 'Hospital1MSP', purpose: 'PATRQT', scope: 'patient/*.*', tokenKind: 'did' });

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  ledger.decide = (req, anchor) => {
    const patient = anchor?.patient ?? req.patient;
    if (req.actor === patient) return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass: false };
    if (req.purpose === 'TREAT' && req.actorOrganization === (anchor?.custodian ?? req.custodian))
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
  };
  for (const [d, kind] of [
    [ALICE, 'patient'],
    [BOB, 'patient'],
    [DR, 'practitioner'],
  ] as const) {
    await ledger.registerDid({ did: d, kind });
  }
  const { app } = testApp({ store, ledger, log: newLogger('silent'), baseUrl: BASE });
  const post = async (path: string, body: object): Promise<string> => {
    const res = await request(app)
      .post(`/fhir/${path}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body.id as string;
  };
  const alice = await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
  const bob = await post('Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: BOB }] });
  const obs = (patientId: string, value: string, code = 'hiv') => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://example.org/codes', code }], text: 'HIV test' },
    subject: { reference: `Patient/${patientId}` },
    valueString: value,
  });
  const aliceObs = await post('Observation', obs(alice, 'not detected'));
  const bobObs = await post('Observation', obs(bob, 'detected'));
  const put = (path: string, body: object, who = staff, ifMatch?: string) => {
    const r = request(app)
      .put(`/fhir/${path}`)
      .set(...who)
      .set('content-type', FHIR);
    return (ifMatch !== undefined ? r.set('If-Match', ifMatch) : r).send(body);
  };
  const del = (path: string, who = staff, ifMatch?: string) => {
    const r = request(app)
      .delete(`/fhir/${path}`)
      .set(...who);
    return ifMatch !== undefined ? r.set('If-Match', ifMatch) : r;
  };
  const bundle = (type: 'transaction' | 'batch', entry: object[], who = staff) =>
    request(app)
      .post('/fhir')
      .set(...who)
      .set('content-type', FHIR)
      .send({ resourceType: 'Bundle', type, entry });
  return { app, ledger, store, alice, bob, aliceObs, bobObs, obs, put, del, bundle };
}

/** The answer without what differs between two requests anyway (the id in the text). */
const shape = (res: { status: number; body: unknown }, id: string) => ({ status: res.status, body: JSON.stringify(res.body).split(id).join('<id>') });

/**
 * Each malformed or refused patch body gets its status and an OperationOutcome that echoes nothing of
 * the body (`hidden`: what must not appear, such as the values the bodies carry).
 */
async function expectRefusals(send: (body: unknown) => Promise<request.Response>, cases: ReadonlyArray<readonly [unknown, number]>, hidden: RegExp): Promise<void> {
  for (const [body, status] of cases) {
    const res = await send(body);
    expect(res.status, JSON.stringify(body)).to.equal(status);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(JSON.stringify(res.body), JSON.stringify(body)).to.not.match(hidden);
  }
}

describe('If-Match (HTTP, fake ledger)', () => {
  it('PUT with the current version updates; with an older one is 412, writes nothing and does not name the current version', async () => {
    const { put, aliceObs, alice, obs, store, ledger } = await setup();
    const ok = await put(`Observation/${aliceObs}`, { ...obs(alice, 'v2'), id: aliceObs }, staff, 'W/"1"');
    expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
    expect(ok.headers.etag).to.equal('W/"2"');
    const anchors = ledger.anchors.size;
    // A lost update: the client still holds version 1.
    const stale = await put(`Observation/${aliceObs}`, { ...obs(alice, 'lost'), id: aliceObs }, staff, 'W/"1"');
    expect(stale.status).to.equal(412);
    expect(stale.body.resourceType).to.equal('OperationOutcome');
    expect(JSON.stringify(stale.body)).to.not.include('"2"');
    expect(stale.headers.etag).to.equal(undefined);
    expect(ledger.anchors.size).to.equal(anchors);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(2);
    // The strong form is accepted too; a malformed header is a 400, never ignored.
    expect((await put(`Observation/${aliceObs}`, { ...obs(alice, 'v3'), id: aliceObs }, staff, '"2"')).status).to.equal(200);
    expect((await put(`Observation/${aliceObs}`, { ...obs(alice, 'x'), id: aliceObs }, staff, '*')).status).to.equal(400);
    expect((await put(`Observation/${aliceObs}`, { ...obs(alice, 'x'), id: aliceObs }, staff, 'W/"a"')).status).to.equal(400);
  });

  it('DELETE with an older version is 412 and deletes nothing; with the current one deletes', async () => {
    const { put, del, aliceObs, alice, obs, store } = await setup();
    await put(`Observation/${aliceObs}`, { ...obs(alice, 'v2'), id: aliceObs });
    const stale = await del(`Observation/${aliceObs}`, staff, 'W/"1"');
    expect(stale.status).to.equal(412);
    expect((await store.readCurrent('Observation', aliceObs))?.deleted).to.equal(false);
    expect((await del(`Observation/${aliceObs}`, staff, 'W/"2"')).status).to.equal(204);
    expect((await store.readCurrent('Observation', aliceObs))?.deleted).to.equal(true);
  });

  it('a patient outside the compartment gets the answer a missing record gets, whatever If-Match says (no version oracle), and deletes nothing', async () => {
    const { put, del, bobObs, bob, obs, store } = await setup();
    const missing = 'no-such-observation';
    for (const ifMatch of [undefined, 'W/"1"', 'W/"7"']) {
      const update = await put(`Observation/${bobObs}`, { ...obs(bob, 'forged'), id: bobObs }, asPatient(ALICE), ifMatch);
      const absent = await put(`Observation/${missing}`, { ...obs(bob, 'forged'), id: missing }, asPatient(ALICE), ifMatch);
      expect(update.status, String(ifMatch)).to.equal(404);
      expect(shape(update, bobObs)).to.deep.equal(shape(absent, missing));
      const deletion = await del(`Observation/${bobObs}`, asPatient(ALICE), ifMatch);
      const absentDeletion = await del(`Observation/${missing}`, asPatient(ALICE), ifMatch);
      expect(deletion.status, String(ifMatch)).to.equal(absentDeletion.status);
      expect(deletion.status).to.equal(204);
    }
    // Bob's record is untouched: a patient never deletes outside its compartment.
    expect(await store.readCurrent('Observation', bobObs)).to.include({ versionId: 1, deleted: false });
  });

  it('Bundle request.ifMatch: a stale version fails the whole transaction (412, nothing written) and only its entry of a batch', async () => {
    const { bundle, aliceObs, bobObs, alice, bob, obs, store, ledger } = await setup();
    const anchors = ledger.anchors.size;
    const tx = await bundle('transaction', [
      { resource: { ...obs(alice, 'a2'), id: aliceObs }, request: { method: 'PUT', url: `Observation/${aliceObs}`, ifMatch: 'W/"1"' } },
      { resource: { ...obs(bob, 'b2'), id: bobObs }, request: { method: 'PUT', url: `Observation/${bobObs}`, ifMatch: 'W/"2"' } },
    ]);
    expect(tx.status).to.equal(412);
    expect(JSON.stringify(tx.body)).to.include('Bundle.entry[1]');
    expect(ledger.anchors.size).to.equal(anchors);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(1);
    const batch = await bundle('batch', [
      { resource: { ...obs(alice, 'a2'), id: aliceObs }, request: { method: 'PUT', url: `Observation/${aliceObs}`, ifMatch: 'W/"1"' } },
      { request: { method: 'DELETE', url: `Observation/${bobObs}`, ifMatch: 'W/"3"' } },
    ]);
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '412 Precondition Failed']);
    const misplaced = await bundle('batch', [{ resource: obs(alice, 'x'), request: { method: 'POST', url: 'Observation', ifMatch: 'W/"1"' } }]);
    expect(misplaced.body.entry[0].response.status).to.equal('400 Bad Request');
  });
});

describe('conditional update and delete (HTTP, fake ledger)', () => {
  const code = (c: string) => `code=http://example.org/codes|${c}`;

  it('PUT Type?query: none → 201 with a server id; one → that resource updated (If-Match applies); several → 412, nothing written', async () => {
    const { put, alice, obs, store, ledger } = await setup();
    const created = await put(`Observation?${code('bp')}`, obs(alice, 'first', 'bp'));
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const id = String(created.body.id);
    expect(created.headers.location).to.equal(`${BASE}/Observation/${id}/_history/1`);
    const updated = await put(`Observation?${code('bp')}`, obs(alice, 'second', 'bp'));
    expect(updated.status).to.equal(200);
    expect(updated.body).to.include({ id, valueString: 'second' });
    expect(updated.headers.etag).to.equal('W/"2"');
    expect((await put(`Observation?${code('bp')}`, obs(alice, 'stale', 'bp'), staff, 'W/"1"')).status).to.equal(412);
    // The body may name the match's id, but no other: the id in the body never picks another record.
    expect((await put(`Observation?${code('bp')}`, { ...obs(alice, 'x', 'bp'), id: 'other' })).status).to.equal(400);
    expect((await put(`Observation?${code('none')}`, { ...obs(alice, 'x', 'none'), id: 'chosen' })).status).to.equal(400);
    expect(await store.readCurrent('Observation', 'chosen')).to.equal(undefined);
    await put(`Observation?${code('dup')}`, obs(alice, 'a', 'dup'));
    const second = await put(`Observation?_id=nothing-here`, obs(alice, 'b', 'dup'));
    expect(second.status).to.equal(201);
    const anchors = ledger.anchors.size;
    const several = await put(`Observation?${code('dup')}`, obs(alice, 'c', 'dup'));
    expect(several.status).to.equal(412);
    expect(JSON.stringify(several.body)).to.not.include('dup');
    expect(ledger.anchors.size).to.equal(anchors);
    expect((await put('Observation', obs(alice, 'no query'))).status).to.equal(400);
    expect((await put(`Observation?nonsense=1`, obs(alice, 'x'))).status).to.equal(400);
  });

  it('DELETE Type?query: none → 204; one → deleted; several → 412, nothing deleted', async () => {
    const { put, del, alice, obs, store } = await setup();
    expect((await del(`Observation?${code('nothing')}`)).status).to.equal(204);
    const one = String((await put(`Observation?${code('one')}`, obs(alice, 'x', 'one'))).body.id);
    expect((await del(`Observation?${code('one')}`, staff, 'W/"9"')).status).to.equal(412);
    expect((await store.readCurrent('Observation', one))?.deleted).to.equal(false);
    expect((await del(`Observation?${code('one')}`)).status).to.equal(204);
    expect((await store.readCurrent('Observation', one))?.deleted).to.equal(true);
    const a = String((await put(`Observation?${code('two')}`, obs(alice, 'a', 'two'))).body.id);
    const b = String((await put(`Observation?_id=fresh`, obs(alice, 'b', 'two'))).body.id);
    expect((await del(`Observation?${code('two')}`)).status).to.equal(412);
    expect([(await store.readCurrent('Observation', a))?.deleted, (await store.readCurrent('Observation', b))?.deleted]).to.deep.equal([false, false]);
  });

  it("no existence oracle: a patient's conditional writes match its own compartment only; another member's user is refused before any match", async () => {
    const { put, del, app, alice, bob, obs, store } = await setup();
    // Two of Bob's records share a code; one more has a code only Bob has.
    const post = (body: object) =>
      request(app)
        .post('/fhir/Observation')
        .set(...staff)
        .set('content-type', FHIR)
        .send(body);
    const b1 = String((await post(obs(bob, 'x', 'shared'))).body.id);
    const b2 = String((await post(obs(bob, 'y', 'shared'))).body.id);
    const b3 = String((await post(obs(bob, 'z', 'bob-only'))).body.id);
    const alicePatient = asPatient(ALICE);
    // Deleting by Bob's codes answers as for a code nobody has, and deletes nothing.
    for (const c of ['shared', 'bob-only', 'nobody']) expect((await del(`Observation?${code(c)}`, alicePatient)).status, c).to.equal(204);
    for (const id of [b1, b2, b3]) expect(await store.readCurrent('Observation', id)).to.include({ versionId: 1, deleted: false });
    // Updating by them creates the patient's own record, exactly as for a code nobody has.
    for (const c of ['shared', 'bob-only', 'nobody']) {
      const res = await put(`Observation?${code(c)}`, obs(alice, 'home', c), alicePatient);
      expect(res.status, c).to.equal(201);
      expect(res.body.subject.reference).to.equal(`Patient/${alice}`);
      expect(JSON.stringify(res.body)).to.not.include(bob);
    }
    for (const id of [b1, b2, b3]) expect((await store.readCurrent('Observation', id))?.versionId).to.equal(1);
    // Conditional create too: If-None-Exist never names another patient's record to a patient.
    const ifNone = await request(app)
      .post('/fhir/Observation')
      .set(...alicePatient)
      .set('content-type', FHIR)
      .set('If-None-Exist', code('bob-only'))
      .send(obs(alice, 'mine', 'bob-only'));
    expect(ifNone.status).to.equal(200);
    expect(ifNone.headers.location).to.not.include(b3);
    // Conditional references in a patient's transaction: another patient's record is answered as none.
    const byRef = (value: string) =>
      request(app)
        .post('/fhir')
        .set(...alicePatient)
        .set('content-type', FHIR)
        .send({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: { ...obs(alice, 'ref'), subject: { reference: `Patient?identifier=${DID_IDENTIFIER_SYSTEM}|${value}` } }, request: { method: 'POST', url: 'Observation' } },
          ],
        });
    const toBob = await byRef(BOB);
    const toNobody = await byRef(did('n'));
    expect(toBob.status).to.equal(400);
    expect(toBob.body).to.deep.equal(toNobody.body);
    expect((await byRef(ALICE)).status).to.equal(200);
    // A token that may update but not create: 403 before any match, whether one would match or not.
    const updateOnly = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Observation.u' });
    for (const c of ['bob-only', 'nobody']) expect((await put(`Observation?${code(c)}`, obs(bob, 'x', c), updateOnly)).status, c).to.equal(403);
    expect((await store.readCurrent('Observation', b3))?.versionId).to.equal(1);
    // Another organization's user: 403 whatever the query matches.
    const other = asCaller({ did: did('o'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    for (const c of ['shared', 'bob-only', 'nobody']) {
      expect((await del(`Observation?${code(c)}`, other)).status, c).to.equal(403);
      expect((await put(`Observation?${code(c)}`, obs(bob, 'x', c), other)).status, c).to.equal(403);
    }
  });

  it('in a Bundle: request.url Type?query in a transaction (none creates, one updates, several fail it all) and in a batch', async () => {
    const { bundle, put, alice, obs, store, ledger } = await setup();
    const one = String((await put(`Observation?${code('one')}`, obs(alice, 'x', 'one'))).body.id);
    const tx = await bundle('transaction', [
      { resource: obs(alice, 'updated', 'one'), request: { method: 'PUT', url: `Observation?${code('one')}` } },
      { resource: obs(alice, 'created', 'new'), request: { method: 'PUT', url: `Observation?${code('new')}` } },
      { request: { method: 'DELETE', url: `Observation?${code('nothing')}` } },
    ]);
    expect(tx.status, JSON.stringify(tx.body)).to.equal(200);
    expect(tx.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '201 Created', '204 No Content']);
    expect(tx.body.entry[0].resource.id).to.equal(one);
    expect((await store.readCurrent('Observation', one))?.versionId).to.equal(2);
    await put(`Observation?_id=fresh`, obs(alice, 'dup', 'new'));
    const anchors = ledger.anchors.size;
    const failed = await bundle('transaction', [
      { resource: obs(alice, 'again', 'one'), request: { method: 'PUT', url: `Observation?${code('one')}` } },
      { request: { method: 'DELETE', url: `Observation?${code('new')}` } },
    ]);
    expect(failed.status).to.equal(412);
    expect(JSON.stringify(failed.body)).to.include('Bundle.entry[1]');
    expect(ledger.anchors.size).to.equal(anchors);
    const batch = await bundle('batch', [
      { request: { method: 'DELETE', url: `Observation?${code('new')}` } },
      { request: { method: 'DELETE', url: `Observation?${code('one')}` } },
      { request: { method: 'GET', url: `Observation?${code('one')}` } },
    ]);
    // A GET Type?query entry is a search (its own searchset), not a conditional interaction.
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['412 Precondition Failed', '204 No Content', '200 OK']);
    expect(batch.body.entry[2].resource.type).to.equal('searchset');
    expect((await store.readCurrent('Observation', one))?.deleted).to.equal(true);
  });

  it('a transaction naming one conditional request.url twice is refused (it would create twice)', async () => {
    const { bundle, alice, obs, store } = await setup();
    const url = 'Observation?code=http://example.org/codes|twice';
    const res = await bundle('transaction', [
      { resource: obs(alice, 'a', 'twice'), request: { method: 'PUT', url } },
      { resource: obs(alice, 'b', 'twice'), request: { method: 'PUT', url } },
    ]);
    expect(res.status).to.equal(400);
    expect(res.body.issue[0].expression).to.deep.equal(['Bundle.entry[1].request.url']);
    expect(await store.search({ resourceType: 'Observation', criteria: [], limit: 10 })).to.have.length(2);
  });

  it('a conditional update that creates is written before the POSTs that refer to it (urn:uuid)', async () => {
    const { bundle } = await setup();
    const urn = 'urn:uuid:0b9f2a3c-1d2e-4f50-8a6b-7c8d9e0f1a2b';
    const mrn = 'identifier=urn:oid:1.2.3|42';
    const entry = [
      {
        resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: urn } },
        request: { method: 'POST', url: 'Observation' },
      },
      { fullUrl: urn, resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:1.2.3', value: '42' }] }, request: { method: 'PUT', url: `Patient?${mrn}` } },
    ];
    const created = await bundle('transaction', entry);
    expect(created.status, JSON.stringify(created.body)).to.equal(200);
    expect(created.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['201 Created', '201 Created']);
    const pid = String(created.body.entry[1].resource.id);
    expect(created.body.entry[0].resource.subject.reference).to.equal(`Patient/${pid}`);
    // Sent again: the Patient is matched and updated, the new Observation refers to it.
    const again = await bundle('transaction', entry);
    expect(again.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['201 Created', '200 OK']);
    expect(again.body.entry[1].resource.id).to.equal(pid);
    expect(again.body.entry[0].resource.subject.reference).to.equal(`Patient/${pid}`);
  });
});

describe('PATCH with JSON Patch (HTTP, fake ledger)', () => {
  const PATCH = 'application/json-patch+json';

  async function withPatch() {
    const env = await setup();
    const patch = (path: string, body: unknown, who = staff, ifMatch?: string, type = PATCH) => {
      const r = request(env.app)
        .patch(`/fhir/${path}`)
        .set(...who)
        .set('content-type', type);
      return (ifMatch !== undefined ? r.set('If-Match', ifMatch) : r).send(JSON.stringify(body));
    };
    return { ...env, patch };
  }

  it('applies the operations to the current version and writes an anchored update; If-Match applies', async () => {
    const { patch, aliceObs, store, ledger } = await withPatch();
    const anchors = ledger.anchors.size;
    const res = await patch(
      `Observation/${aliceObs}`,
      [
        { op: 'replace', path: '/valueString', value: 'corrected' },
        { op: 'add', path: '/note', value: [{ text: 'rechecked' }] },
      ],
      staff,
      'W/"1"',
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ id: aliceObs, valueString: 'corrected' });
    expect(res.body.note).to.deep.equal([{ text: 'rechecked' }]);
    expect(res.body.meta.versionId).to.equal('2');
    expect(res.headers.etag).to.equal('W/"2"');
    expect(ledger.anchors.size).to.equal(anchors + 1);
    expect(JSON.parse((await store.readCurrent('Observation', aliceObs))?.content ?? '{}')).to.include({ valueString: 'corrected' });
    const stale = await patch(`Observation/${aliceObs}`, [{ op: 'replace', path: '/valueString', value: 'lost' }], staff, 'W/"1"');
    expect(stale.status).to.equal(412);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(2);
  });

  it('the result is validated like any update; a failed test is 412, an unappliable operation 422, a bad document 400, other media types 415 — nothing written, no value echoed', async () => {
    const { patch, aliceObs, store } = await withPatch();
    const cases: Array<[unknown, number]> = [
      [[{ op: 'replace', path: '/status', value: 'secret-status' }], 400],
      [[{ op: 'test', path: '/valueString', value: 'secret-guess' }], 412],
      [[{ op: 'remove', path: '/secret-path' }], 422],
      [[{ op: 'replace', path: '/id', value: 'elsewhere' }], 400],
      [[{ op: 'replace', path: '/resourceType', value: 'Patient' }], 400],
      [[{ op: '_get', path: '/valueString', value: null }], 400],
      [[{ op: 'add', path: '/__proto__/polluted', value: 'secret-x' }], 400],
      [[{ op: 'copy', from: '/constructor/prototype', path: '/x' }], 400],
      [{ op: 'replace', path: '/valueString', value: 'secret-x' }, 400],
      [[], 400],
    ];
    await expectRefusals((body) => patch(`Observation/${aliceObs}`, body), cases, /secret|not detected/);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect((await patch(`Observation/${aliceObs}`, [{ op: 'replace', path: '/valueString', value: 'x' }], staff, undefined, 'application/json')).status).to.equal(415);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(1);
  });

  it('a record the caller may not see is answered as a missing one, whatever the patch or If-Match (no oracle); a deleted one is 410 for staff', async () => {
    const { patch, del, bobObs, aliceObs, store } = await withPatch();
    const missing = 'no-such-observation';
    for (const ops of [
      [{ op: 'replace', path: '/valueString', value: 'forged' }],
      [{ op: 'test', path: '/valueString', value: 'detected' }],
      [{ op: 'remove', path: '/nothing' }],
    ]) {
      for (const ifMatch of [undefined, 'W/"1"', 'W/"5"']) {
        const res = await patch(`Observation/${bobObs}`, ops, asPatient(ALICE), ifMatch);
        const absent = await patch(`Observation/${missing}`, ops, asPatient(ALICE), ifMatch);
        expect(res.status).to.equal(404);
        expect(shape(res, bobObs)).to.deep.equal(shape(absent, missing));
      }
    }
    expect((await store.readCurrent('Observation', bobObs))?.versionId).to.equal(1);
    // The patient patches its own record.
    expect((await patch(`Observation/${aliceObs}`, [{ op: 'replace', path: '/valueString', value: 'home' }], asPatient(ALICE))).status).to.equal(200);
    await del(`Observation/${aliceObs}`);
    expect((await patch(`Observation/${aliceObs}`, [{ op: 'replace', path: '/valueString', value: 'x' }])).status).to.equal(410);
  });

  it('the CapabilityStatement lists patch, conditional update and delete and versioned updates for every type', async () => {
    const { app } = await setup();
    const res = await request(app).get('/fhir/metadata');
    const types = res.body.rest[0].resource.filter((r: { type: string }) => r.type !== 'Consent' && r.type !== 'AuditEvent');
    expect(types.length).to.be.greaterThan(100);
    for (const r of types) {
      expect(
        r.interaction.map((i: { code: string }) => i.code),
        r.type,
      ).to.include('patch');
      expect(r, r.type).to.include({ versioning: 'versioned-update', conditionalCreate: true, conditionalUpdate: true, conditionalDelete: 'single', updateCreate: false });
    }
  });
});

describe('PATCH with FHIRPath Patch (HTTP, fake ledger)', () => {
  const op = (type: string, ...parts: object[]) => ({ name: 'operation', part: [{ name: 'type', valueCode: type }, ...parts] });
  const parameters = (...operations: object[]) => ({ resourceType: 'Parameters', parameter: operations });
  const replaceValue = (value: string) => parameters(op('replace', { name: 'path', valueString: 'Observation.value' }, { name: 'value', valueString: value }));

  async function withPatch() {
    const env = await setup();
    const patch = (path: string, body: unknown, who = staff, ifMatch?: string) => {
      const r = request(env.app)
        .patch(`/fhir/${path}`)
        .set(...who)
        .set('content-type', FHIR);
      return (ifMatch !== undefined ? r.set('If-Match', ifMatch) : r).send(JSON.stringify(body));
    };
    return { ...env, patch };
  }

  it('applies the operations to the current version and writes an anchored update; If-Match applies', async () => {
    const { patch, aliceObs, store, ledger } = await withPatch();
    const anchors = ledger.anchors.size;
    const res = await patch(
      `Observation/${aliceObs}`,
      parameters(
        op('replace', { name: 'path', valueString: 'Observation.value' }, { name: 'value', valueString: 'corrected' }),
        op('add', { name: 'path', valueString: 'Observation' }, { name: 'name', valueString: 'note' }, { name: 'value', valueAnnotation: { text: 'rechecked' } }),
        op('delete', { name: 'path', valueString: 'Observation.code.text' }),
      ),
      staff,
      'W/"1"',
    );
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ id: aliceObs, valueString: 'corrected' });
    expect(res.body.note).to.deep.equal([{ text: 'rechecked' }]);
    expect(res.body.code).to.deep.equal({ coding: [{ system: 'http://example.org/codes', code: 'hiv' }] });
    expect([res.body.meta.versionId, res.headers.etag]).to.deep.equal(['2', 'W/"2"']);
    expect(ledger.anchors.size).to.equal(anchors + 1);
    expect(JSON.parse((await store.readCurrent('Observation', aliceObs))?.content ?? '{}')).to.include({ valueString: 'corrected' });
    const stale = await patch(`Observation/${aliceObs}`, replaceValue('lost'), staff, 'W/"1"');
    expect(stale.status).to.equal(412);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(2);
  });

  it('the result is validated like any update; a malformed patch is 400, an unappliable operation 422 — nothing written, no value echoed', async () => {
    const { patch, aliceObs, store } = await withPatch();
    const cases: Array<[unknown, number]> = [
      [parameters(op('replace', { name: 'path', valueString: 'Observation.status' }, { name: 'value', valueCode: 'secret-status' })), 400],
      [parameters(op('replace', { name: 'path', valueString: "Observation.where(value = 'secret-guess').status" }, { name: 'value', valueCode: 'final' })), 422],
      // Observation.code is required: the patched resource is not valid.
      [parameters(op('delete', { name: 'path', valueString: "Observation.code.where(text != 'secret')" }), op('delete', { name: 'path', valueString: 'Observation.note' })), 400],
      [parameters(op('replace', { name: 'path', valueString: 'Observation.id' }, { name: 'value', valueId: 'secret-elsewhere' })), 400],
      [parameters(op('replace', { name: 'path', valueString: 'Observation.(secret' }, { name: 'value', valueString: 'x' })), 400],
      [parameters(op('upsert', { name: 'path', valueString: 'Observation.secret' })), 400],
      [{ resourceType: 'Observation', status: 'secret' }, 400],
      [parameters(), 400],
    ];
    await expectRefusals((body) => patch(`Observation/${aliceObs}`, body), cases, /secret|not detected|hiv/);
    // A JSON Patch sent as FHIR JSON: told its media type.
    expect((await patch(`Observation/${aliceObs}`, [{ op: 'replace', path: '/valueString', value: 'x' }])).status).to.equal(415);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(1);
  });

  it('a record the caller may not see is answered as a missing one, whatever the patch or If-Match (no oracle); a deleted one is 410 for staff', async () => {
    const { patch, del, bobObs, aliceObs, store } = await withPatch();
    const missing = 'no-such-observation';
    for (const body of [
      replaceValue('forged'),
      parameters(op('replace', { name: 'path', valueString: "Observation.where(value = 'detected').status" }, { name: 'value', valueCode: 'final' })),
      parameters(op('delete', { name: 'path', valueString: 'Observation.nothing' })),
    ]) {
      for (const ifMatch of [undefined, 'W/"1"', 'W/"5"']) {
        const res = await patch(`Observation/${bobObs}`, body, asPatient(ALICE), ifMatch);
        const absent = await patch(`Observation/${missing}`, body, asPatient(ALICE), ifMatch);
        expect(res.status).to.equal(404);
        expect(shape(res, bobObs)).to.deep.equal(shape(absent, missing));
      }
    }
    expect((await store.readCurrent('Observation', bobObs))?.versionId).to.equal(1);
    expect((await patch(`Observation/${aliceObs}`, replaceValue('home'), asPatient(ALICE))).status).to.equal(200);
    await del(`Observation/${aliceObs}`);
    expect((await patch(`Observation/${aliceObs}`, replaceValue('x'))).status).to.equal(410);
  });

  it('the CapabilityStatement names the three patch formats', async () => {
    const { app } = await setup();
    const res = await request(app).get('/fhir/metadata');
    expect(res.body.patchFormat).to.deep.equal(['application/json-patch+json', 'application/merge-patch+json', 'application/fhir+json']);
  });
});

describe('PATCH with JSON Merge Patch (HTTP, fake ledger)', () => {
  const MERGE = 'application/merge-patch+json';

  async function withPatch() {
    const env = await setup();
    const patch = (path: string, body: unknown, who = staff, headers: Record<string, string> = {}, type = MERGE) => {
      let r = request(env.app)
        .patch(`/fhir/${path}`)
        .set(...who)
        .set('content-type', type);
      for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
      return r.send(JSON.stringify(body));
    };
    return { ...env, patch };
  }

  it('merges the patch into the current version and writes an anchored update; If-Match and Prefer: return= apply', async () => {
    const { patch, aliceObs, store, ledger } = await withPatch();
    const anchors = ledger.anchors.size;
    const res = await patch(`Observation/${aliceObs}`, { valueString: 'corrected', note: [{ text: 'rechecked' }], code: { text: null } }, staff, { 'If-Match': 'W/"1"' });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ id: aliceObs, valueString: 'corrected', status: 'final' });
    expect(res.body.note).to.deep.equal([{ text: 'rechecked' }]);
    expect(res.body.code).to.deep.equal({ coding: [{ system: 'http://example.org/codes', code: 'hiv' }] });
    expect([res.body.meta.versionId, res.headers.etag]).to.deep.equal(['2', 'W/"2"']);
    expect(ledger.anchors.size).to.equal(anchors + 1);
    expect(JSON.parse((await store.readCurrent('Observation', aliceObs))?.content ?? '{}')).to.include({ valueString: 'corrected' });
    const stale = await patch(`Observation/${aliceObs}`, { valueString: 'lost' }, staff, { 'If-Match': 'W/"1"' });
    expect(stale.status).to.equal(412);
    const badIfMatch = await patch(`Observation/${aliceObs}`, { valueString: 'lost' }, staff, { 'If-Match': 'version two' });
    expect(badIfMatch.status).to.equal(400);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(2);
    const minimal = await patch(`Observation/${aliceObs}`, { valueString: 'quiet' }, staff, { Prefer: 'return=minimal' });
    expect([minimal.status, minimal.text, minimal.headers.etag]).to.deep.equal([200, '', 'W/"3"']);
    const outcome = await patch(`Observation/${aliceObs}`, { valueString: 'told' }, staff, { Prefer: 'return=OperationOutcome' });
    expect([outcome.status, outcome.body.issue[0].diagnostics, outcome.headers.etag]).to.deep.equal([200, 'The resource was patched: its ETag names the new version', 'W/"4"']);
  });

  it('the result is validated like any update; a malformed patch or a change of id is 400, another media type 415 — nothing written, no value echoed', async () => {
    const { patch, aliceObs, store } = await withPatch();
    const cases: Array<[unknown, number]> = [
      [{ status: 'secret-status' }, 400],
      // Observation.code is required: removing it leaves no valid resource.
      [{ code: null, valueString: 'secret-x' }, 400],
      [{ valueString: { secret: 'x' } }, 400],
      [{ id: 'secret-elsewhere' }, 400],
      [{ resourceType: 'Patient' }, 400],
      [JSON.parse('{"__proto__": {"polluted": "secret-x"}}'), 400],
      [[{ op: 'replace', path: '/valueString', value: 'secret-x' }], 400],
      [{}, 400],
    ];
    await expectRefusals((body) => patch(`Observation/${aliceObs}`, body), cases, /secret|not detected/);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect((await patch(`Observation/${aliceObs}`, { valueString: 'x' }, staff, {}, 'text/plain')).status).to.equal(415);
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(1);
  });

  it('the current version is checked against its anchor first: one that does not match is withheld and nothing is written', async () => {
    const { patch, aliceObs, store, ledger } = await withPatch();
    const key = `Observation/${aliceObs}/_history/1`;
    const anchor = ledger.anchors.get(key);
    if (!anchor) throw new Error('no anchor');
    ledger.anchors.set(key, { ...anchor, commitment: { ...anchor.commitment, value: 'f'.repeat(64) } });
    const res = await patch(`Observation/${aliceObs}`, { valueString: 'changed' });
    expect(res.status).to.equal(500);
    expect(res.body.issue[0].diagnostics).to.include('does not match its anchor');
    expect(JSON.stringify(res.body)).to.not.include('not detected');
    expect((await store.readCurrent('Observation', aliceObs))?.versionId).to.equal(1);
  });

  it('a record the caller may not see is answered as a missing one, whatever the patch or If-Match (no oracle); a deleted one is 410 for staff', async () => {
    const { patch, del, bobObs, aliceObs, store } = await withPatch();
    const missing = 'no-such-observation';
    for (const body of [{ valueString: 'forged' }, { status: 'not-a-status' }, { code: null }]) {
      for (const ifMatch of [undefined, 'W/"1"', 'W/"5"']) {
        const headers: Record<string, string> = ifMatch !== undefined ? { 'If-Match': ifMatch } : {};
        const res = await patch(`Observation/${bobObs}`, body, asPatient(ALICE), headers);
        const absent = await patch(`Observation/${missing}`, body, asPatient(ALICE), headers);
        expect(res.status).to.equal(404);
        expect(shape(res, bobObs)).to.deep.equal(shape(absent, missing));
      }
    }
    expect((await store.readCurrent('Observation', bobObs))?.versionId).to.equal(1);
    expect((await patch(`Observation/${aliceObs}`, { valueString: 'home' }, asPatient(ALICE))).status).to.equal(200);
    await del(`Observation/${aliceObs}`);
    expect((await patch(`Observation/${aliceObs}`, { valueString: 'x' })).status).to.equal(410);
  });

  it('conditional patch (PATCH Type?query) and Bundle PATCH entries (a Binary of contentType application/merge-patch+json) take it too', async () => {
    const { patch, put, bundle, alice, obs, store, ledger } = await withPatch();
    const code = (c: string) => `code=http://example.org/codes|${c}`;
    const one = String((await put(`Observation?${code('one')}`, obs(alice, 'first', 'one'))).body.id);
    const res = await patch(`Observation?${code('one')}`, { valueString: 'second' }, staff, { 'If-Match': 'W/"1"' });
    expect([res.status, res.body.id, res.body.valueString, res.headers.etag]).to.deep.equal([200, one, 'second', 'W/"2"']);
    expect((await patch(`Observation?${code('nothing')}`, { valueString: 'x' })).status).to.equal(404);
    const binary = (body: unknown) => ({ resourceType: 'Binary', contentType: MERGE, data: Buffer.from(JSON.stringify(body)).toString('base64') });
    const tx = await bundle('transaction', [
      { resource: binary({ valueString: 'third' }), request: { method: 'PATCH', url: `Observation/${one}`, ifMatch: 'W/"2"' } },
      { resource: obs(alice, 'new'), request: { method: 'POST', url: 'Observation' } },
    ]);
    expect(tx.status, JSON.stringify(tx.body).slice(0, 300)).to.equal(200);
    expect(tx.body.entry[0].resource).to.include({ id: one, valueString: 'third' });
    expect(tx.body.entry[0].response).to.include({ status: '200 OK', etag: 'W/"3"' });
    // A merge patch whose result is invalid fails the whole transaction, naming the entry; nothing written.
    const anchors = ledger.anchors.size;
    const failed = await bundle('transaction', [
      { resource: obs(alice, 'never'), request: { method: 'POST', url: 'Observation' } },
      { resource: binary({ status: 'secret-status' }), request: { method: 'PATCH', url: `Observation/${one}` } },
    ]);
    expect(failed.status).to.equal(400);
    expect(JSON.stringify(failed.body)).to.include('Bundle.entry[1]').and.not.include('secret');
    expect(ledger.anchors.size).to.equal(anchors);
    const batch = await bundle('batch', [
      { resource: binary({ valueString: 'fourth' }), request: { method: 'PATCH', url: `Observation?${code('one')}` } },
      { resource: binary([{ op: 'add' }]), request: { method: 'PATCH', url: `Observation/${one}` } },
    ]);
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '400 Bad Request']);
    expect((await store.readCurrent('Observation', one))?.versionId).to.equal(4);
  });
});

describe('conditional patch (HTTP, fake ledger)', () => {
  const code = (c: string) => `code=http://example.org/codes|${c}`;
  const op = (type: string, ...parts: object[]) => ({ name: 'operation', part: [{ name: 'type', valueCode: type }, ...parts] });
  const setValue = (value: string) => ({
    resourceType: 'Parameters',
    parameter: [op('replace', { name: 'path', valueString: 'Observation.value' }, { name: 'value', valueString: value })],
  });

  async function withPatch() {
    const env = await setup();
    const patch = (path: string, body: unknown, who = staff, ifMatch?: string, type = FHIR) => {
      const r = request(env.app)
        .patch(`/fhir/${path}`)
        .set(...who)
        .set('content-type', type);
      return (ifMatch !== undefined ? r.set('If-Match', ifMatch) : r).send(JSON.stringify(body));
    };
    return { ...env, patch };
  }

  it('PATCH Type?query: one match → patched (If-Match applies, either format); none → 404; several → 412, nothing written', async () => {
    const { patch, put, alice, obs, store, ledger } = await withPatch();
    const one = String((await put(`Observation?${code('one')}`, obs(alice, 'first', 'one'))).body.id);
    const res = await patch(`Observation?${code('one')}`, setValue('second'));
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ id: one, valueString: 'second' });
    expect(res.headers.etag).to.equal('W/"2"');
    expect((await patch(`Observation?${code('one')}`, setValue('stale'), staff, 'W/"1"')).status).to.equal(412);
    const json = await patch(`Observation?${code('one')}`, [{ op: 'replace', path: '/valueString', value: 'third' }], staff, 'W/"2"', 'application/json-patch+json');
    expect([json.status, json.body.valueString]).to.deep.equal([200, 'third']);
    const none = await patch(`Observation?${code('nothing')}`, setValue('x'));
    expect(none.status).to.equal(404);
    expect(none.body.issue[0].diagnostics).to.equal('The conditional patch matches no Observation: nothing was written');
    await put(`Observation?${code('two')}`, obs(alice, 'a', 'two'));
    await put('Observation?_id=fresh', obs(alice, 'b', 'two'));
    const anchors = ledger.anchors.size;
    const several = await patch(`Observation?${code('two')}`, setValue('x'));
    expect(several.status).to.equal(412);
    expect(JSON.stringify(several.body)).to.not.include('two');
    expect(ledger.anchors.size).to.equal(anchors);
    expect((await store.readCurrent('Observation', one))?.versionId).to.equal(3);
    // No query: told to give an id or a search; a bad parameter or a bad patch: 400 before anything is matched.
    expect((await patch('Observation', setValue('x'))).status).to.equal(400);
    expect((await patch('Observation?nonsense=1', setValue('x'))).status).to.equal(400);
    expect((await patch(`Observation?${code('one')}`, { resourceType: 'Parameters' })).status).to.equal(400);
  });

  it("no existence oracle: a patient's conditional patch matches its own compartment only; another member's user is refused before any match", async () => {
    const { patch, app, alice, bob, obs, store } = await withPatch();
    const post = (body: object) =>
      request(app)
        .post('/fhir/Observation')
        .set(...staff)
        .set('content-type', FHIR)
        .send(body);
    const b1 = String((await post(obs(bob, 'x', 'shared'))).body.id);
    const b2 = String((await post(obs(bob, 'y', 'shared'))).body.id);
    const b3 = String((await post(obs(bob, 'z', 'bob-only'))).body.id);
    const answers = await Promise.all(['shared', 'bob-only', 'nobody'].map(async (c) => patch(`Observation?${code(c)}`, setValue('forged'), asPatient(ALICE))));
    for (const a of answers) expect({ status: a.status, body: JSON.stringify(a.body) }).to.deep.equal({ status: 404, body: JSON.stringify(answers[2]?.body) });
    for (const id of [b1, b2, b3]) expect((await store.readCurrent('Observation', id))?.versionId).to.equal(1);
    // Its own record it patches.
    const mine = String((await post(obs(alice, 'mine', 'bob-only'))).body.id);
    const own = await patch(`Observation?${code('bob-only')}`, setValue('changed'), asPatient(ALICE));
    expect([own.status, own.body.id]).to.deep.equal([200, mine]);
    const other = asCaller({ did: did('o'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
    for (const c of ['shared', 'bob-only', 'nobody']) expect((await patch(`Observation?${code(c)}`, setValue('x'), other)).status, c).to.equal(403);
  });

  it('in a Bundle: request.url Type?query on a PATCH entry (a transaction fails whole on none or several) and in a batch', async () => {
    const { bundle, put, alice, obs, store, ledger } = await withPatch();
    const one = String((await put(`Observation?${code('one')}`, obs(alice, 'first', 'one'))).body.id);
    await put(`Observation?${code('two')}`, obs(alice, 'a', 'two'));
    await put('Observation?_id=fresh', obs(alice, 'b', 'two'));
    const entry = (query: string, value: string, ifMatch?: string) => ({
      resource: setValue(value),
      request: { method: 'PATCH', url: `Observation?${query}`, ...(ifMatch ? { ifMatch } : {}) },
    });
    const tx = await bundle('transaction', [entry(code('one'), 'patched', 'W/"1"'), { resource: obs(alice, 'new'), request: { method: 'POST', url: 'Observation' } }]);
    expect(tx.status, JSON.stringify(tx.body)).to.equal(200);
    expect(tx.body.entry[0].resource).to.include({ id: one, valueString: 'patched' });
    expect(tx.body.entry[0].response).to.include({ status: '200 OK', etag: 'W/"2"' });
    const anchors = ledger.anchors.size;
    for (const [query, status] of [
      [code('nothing'), 404],
      [code('two'), 412],
    ] as const) {
      const failed = await bundle('transaction', [{ resource: obs(alice, 'never'), request: { method: 'POST', url: 'Observation' } }, entry(query, 'x')]);
      expect(failed.status, query).to.equal(status);
      expect(failed.body.issue[0].expression).to.deep.equal(['Bundle.entry[1]']);
    }
    expect(ledger.anchors.size).to.equal(anchors);
    const batch = await bundle('batch', [entry(code('one'), 'again'), entry(code('nothing'), 'x'), entry(code('two'), 'x')]);
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal(['200 OK', '404 Not Found', '412 Precondition Failed']);
    expect(batch.body.entry[0].response.location).to.equal(`Observation/${one}/_history/3`);
    expect((await store.readCurrent('Observation', one))?.versionId).to.equal(3);
  });
});
