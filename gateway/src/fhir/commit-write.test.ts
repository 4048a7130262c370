import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { AuditOutbox } from '../audit/outbox';
import { type AccessEntryInput, type Anchor, type AnchorInput, type AuditEntry, type TransactionOutcome, withUnsettledTransaction } from '../ledger/ledger-client';
import { commitOutcomeOf, toLedgerError } from '../ledger/ledger-errors';
import { newLogger } from '../logger';
import { testOutboxQueue, testStore } from '../test-support/test-store';
import type { ResourceStore } from '../store/store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { OperationOutcomeError } from '../errors';
import type { Caller } from './policy';
import { ResourceService } from './resource-service';
import { type Resource, WritePlan } from './write-plan';
import { testApp } from '../test-support/test-app';

const log = newLogger('silent');
const MSP = 'Hospital1MSP';
const staff: Caller = { did: `did:hdx:${'a'.repeat(43)}`, organization: MSP, purpose: 'TREAT', kind: 'practitioner', actorAuth: 'idp', local: true };
const TIMEOUT = (): OperationOutcomeError => new OperationOutcomeError('TIMEOUT', 'anchoring: the ledger did not answer in time');

/**
 * The project's fake ledger with Fabric's ambiguous failures: `commitThenTimeout` commits the
 * transaction and then reports TIMEOUT (what a commit-status timeout looks like to the client),
 * `timeoutBeforeCommit` reports TIMEOUT having committed nothing, `queriesDown` makes GetAnchor fail.
 */
class AmbiguousLedger extends FakeLedger {
  commitThenTimeout = 0;
  timeoutBeforeCommit = 0;
  queriesDown = false;
  recordAccessDown = false;

  /** The fake's AnchorAndRecord calls its own anchor/anchorBatch: only the outer transaction fails. */
  #depth = 0;

  async #ambiguous<T>(commit: () => Promise<T>): Promise<T> {
    if (this.#depth > 0) return commit();
    if (this.timeoutBeforeCommit > 0) {
      this.timeoutBeforeCommit--;
      throw TIMEOUT();
    }
    this.#depth++;
    let result: T;
    try {
      result = await commit();
    } finally {
      this.#depth--;
    }
    if (this.commitThenTimeout > 0) {
      this.commitThenTimeout--;
      throw TIMEOUT();
    }
    return result;
  }

  override anchor(input: AnchorInput): Promise<Anchor> {
    return this.#ambiguous(() => super.anchor(input));
  }

  override anchorBatch(inputs: AnchorInput[]): Promise<Anchor[]> {
    return this.#ambiguous(() => super.anchorBatch(inputs));
  }

  override anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[]): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    return this.#ambiguous(() => super.anchorAndRecord(anchors, entries));
  }

  override getAnchor(resourceType: string, id: string, versionId: string): Promise<Anchor | undefined> {
    if (this.queriesDown) return Promise.reject(new OperationOutcomeError('UNAVAILABLE', 'reading the anchor: the ledger is unavailable'));
    return super.getAnchor(resourceType, id, versionId);
  }

  override recordAccess(entries: AccessEntryInput[]): Promise<AuditEntry[]> {
    if (this.recordAccessDown) return Promise.reject(new OperationOutcomeError('UNAVAILABLE', 'recording the access: the ledger is unavailable'));
    return super.recordAccess(entries);
  }
}

const observation = (patientId: string, id: string | undefined, value: string): Resource => ({
  resourceType: 'Observation',
  ...(id ? { id } : {}),
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: `Patient/${patientId}` },
  valueString: value,
});

async function rejection(p: Promise<unknown>): Promise<OperationOutcomeError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OperationOutcomeError) return err;
    throw err;
  }
  throw new Error('expected the promise to be rejected');
}

/**
 * An orderer that holds a transaction (frozen, or slow): the submit times out, nothing is on the ledger
 * yet, but the same endorsed transaction can still commit later. Like the Fabric client, the failure
 * carries the endorsed transaction, and settleTransaction sends it again: it commits once, and a second
 * copy would be a duplicate of the first.
 */
class HeldLedger extends FakeLedger {
  hold = 0;
  ordererUp = true;
  readonly held: Array<{ commit: () => Promise<unknown>; done: boolean }> = [];

