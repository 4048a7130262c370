import { expect } from 'chai';
import { newLogger } from '../logger';
import { SqliteStore } from '../store/sqlite-store';
import { FakeLedger } from '../test-support/fake-ledger';
import type { Caller } from './access-control';
import { ErasureService } from './erasure';
import { ResourceService } from './resource-service';

const admin: Caller = { did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT' };

describe('ErasureService', () => {
  async function setup() {
    const store = new SqliteStore(':memory:');
    const ledger = new FakeLedger();
    const log = newLogger('silent');
    const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
    const patient = await resources.create(admin, 'Patient', { resourceType: 'Patient', gender: 'female' });
    const obs = await resources.create(admin, 'Observation', {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${String(patient.id)}` },
    });
    const other = await resources.create(admin, 'Patient', { resourceType: 'Patient', gender: 'male' });
    return { store, ledger, erasure: new ErasureService(store, ledger, log, 'Hospital1MSP'), patientId: String(patient.id), obsId: String(obs.id), otherId: String(other.id) };
  }

  it('tombstones the anchors, destroys data and key off chain, keeps and extends the access history', async () => {
    const { store, ledger, erasure, patientId, obsId, otherId } = await setup();
    const historyBefore = ledger.audit.length;
    const result = await erasure.erasePatient(admin, patientId);
    expect(result).to.deep.equal({ versionsDeleted: 2, anchorsTombstoned: 2 });
    for (const ref of [`Patient/${patientId}/_history/1`, `Observation/${obsId}/_history/1`]) {
      const a = ledger.anchors.get(ref);
      expect(a?.tombstone, ref).to.not.equal(undefined);
      expect(a?.patient).to.equal(undefined);
      expect(a?.commitment.value).to.be.a('string');
    }
    expect(store.readCurrent('Patient', patientId)).to.equal(undefined);
    expect(store.readCurrent('Observation', obsId)).to.equal(undefined);
    expect(store.findPatientKey(patientId)).to.equal(undefined);
    // Other patients are untouched; the history keeps every earlier entry and records the erasure.
    expect(store.readCurrent('Patient', otherId)?.state).to.equal('anchored');
    expect(ledger.anchors.get(`Patient/${otherId}/_history/1`)?.tombstone).to.equal(undefined);
    expect(ledger.audit).to.have.length(historyBefore + 1);
    expect(ledger.audit.at(-1)).to.include({ action: 'D', subtype: 'erase' });
  });

  it('a second erasure finds nothing; another organization may not erase', async () => {
    const { erasure, patientId } = await setup();
    await erasure.erasePatient(admin, patientId);
    try {
      await erasure.erasePatient(admin, patientId);
      expect.fail('should throw');
    } catch (err) {
      expect((err as { code?: string }).code).to.equal('NOT_FOUND');
    }
    const { erasure: e2, patientId: p2 } = await setup();
    try {
      await e2.erasePatient({ ...admin, organization: 'Hospital2MSP' }, p2);
      expect.fail('should throw');
    } catch (err) {
      expect((err as { code?: string }).code).to.equal('FORBIDDEN');
    }
  });
});
