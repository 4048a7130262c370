/**
 * FHIR Bundle transactions on the real network (issue 5): a Patient and three Observations referring to
 * it by urn:uuid are anchored together in ONE ledger transaction (hdx.record:AnchorBatch); a transaction
 * with one invalid entry, or one the chaincode refuses, leaves nothing in the store and nothing on the
 * ledger.
 */
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { locatedVersions, OrgClient, evaluateOnceThere } from '../support/ledger';
import { startTestGateway } from '../support/network';

interface Anchor {
  resourceType: string;
  id: string;
  versionId: string;
  patient: string;
  custodian: string;
  txId: string;
}

const P = 'urn:uuid:0c9f3a52-7d1e-4b8a-9f64-2e5d8c1b7a30';
/** About 4.5 KB of note per Observation: 1,200 of them make a body over the common 5 MB limit. */
const NOTE = 'n'.repeat(4500);

const observation = (subject: string, code: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: subject },
  effectiveDateTime: '2026-11-20T09:30:00Z',
  valueQuantity: { value: 64, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
});

const post = (resource: { resourceType: string } & Record<string, unknown>, fullUrl?: string) => ({
  ...(fullUrl ? { fullUrl } : {}),
  resource,
  request: { method: 'POST', url: resource.resourceType },
});

