import { expect } from 'chai';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import type { ResourceStore } from '../store/store';
import { FakeLedger } from '../test-support/fake-ledger';
import { commitmentOf, patientPseudonym, versionKey } from '../model/commitment';
import type { Caller } from './policy';
import { ResourceService } from './resource-service';
import { WritePlan } from './write-plan';

describe('ResourceService.settlePending (crash between store and ledger)', () => {
  const content = { resourceType: 'Patient', id: 'p1', meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00.000Z' } };

  async function pending(store: ResourceStore): Promise<void> {
    await store.insertPending({
      resourceType: 'Patient',
      id: 'p1',
      versionId: 1,
      lastUpdated: content.meta.lastUpdated,
      patientId: 'p1',
      deleted: false,
      content: JSON.stringify(content),
      date: null,
      codes: [],
    });
  }

  it('keeps a pending version the ledger has anchored with the same commitment', async () => {
    const store = testStore();
    const ledger = new FakeLedger();
    await pending(store);
    const key = await store.patientKey('p1');
    await ledger.anchor({
      resourceType: 'Patient',
      id: 'p1',
      versionId: '1',
      patient: patientPseudonym(key),
      lastUpdated: content.meta.lastUpdated,
      commitment: { alg: 'HMAC-SHA-256', value: commitmentOf(versionKey(key, 'Patient', 'p1', '1'), content) },
    });
    const svc = new ResourceService({ store, ledger, log: newLogger('silent'), mspId: 'Hospital1MSP' });
    expect(await svc.settlePending()).to.deep.equal({ kept: 1, removed: 0 });
    expect((await store.readCurrent('Patient', 'p1'))?.state).to.equal('anchored');
  });

  it('a new Patient that never reached the ledger leaves no key or DID link behind', async () => {
    const store = testStore();
    await pending(store);
    await store.patientKey('p1');
    await store.linkPatientDid('p1', `did:hdx:${'z'.repeat(43)}`);
    const svc = new ResourceService({ store, ledger: new FakeLedger(), log: newLogger('silent'), mspId: 'Hospital1MSP' });
    expect(await svc.settlePending()).to.deep.equal({ kept: 0, removed: 1 });
    expect(await store.findPatientKey('p1')).to.equal(undefined);
    expect(await store.patientByDid(`did:hdx:${'z'.repeat(43)}`)).to.equal(undefined);
  });

  it('removes a pending version the ledger never anchored', async () => {
    const store = testStore();
    await pending(store);
    await store.patientKey('p1');
    const svc = new ResourceService({ store, ledger: new FakeLedger(), log: newLogger('silent'), mspId: 'Hospital1MSP' });
    expect(await svc.settlePending()).to.deep.equal({ kept: 0, removed: 1 });
    expect(await store.readCurrent('Patient', 'p1')).to.equal(undefined);
    expect(await store.listPending()).to.have.length(0);
  });
});

describe('commitments', () => {
  it('do not depend on key order (RFC 8785) but do on content and key', () => {
    const k = Buffer.alloc(32, 1);
    expect(commitmentOf(k, { a: 1, b: [1, 2] })).to.equal(commitmentOf(k, { b: [1, 2], a: 1 }));
    expect(commitmentOf(k, { a: 1 })).to.not.equal(commitmentOf(k, { a: 2 }));
    expect(commitmentOf(Buffer.alloc(32, 2), { a: 1 })).to.not.equal(commitmentOf(k, { a: 1 }));
  });

  it('each version has its own opening key: revealing one opens no other version or patient', () => {
    const k = Buffer.alloc(32, 1);
    const v1 = versionKey(k, 'Observation', 'o1', '1');
    expect(v1).to.have.length(32);
    expect(v1.equals(versionKey(k, 'Observation', 'o1', '2'))).to.equal(false);
    expect(v1.equals(versionKey(k, 'Observation', 'o2', '1'))).to.equal(false);
    expect(v1.equals(versionKey(Buffer.alloc(32, 2), 'Observation', 'o1', '1'))).to.equal(false);
  });
});

describe('the write plan asks the store about a patient once per write', () => {
  it('many versions of one held patient: its Patient, key and DID are read once, and every version is anchored under that key and reference', async () => {
    const store = testStore();
    const asked: string[] = [];
    const counted = new Proxy(store, {
      get(target, prop, receiver): unknown {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]): unknown => {
          if (prop === 'findPatientKey' || prop === 'patientDid' || (prop === 'readCurrent' && args[0] === 'Patient')) asked.push(`${String(prop)} ${String(args.at(-1))}`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const svc = new ResourceService({ store: counted, ledger: new FakeLedger(), log: newLogger('silent'), mspId: 'Hospital1MSP' });
    const staff: Caller = { did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', kind: 'practitioner', actorAuth: 'idp', local: true };
    const patient = await svc.create(staff, 'Patient', { resourceType: 'Patient', name: [{ family: 'Once' }] });
    const id = String(patient.id);
    asked.length = 0;
    const plan = new WritePlan();
    for (let i = 0; i < 5; i++) {
      await svc.prepareCreate(
        staff,
        'Observation',
        { resourceType: 'Observation', status: 'final', code: { text: `o${String(i)}` }, subject: { reference: `Patient/${id}` } },
        plan,
      );
    }
    expect(asked).to.deep.equal([`readCurrent ${id}`, `findPatientKey ${id}`, `patientDid ${id}`]);
    const key = await store.patientKey(id);
    expect(new Set(plan.versions.map((v) => v.anchor.patient))).to.deep.equal(new Set([patientPseudonym(key)]));
    for (const v of plan.versions) {
      expect(v.anchor.commitment.value).to.equal(commitmentOf(versionKey(key, 'Observation', v.row.id, '1'), v.resource));
    }
    await svc.commitWrite(staff, plan);
    expect(await store.readCurrent('Observation', plan.versions[4]?.row.id ?? '')).to.have.property('state', 'anchored');
  });
});
