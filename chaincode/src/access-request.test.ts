import { expect } from 'chai';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey, newKey } from './test-support/keys';
import { H1_GATEWAY, H2_ADMIN, H2_GATEWAY, registerDid, signedBy } from './test-support/registry';

const consents = new ConsentContract();
const identities = new IdentityContract();

interface Stored {
  patient: string;
  requester: string;
  requesterOrganization: string;
  purpose: string;
  resourceTypes: string[];
  requestedAt: string;
  txId: string;
}

describe('hdx.consent access requests', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let doctor: TestKey;

  const ask = async (body: Record<string, unknown>, who: FakeIdentity = H2_GATEWAY): Promise<Stored> =>
    JSON.parse(await ledger.invoke(who, (ctx) => consents.RequestAccess(ctx, JSON.stringify(body)))) as Stored;
  const list = async (p: string = patient.did, who: FakeIdentity = H1_GATEWAY): Promise<Stored[]> =>
    (JSON.parse(await ledger.evaluate(who, (ctx) => consents.ListAccessRequests(ctx, p))) as { requests: Stored[] }).requests;
  const body = (overrides: Record<string, unknown> = {}) => ({ patient: patient.did, requester: doctor.did, purpose: 'TREAT', resourceTypes: ['Observation'], ...overrides });

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
  });

  it("stores a practitioner's request, submitted by their own organization's gateway, with codes only, and emits an event", async () => {
    const stored = await ask(body({ resourceTypes: ['Observation', 'Condition'] }));
    expect(stored).to.deep.include({
      patient: patient.did,
      requester: doctor.did,
      requesterOrganization: 'Hospital2MSP',
      purpose: 'TREAT',
      resourceTypes: ['Condition', 'Observation'],
    });
    expect(stored.requestedAt).to.match(/^\d{4}-\d{2}-\d{2}T/);
    expect(stored.txId).to.be.a('string').and.not.equal('');
    // Any member lists it (the patient may look at any member's gateway).
    expect(await list()).to.deep.equal([stored]);
    const event = ledger.events.find((e) => e.name === 'hdx.accessrequest');
    expect(JSON.parse(Buffer.from(event?.payload ?? Buffer.from('{}')).toString('utf8'))).to.deep.equal({
      patient: patient.did,
      requesterOrganization: 'Hospital2MSP',
      txId: stored.txId,
    });
  });

  it('replaces the open request of the same requester, patient and purpose (no flood); another purpose is another request', async () => {
    await ask(body());
    const again = await ask(body({ resourceTypes: ['DiagnosticReport'] }));
    const research = await ask(body({ purpose: 'HRESCH' }));
    const requests = await list();
    expect(requests).to.have.length(2);
    // Latest first.
    expect(requests).to.deep.equal([research, again]);
    expect(ledger.keys('hdx.accessrequest')).to.have.length(2);
  });

  it('lists only the requests for the patient asked about', async () => {
    const other = await registerDid(ledger, 'patient');
    await ask(body());
    expect(await list(other.did)).to.deep.equal([]);
    await rejectsWith(list('not-a-did'), 'INVALID');
  });

  it('refuses a requester that is not an active practitioner of the submitting organization', async () => {
    // Another member's gateway for hospital2's practitioner.
    await rejectsWith(ask(body(), H1_GATEWAY), 'FORBIDDEN');
    // A patient, an unregistered DID.
    await rejectsWith(ask(body({ requester: (await registerDid(ledger, 'patient', H2_GATEWAY)).did, patient: patient.did })), 'FORBIDDEN');
    await rejectsWith(ask(body({ requester: newKey().did })), 'FORBIDDEN');
    // A deactivated practitioner.
    await ledger.invoke(H2_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: doctor.did })));
    await rejectsWith(ask(body()), 'FORBIDDEN');
    expect(ledger.keys('hdx.accessrequest')).to.deep.equal([]);
  });

  it('is never submitted by an admin, and a caller with its own DID submits only its own request', async () => {
    await rejectsWith(ask(body(), H2_ADMIN), 'FORBIDDEN');
    const colleague = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    await rejectsWith(ask(body(), identity('Hospital2MSP', undefined, { 'hdx.did': colleague.did })), 'FORBIDDEN');
    const own = await ask(body(), identity('Hospital2MSP', undefined, { 'hdx.did': doctor.did }));
    expect(own.requester).to.equal(doctor.did);
  });

  it('takes codes only: no free text, no break-glass or patient purposes, 1 to 20 types', async () => {
    await rejectsWith(ask({ ...body(), message: 'please, Mrs Jones' }), 'INVALID');
    await rejectsWith(ask(body({ purpose: 'ETREAT' })), 'INVALID');
    await rejectsWith(ask(body({ purpose: 'PATRQT' })), 'INVALID');
    await rejectsWith(ask(body({ purpose: 'treat me' })), 'INVALID');
    await rejectsWith(ask(body({ resourceTypes: [] })), 'INVALID');
    await rejectsWith(ask(body({ resourceTypes: ['observation'] })), 'INVALID');
    await rejectsWith(ask(body({ resourceTypes: Array.from({ length: 21 }, (_, i) => `Type${String.fromCharCode(65 + i)}x`) })), 'INVALID');
    await rejectsWith(ask(body({ patient: 'Patient/123' })), 'INVALID');
    await rejectsWith(ask(body({ patient: doctor.did })), 'INVALID');
    expect(ledger.keys('hdx.accessrequest')).to.deep.equal([]);
  });

  it('stores a request for an unregistered DID like any other: the answer says nothing about the DID', async () => {
    const unknown = newKey().did;
    const stored = await ask(body({ patient: unknown }));
    expect(stored.patient).to.equal(unknown);
  });

  it('grants nothing: the decision for the requester is unchanged until the patient signs a consent', async () => {
    const evaluate = async () =>
      JSON.parse(
        await ledger.evaluate(H2_GATEWAY, (ctx) =>
          consents.EvaluateAccess(
            ctx,
            JSON.stringify({
              actor: doctor.did,
              actorOrganization: 'Hospital2MSP',
              actorAuth: 'did',
              purpose: 'TREAT',
              patient: patient.did,
              custodian: 'Hospital1MSP',
              resourceType: 'Observation',
            }),
          ),
        ),
      ) as { decision: string; reason: string };
    await ask(body());
    expect(await evaluate()).to.deep.include({ decision: 'deny', reason: 'no-permit' });
    const consent = {
      resourceType: 'Consent',
      id: 'c-req',
      status: 'active',
      patient: { reference: patient.did },
      provision: { type: 'permit', actor: [{ reference: { reference: doctor.did } }] },
    };
    await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patient, { action: 'grant', consent })));
    expect(await evaluate()).to.deep.include({ decision: 'permit', reason: 'consent-permit' });
  });
});
