import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { OperationOutcomeError } from '../errors';
import { ResourceService } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testOutboxQueue, testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { AuditOutbox } from './outbox';
import { testApp } from '../test-support/test-app';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const DR_H1 = `did:hdx:${'a'.repeat(43)}`;
const DR_H2 = `did:hdx:${'b'.repeat(43)}`;
const staff = asCaller({ did: DR_H1, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const other = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });
const breakGlass = asCaller({ did: DR_H2, organization: 'Hospital2MSP', purpose: 'ETREAT', breakGlassReason: 'unconscious in ED', scope: 'user/*.read' });

describe('async audit mode through the enforcement point (fake ledger)', () => {
  let outbox: AuditOutbox;
  let dir: string | undefined;

  function setup() {
    const store = testStore();
    const ledger = new FakeLedger();
    const log = newLogger('silent');
    const calls = { authorizeAndRecord: 0, recordAccess: 0 };
    const counted = new Proxy(ledger, {
      get(target, prop, receiver) {
        if (prop === 'authorizeAndRecord' || prop === 'recordAccess') calls[prop]++;
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-async-'));
    // The outbox takes the change entries of anchored writes from the store (ChangeFeed).
    outbox = new AuditOutbox({ ...testOutboxQueue(store, path.join(dir, 'outbox.db')), ledger: counted, log, flushMs: 3_600_000, changes: store });
    const resources = new ResourceService({ store, ledger: counted, log, mspId: 'Hospital1MSP', auditSink: outbox });
    const { app } = testApp({ store, ledger, log, resources, baseUrl: BASE, outbox });
    return { app, ledger, calls, resources };
  }

  afterEach(async () => {
    await outbox.close(false);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('reads record permit and deny entries in the outbox before answering, and submit nothing per read', async () => {
    const { app, ledger, calls, resources } = setup();
    expect(resources.access.auditMode).to.equal('async');
    const created = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Patient', name: [{ family: 'Quist' }] });
    expect(created.status).to.equal(201);
    const id = created.body.id as string;

    expect(
      (
        await request(app)
          .get(`/fhir/Patient/${id}`)
          .set(...staff)
      ).status,
    ).to.equal(200);
    const denied = await request(app)
      .get(`/fhir/Patient/${id}`)
      .set(...other);
    // Uniform answers: a denied read looks like a miss (404); the deny entry is still recorded (below).
    expect(denied.status).to.equal(404);
    expect(
      (
        await request(app)
          .get(`/fhir/Patient/${id}`)
          .set(...breakGlass)
      ).status,
    ).to.equal(404);
    expect(
      (
        await request(app)
          .get(`/fhir/Patient?_id=${id}`)
          .set(...staff)
      ).body.total,
    ).to.equal(1);

    // Nothing went to the ledger per read: the 3 reads and the search hit wait in the outbox. The create's
    // change entry went with its anchor, in the one transaction the write waited for anyway.
    expect(calls).to.deep.equal({ authorizeAndRecord: 0, recordAccess: 0 });
    expect(ledger.audit.map((e) => e.action)).to.deep.equal(['C']);
    expect((await outbox.stats()).pending).to.equal(4);
    const health = await request(app).get('/healthz');
    expect(health.body.checks.outbox).to.deep.equal({ ok: true, pending: 4 });

    expect(await outbox.flush()).to.equal(true);
    expect(calls).to.deep.equal({ authorizeAndRecord: 0, recordAccess: 1 });
    const patient = ledger.anchors.get(`Patient/${id}/_history/1`)?.patient;
    expect(patient).to.match(/^pseudonym:/);
    const summary = ledger.audit.map((e) => [e.action, e.subtype, e.actor, e.actorOrganization, e.decision, e.reason ?? null, e.breakGlass, e.patient === patient, e.custodian]);
    // The change entry first (with its anchor), then the reads the outbox delivered.
    expect(summary).to.deep.equal([
      ['C', 'create', DR_H1, 'Hospital1MSP', 'permit', null, false, true, 'Hospital1MSP'],
      ['R', 'read', DR_H1, 'Hospital1MSP', 'permit', 'custodian-treatment', false, true, 'Hospital1MSP'],
      ['R', 'read', DR_H2, 'Hospital2MSP', 'deny', 'no-permit', false, true, 'Hospital1MSP'],
      ['R', 'read', DR_H2, 'Hospital2MSP', 'deny', 'no-permit', true, true, 'Hospital1MSP'],
      ['R', 'search-type', DR_H1, 'Hospital1MSP', 'permit', null, false, true, 'Hospital1MSP'],
    ]);
    for (const e of ledger.audit) {
      expect(e.entryId).to.match(/^[0-9a-f-]{36}$/);
      expect(e.resources).to.deep.equal([`Patient/${id}/_history/1`]);
      // When the access happened, not when the outbox delivered it.
      expect(Date.parse(e.occurredAt)).to.be.at.most(Date.parse(e.recordedAt));
    }
    expect(JSON.stringify(ledger.audit)).to.not.include('Quist');
  });

  it('the ledger down: a read still needs the consent decision, so it fails closed and records nothing', async () => {
    const { app, ledger } = setup();
    const created = await request(app)
      .post('/fhir/Patient')
      .set(...staff)
      .set('content-type', FHIR)
      .send({ resourceType: 'Patient', name: [{ family: 'Quist' }] });
    const before = (await outbox.stats()).pending;
    ledger.failWith = new OperationOutcomeError('UNAVAILABLE', 'evaluating consent: the ledger is unavailable');
    const read = await request(app)
      .get(`/fhir/Patient/${created.body.id as string}`)
      .set(...staff);
    expect(read.status).to.equal(503);
    expect((await outbox.stats()).pending).to.equal(before);
  });

  it('sync mode stays the default: no outbox, and /healthz has no outbox check', async () => {
    const ledger = new FakeLedger();
    const store = testStore();
    const log = newLogger('silent');
    const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
    expect(resources.access.auditMode).to.equal('sync');
    const { app } = testApp({ store, ledger, log, resources, baseUrl: BASE });
    const health = await request(app).get('/healthz');
    expect(health.status).to.equal(200);
    expect(Object.keys(health.body.checks)).to.deep.equal(['store', 'ledger']);
    outbox = new AuditOutbox({ file: ':memory:', ledger, log }); // for afterEach
  });
});
