/**
 * A resource in several patients' compartments (issue 10): its anchor names the other patients
 * (`coPatients`), and every one of their consents must permit a disclosure, on every path that decides
 * one (EvaluateAccess, AuthorizeAndRecord, the record locator). Its access entries go in each patient's
 * history, and erasing any one of them erases it.
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { MAX_CO_PATIENTS } from './protocol';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, H2_GATEWAY, REG_AUDITOR, grantConsent, registerDid } from './test-support/registry';

const records = new RecordContract();
const consents = new ConsentContract();
const audit = new AuditContract();
const commitment = { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 7).toString('base64url') };
const PSEUDO = `pseudonym:${'3'.repeat(64)}`;
const REF = 'Observation/shared/_history/1';

describe('hdx: a record in several patients’ compartments (coPatients)', () => {
  let ledger: FakeLedger;
  let alice: TestKey;
  let bob: TestKey;
  let carol: TestKey;
  let h2Doctor: TestKey;

  const anchor = (overrides: Record<string, unknown> = {}, who: FakeIdentity = H1_GATEWAY) =>
    ledger.invoke(who, (ctx) =>
      records.Anchor(
        ctx,
        JSON.stringify({
          resourceType: 'Observation',
          id: 'shared',
          versionId: '1',
          patient: alice.did,
          coPatients: [bob.did],
          lastUpdated: '2026-05-01T10:00:00Z',
          commitment,
          ...overrides,
        }),
      ),
    );
  const byMsp = [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }];
  const permitH2 = (key: TestKey, id: string) => grantConsent(ledger, key, id, { type: 'permit', actor: byMsp });
  const h2Read = { actor: '', actorOrganization: 'Hospital2MSP', actorAuth: 'delegated', purpose: 'TREAT', resource: REF };
  const evaluate = async () => JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify({ ...h2Read, actor: h2Doctor.did }))));
  const authorize = async () => JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify({ ...h2Read, actor: h2Doctor.did }))));
  const history = async (patient: string) =>
    JSON.parse(await ledger.invoke(REG_AUDITOR, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ patient })))).entries as Array<{ resources: string[]; decision: string }>;
  const locate = async (patient: string) => {
    const result = JSON.parse(
      await ledger.invoke(H2_GATEWAY, (ctx) => records.LocateRecords(ctx, JSON.stringify({ patient, actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT' }))),
    );
    return { ids: result.custodians.flatMap((c: { resources: Array<{ id: string }> }) => c.resources.map((r) => r.id)), withheld: result.withheld as number };
  };

  beforeEach(async () => {
    ledger = new FakeLedger();
    alice = await registerDid(ledger, 'patient');
    bob = await registerDid(ledger, 'patient');
    carol = await registerDid(ledger, 'patient');
    h2Doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
  });

  it('keeps coPatients on the anchor; refuses an empty list, a repeat of the patient, a duplicate, a bad reference and too many', async () => {
    const stored = JSON.parse(await anchor());
    expect(stored.patient).to.equal(alice.did);
    expect(stored.coPatients).to.deep.equal([bob.did]);
    expect(await rejectsWith(anchor({ id: 'e1', coPatients: [] }), 'INVALID')).to.include('coPatients must name at least one patient');
    expect(await rejectsWith(anchor({ id: 'e2', coPatients: [alice.did] }), 'INVALID')).to.include('must not repeat');
    expect(await rejectsWith(anchor({ id: 'e3', coPatients: [bob.did, bob.did] }), 'INVALID')).to.include('duplicate');
    expect(await rejectsWith(anchor({ id: 'e4', coPatients: ['MRN-12345'] }), 'INVALID')).to.include('coPatients[0]');
    const many = Array.from({ length: MAX_CO_PATIENTS + 1 }, (_, i) => `pseudonym:${i.toString(16).padStart(64, '0')}`);
    expect(await rejectsWith(anchor({ id: 'e5', coPatients: many }), 'INVALID')).to.include(`more than ${MAX_CO_PATIENTS}`);
  });

  it('permits only when every patient permits: one consent is not enough, either way round', async () => {
    await anchor();
    expect(await evaluate()).to.include({ decision: 'deny' });
    await permitH2(alice, 'c-alice');
    // Alice's consent alone does not open Bob's part.
    expect(await evaluate()).to.include({ decision: 'deny', reason: 'no-permit' });
    await permitH2(bob, 'c-bob');
    const both = await evaluate();
    expect(both).to.include({ decision: 'permit' });
    expect(both.consents).to.deep.equal(['c-alice', 'c-bob']);
  });

  it('decides a co-patient named by a linked pseudonym as its DID', async () => {
    await ledger.invoke(H1_GATEWAY, (ctx) => records.LinkPatient(ctx, PSEUDO, bob.did));
    await anchor({ coPatients: [PSEUDO] });
    await permitH2(alice, 'c-alice');
    expect(await evaluate()).to.include({ decision: 'deny' });
    await permitH2(bob, 'c-bob');
    expect(await evaluate()).to.include({ decision: 'permit' });
  });

  it("AuthorizeAndRecord records the access (permit or deny) in every patient's history", async () => {
    await anchor();
    await permitH2(alice, 'c-alice');
    expect(await authorize()).to.include({ decision: 'deny' });
    await permitH2(bob, 'c-bob');
    expect(await authorize()).to.include({ decision: 'permit' });
    for (const patient of [alice.did, bob.did]) {
      const entries = await history(patient);
      expect(entries.map((e) => e.decision)).to.deep.equal(['deny', 'permit']);
      expect(entries.every((e) => e.resources.includes(REF))).to.equal(true);
    }
    expect(await history(carol.did)).to.have.length(0);
  });

  it('a custodian may state an entry under any of the anchor’s patients, not under another patient', async () => {
    await anchor();
    const entry = (patient: string) =>
      ledger.invoke(H1_GATEWAY, (ctx) =>
        audit.RecordAccess(
          ctx,
          JSON.stringify({
            actor: h2Doctor.did,
            actorOrganization: 'Hospital2MSP',
            patient,
            resources: [REF],
            action: 'R',
            purpose: 'TREAT',
            decision: 'permit',
            consents: [],
            breakGlass: false,
            custodian: 'Hospital1MSP',
          }),
        ),
      );
    await entry(bob.did);
    await entry(alice.did);
    await rejectsWith(entry(carol.did), 'FORBIDDEN');
  });

  it('the record locator lists it under each patient, and only when every patient permits', async () => {
    await anchor();
    await permitH2(bob, 'c-bob');
    expect(await locate(bob.did)).to.deep.equal({ ids: [], withheld: 1 });
    expect(await locate(alice.did)).to.deep.equal({ ids: [], withheld: 1 });
    await permitH2(alice, 'c-alice');
    expect((await locate(bob.did)).ids).to.deep.equal(['shared']);
    expect((await locate(alice.did)).ids).to.deep.equal(['shared']);
  });

  it('erasing any one of its patients erases it for all of them', async () => {
    await anchor();
    await permitH2(alice, 'c-alice');
    await permitH2(bob, 'c-bob');
    const erased = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, bob.did)));
    expect(erased.erased).to.deep.equal([REF]);
    const stone = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.GetAnchor(ctx, 'Observation', 'shared', '1')));
    expect(stone.tombstone).to.be.an('object');
    expect(stone).to.not.have.property('coPatients');
    expect(stone).to.not.have.property('patient');
    expect(await locate(alice.did)).to.deep.equal({ ids: [], withheld: 0 });
    expect(await evaluate()).to.include({ decision: 'deny', reason: 'resource-erased' });
  });
});
