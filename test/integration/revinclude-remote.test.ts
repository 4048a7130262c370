/**
 * Issue 10 on the real network: another member's practitioner searching hospital1 may reverse-include
 * patient records only within the patient it names. A `_revinclude` of patient records from a search
 * that names no patient (of reference data: Medication, Practitioner) is refused with a 400
 * OperationOutcome before anything is looked up, whatever is held (the 1,000-candidate limit of a
 * reverse include comes before consent, so a search across patients would tell how many records point
 * at, say, a Medication), and the refusal names no record. Naming the patient gets an answer.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signDidToken } from '@hdx/gateway';
import { call, type Gw, type Reply, registerDid, staffToken } from '../support/fhir-client';
import { startTestGateway } from '../support/network';

describe('a _revinclude of patient records by another member must name the patient (issue 10, real network)', function () {
  let h1: Gw;
  let h2: Gw;
  const alice = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let aliceId: string;
  let medicationId: string;
  let practitionerId: string;

  /** Hospital2's practitioner at hospital1, with its own DID token (a fresh one per request). */
  const h2Get = (url: string): Promise<Reply> =>
    call(h1, 'GET', url, signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }));

  before(async () => {
    [h1, h2] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2')]);
    await registerDid(h1, 'hospital1', 'patient', alice);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const post = async (body: Record<string, unknown>): Promise<string> => {
      const res = await call(h1, 'POST', `/${String(body.resourceType)}`, staff, body);
      expect(res.status, res.text).to.equal(201);
      return String(res.body.id);
    };
    aliceId = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: alice.did }] });
    medicationId = await post({ resourceType: 'Medication', code: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '313782' }] } });
    practitionerId = await post({ resourceType: 'Practitioner', name: [{ family: 'Osler' }] });
    await post({
      resourceType: 'MedicationRequest',
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/${aliceId}` },
      medicationReference: { reference: `Medication/${medicationId}` },
      requester: { reference: `Practitioner/${practitionerId}` },
    });
  });

  after(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('is refused with a 400 OperationOutcome naming the type, for a record held or not, and the refusal names no record', async () => {
    const cases: Array<[string, string]> = [
      [`/Medication?_revinclude=MedicationRequest:medication`, 'MedicationRequest'],
      [`/Medication?_id=${medicationId}&_revinclude=MedicationRequest:medication`, 'MedicationRequest'],
      [`/Medication?_id=${randomUUID()}&_revinclude=MedicationRequest:medication`, 'MedicationRequest'],
      [`/Practitioner?_id=${practitionerId}&_revinclude=MedicationRequest:requester`, 'MedicationRequest'],
    ];
    for (const [url, type] of cases) {
      const res = await h2Get(url);
      expect(res.status, `${url}: ${res.text}`).to.equal(400);
      expect(res.body.resourceType, url).to.equal('OperationOutcome');
      expect(res.body.issue?.[0]?.code, url).to.equal('invalid');
      expect(res.body.issue?.[0]?.diagnostics, url).to.equal(`A search from outside Hospital1MSP must name the patient (patient=<the patient DID>) to _revinclude ${type}`);
      for (const secret of [aliceId, alice.did, medicationId, practitionerId]) expect(res.text, url).to.not.include(secret);
    }
    // Every reference parameter (`*`, iterated or not) reaches patient records too: refused the same way.
    for (const url of [`/Medication?_id=${medicationId}&_revinclude=*`, `/Practitioner?_id=${practitionerId}&_revinclude:iterate=*`]) {
      const res = await h2Get(url);
      expect([res.status, res.body.resourceType], `${url}: ${res.text}`).to.deep.equal([400, 'OperationOutcome']);
      expect(res.body.issue?.[0]?.diagnostics, url).to.match(/^A search from outside Hospital1MSP must name the patient \(patient=<the patient DID>\) to _revinclude [A-Za-z]+$/);
    }
  });

  it('is answered once the search names the patient (the patient not consenting: nothing of hers is disclosed)', async () => {
    const res = await h2Get(`/Patient?patient=${alice.did}&_revinclude=MedicationRequest:subject`);
    expect(res.status, res.text).to.equal(200);
    expect(res.body.resourceType).to.equal('Bundle');
    expect(res.body.total).to.equal(0);
    expect(res.body.entry ?? []).to.deep.equal([]);
  });
});
