/**
 * The staff view through HTTP on the REAL hdx contracts (ContractLedger): `$access-check` (why a read
 * would be denied, at patient level, for the caller of the token), `$request-access` and
 * `$access-requests` (on the ledger, seen by the patient at any member's gateway).
 */
import { expect } from 'chai';
import request from 'supertest';
import { ConsentContract, IdentityContract } from '@hdx/chaincode';
import { H1_ADMIN, H2_ADMIN, H2_GATEWAY, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import { newKey, type TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { testStore } from '../test-support/test-store';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import { asCaller, type TestCaller } from '../test-support/fake-auth';
import { testApp } from '../test-support/test-app';

const consents = new ConsentContract();
const identities = new IdentityContract();

type Parameters = { resourceType: string; parameter: Array<{ name: string; valueBoolean?: boolean; valueCode?: string; valueString?: string; part?: Parameters['parameter'] }> };

function param(body: Parameters, name: string): unknown {
  const p = body.parameter.find((x) => x.name === name);
  return p?.valueBoolean ?? p?.valueCode ?? p?.valueString;
}

/** The `request` parts of `$access-requests` as plain objects. */
function requestsOf(body: Parameters): Array<Record<string, unknown>> {
  return body.parameter
    .filter((p) => p.name === 'request')
    .map((p) => {
      const out: Record<string, unknown> = { resourceTypes: [] };
      for (const part of p.part ?? []) {
        const value = (part as Record<string, unknown>).valueString ?? part.valueCode ?? part.valueBoolean ?? (part as Record<string, unknown>).valueDateTime;
        if (part.name === 'resourceType') (out.resourceTypes as unknown[]).push(value);
        else out[part.name] = value;
      }
      return out;
    });
}

describe('the staff view: $access-check, $request-access, $access-requests (real contracts)', () => {
  let chain: ChaincodeLedger;
  let patient: TestKey;
  let doctor: TestKey;
  let h1Doctor: TestKey;
  let hospital1: ReturnType<typeof testApp>['app'];
  let hospital2: ReturnType<typeof testApp>['app'];

  const asDoctor = (key: TestKey = doctor, extra: Partial<TestCaller> = {}) =>
    asCaller({ did: key.did, role: 'practitioner', organization: 'Hospital2MSP', tokenKind: 'did', scope: 'user/*.read', ...extra });
  const asPatient = (key: TestKey = patient) => asCaller({ did: key.did, role: 'patient', organization: 'Hospital1MSP', tokenKind: 'did', scope: 'patient/*.read' });
  const check = (query: string, as: [string, string] = asDoctor(), app = hospital1) =>
    request(app)
      .get(`/fhir/Patient/$access-check?${query}`)
      .set(...as);
  const ask = (body: unknown, as: [string, string] = asDoctor(), app = hospital2) =>
    request(app)
      .post('/fhir/Patient/$request-access')
      .set(...as)
      .set('content-type', 'application/fhir+json')
      .send(body as object);
  const requestBody = (p: string = patient.did, purpose = 'TREAT', types: string[] = ['Observation'], more: unknown[] = []) => ({
    resourceType: 'Parameters',
    parameter: [{ name: 'patient', valueString: p }, { name: 'purpose', valueCode: purpose }, ...types.map((t) => ({ name: 'resourceType', valueCode: t })), ...more],
  });
  const list = (p: string = patient.did, as: [string, string] = asPatient(), app = hospital1) =>
    request(app)
      .get(`/fhir/Patient/$access-requests?patient=${p}`)
      .set(...as);
  const grant = async (provision: Record<string, unknown>, id = 'c1'): Promise<void> => {
    const consent = { resourceType: 'Consent', id, status: 'active', patient: { reference: patient.did }, provision };
    await chain.invoke(H1_ADMIN, (ctx) => consents.Grant(ctx, signedBy(chain, patient, { action: 'grant', consent })));
  };
  const toHospital2 = { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }] };
  const diagnostics = (res: request.Response): string => String((res.body as { issue?: Array<{ diagnostics?: string }> }).issue?.[0]?.diagnostics);

  beforeEach(async () => {
    chain = new ChaincodeLedger();
    patient = await registerDid(chain, 'patient');
    doctor = await registerDid(chain, 'practitioner', H2_GATEWAY);
    h1Doctor = await registerDid(chain, 'practitioner');
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    // A record of the patient at hospital1: the check must not tell it exists.
    await h1.anchor({
      resourceType: 'Observation',
      id: 'o1',
      versionId: '1',
      patient: patient.did,
      lastUpdated: '2024-05-01T10:00:00Z',
      dataMonth: '2024-04',
      commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
    });
    hospital1 = testApp({ store: testStore(), ledger: h1 }).app;
    hospital2 = testApp({ store: testStore(), ledger: new ContractLedger('Hospital2MSP', { chain }), mspId: 'Hospital2MSP' }).app;
  });

  describe('GET /fhir/Patient/$access-check', () => {
    it('says, for the caller, that no consent permits it, in plain words, and that break-glass exists; it records nothing', async () => {
      const before = chain.state.size;
      const res = await check(`patient=${patient.did}&purpose=TREAT&resourceType=Observation`);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const body = res.body as Parameters;
      expect(body.resourceType).to.equal('Parameters');
      expect(param(body, 'permitted')).to.equal(false);
      expect(param(body, 'reason')).to.equal('no-consent');
      expect(param(body, 'explanation')).to.equal(
        'Not permitted: no consent of this patient permits you or Hospital2MSP to read Observation records held by Hospital1MSP for treatment (TREAT). You can ask the patient for access.',
      );
      expect(param(body, 'breakGlassAvailable')).to.equal(true);
      // No access entry, no other write.
      expect(chain.state.size).to.equal(before);
    });

    it('answers alike for no consent, an explicit deny, a patient with no records, an unregistered DID, and a suspended patient: the same body', async () => {
      const answer = async (p: string) => (await check(`patient=${p}&purpose=TREAT&resourceType=Observation`)).body as Parameters;
      const noConsent = await answer(patient.did);
      const noRecords = await answer((await registerDid(chain, 'patient')).did);
      const unregistered = await answer(newKey().did);
      await grant({ type: 'deny', actor: toHospital2.actor });
      const denied = await answer(patient.did);
      // A patient whose permit stops permitting while an admin has suspended their DID.
      const suspended = await registerDid(chain, 'patient');
      const permit = { resourceType: 'Consent', id: 'c-suspended', status: 'active', patient: { reference: suspended.did }, provision: toHospital2 };
      await chain.invoke(H1_ADMIN, (ctx) => consents.Grant(ctx, signedBy(chain, suspended, { action: 'grant', consent: permit })));
      expect(param(await answer(suspended.did), 'permitted')).to.equal(true);
      await chain.invoke(H1_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: suspended.did })));
      expect(await answer(suspended.did)).to.deep.equal(noConsent);
      expect(noRecords).to.deep.equal(noConsent);
      expect(unregistered).to.deep.equal(noConsent);
      expect(denied).to.deep.equal(noConsent);
      // Nothing names a consent or counts anything.
      expect(JSON.stringify(denied)).to.not.match(/c1|count|total|exist/i);
    });

    it('says permitted once a consent of the patient permits the caller’s organization, without naming the consent', async () => {
      await grant(toHospital2);
      const res = await check(`patient=${patient.did}&purpose=TREAT&resourceType=Observation`);
      expect(param(res.body as Parameters, 'permitted')).to.equal(true);
      expect(param(res.body as Parameters, 'reason')).to.equal('consent-permits');
      expect(param(res.body as Parameters, 'breakGlassAvailable')).to.equal(undefined);
      expect(JSON.stringify(res.body)).to.not.include('c1');
      // Asked at the requester's own gateway, about the records hospital1 holds: the same decision.
      const atHome = await check(`patient=${patient.did}&purpose=TREAT&resourceType=Observation&custodian=Hospital1MSP`, asDoctor(), hospital2);
      expect(param(atHome.body as Parameters, 'permitted')).to.equal(true);
    });

    it('tells reasons about the actor: a purpose the role may not state, a suspended DID; the custodian’s own staff for treatment', async () => {
      const patrqt = await check(`patient=${patient.did}&purpose=PATRQT&resourceType=Observation`);
      expect(param(patrqt.body as Parameters, 'reason')).to.equal('purpose-not-allowed');
      expect(param(patrqt.body as Parameters, 'explanation')).to.equal('Not permitted: your role may not state the purpose PATRQT.');
      const own = await check(`patient=${patient.did}&purpose=TREAT&resourceType=Observation`, asDoctor(h1Doctor, { organization: 'Hospital1MSP' }));
      expect(param(own.body as Parameters, 'reason')).to.equal('custodian-treatment');
      expect(param(own.body as Parameters, 'permitted')).to.equal(true);
      await chain.invoke(H2_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: doctor.did })));
      const suspended = await check(`patient=${patient.did}&purpose=TREAT&resourceType=Observation`);
      expect(param(suspended.body as Parameters, 'reason')).to.equal('actor-inactive');
      expect(param(suspended.body as Parameters, 'explanation')).to.include('your DID is suspended or deactivated');
    });

    it('takes the actor from the token only, and is for practitioners and member systems', async () => {
      const q = `patient=${patient.did}&purpose=TREAT&resourceType=Observation`;
      const withActor = await check(`${q}&actor=${h1Doctor.did}`);
      expect(withActor.status).to.equal(400);
      expect(diagnostics(withActor)).to.include('Unknown parameter actor');
      const asThePatient = await check(q, asPatient());
      expect(asThePatient.status).to.equal(403);
      expect((await check(q, asCaller({ did: newKey().did, role: 'auditor', tokenKind: 'did' }))).status).to.equal(403);
      expect((await request(hospital1).get(`/fhir/Patient/$access-check?${q}`)).status).to.equal(401);
      const system = await check(q, asCaller({ did: h1Doctor.did, role: 'system', organization: 'Hospital1MSP', tokenKind: 'did' }));
      expect(system.status).to.equal(200);
    });

    it('answers bad questions with a 400 naming the parameter', async () => {
      for (const [query, named] of [
        [`purpose=TREAT&resourceType=Observation`, 'patient'],
        [`patient=Patient/1&purpose=TREAT&resourceType=Observation`, 'patient'],
        [`patient=${patient.did}&purpose=treat&resourceType=Observation`, 'purpose'],
        [`patient=${patient.did}&purpose=TREAT&resourceType=observation`, 'resourceType'],
        [`patient=${patient.did}&purpose=TREAT&resourceType=Observation&resourceType=Condition`, 'resourceType'],
        [`patient=${patient.did}&purpose=TREAT&resourceType=Observation&custodian=%20`, 'custodian'],
      ] as const) {
        const res = await check(query);
        expect(res.status, query).to.equal(400);
        expect(diagnostics(res), query).to.include(named);
      }
    });
  });

  describe('access requests', () => {
    it('a practitioner asks at their own gateway; the patient sees it at another member’s, and whether a consent now permits it', async () => {
      const made = await ask(requestBody(patient.did, 'TREAT', ['Observation', 'Condition']));
      expect(made.status, JSON.stringify(made.body)).to.equal(200);
      // Asked again (other types): it replaces the open one.
      expect((await ask(requestBody(patient.did, 'TREAT', ['Observation']))).status).to.equal(200);
      const res = await list();
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const [only, ...rest] = requestsOf(res.body as Parameters);
      expect(rest).to.deep.equal([]);
      expect(only).to.deep.include({ requester: doctor.did, requesterOrganization: 'Hospital2MSP', purpose: 'TREAT', resourceTypes: ['Observation'], permitted: false });
      expect(only?.requestedAt).to.match(/^\d{4}-\d{2}-\d{2}T/);
      await grant(toHospital2);
      expect(requestsOf((await list()).body as Parameters)[0]?.permitted).to.equal(true);
    });

    it('is made only by a practitioner of this gateway’s organization, with codes only', async () => {
      const atOther = await ask(requestBody(), asDoctor(), hospital1);
      expect(atOther.status).to.equal(403);
      expect(diagnostics(atOther)).to.include('your own organization');
      expect((await ask(requestBody(), asPatient())).status).to.equal(403);
      expect((await ask(requestBody(), asDoctor(doctor, { viaOrganization: 'did:hdx:org' }))).status).to.equal(403);
      const message = await ask(requestBody(patient.did, 'TREAT', ['Observation'], [{ name: 'message', valueString: 'Mrs Jones, please' }]));
      expect(message.status).to.equal(400);
      expect(diagnostics(message)).to.include('message');
      expect((await ask(requestBody(patient.did, 'ETREAT'))).status).to.equal(400);
      expect((await ask(requestBody(patient.did, 'TREAT', []))).status).to.equal(400);
      expect((await ask({ resourceType: 'Patient' })).status).to.equal(400);
      // A DID the chaincode does not know as this organization's active practitioner: refused there.
      const stranger = await ask(requestBody(), asDoctor(newKey()));
      expect(stranger.status).to.equal(403);
      expect(requestsOf((await list()).body as Parameters)).to.deep.equal([]);
    });

    it('are listed only for the patient and their active guardian; anyone else gets the same 403, known patient or not', async () => {
      await ask(requestBody());
      const other = await registerDid(chain, 'patient');
      const refusal = await list(patient.did, asPatient(other));
      expect(refusal.status).to.equal(403);
      const unknown = await list(newKey().did, asPatient(other));
      expect(unknown.status).to.equal(403);
      expect(diagnostics(unknown)).to.equal(diagnostics(refusal));
      expect((await list(patient.did, asDoctor())).status).to.equal(403);
      expect((await list(patient.did, asDoctor(doctor, { role: 'auditor' }))).status).to.equal(403);
      // A guardian, with the patient's own proof.
      const proof = signedBy(chain, patient, { action: 'add-guardian', patient: patient.did, guardian: other.did });
      await chain.invoke(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: other.did, proof })));
      const asGuardian = await list(patient.did, asPatient(other));
      expect(asGuardian.status, JSON.stringify(asGuardian.body)).to.equal(200);
      expect(requestsOf(asGuardian.body as Parameters)).to.have.length(1);
    });
  });
});
