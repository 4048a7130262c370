import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { IdentityContract } from './identity-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_GATEWAY, REG_ADMIN, REG_AUDITOR, registerDid, signedBy, anchorObservation } from './test-support/registry';

const audit = new AuditContract();
const identities = new IdentityContract();
const REG_GATEWAY = identity('RegulatorMSP', 'gateway');

interface ReviewedEntry {
  entry: { eventId: string; actor: string; breakGlass: boolean };
  review: { state: string; reviews: number; current?: { outcome: string; reviewer: string; reviewerOrganization: string; eventId: string; reviewedAt: string } };
}

describe('hdx.audit break-glass review', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let doctor: TestKey;
  let auditor: TestKey;

  const entry = (overrides: Record<string, unknown> = {}) => ({
    actor: doctor.did,
    actorOrganization: 'Hospital2MSP',
    actorAuth: 'did',
    patient: patient.did,
    resources: ['Observation/o1/_history/1'],
    action: 'R',
    purpose: 'ETREAT',
    decision: 'permit',
    consents: [],
    reason: 'break-glass',
    breakGlass: true,
    custodian: 'Hospital1MSP',
    ...overrides,
  });
  /** An access entry as hospital1 (the custodian) states it; returns its event id. */
  const record = async (overrides: Record<string, unknown> = {}): Promise<string> =>
    (JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.RecordAccess(ctx, JSON.stringify(entry(overrides))))) as { eventId: string }).eventId;
  const proof = (signer: TestKey, eventId: string, outcome = 'justified', extra: Record<string, unknown> = {}) =>
    signedBy(ledger, signer, { action: 'review', eventId, outcome, ...extra });
  const review = async (jws: unknown, who: FakeIdentity = REG_GATEWAY): Promise<ReviewedEntry> =>
    JSON.parse(await ledger.invoke(who, (ctx) => audit.ReviewBreakGlass(ctx, jws as string))) as ReviewedEntry;
  const queue = async (q: Record<string, unknown>, who: FakeIdentity = REG_AUDITOR) =>
    JSON.parse(await ledger.evaluate(who, (ctx) => audit.QueryBreakGlass(ctx, JSON.stringify(q)))) as { entries: ReviewedEntry[]; bookmark: string };
  const queueIds = (result: { entries: ReviewedEntry[] }) => result.entries.map((e) => e.entry.eventId);

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    auditor = await registerDid(ledger, 'auditor');
    await anchorObservation(ledger, patient.did);
  });

  it("records an auditor's signed outcome, submitted by the regulator's gateway, with who and when", async () => {
    const eventId = await record();
    const result = await review(proof(auditor, eventId, 'not-justified'));
    expect(result.entry.eventId).to.equal(eventId);
    expect(result.review).to.deep.include({ state: 'reviewed', reviews: 1 });
    expect(result.review.current).to.deep.equal({
      eventId,
      outcome: 'not-justified',
      reviewer: auditor.did,
      reviewerOrganization: 'RegulatorMSP',
      reviewedAt: new Date((ledger.clock - 1) * 1000 + 123).toISOString(),
      txId: ledger.lastTx?.txId,
    });
    expect(ledger.events.at(-1)?.name).to.equal('hdx.review');
    // The access history search carries the state of each break-glass entry.
    const page = JSON.parse(await ledger.evaluate(REG_AUDITOR, (ctx) => audit.QueryAccess(ctx, JSON.stringify({ patient: patient.did })))) as {
      reviews: Record<string, { state: string; current: { outcome: string } }>;
    };
    expect(page.reviews[eventId]).to.deep.include({ state: 'reviewed' });
    expect(page.reviews[eventId]?.current.outcome).to.equal('not-justified');
  });

  it("is accepted from the auditor's own Fabric identity (hdx.did = the signer) too", async () => {
    const eventId = await record();
    const own = identity('RegulatorMSP', 'auditor', { 'hdx.did': auditor.did });
    expect((await review(proof(auditor, eventId), own)).review.state).to.equal('reviewed');
    // … but never another DID's review.
    const other = await registerDid(ledger, 'auditor');
    await rejectsWith(review(proof(other, eventId), own), 'FORBIDDEN');
  });

  it('is append-only: a later review adds a key, the latest is the current outcome, the first stays', async () => {
    const eventId = await record();
    await review(proof(auditor, eventId, 'needs-follow-up'));
    const second = await review(proof(auditor, eventId, 'justified'));
    expect(second.review).to.deep.include({ state: 'reviewed', reviews: 2 });
    expect(second.review.current?.outcome).to.equal('justified');
    const stored = ledger.keys('hdx.review').map((key) => ledger.json(key) as { outcome: string; eventId: string });
    expect(stored.map((r) => r.outcome)).to.deep.equal(['needs-follow-up', 'justified']);
    expect(stored.every((r) => r.eventId === eventId)).to.equal(true);
    const [listed] = (await queue({ state: 'reviewed' })).entries;
    expect(listed?.review.current?.outcome).to.equal('justified');
  });

  describe('the queue (QueryBreakGlass)', () => {
    it('lists break-glass entries only, open until reviewed, paged with a bookmark', async () => {
      const a = await record();
      await record({ purpose: 'TREAT', reason: 'custodian-treatment', breakGlass: false });
      const b = await record();
      const c = await record();
      expect(queueIds(await queue({}))).to.deep.equal([a, b, c]);
      await review(proof(auditor, b, 'justified'));
      expect(queueIds(await queue({ state: 'open' }))).to.deep.equal([a, c]);
      expect(queueIds(await queue({ state: 'reviewed' }))).to.deep.equal([b]);
      const first = await queue({ state: 'open', pageSize: 1 });
      expect(queueIds(first)).to.deep.equal([a]);
      const rest = await queue({ state: 'open', pageSize: 2, bookmark: first.bookmark });
      expect(queueIds(rest)).to.deep.equal([c]);
      expect((await queue({ state: 'open' })).entries.every((e) => e.review.state === 'open' && e.review.reviews === 0)).to.equal(true);
    });

    it('reads the whole queue through the auditor’s own gateway (requester), an organization its own entries only', async () => {
      const a = await record();
      expect(queueIds(await queue({ requester: auditor.did }, REG_GATEWAY))).to.deep.equal([a]);
      // A hospital admin sees the entries its organization took part in; another hospital's admin none.
      expect(queueIds(await queue({}, H1_ADMIN))).to.deep.equal([a]);
      expect(queueIds(await queue({}, identity('Hospital3MSP', 'admin')))).to.deep.equal([]);
    });

    it('is refused to a patient, a practitioner, and to another member naming the auditor (FORBIDDEN)', async () => {
      await record();
      await rejectsWith(queue({ requester: patient.did }, H1_GATEWAY), 'FORBIDDEN');
      await rejectsWith(queue({ requester: doctor.did }, H2_GATEWAY), 'FORBIDDEN');
      await rejectsWith(queue({ requester: auditor.did }, H1_GATEWAY), 'FORBIDDEN');
    });

    it('refuses an unknown state, a window ending before it starts and a bookmark from elsewhere (INVALID)', async () => {
      await rejectsWith(queue({ state: 'closed' }), 'INVALID');
      await rejectsWith(queue({ from: '2030-01-01T00:00:00Z', to: '2020-01-01T00:00:00Z' }), 'INVALID');
      await rejectsWith(queue({ bookmark: 'hdx.audit~time~x' }), 'INVALID');
      await rejectsWith(queue({ note: 'x' }), 'INVALID');
    });
  });

  describe('who may not review', () => {
    it('the actor of the entry itself, even an auditor DID (FORBIDDEN)', async () => {
      const eventId = await record({ actor: auditor.did, actorOrganization: 'RegulatorMSP' });
      const message = await rejectsWith(review(proof(auditor, eventId)), 'FORBIDDEN');
      expect(message).to.match(/actor/);
      expect(ledger.keys('hdx.review')).to.deep.equal([]);
    });

    it('the practitioner who broke the glass, a patient, or an organization DID: not auditors (FORBIDDEN)', async () => {
      const eventId = await record();
      const organization = await registerDid(ledger, 'organization', REG_ADMIN, { fhirBaseUrl: 'https://regulator.example/fhir' });
      await rejectsWith(review(proof(doctor, eventId)), 'FORBIDDEN');
      await rejectsWith(review(proof(doctor, eventId), H2_GATEWAY), 'FORBIDDEN');
      await rejectsWith(review(proof(patient, eventId)), 'FORBIDDEN');
      await rejectsWith(review(proof(organization, eventId)), 'FORBIDDEN');
    });

    it('an organization identity alone: an admin, even holding an auditor’s signature, or a gateway with no signature', async () => {
      const eventId = await record();
      // Hospital2's admin cannot review its own practitioner's break-glass, nor can the regulator's admin.
      await rejectsWith(review(proof(auditor, eventId), identity('Hospital2MSP', 'admin')), 'FORBIDDEN');
      await rejectsWith(review(proof(auditor, eventId), REG_ADMIN), 'FORBIDDEN');
      await rejectsWith(review(JSON.stringify({ eventId, outcome: 'justified' })), 'INVALID');
      await rejectsWith(review(''), 'INVALID');
      expect(ledger.keys('hdx.review')).to.deep.equal([]);
    });

    it("another member's gateway submitting the regulator auditor's review (FORBIDDEN)", async () => {
      const eventId = await record();
      await rejectsWith(review(proof(auditor, eventId), H1_GATEWAY), 'FORBIDDEN');
    });

    it('a deactivated auditor (FORBIDDEN)', async () => {
      const eventId = await record();
      await ledger.invoke(REG_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: auditor.did })));
      await rejectsWith(review(proof(auditor, eventId)), 'FORBIDDEN');
    });
  });

  describe('what may not be reviewed', () => {
    it('an entry that is not break-glass (CONFLICT), an unknown entry (NOT_FOUND)', async () => {
      const plain = await record({ purpose: 'TREAT', reason: 'custodian-treatment', breakGlass: false });
      await rejectsWith(review(proof(auditor, plain)), 'CONFLICT');
      await rejectsWith(review(proof(auditor, `${'f'.repeat(64)}.0`)), 'NOT_FOUND');
    });

    it('an outcome outside the code set, free text, a malformed event id (INVALID); a replayed signature (CONFLICT)', async () => {
      const eventId = await record();
      await rejectsWith(review(proof(auditor, eventId, 'fine')), 'INVALID');
      await rejectsWith(review(proof(auditor, eventId, 'justified', { note: 'the patient was unconscious' })), 'INVALID');
      await rejectsWith(review(proof(auditor, 'Observation/o1')), 'INVALID');
      const once = proof(auditor, eventId);
      await review(once);
      await rejectsWith(review(once), 'CONFLICT');
    });
  });
});
