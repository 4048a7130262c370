/**
 * Conditional read (If-None-Match, If-Modified-Since → 304), `Prefer: return=` on writes and GET
 * entries in a transaction, through HTTP (http.html#cread, #ops, #trules). A 304 is answered only after
 * the read was allowed and recorded: a record the caller may not see is a 404 whatever the headers. A
 * transaction's reads disclose and record nothing unless its writes commit.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { testStore } from '../test-support/test-store';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const ALICE = did('a');
const BOB = did('b');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const otherMember = asCaller({ did: did('o'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.*' });
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
    [did('o'), 'practitioner'],
  ] as const) {
    await ledger.registerDid({ did: d, kind });
  }
  const { app } = testApp({ store, ledger, log: newLogger('silent'), baseUrl: BASE });
  const write = (method: 'post' | 'put' | 'patch', path: string, body: unknown, headers: Record<string, string> = {}, who = staff) => {
    const agent = request(app);
    let r = agent[method](`/fhir/${path}`)
      .set(...who)
      .set('content-type', FHIR);
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    return r.send(JSON.stringify(body));
  };
  const patientOf = async (d: string) => String((await write('post', 'Patient', { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: d }] })).body.id);
  const alice = await patientOf(ALICE);
  const bob = await patientOf(BOB);
  const obs = (patientId: string, value: string) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://example.org/codes', code: 'x' }] },
    subject: { reference: `Patient/${patientId}` },
    valueString: value,
  });
  const aliceObs = String((await write('post', 'Observation', obs(alice, 'one'))).body.id);
  const bobObs = String((await write('post', 'Observation', obs(bob, 'two'))).body.id);
  const read = (path: string, headers: Record<string, string> = {}, who = staff) => {
    let r = request(app)
      .get(`/fhir/${path}`)
      .set(...who);
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    return r;
  };
  const reads = () => ledger.audit.filter((e) => e.action === 'R' && e.decision === 'permit').length;
  return { app, ledger, store, alice, bob, aliceObs, bobObs, obs, write, read, reads };
}

describe('conditional read (HTTP, fake ledger)', () => {
  it('If-None-Match naming the current version (or *, or a list holding it) → 304 with its ETag and no body, the read recorded; another version → 200', async () => {
    const { read, aliceObs, write, obs, alice, reads } = await setup();
    const before = reads();
    for (const tag of ['W/"1"', '"1"', 'W/"7", W/"1"', '*']) {
      const res = await read(`Observation/${aliceObs}`, { 'If-None-Match': tag });
      expect(res.status, tag).to.equal(304);
      expect(res.headers.etag).to.equal('W/"1"');
      expect(res.text).to.equal('');
    }
    // Each 304 went through the enforcement point and is on the ledger like a read.
    expect(reads()).to.equal(before + 4);
    await write('put', `Observation/${aliceObs}`, { ...obs(alice, 'changed'), id: aliceObs });
    const changed = await read(`Observation/${aliceObs}`, { 'If-None-Match': 'W/"1"' });
    expect([changed.status, changed.body.valueString, changed.headers.etag]).to.deep.equal([200, 'changed', 'W/"2"']);
    const bad = await read(`Observation/${aliceObs}`, { 'If-None-Match': 'abc' });
    expect([bad.status, bad.body.resourceType, bad.body.issue[0].diagnostics]).to.deep.equal([
      400,
      'OperationOutcome',
      'If-None-Match must name versions as W/"<versionId>" (or be *)',
    ]);
  });

  it('If-Modified-Since: not modified since → 304; modified since → 200; If-None-Match decides when both are sent; a bad date is 400', async () => {
    const { read, aliceObs } = await setup();
    const first = await read(`Observation/${aliceObs}`);
    const lastModified = String(first.headers['last-modified']);
    expect((await read(`Observation/${aliceObs}`, { 'If-Modified-Since': lastModified })).status).to.equal(304);
    expect((await read(`Observation/${aliceObs}`, { 'If-Modified-Since': new Date(Date.now() + 60_000).toUTCString() })).status).to.equal(304);
    const older = await read(`Observation/${aliceObs}`, { 'If-Modified-Since': new Date(Date.parse(lastModified) - 1000).toUTCString() });
    expect([older.status, older.body.id]).to.deep.equal([200, aliceObs]);
    expect((await read(`Observation/${aliceObs}`, { 'If-None-Match': 'W/"9"', 'If-Modified-Since': lastModified })).status).to.equal(200);
    expect((await read(`Observation/${aliceObs}`, { 'If-Modified-Since': 'yesterday' })).status).to.equal(400);
  });

  it('a record the caller may not see is 404 as a missing one whatever the headers (a 304 never tells it exists)', async () => {
    const { read, bobObs, aliceObs, reads } = await setup();
    const now = new Date(Date.now() + 60_000).toUTCString();
    const conditions: Array<Record<string, string>> = [{ 'If-None-Match': 'W/"1"' }, { 'If-None-Match': '*' }, { 'If-Modified-Since': now }];
    for (const headers of conditions) {
      for (const who of [asPatient(ALICE), otherMember]) {
        const hidden = await read(`Observation/${bobObs}`, headers, who);
        const missing = await read('Observation/no-such-observation', headers, who);
        expect(hidden.status).to.equal(404);
        expect(JSON.stringify(hidden.body).split(bobObs).join('<id>')).to.equal(JSON.stringify(missing.body).split('no-such-observation').join('<id>'));
      }
    }
    // The patient's own record: 304 like anyone allowed.
    const before = reads();
    expect((await read(`Observation/${aliceObs}`, { 'If-None-Match': 'W/"1"' }, asPatient(ALICE))).status).to.equal(304);
    expect(reads()).to.equal(before + 1);
  });

  it('in a batch: GET Type/id entries take ifNoneMatch and ifModifiedSince (304 Not Modified, no resource); anything else with them is 400', async () => {
    const { app, aliceObs, bobObs } = await setup();
    const res = await request(app)
      .post('/fhir')
      .set(...asPatient(ALICE))
      .set('content-type', FHIR)
      .send({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Observation/${aliceObs}`, ifNoneMatch: 'W/"1"' } },
          { request: { method: 'GET', url: `Observation/${aliceObs}`, ifNoneMatch: 'W/"5"' } },
          { request: { method: 'GET', url: `Observation/${aliceObs}`, ifModifiedSince: new Date(Date.now() + 60_000).toISOString() } },
          { request: { method: 'GET', url: `Observation/${bobObs}`, ifNoneMatch: 'W/"1"' } },
          { request: { method: 'GET', url: 'Observation?code=x', ifNoneMatch: 'W/"1"' } },
          { request: { method: 'GET', url: `Observation/${aliceObs}/_history/1`, ifNoneMatch: 'W/"1"' } },
        ],
      });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const statuses = res.body.entry.map((e: { response: { status: string } }) => e.response.status);
    expect(statuses).to.deep.equal(['304 Not Modified', '200 OK', '304 Not Modified', '404 Not Found', '400 Bad Request', '400 Bad Request']);
    expect(res.body.entry[0]).to.not.have.key('resource');
    expect(res.body.entry[0].response.etag).to.equal('W/"1"');
    expect(res.body.entry[1].resource.id).to.equal(aliceObs);
  });
});

describe('Prefer: return= on create, update and patch (HTTP, fake ledger)', () => {
  const setValue = {
    resourceType: 'Parameters',
    parameter: [
      {
        name: 'operation',
        part: [
          { name: 'type', valueCode: 'replace' },
          { name: 'path', valueString: 'Observation.value' },
          { name: 'value', valueString: 'patched' },
        ],
      },
    ],
  };

  it('minimal: no body; OperationOutcome: an OperationOutcome instead of the resource; representation (or none): the resource; status, Location and ETag alike', async () => {
    const { write, obs, alice, aliceObs } = await setup();
    const minimal = await write('post', 'Observation', obs(alice, 'secret-value'), { Prefer: 'return=minimal' });
    expect([minimal.status, minimal.text]).to.deep.equal([201, '']);
    expect(minimal.headers.location).to.match(/\/Observation\/[0-9a-f-]{36}\/_history\/1$/);
    expect(minimal.headers.etag).to.equal('W/"1"');
    const outcome = await write('post', 'Observation', obs(alice, 'secret-value'), { Prefer: 'return=OperationOutcome' });
    expect(outcome.status).to.equal(201);
    expect(outcome.body).to.deep.equal({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'information', code: 'informational', diagnostics: 'The resource was created: its Location and ETag name it' }],
    });
    expect(outcome.headers.location).to.match(/_history\/1$/);
    const representation = await write('post', 'Observation', obs(alice, 'shown'), { Prefer: 'return=representation' });
    expect(representation.body).to.include({ resourceType: 'Observation', valueString: 'shown' });
    // Several preferences in one header; an unknown return value is the default.
    const updated = await write('put', `Observation/${aliceObs}`, { ...obs(alice, 'u'), id: aliceObs }, { Prefer: 'handling=strict, return=minimal' });
    expect([updated.status, updated.text, updated.headers.etag]).to.deep.equal([200, '', 'W/"2"']);
    const unknown = await write('put', `Observation/${aliceObs}`, { ...obs(alice, 'v'), id: aliceObs }, { Prefer: 'return=everything' });
    expect(unknown.body).to.include({ id: aliceObs, valueString: 'v' });
    const patched = await write('patch', `Observation/${aliceObs}`, setValue, { Prefer: 'return=OperationOutcome' });
    expect([patched.status, patched.body.issue[0].diagnostics, patched.headers.etag]).to.deep.equal([200, 'The resource was patched: its ETag names the new version', 'W/"4"']);
    const conditional = await write('patch', `Observation?_id=${aliceObs}`, setValue, { Prefer: 'return=minimal' });
    expect([conditional.status, conditional.text, conditional.headers.etag]).to.deep.equal([200, '', 'W/"5"']);
    const conditionalUpdate = await write('put', `Observation?_id=${aliceObs}`, { ...obs(alice, 'w'), id: aliceObs }, { Prefer: 'return=minimal' });
    expect([conditionalUpdate.status, conditionalUpdate.text]).to.deep.equal([200, '']);
    // Errors are answered as always.
    const bad = await write('post', 'Observation', { ...obs(alice, 'x'), status: 'nope' }, { Prefer: 'return=minimal' });
    expect([bad.status, bad.body.resourceType]).to.deep.equal([400, 'OperationOutcome']);
  });
});

describe('GET entries in a transaction (HTTP, fake ledger)', () => {
  const transaction = (app: Parameters<typeof request>[0], entry: object[], who = staff) =>
    request(app)
      .post('/fhir')
      .set(...who)
      .set('content-type', FHIR)
      .send({ resourceType: 'Bundle', type: 'transaction', entry });
  const get = (url: string, extra: object = {}) => ({ request: { method: 'GET', url, ...extra } });

  it('reads come after the writes and see their results; each is recorded once the writes are committed', async () => {
    const { app, alice, aliceObs, obs, ledger, reads } = await setup();
    const anchors = ledger.anchors.size;
    const before = reads();
    const res = await transaction(app, [
      get(`Observation/${aliceObs}`),
      get(`Observation/${aliceObs}/_history/1`),
      { resource: { ...obs(alice, 'changed'), id: aliceObs }, request: { method: 'PUT', url: `Observation/${aliceObs}` } },
      { resource: obs(alice, 'new'), request: { method: 'POST', url: 'Observation' } },
      get(`Patient/${alice}`),
      get(`Observation/${aliceObs}`, { ifNoneMatch: 'W/"2"' }),
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    expect(res.body.type).to.equal('transaction-response');
    const statuses = res.body.entry.map((e: { response: { status: string } }) => e.response.status);
    expect(statuses).to.deep.equal(['200 OK', '200 OK', '200 OK', '201 Created', '200 OK', '304 Not Modified']);
    expect(res.body.entry[0].resource).to.include({ id: aliceObs, valueString: 'changed' });
    expect(res.body.entry[0].response.etag).to.equal('W/"2"');
    expect(res.body.entry[1].resource).to.include({ valueString: 'one' });
    expect(res.body.entry[4].resource.id).to.equal(alice);
    expect(ledger.anchors.size).to.equal(anchors + 2);
    expect(reads()).to.equal(before + 4);
  });

  it('a GET entry that cannot be answered (absent, not the caller’s to see, deleted) fails the whole transaction: nothing written, hidden and absent alike, the refused tries recorded as refused reads', async () => {
    const { app, alice, aliceObs, bobObs, obs, ledger, store } = await setup();
    const mine = { resource: obs(alice, 'mine'), request: { method: 'POST', url: 'Observation' } };
    const count = async () => (await store.search({ resourceType: 'Observation', limit: 100 })).length;
    const [anchors, audit, observations] = [ledger.anchors.size, ledger.audit.length, await count()];
    const hidden = await transaction(app, [mine, get(`Observation/${bobObs}`)], asPatient(ALICE));
    const absent = await transaction(app, [mine, get('Observation/no-such-observation')], asPatient(ALICE));
    expect(hidden.status).to.equal(404);
    expect(hidden.body.issue[0].expression).to.deep.equal(['Bundle.entry[1]']);
    expect(JSON.stringify(hidden.body).split(bobObs).join('<id>')).to.equal(JSON.stringify(absent.body).split('no-such-observation').join('<id>'));
    // Denied by consent (another member's user) rather than by compartment: the same.
    const denied = await transaction(app, [get(`Observation/${bobObs}`)], otherMember);
    expect(denied.status).to.equal(404);
    // Deleted by the transaction itself, or before it: 410.
    const deletes = await transaction(app, [{ request: { method: 'DELETE', url: `Observation/${aliceObs}` } }, get(`Observation/${aliceObs}`)]);
    expect([deletes.status, deletes.body.issue[0].expression]).to.deep.equal([410, ['Bundle.entry[1]']]);
    expect([ledger.anchors.size, await count()]).to.deep.equal([anchors, observations]);
    // What the ledger gained: the two refused tries at Bob's record (outside Alice's compartment; no
    // consent for the other member), recorded as denied reads as a plain GET's would be. Nothing else:
    // no permit, nothing about the absent or the deleted record, no change entry of the failed writes.
    const added = ledger.audit.slice(audit);
    expect(added.map((e) => [e.decision, e.resources])).to.deep.equal([
      ['deny', [`Observation/${bobObs}/_history/1`]],
      ['deny', [`Observation/${bobObs}/_history/1`]],
    ]);
    await request(app)
      .delete(`/fhir/Observation/${aliceObs}`)
      .set(...staff);
    expect((await transaction(app, [mine, get(`Observation/${aliceObs}`)])).status).to.equal(410);
    // Only the deletion of its own (not the transaction's POST) changed the count.
    expect(await count()).to.equal(observations - 1);
  });

  it('searches (GET Type?query) come after the writes and see their results, answered as GET /fhir/Type?query is and recorded only once the writes commit', async () => {
    const { app, alice, aliceObs, obs, ledger } = await setup();
    const anchors = ledger.anchors.size;
    const audit = ledger.audit.length;
    const res = await transaction(app, [
      get(`Observation?patient=Patient/${alice}&_sort=_lastUpdated`),
      { resource: obs(alice, 'new'), request: { method: 'POST', url: 'Observation' } },
      { resource: { ...obs(alice, 'changed'), id: aliceObs }, request: { method: 'PUT', url: `Observation/${aliceObs}` } },
      get(`Observation?patient=Patient/${alice}&_summary=count`),
      get(`Patient/${alice}`),
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    const [found, created, , counted, read] = res.body.entry as Array<{
      resource: { type?: string; total?: number; id?: string; entry?: Array<{ resource: { id: string; valueString: string }; search: { mode: string } }> };
      response: { status: string };
    }>;
    expect(found?.response.status).to.equal('200 OK');
    expect(found?.resource).to.include({ resourceType: 'Bundle', type: 'searchset', total: 2 });
    // Both the created Observation and the new version of the updated one, as the transaction left them.
    expect(found?.resource.entry?.map((e) => e.resource.valueString)).to.have.members(['changed', 'new']);
    expect(found?.resource.entry?.map((e) => e.resource.id)).to.include(created?.resource.id);
    expect(found?.resource.entry?.every((e) => e.search.mode === 'match')).to.equal(true);
    expect(counted?.resource).to.include({ type: 'searchset', total: 2 });
    expect(counted?.resource.entry ?? []).to.have.length(0);
    expect(read?.resource.id).to.equal(alice);
    expect(ledger.anchors.size).to.equal(anchors + 2);
    // Recorded as searches are (after the commit: the change entries come first), each permitted, naming what it disclosed or counted.
    const added = ledger.audit.slice(audit);
    expect(added.map((e) => e.action)).to.deep.equal(['C', 'U', 'R', 'R', 'R']);
    const searches = added.filter((e) => e.subtype === 'search-type');
    expect(searches).to.have.length(2);
    for (const e of searches) expect([e.decision, e.resources.length]).to.deep.equal(['permit', 2]);
    // The same search as a plain GET gives the same Bundle entries.
    const plain = await request(app)
      .get(`/fhir/Observation?patient=Patient/${alice}&_sort=_lastUpdated`)
      .set(...staff);
    expect(plain.body.entry.map((e: { fullUrl: string }) => e.fullUrl)).to.deep.equal(found?.resource.entry?.map((e) => (e as unknown as { fullUrl: string }).fullUrl));
  });

  it('a search naming an entry by its urn:uuid finds the resource that entry writes (by Type/id, and by id in _id)', async () => {
    const { app } = await setup();
    const P = 'urn:uuid:0c3e2a1b-7d4f-4e5a-9b6c-1d2e3f4a5b6c';
    const observation = { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: P } };
    const res = await transaction(app, [
      get(`Observation?subject=${P}`),
      get(`Patient?_id=${P.toUpperCase().replace('URN:UUID:', 'urn:uuid:')}`),
      { fullUrl: P, resource: { resourceType: 'Patient', name: [{ family: 'Newborn' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: observation, request: { method: 'POST', url: 'Observation' } },
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    const [observations, patients, patient, created] = res.body.entry as Array<{
      resource: { id?: string; total?: number; entry?: Array<{ resource: { id: string } }>; link?: Array<{ relation: string; url: string }> };
      response: { status: string };
    }>;
    expect(observations?.resource.total).to.equal(1);
    expect(observations?.resource.entry?.[0]?.resource.id).to.equal(created?.resource.id);
    // The self link says what was searched: the entry's resource, not its urn:uuid.
    expect(observations?.resource.link?.find((l) => l.relation === 'self')?.url).to.include(encodeURIComponent(`Patient/${String(patient?.resource.id)}`));
    expect(patients?.resource.entry?.map((e) => e.resource.id)).to.deep.equal([patient?.resource.id]);
    // A urn:uuid that is no entry of the Bundle is left as sent: here no valid patient value, so the transaction fails, nothing written.
    const unknown = await transaction(app, [
      { fullUrl: P, resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
      get('Observation?subject=urn:uuid:00000000-0000-4000-8000-000000000000'),
    ]);
    expect([unknown.status, unknown.body.issue[0].expression]).to.deep.equal([400, ['Bundle.entry[1]']]);
  });

  it("a search naming an entry by its absolute fullUrl (another server's, or this one's Type/id) finds the resource that entry writes", async () => {
    const { app } = await setup();
    const EHR = 'https://ehr.example/fhir/Patient/p-17';
    const HERE = 'http://127.0.0.1:8080/fhir/Patient/tmp-1';
    const observation = (subject: string) => ({
      resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: subject } },
      request: { method: 'POST', url: 'Observation' },
    });
    const res = await transaction(app, [
      get(`Observation?subject=${EHR}/_history/3`),
      get('Observation?subject=Patient/tmp-1'),
      { fullUrl: EHR, resource: { resourceType: 'Patient', name: [{ family: 'Elsewhere' }] }, request: { method: 'POST', url: 'Patient' } },
      { fullUrl: HERE, resource: { resourceType: 'Patient', name: [{ family: 'Here' }] }, request: { method: 'POST', url: 'Patient' } },
      observation(EHR),
      observation('Patient/tmp-1'),
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    const [fromEhr, fromHere, , , first, second] = res.body.entry as Array<{ resource: { id?: string; total?: number; entry?: Array<{ resource: { id: string } }> } }>;
    expect(fromEhr?.resource.entry?.map((e) => e.resource.id)).to.deep.equal([first?.resource.id]);
    expect(fromHere?.resource.entry?.map((e) => e.resource.id)).to.deep.equal([second?.resource.id]);
  });

  it('a search that cannot be answered (unknown parameter, no scope, another member naming no patient) fails the whole transaction before anything is written or recorded', async () => {
    const { app, alice, obs, ledger, store } = await setup();
    const mine = { resource: obs(alice, 'mine'), request: { method: 'POST', url: 'Observation' } };
    const count = async () => (await store.search({ resourceType: 'Observation', limit: 100 })).length;
    const [anchors, audit, observations] = [ledger.anchors.size, ledger.audit.length, await count()];
    const bad = await transaction(app, [mine, get(`Observation?patient=Patient/${alice}&nonsense=1`)]);
    expect(bad.status).to.equal(400);
    expect(bad.body.issue[0].expression).to.deep.equal(['Bundle.entry[1]']);
    expect(bad.body.issue[0].diagnostics).to.match(/^Bundle\.entry\[1\]: Search parameter nonsense is not supported (for [A-Za-z]+ )?here/);
    const badValue = await transaction(app, [mine, get('Observation?date=yesterday')]);
    expect([badValue.status, badValue.body.issue[0].expression]).to.deep.equal([400, ['Bundle.entry[1]']]);
    // A write scope without the search scope: 403 naming the search entry.
    const writer = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/Observation.cu' });
    const noScope = await transaction(app, [mine, get('Observation?code=x')], writer);
    expect([noScope.status, noScope.body.issue[0].expression]).to.deep.equal([403, ['Bundle.entry[1]']]);
    // Another member's user must name the patient, also through a chain or _has (a nested one too).
    for (const [url, chained] of [
      ['Observation?code=x', ''],
      ['Practitioner?_has:Observation:performer:code=x', ' that chains to Observation'],
      ['Practitioner?_has:PractitionerRole:practitioner:_has:Patient:general-practitioner:name=x', ' that chains to Patient'],
    ] as const) {
      const unnamed = await transaction(app, [get(url)], otherMember);
      expect([unnamed.status, unnamed.body.issue[0].diagnostics], url).to.deep.equal([
        400,
        `Bundle.entry[0]: A search from outside Hospital1MSP${chained} must name the patient (patient=<the patient DID>)`,
      ]);
    }
    expect([ledger.anchors.size, ledger.audit.length, await count()]).to.deep.equal([anchors, audit, observations]);
  });

  it("a caller who may see only part of the patient's data finds only that part, the transaction's own writes included; totals count only it", async () => {
    const { app, alice, aliceObs, obs, ledger } = await setup();
    const decide = ledger.decide;
    // A consent that keeps restricted (R) records from the practitioner, and lets the other member read Observations but not the Patient.
    ledger.decide = (req, anchor) => {
      if ((anchor?.securityLabels ?? []).includes('R')) return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
      if (req.actor === did('o') && anchor?.resourceType === 'Observation') return { decision: 'permit', consents: ['c-1'], reason: 'consent-permit', breakGlass: false };
      return decide(req, anchor);
    };
    const restricted = { ...obs(alice, 'restricted'), meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] } };
    const audit = ledger.audit.length;
    const res = await transaction(app, [
      { resource: restricted, request: { method: 'POST', url: 'Observation' } },
      { resource: obs(alice, 'open'), request: { method: 'POST', url: 'Observation' } },
      get(`Observation?patient=Patient/${alice}`),
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 400)).to.equal(200);
    const found = res.body.entry[2].resource as { total: number; entry: Array<{ resource: { id: string; valueString: string } }> };
    expect(found.total).to.equal(2);
    expect(found.entry.map((e) => e.resource.valueString)).to.have.members(['one', 'open']);
    expect(JSON.stringify(res.body.entry[2])).to.not.include('restricted');
    // Recorded: what was released, not the withheld record.
    const restrictedId = String(res.body.entry[0].resource.id);
    const recorded = ledger.audit.slice(audit).filter((e) => e.subtype === 'search-type');
    expect(recorded.flatMap((e) => e.resources).some((r) => r.includes(restrictedId))).to.equal(false);
    // The other member (a transaction of searches only): Alice's unrestricted Observations, never her Patient record (the include withheld).
    const theirs = await transaction(
      app,
      [get(`Observation?patient=Patient/${alice}&_include=Observation:subject`), get(`Observation?patient=Patient/${alice}&_summary=count`)],
      otherMember,
    );
    expect(theirs.status, JSON.stringify(theirs.body).slice(0, 400)).to.equal(200);
    const [observations, counted] = theirs.body.entry as Array<{ resource: { total: number; entry?: Array<{ resource: { resourceType: string; id: string } }> } }>;
    expect(observations?.resource.total).to.equal(2);
    expect(observations?.resource.entry?.map((e) => e.resource.resourceType)).to.deep.equal(['Observation', 'Observation']);
    expect(observations?.resource.entry?.map((e) => e.resource.id)).to.include(aliceObs);
    expect(counted?.resource.total).to.equal(2);
  });

  it('what only the data can refuse (a chain level of more than 1,000 candidates) is found after the commit: that entry carries the 400, the committed writes stand', async () => {
    const { app, alice, obs, store } = await setup();
    const practitioner = { resourceType: 'Practitioner', name: [{ family: 'Osler' }] };
    const performed = { ...obs(alice, 'x'), performer: [{ reference: 'urn:uuid:6b4f4f2e-2d4c-4a51-9a56-3a0b7c7e0f01' }] };
    const res = await transaction(app, [
      { fullUrl: 'urn:uuid:6b4f4f2e-2d4c-4a51-9a56-3a0b7c7e0f01', resource: practitioner, request: { method: 'POST', url: 'Practitioner' } },
      ...Array.from({ length: 1001 }, () => ({ resource: performed, request: { method: 'POST', url: 'Observation' } })),
      get('DiagnosticReport?result.performer:Practitioner.name=osler'),
    ]);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).to.equal(200);
    const last = res.body.entry[1002] as { resource?: unknown; response: { status: string; outcome: { issue: Array<{ diagnostics: string; expression: string[] }> } } };
    expect(last.resource).to.equal(undefined);
    expect(last.response.status).to.equal('400 Bad Request');
    expect(last.response.outcome.issue[0]?.expression).to.deep.equal(['Bundle.entry[1002]']);
    expect(last.response.outcome.issue[0]?.diagnostics).to.include('result.performer:Practitioner.name');
    expect(
      (
        await store.search({
          resourceType: 'Observation',
          criteria: [{ kind: 'reference', param: 'performer', values: [{ ref: `Practitioner/${String(res.body.entry[0].resource.id)}` }] }],
          limit: 2000,
        })
      ).length,
    ).to.equal(1001);
  });

  it('consent withdrawn between the check and the read: that entry fails closed (404), the committed writes stand', async () => {
    const { app, alice, bobObs, obs, ledger, store } = await setup();
    const decide = ledger.decide;
    // The commit withdraws the practitioner's access to Bob's records (as a consent change landing in between would).
    const anchorAndRecord = ledger.anchorAndRecord.bind(ledger);
    ledger.anchorAndRecord = async (...args: Parameters<typeof anchorAndRecord>) => {
      const out = await anchorAndRecord(...args);
      ledger.decide = (req, anchor) => (anchor?.id === bobObs ? { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false } : decide(req, anchor));
      return out;
    };
    const res = await transaction(app, [{ resource: obs(alice, 'kept'), request: { method: 'POST', url: 'Observation' } }, get(`Observation/${bobObs}`)]);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).to.equal(200);
    expect(res.body.entry[0].response.status).to.equal('201 Created');
    expect(res.body.entry[1]).to.not.have.key('resource');
    expect(res.body.entry[1].response.status).to.equal('404 Not Found');
    expect(res.body.entry[1].response.outcome.issue[0].expression).to.deep.equal(['Bundle.entry[1]']);
    const created = String(res.body.entry[0].response.location).split('/')[1] ?? '';
    expect((await store.readCurrent('Observation', created))?.versionId).to.equal(1);
  });
});
