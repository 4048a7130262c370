import { expect } from 'chai';
import { hl7v2ToBundle } from '@hdx/fhir-mappers';
import { CustodianIds } from '../store/custodian-ids';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { FakeLedger } from '../test-support/fake-ledger';
import type { Caller } from './access-control';
import { ErasureService } from './erasure';
import { ResourceService } from './resource-service';
import { WritePlan } from './write-plan';

const admin: Caller = { did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', kind: 'admin', actorAuth: 'idp', local: true };
/** Who writes the records (admins may not write patient data). */
const staff: Caller = { ...admin, kind: 'practitioner' };
const ADT = 'MSH|^~\\&|APP|FAC^1.2.3.4^ISO|HDX|HDX|20240101120000+0100||ADT^A04|CTRL-1|P|2.5.1\rPID|1||MRN-1^^^FAC&1.2.3.4.5&ISO^MR||Doe^Jane||19800101|F\rPV1|1|O';

describe('ErasureService', () => {
  async function setup() {
    const store = testStore();
    const ledger = new FakeLedger();
    const log = newLogger('silent');
    const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
    const patient = await resources.create(staff, 'Patient', { resourceType: 'Patient', gender: 'female' });
    const obs = await resources.create(staff, 'Observation', {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${String(patient.id)}` },
    });
    const other = await resources.create(staff, 'Patient', { resourceType: 'Patient', gender: 'male' });
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
    expect(await store.readCurrent('Patient', patientId)).to.equal(undefined);
    expect(await store.readCurrent('Observation', obsId)).to.equal(undefined);
    expect(await store.findPatientKey(patientId)).to.equal(undefined);
    // Other patients are untouched; the history keeps every earlier entry and records the erasure.
    expect((await store.readCurrent('Patient', otherId))?.state).to.equal('anchored');
    expect(ledger.anchors.get(`Patient/${otherId}/_history/1`)?.tombstone).to.equal(undefined);
    expect(ledger.audit).to.have.length(historyBefore + 1);
    expect(ledger.audit.at(-1)).to.include({ action: 'D', subtype: 'erase' });
    // The erasure's own entry names no resource: the local id would link it to the tombstones.
    expect(ledger.audit.at(-1)?.resources).to.deep.equal([]);
    expect(JSON.stringify(ledger.audit.at(-1))).to.not.contain(patientId);
  });

  it("bumps the erasure epoch of the patient's keyed id: the same MRN then maps to a new Patient id, which anchors", async () => {
    const { store, ledger } = await setup();
    const log = newLogger('silent');
    const ids = new CustodianIds(Buffer.alloc(32, 3), ':memory:');
    const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
    const patientOf = (): { id: string; resource: Record<string, unknown> } => {
      const r = hl7v2ToBundle(ADT, { ids: ids.ids }).entry?.[0]?.resource as unknown as Record<string, unknown>;
      return { id: String(r.id), resource: r };
    };
    const first = patientOf();
    expect(patientOf().id).to.equal(first.id);
    // Created under its stable id, as ingestion does.
    const plan = new WritePlan();
    await resources.prepareCreate(staff, 'Patient', first.resource, plan, first.id);
    await resources.commitWrite(staff, plan);
    expect(await store.readCurrent('Patient', first.id)).to.not.equal(undefined);
    const erasure = new ErasureService(store, ledger, log, 'Hospital1MSP', ids);
    await erasure.erasePatient(admin, first.id);
    expect(ledger.anchors.get(`Patient/${first.id}/_history/1`)?.tombstone).to.not.equal(undefined);
    const again = patientOf();
    expect(again.id).to.not.equal(first.id);
    expect(patientOf().id).to.equal(again.id);
    // A Patient not derived from a natural key (created through the API): nothing to bump, erasure still works.
    const api = await resources.create(staff, 'Patient', { resourceType: 'Patient' });
    expect((await erasure.erasePatient(admin, String(api.id))).anchorsTombstoned).to.equal(1);
    ids.close();
  });

  it('a patient unknown here: NOT_FOUND without the id in the message', async () => {
    const { erasure } = await setup();
    const id = '0e3c8a1e-8f7e-4d55-9a2c-333333333333';
    try {
      await erasure.erasePatient(admin, id);
      expect.fail('should throw');
    } catch (err) {
      expect((err as { code?: string }).code).to.equal('NOT_FOUND');
      expect((err as Error).message).to.not.contain(id);
    }
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
