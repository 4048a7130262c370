/**
 * Erasure (GDPR art. 17) on the real network: hospital1 erases a patient; afterwards nothing on the
 * ledger links to the patient's data (anchors are tombstones, the record locator finds nothing), the
 * data and key are gone from the custodian's store, and the access history is intact.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey } from '@hdx/gateway';
import { auditDelivered, call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { OrgClient } from '../support/ledger';
import { startTestGateway } from '../support/network';

describe('erasure of a patient (real network)', function () {
  let h1: Gw;
  let regulator: OrgClient;
  const patientKey = generateDidKey();
  const admin = generateDidKey();
  let patientId: string;
  let obsId: string;

  before(async () => {
    h1 = await startTestGateway('hospital1');
    regulator = OrgClient.admin('regulator');
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', admin);
    // The records are written by a practitioner; the admin (same person, admin role) only erases.
    const token = staffToken(h1, 'hospital1', { did: admin.did });
    const p = await call(h1, 'POST', '/Patient', token, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Vandersloot' }],
    });
    expect(p.status, p.text).to.equal(201);
    patientId = p.body.id;
    const o = await call(h1, 'POST', '/Observation', token, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${patientId}` },
    });
    expect(o.status, o.text).to.equal(201);
    obsId = o.body.id;
    expect((await call(h1, 'GET', `/Observation/${obsId}`, token)).status).to.equal(200);
  });

  after(async () => {
    regulator?.close();
    await h1?.gateway.close();
  });

  it('tombstones the anchors, destroys the data and key, and keeps the access history', async () => {
    const token = staffToken(h1, 'hospital1', { did: admin.did, role: 'admin' });
    // Async audit mode (the default): every entry so far is on the ledger before it is counted.
    await auditDelivered(h1);
    const historyBefore = await regulator.evaluate<{ entries: unknown[] }>('hdx.audit', 'QueryAccess', JSON.stringify({ patient: patientKey.did, pageSize: 100 }));
    expect(historyBefore.entries.length).to.be.greaterThan(0);

    // Only an admin may erase.
    const practitioner = await call(h1, 'POST', `/Patient/${patientId}/$erase`, staffToken(h1, 'hospital1', { did: admin.did }));
    expect(practitioner.status).to.equal(403);

    const res = await call(h1, 'POST', `/Patient/${patientId}/$erase`, token);
    expect(res.status, res.text).to.equal(200);
    expect(res.body.parameter).to.deep.include({ name: 'anchorsTombstoned', valueInteger: 2 });

    // On the ledger: the commitments stay, nothing links them to the patient any more.
    for (const [type, id] of [
      ['Patient', patientId],
      ['Observation', obsId],
    ] as const) {
      const anchor = await regulator.evaluate<Record<string, unknown>>('hdx.record', 'GetAnchor', type, id, '1');
      expect(anchor.tombstone, `${type} tombstone`).to.be.an('object');
      expect(anchor).to.not.have.property('patient');
      expect(anchor.commitment).to.be.an('object');
    }
    const located = await regulator.evaluate<{ custodians: unknown[] }>(
      'hdx.record',
      'LocateRecords',
      JSON.stringify({ patient: patientKey.did, actor: admin.did, actorOrganization: 'Hospital1MSP', purpose: 'TREAT' }),
    );
    expect(located.custodians).to.deep.equal([]);

    // Off chain: no content, no key, no link.
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    const rows = (db.prepare('SELECT COUNT(*) AS n FROM resource_version WHERE patient_id = ?').get(patientId) as { n: number }).n;
    const keys = (db.prepare('SELECT COUNT(*) AS n FROM patient_key WHERE patient_id = ?').get(patientId) as { n: number }).n;
    db.close();
    expect([rows, keys]).to.deep.equal([0, 0]);
    expect((await call(h1, 'GET', `/Observation/${obsId}`, staffToken(h1, 'hospital1', { did: admin.did }))).status).to.equal(404);

    // The access history is intact, and records the erasure.
    await auditDelivered(h1);
    const historyAfter = await regulator.evaluate<{ entries: Array<{ subtype?: string }> }>('hdx.audit', 'QueryAccess', JSON.stringify({ patient: patientKey.did, pageSize: 100 }));
    expect(historyAfter.entries.length).to.equal(historyBefore.entries.length + 1);
    expect(historyAfter.entries.at(-1)?.subtype).to.equal('erase');
  });
});