describe('FHIR Bundle transaction (real network, hospital1 gateway)', function () {
  let h1: Gw;
  let hospital2: OrgClient;
  let hospital1Admin: OrgClient;
  const practitioner = generateDidKey();
  const patientKey = generateDidKey();
  let token: string;

  /** Rows of the gateway's store: a failed transaction must not add any. */
  const storeRows = (): { versions: number; keys: number; links: number } => {
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    try {
      const n = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
      return { versions: n('SELECT COUNT(*) AS n FROM resource_version'), keys: n('SELECT COUNT(*) AS n FROM patient_key'), links: n('SELECT COUNT(*) AS n FROM patient_did') };
    } finally {
      db.close();
    }
  };

  /** Every anchored version of the patient held by hospital1, as the ledger's record locator lists them. */
  const located = (): Promise<string[]> => locatedVersions(hospital2, { patient: patientKey.did, actor: practitioner.did, custodian: 'Hospital1MSP' });

  before(async () => {
    h1 = await startTestGateway('hospital1');
    hospital2 = OrgClient.admin('hospital2');
    hospital1Admin = OrgClient.admin('hospital1');
    await registerDid(h1, 'hospital1', 'practitioner', practitioner);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    token = staffToken(h1, 'hospital1', { did: practitioner.did });
  });

  after(async () => {
    hospital2?.close();
    hospital1Admin?.close();
    await h1?.gateway.close();
  });

  let patientId: string;

  it('creates a Patient and 3 Observations referring to it by urn:uuid, all anchored in one ledger transaction', async () => {
    const patient = {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Haugland-Mbeki', given: ['Ilse'] }],
      birthDate: '1979-08-14',
    };
    const res = await call(h1, 'POST', '', token, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [post(observation(P, '8867-4')), post(patient, P), post(observation(P, '8310-5')), post(observation(P, '9279-1'))],
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.body.type).to.equal('transaction-response');
    const entries = res.body.entry as Array<{
      resource: { resourceType: string; id: string; subject?: { reference: string } };
      response: { status: string; location: string; etag: string };
    }>;
    expect(entries.map((e) => e.response.status)).to.deep.equal(['201 Created', '201 Created', '201 Created', '201 Created']);
    patientId = entries[1]?.resource.id as string;
    const refs = entries.map((e) => e.response.location);
    for (const e of entries) {
      expect(e.response.location).to.equal(`${e.resource.resourceType}/${e.resource.id}/_history/1`);
      if (e.resource.resourceType === 'Observation') expect(e.resource.subject?.reference).to.equal(`Patient/${patientId}`);
    }

    // On the ledger, as another organization sees it: one transaction anchored all four, for the patient's DID.
    const anchors = await Promise.all(entries.map((e) => evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', e.resource.resourceType, e.resource.id, '1')));
    expect(new Set(anchors.map((a) => a.txId)).size).to.equal(1);
    expect(anchors.every((a) => a.custodian === 'Hospital1MSP' && a.patient === patientKey.did)).to.equal(true);
    expect(await located()).to.deep.equal([...refs].sort());

    // Each stored version matches its anchor ($verify), and reads back with the rewritten reference.
    for (const e of entries) {
      const verify = await call(h1, 'GET', `/${e.resource.resourceType}/${e.resource.id}/$verify`, token);
      expect(verify.status, verify.text).to.equal(200);
      expect(verify.body.parameter).to.deep.include({ name: 'verified', valueBoolean: true });
      expect(verify.body.parameter).to.deep.include({ name: 'transaction', valueString: anchors[0]?.txId });
    }
    const search = await call(h1, 'GET', `/Observation?patient=Patient/${patientId}`, token);
    expect(search.body.total).to.equal(3);
  });

  it('a transaction with one invalid entry: 400 naming it, nothing stored, nothing anchored', async () => {
    const rowsBefore = storeRows();
    const locatedBefore = await located();
    const res = await call(h1, 'POST', '', token, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          resource: { resourceType: 'Patient', id: patientId, identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }], gender: 'female' },
          request: { method: 'PUT', url: `Patient/${patientId}` },
        },
        post(observation(`Patient/${patientId}`, '8867-4')),
        post({ resourceType: 'Patient', name: [{ family: 'Osei-Brandt' }] }, 'urn:uuid:5a1e7c33-0b6d-4f2e-8c9a-7d3b2e1f0a44'),
        post({ ...observation(`Patient/${patientId}`, '8310-5'), effectiveDateTime: 'last Tuesday' }),
      ],
    });
    expect(res.status, res.text).to.equal(400);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(res.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? [])).to.deep.equal(['Bundle.entry[3].resource.effectiveDateTime']);
    expect(res.text).to.not.include('last Tuesday');
    expect(res.text).to.not.include('Osei');
    expect(storeRows()).to.deep.equal(rowsBefore);
    expect(await located()).to.deep.equal(locatedBefore);
    const v2 = await hospital2.evaluate('hdx.record', 'GetAnchor', 'Patient', patientId, '2').catch((err: { code?: string }) => err.code);
    expect(v2).to.equal('NOT_FOUND');
    expect((await call(h1, 'GET', `/Patient/${patientId}`, token)).body.meta.versionId).to.equal('1');
  });

  it('a transaction the chaincode refuses (a version already anchored differently): 409 naming the entry, no part kept', async () => {
    // Someone anchored Patient/<id>/_history/2 with another commitment: the transaction's update must fail, and with it the rest.
    await hospital1Admin.submit(
      'hdx.record',
      'Anchor',
      JSON.stringify({
        resourceType: 'Patient',
        id: patientId,
        versionId: '2',
        patient: patientKey.did,
        lastUpdated: new Date().toISOString(),
        commitment: { alg: 'HMAC-SHA-256', value: 'A'.repeat(43) },
      }),
    );
    const rowsBefore = storeRows();
    const locatedBefore = await located();
    expect(locatedBefore).to.include(`Patient/${patientId}/_history/2`);
    const res = await call(h1, 'POST', '', token, {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        post(observation(`Patient/${patientId}`, '8867-4')),
        post(observation(`Patient/${patientId}`, '8310-5')),
        {
          resource: { resourceType: 'Patient', id: patientId, identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }], gender: 'female' },
          request: { method: 'PUT', url: `Patient/${patientId}` },
        },
      ],
    });
    expect(res.status, res.text).to.equal(409);
    expect(res.body.issue[0].expression).to.deep.equal(['Bundle.entry[2]']);
    expect(storeRows()).to.deep.equal(rowsBefore);
    // The two Observations of the refused AnchorBatch are not on the ledger either.
    expect(await located()).to.deep.equal(locatedBefore);
    expect((await call(h1, 'GET', `/Observation?patient=Patient/${patientId}`, token)).body.total).to.equal(3);
  });

  it('a batch: each entry on its own (created, invalid, read; an update the chaincode refuses fails alone, the creates committed with it stand)', async () => {
    const res = await call(h1, 'POST', '', token, {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        post(observation(`Patient/${patientId}`, '8867-4')),
        post(observation('Patient/not-here', '8867-4')),
        { request: { method: 'GET', url: `Patient/${patientId}` } },
        // Version 2 of the Patient is on the ledger with another commitment (the test above): refused.
        {
          resource: { resourceType: 'Patient', id: patientId, identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }], gender: 'female' },
          request: { method: 'PUT', url: `Patient/${patientId}` },
        },
        post(observation(`Patient/${patientId}`, '8310-5')),
      ],
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.body.type).to.equal('batch-response');
    expect(res.body.entry.map((e: { response: { status: string } }) => e.response.status)).to.deep.equal([
      '201 Created',
      '400 Bad Request',
      '200 OK',
      '409 Conflict',
      '201 Created',
    ]);
    expect(res.body.entry[3].response.outcome.issue[0].expression).to.deep.equal(['Bundle.entry[3]']);
    const last = res.body.entry[4].resource;
    expect((await evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', 'Observation', last.id, '1')).custodian).to.equal('Hospital1MSP');
    expect(res.body.entry[1].response.outcome.issue[0].expression).to.deep.equal(['Bundle.entry[1].resource.subject']);
    const created = res.body.entry[0].resource;
    const anchor = await evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', 'Observation', created.id, '1');
    expect(anchor.custodian).to.equal('Hospital1MSP');
  });

  it('a transaction of 1,201 entries over the common 5 MB (framed, its entries read one at a time) is anchored in 3 ledger transactions (500, 500, 201) and every version verifies against its anchor', async () => {
    const before = storeRows();
    const Q = 'urn:uuid:5d2e7f10-3a4b-4c6d-8e9f-0a1b2c3d4e5f';
    const body = JSON.stringify({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        post({ resourceType: 'Patient', name: [{ family: 'Okonkwo-Lind', given: ['Tove'] }], birthDate: '1961-02-03' }, Q),
        ...Array.from({ length: 1200 }, () => post({ ...observation(Q, '8867-4'), note: [{ text: NOTE }] })),
      ],
    });
    expect(body.length).to.be.greaterThan(5 * 1024 * 1024);
    const res = await call(h1, 'POST', '', token, body);
    expect(res.status, res.text.slice(0, 500)).to.equal(200);
    const entries = res.body.entry as Array<{ resource: { resourceType: string; id: string }; response: { status: string } }>;
    expect(entries).to.have.length(1201);
    expect(entries.every((e) => e.response.status === '201 Created')).to.equal(true);
    expect(storeRows().versions - before.versions).to.equal(1201);
    // The Patient and the first 499 Observations in one ledger transaction, the next 500 in another, the rest in a third.
    const txOf = async (i: number): Promise<string> => {
      const e = entries[i] as { resource: { resourceType: string; id: string } };
      return (await evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', e.resource.resourceType, e.resource.id, '1')).txId;
    };
    const [t0, t499, t500, t999, t1000, t1200] = await Promise.all([0, 499, 500, 999, 1000, 1200].map(txOf));
    expect(t499).to.equal(t0);
    expect(t999).to.equal(t500);
    expect(t1200).to.equal(t1000);
    expect(new Set([t0, t500, t1000]).size).to.equal(3);
    for (const i of [0, 600, 1200]) {
      const e = entries[i] as { resource: { resourceType: string; id: string } };
      const verify = await call(h1, 'GET', `/${e.resource.resourceType}/${e.resource.id}/$verify`, token);
      expect(verify.status, verify.text).to.equal(200);
      expect(verify.body.parameter).to.deep.include({ name: 'verified', valueBoolean: true });
    }
  });

  it('a batch over 5 MB whose last entry is not JSON: 400 naming it, no entry acted on', async () => {
    const before = storeRows();
    const entry = Array.from({ length: 1200 }, () => JSON.stringify(post({ ...observation(`Patient/${patientId}`, '8867-4'), note: [{ text: NOTE }] })));
    entry.push('{"resource": {"resourceType": "Observation", "status": }}');
    const res = await call(h1, 'POST', '', token, `{"resourceType":"Bundle","type":"batch","entry":[${entry.join(',')}]}`);
    expect(res.status, res.text.slice(0, 500)).to.equal(400);
    expect(res.body.issue[0].diagnostics).to.equal('Bundle.entry[1200] is not valid JSON');
    expect(storeRows()).to.deep.equal(before);
  });
});