  async #maybeHold<T>(commit: () => Promise<T>): Promise<T> {
    if (this.hold === 0) return commit();
    this.hold--;
    const transaction = { commit, done: false };
    this.held.push(transaction);
    throw withUnsettledTransaction(TIMEOUT(), transaction);
  }

  /** The orderer wakes up and orders what it held (a late commit). */
  async release(): Promise<void> {
    for (const t of this.held.filter((x) => !x.done)) {
      t.done = true;
      await t.commit();
    }
  }

  async settleTransaction(transaction: unknown): Promise<TransactionOutcome> {
    const t = transaction as { commit: () => Promise<unknown>; done: boolean };
    if (!this.ordererUp) return 'unknown';
    if (!t.done) {
      t.done = true;
      await t.commit();
    }
    return 'committed';
  }

  override anchor(input: AnchorInput): Promise<Anchor> {
    return this.#maybeHold(() => super.anchor(input));
  }

  override anchorAndRecord(anchors: AnchorInput[], entries: AccessEntryInput[]): Promise<{ anchors: Anchor[]; entries: AuditEntry[] }> {
    return this.#maybeHold(() => super.anchorAndRecord(anchors, entries));
  }
}

describe('commitWrite: writes that survive an ambiguous ledger outcome (review #7, #12)', () => {
  const services: ResourceService[] = [];
  const outboxes: AuditOutbox[] = [];
  const dirs: string[] = [];

  function service(store: ResourceStore, ledger: FakeLedger, outbox?: AuditOutbox): ResourceService {
    const s = new ResourceService({ store, ledger, log, mspId: MSP, ...(outbox ? { auditSink: outbox } : {}) });
    s.settleDelaysMs = [0, 0];
    services.push(s);
    return s;
  }

  function outboxFor(store: ResourceStore, ledger: FakeLedger): AuditOutbox {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-commit-'));
    dirs.push(dir);
    const o = new AuditOutbox({ ...testOutboxQueue(store, path.join(dir, 'outbox.db')), ledger, log, flushMs: 3_600_000, changes: store });
    outboxes.push(o);
    return o;
  }

  async function seed(resources: ResourceService): Promise<{ patientId: string; obsId: string }> {
    const patient = await resources.create(staff, 'Patient', { resourceType: 'Patient', name: [{ family: 'Quist' }] });
    const obs = await resources.create(staff, 'Observation', observation(String(patient.id), undefined, 'first'));
    return { patientId: String(patient.id), obsId: String(obs.id) };
  }

  afterEach(async () => {
    for (const s of services.splice(0)) s.stopSettling();
    await Promise.all(outboxes.splice(0).map((o) => o.close(false)));
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('which failures may have committed', () => {
    it('Fabric: endorsement and block-invalidated errors did not commit; submit and commit-status errors may have', () => {
      const endorse = toLedgerError({ name: 'EndorseError', code: 14, message: 'no peer', details: [] }, 'anchoring');
      const refused = toLedgerError(
        { name: 'EndorseError', code: 2, message: 'endorse failed', details: [{ message: 'chaincode response 500, CONFLICT: Observation/o/_history/2 is already anchored' }] },
        'anchoring',
      );
      const invalidated = toLedgerError({ name: 'CommitError', code: 10, message: 'ENDORSEMENT_POLICY_FAILURE' }, 'anchoring');
      const submit = toLedgerError({ name: 'SubmitError', code: 14, message: 'orderer unavailable' }, 'anchoring');
      const status = toLedgerError({ name: 'CommitStatusError', code: 4, message: 'deadline exceeded' }, 'anchoring');
      expect([endorse.code, refused.code, invalidated.code, submit.code, status.code]).to.deep.equal(['UNAVAILABLE', 'CONFLICT', 'INTERNAL', 'UNAVAILABLE', 'TIMEOUT']);
      expect([endorse, refused, invalidated].map(commitOutcomeOf)).to.deep.equal(['not-committed', 'not-committed', 'not-committed']);
      expect([submit, status].map(commitOutcomeOf)).to.deep.equal(['unknown', 'unknown']);
    });

    it('Fabric: too few peers up to satisfy the endorsement policy is a 503 that did not commit, not an internal error', () => {
      const message = '9 FAILED_PRECONDITION: no combination of peers can be derived which satisfy the endorsement policy: no peer combination can satisfy the endorsement policy';
      const err = toLedgerError({ name: 'EndorseError', code: 9, message, details: [] }, 'anchoring Observation/:id');
      expect(err.code).to.equal('UNAVAILABLE');
      expect(err.message).to.equal('anchoring Observation/:id: too few peers are reachable to endorse it; retry later');
      expect(commitOutcomeOf(err)).to.equal('not-committed');
      // Any other failed precondition stays an internal error.
      expect(toLedgerError({ name: 'EndorseError', code: 9, message: 'something else', details: [] }, 'anchoring').code).to.equal('INTERNAL');
    });

    it('without a Fabric class: refusals and "not connected" did not commit; TIMEOUT and anything unexpected may have', () => {
      const codes = ['INVALID', 'CONFLICT', 'FORBIDDEN', 'UNAVAILABLE', 'TIMEOUT', 'INTERNAL'] as const;
      expect(codes.map((c) => commitOutcomeOf(new OperationOutcomeError(c, 'x')))).to.deep.equal([
        'not-committed',
        'not-committed',
        'not-committed',
        'not-committed',
        'unknown',
        'unknown',
      ]);
      expect(commitOutcomeOf(new Error('socket hang up'))).to.equal('unknown');
    });
  });

  it('review PoC G4 turned around: the ledger commits, then times out → the update is acknowledged, and the next update succeeds', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.commitThenTimeout = 1;
    const amended = await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended'));
    expect(amended.meta?.versionId).to.equal('2');
    expect(await store.readCurrent('Observation', obsId)).to.include({ versionId: 2, state: 'anchored' });
    expect(await store.listPending()).to.have.length(0);
    // Sync mode: the change entry was in the committed transaction (AnchorAndRecord), recorded once.
    expect(ledger.audit.filter((e) => e.action === 'U').map((e) => e.resources)).to.deep.equal([[`Observation/${obsId}/_history/2`]]);
    for (const v of ['amended again', 'and again']) await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, v));
    expect((await store.readCurrent('Observation', obsId))?.versionId).to.equal(4);
    expect(JSON.parse((await store.readCurrent('Observation', obsId))?.content ?? '{}').valueString).to.equal('and again');
  });

  it('a timeout where nothing committed: discarded (504 as the ledger said), and the retry succeeds', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.timeoutBeforeCommit = 1;
    const err = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')));
    expect(err.status).to.equal(504);
    expect(await store.listPending()).to.have.length(0);
    expect((await store.readCurrent('Observation', obsId))?.versionId).to.equal(1);
    const retried = await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended'));
    expect(retried.meta?.versionId).to.equal('2');
  });

  it('a create that timed out with nothing committed leaves no patient key, no anchor and no version', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    ledger.timeoutBeforeCommit = 1;
    const plan = new WritePlan();
    const prepared = await resources.prepareCreate(staff, 'Patient', { resourceType: 'Patient', name: [{ family: 'Quist' }] }, plan);
    await rejection(resources.commitWrite(staff, plan));
    const id = String(prepared.resource.id);
    expect(await store.findPatientKey(id)).to.equal(undefined);
    expect(await store.listPending()).to.have.length(0);
    expect(ledger.anchors.size).to.equal(0);
    expect(ledger.audit).to.have.length(0);
  });

  it('a transaction the orderer holds is not discarded for being absent: it commits late, and the next update follows it (review #7, the late commit)', async () => {
    const ledger = new HeldLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.hold = 1;
    ledger.ordererUp = false;
    const first = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'held')));
    expect(first.status).to.equal(504);
    expect(
      (await store.listPending()).map((v) => v.versionId),
      'kept pending, not discarded',
    ).to.deep.equal([2]);
    const whileDown = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'other')));
    expect(whileDown.status).to.equal(503);
    // The orderer wakes up and commits the held version 2 on its own.
    ledger.ordererUp = true;
    await ledger.release();
    const next = await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'after'));
    expect(next.meta?.versionId).to.equal('3');
    expect(JSON.parse((await store.readVersion('Observation', obsId, 2))?.content ?? '{}').valueString).to.equal('held');
  });

  it('a held transaction the orderer dropped is committed by sending it again when it is settled', async () => {
    const ledger = new HeldLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.hold = 1;
    await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'held')));
    expect(await resources.settlePending()).to.deep.equal({ kept: 1, removed: 0 });
    expect(await store.readCurrent('Observation', obsId)).to.include({ versionId: 2, state: 'anchored' });
    expect(ledger.anchors.has(`Observation/${obsId}/_history/2`)).to.equal(true);
  });

  it('the ledger cannot tell yet: 504 "being settled", the version stays pending (never served); a later update gets 503, then, once the version is known to be committed, follows it (version 3)', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.commitThenTimeout = 1;
    ledger.queriesDown = true;
    const first = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')));
    expect(first.status).to.equal(504);
    expect(first.message).to.match(/outcome is being settled/);
    expect((await store.listPending()).map((v) => v.versionId)).to.deep.equal([2]);
    expect((await store.readCurrent('Observation', obsId))?.versionId).to.equal(1);

    const whileDown = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'other')));
    expect([whileDown.status, whileDown.code]).to.deep.equal([503, 'UNAVAILABLE']);
    expect(whileDown.message).to.match(/previous write of Observation\/.* is still being settled/);

    ledger.queriesDown = false;
    // The update settles the earlier write first (version 2 was committed), then becomes version 3.
    const next = await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'other'));
    expect(next.meta?.versionId).to.equal('3');
    expect(await store.readVersion('Observation', obsId, 2)).to.include({ state: 'anchored' });
  });

  it("an unsettled write is settled by settlePending, and by itself (an unref'd timer) once the ledger answers", async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    resources.settleRetryMs = 20;
    const { patientId, obsId } = await seed(resources);
    ledger.commitThenTimeout = 1;
    ledger.queriesDown = true;
    await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')));
    expect(await resources.settlePending()).to.deep.equal({ kept: 0, removed: 0, unresolved: 1 });
    ledger.queriesDown = false;
    const deadline = Date.now() + 5000;
    while ((await store.listPending()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(await store.listPending()).to.have.length(0);
    expect((await store.readCurrent('Observation', obsId))?.versionId).to.equal(2);
  });

  it('startSettling: settles on a fixed interval as well (for the server to schedule); stopSettling ends it', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    resources.settleRetryMs = 3_600_000; // not the self-armed retry
    const { patientId, obsId } = await seed(resources);
    ledger.commitThenTimeout = 1;
    ledger.queriesDown = true;
    await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')));
    ledger.queriesDown = false;
    resources.startSettling(10);
    const deadline = Date.now() + 5000;
    while ((await store.listPending()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect((await store.readCurrent('Observation', obsId))?.versionId).to.equal(2);
    resources.stopSettling();
    ledger.commitThenTimeout = 1;
    ledger.queriesDown = true;
    await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'again')));
    ledger.queriesDown = false;
    await new Promise((r) => setTimeout(r, 50));
    expect(await store.listPending()).to.have.length(1); // stopped: nothing settles by timer any more
    expect(await resources.settlePending()).to.deep.equal({ kept: 1, removed: 0 });
  });

  it('an unexpected failure (INTERNAL) stays the error answered, and the write is still asked about, never just dropped', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    ledger.failWith = new OperationOutcomeError('INTERNAL', 'anchoring failed');
    const err = await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')));
    expect(err.code).to.equal('INTERNAL');
    expect(await store.listPending()).to.have.length(1); // the ledger could not say: kept for settling
    ledger.failWith = undefined;
    expect(await resources.settlePending()).to.deep.equal({ kept: 0, removed: 1 });
    expect((await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended'))).meta?.versionId).to.equal('2');
  });

  it('an unsettled create that the ledger turns out not to have is removed whole: its patient key goes too', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    ledger.timeoutBeforeCommit = 1;
    ledger.queriesDown = true;
    const plan = new WritePlan();
    const prepared = await resources.prepareCreate(staff, 'Patient', { resourceType: 'Patient', name: [{ family: 'Quist' }] }, plan);
    expect((await rejection(resources.commitWrite(staff, plan))).message).to.match(/being settled/);
    const id = String(prepared.resource.id);
    expect(await store.findPatientKey(id)).to.not.equal(undefined);
    expect(await store.readCurrent('Patient', id)).to.equal(undefined); // pending: never served
    ledger.queriesDown = false;
    expect(await resources.settlePending()).to.deep.equal({ kept: 0, removed: 1 });
    expect(await store.findPatientKey(id)).to.equal(undefined);
    expect(await store.listPending()).to.have.length(0);
  });

  it('async mode: a crash between anchoring and marking → settlePending keeps the version; its change entry, committed with the anchor, is not recorded twice', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const outbox = outboxFor(store, ledger);
    const resources = service(store, ledger, outbox);
    const { patientId, obsId } = await seed(resources);
    expect(await outbox.flush()).to.equal(true);
    const before = ledger.audit.length;
    // The process "dies" right after the ledger committed: markWriteAnchored never happens.
    const crashing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'markWriteAnchored') {
          return () => {
            throw new Error('killed');
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const dying = service(crashing, ledger, outbox);
    await dying.update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended')).then(
      () => expect.fail('the write should have died'),
      (err: Error) => expect(err.message).to.equal('killed'),
    );
    expect(ledger.anchors.has(`Observation/${obsId}/_history/2`)).to.equal(true);
    expect(await store.listPending()).to.have.length(1);
    // The anchor and the change entry were one transaction: the entry is on the ledger, none waits in the store.
    expect(ledger.anchorAndRecordCalls).to.be.greaterThan(0);
    expect((await store.readyChangeStats()).count).to.equal(0);
    // The restart: a new service on the same store.
    const restarted = service(store, ledger, outbox);
    expect(await restarted.settlePending()).to.deep.equal({ kept: 1, removed: 0 });
    expect((await store.readyChangeStats()).count).to.equal(0);
    expect((await outbox.stats()).pending).to.equal(0);
    expect(await outbox.flush()).to.equal(true);
    const recorded = ledger.audit.slice(before);
    expect(recorded.map((e) => [e.action, e.subtype, e.resources])).to.deep.equal([['U', 'update', [`Observation/${obsId}/_history/2`]]]);
  });

  it('indexing off the critical path: a process that dies while the anchor is on its way, before indexing, leaves a write that settlePending indexes; a refused write leaves no index rows', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { patientId, obsId } = await seed(resources);
    const byValue = async (value: string): Promise<string[]> =>
      (await store.search({ resourceType: 'Observation', criteria: [{ kind: 'string', param: 'value-string', match: 'exact', values: [value] }], limit: 10 })).map(
        (v) => `${v.id}/${v.versionId}`,
      );
    expect(await byValue('first')).to.deep.equal([`${obsId}/1`]);
    // Dies after the ledger committed and before its index rows or its marking were stored.
    const crashing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'markWriteAnchored' || prop === 'indexVersions') {
          return () => Promise.reject(new Error('killed'));
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    await service(crashing, ledger)
      .update(staff, 'Observation', obsId, observation(patientId, obsId, 'amended'))
      .then(
        () => expect.fail('the write should have died'),
        (err: Error) => expect(err.message).to.equal('killed'),
      );
    expect(ledger.anchors.has(`Observation/${obsId}/_history/2`)).to.equal(true);
    expect(await byValue('amended')).to.deep.equal([]);
    expect(await service(store, ledger).settlePending()).to.deep.equal({ kept: 1, removed: 0 });
    // Found by what version 2 says, and no longer by what version 1 said (version 1 is not current).
    expect(await byValue('amended')).to.deep.equal([`${obsId}/2`]);
    expect(await byValue('first')).to.deep.equal([]);
    // The ledger refuses the next update (not committed): discarded, and its rows with it.
    ledger.failWith = new OperationOutcomeError('FORBIDDEN', 'refused');
    await rejection(resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'refused')));
    ledger.failWith = undefined;
    expect(await store.listPending()).to.have.length(0);
    expect(await byValue('refused')).to.deep.equal([]);
    // Version 3 written again for real: indexed from its own content only.
    await resources.update(staff, 'Observation', obsId, observation(patientId, obsId, 'third'));
    expect(await byValue('third')).to.deep.equal([`${obsId}/3`]);
    expect(await byValue('refused')).to.deep.equal([]);
  });

  it('async mode: the change entries of a write too large for one transaction are ready in the store in the transaction that marks it anchored, and the outbox delivers them before later reads', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const outbox = outboxFor(store, ledger);
    const resources = service(store, ledger, outbox);
    ledger.commitThenTimeout = 1; // the ambiguous path too
    const plan = new WritePlan();
    // 201 patients: 201 change entries, more than one transaction takes (200).
    for (let i = 0; i < 201; i++) await resources.prepareCreate(staff, 'Patient', { resourceType: 'Patient', name: [{ family: `P${i}` }] }, plan);
    await resources.commitWrite(staff, plan);
    expect(ledger.anchorAndRecordCalls).to.equal(0);
    expect((await store.readyChangeStats()).count).to.equal(201);
    expect(ledger.audit).to.have.length(0);
    // The next access entry brings the change entries into the outbox first (order kept).
    const first = String(plan.versions[0]?.row.id);
    await resources.read(staff, 'Patient', first);
    expect((await store.readyChangeStats()).count).to.equal(0);
    expect((await outbox.stats()).pending).to.equal(202);
    expect(await outbox.flush()).to.equal(true);
    expect(ledger.audit.map((e) => e.action)).to.deep.equal([...Array<string>(201).fill('C'), 'R']);
    expect(ledger.audit.at(-1)?.resources).to.deep.equal([`Patient/${first}/_history/1`]);
  });

  it('sync mode beyond 200 change entries: a failed recording is not swallowed: kept in the store and delivered by settlePending', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    resources.settleRetryMs = 3_600_000;
    const plan = new WritePlan();
    for (let i = 0; i < 201; i++) await resources.prepareCreate(staff, 'Patient', { resourceType: 'Patient', name: [{ family: `P${i}` }] }, plan);
    ledger.recordAccessDown = true;
    await resources.commitWrite(staff, plan); // anchored: acknowledged
    expect(ledger.anchors.size).to.equal(201);
    expect(ledger.anchorAndRecordCalls).to.equal(0);
    expect((await store.readyChangeStats()).count).to.equal(201);
    ledger.recordAccessDown = false;
    expect(await resources.settlePending()).to.deep.equal({ kept: 0, removed: 0 });
    expect((await store.readyChangeStats()).count).to.equal(0);
    expect(ledger.audit.filter((e) => e.action === 'C')).to.have.length(201);
  });

  it('over HTTP (review PoC G4, turned around): the timed-out update is 200, later updates 200; while the ledger cannot tell, 504 then 503 OperationOutcomes', async () => {
    const FHIR = 'application/fhir+json';
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const resources = service(store, ledger);
    const { app } = testApp({ store, ledger, log, resources, mspId: MSP });
    const user = asCaller({ did: staff.did, organization: MSP, purpose: 'TREAT', scope: 'user/*.*' });
    const { patientId, obsId } = await seed(resources);
    const put = (v: string) =>
      request(app)
        .put(`/fhir/Observation/${obsId}`)
        .set(...user)
        .set('content-type', FHIR)
        .send(observation(patientId, obsId, v));
    ledger.commitThenTimeout = 1;
    const first = await put('amended');
    expect(first.status, JSON.stringify(first.body)).to.equal(200);
    expect(first.body.meta.versionId).to.equal('2');
    for (const v of ['amended again', 'and again']) expect((await put(v)).status).to.equal(200);

    ledger.commitThenTimeout = 1;
    ledger.queriesDown = true;
    const unsure = await put('unsure');
    expect([unsure.status, unsure.body.resourceType, unsure.body.issue[0].code]).to.deep.equal([504, 'OperationOutcome', 'timeout']);
    expect(unsure.body.issue[0].diagnostics).to.match(/outcome is being settled/);
    const blocked = await put('blocked');
    expect([blocked.status, blocked.body.issue[0].code]).to.deep.equal([503, 'transient']);
    expect(blocked.body.issue[0].diagnostics).to.match(/still being settled/);
    ledger.queriesDown = false;
    const read = await request(app)
      .get(`/fhir/Observation/${obsId}`)
      .set(...user);
    expect([read.status, read.body.valueString]).to.deep.equal([200, 'and again']); // the unconfirmed version is not served
    // The next update settles the unconfirmed version (it was committed) and follows it.
    const done = await put('after');
    expect([done.status, done.body.meta.versionId]).to.deep.equal([200, '6']);
  });

  it('a batch that commits and times out is acknowledged whole (AnchorBatch)', async () => {
    const ledger = new AmbiguousLedger(MSP);
    const store = testStore();
    const outbox = outboxFor(store, ledger);
    const resources = service(store, ledger, outbox);
    const plan = new WritePlan();
    const p = await resources.prepareCreate(staff, 'Patient', { resourceType: 'Patient' }, plan);
    await resources.prepareCreate(staff, 'Observation', observation(String(p.resource.id), undefined, 'x'), plan);
    ledger.commitThenTimeout = 1;
    await resources.commitWrite(staff, plan);
    expect(ledger.anchorBatchCalls).to.equal(1);
    expect(await store.listPending()).to.have.length(0);
    expect((await store.readCurrent('Observation', String(plan.versions[1]?.resource.id)))?.state).to.equal('anchored');
  });
});
