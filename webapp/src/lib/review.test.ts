/**
 * The auditor's review signed in the browser is accepted by the REAL chaincode (hdx.audit:ReviewBreakGlass
 * on the chaincode's test ledger), and the page reads the review state the gateway writes into AuditEvents.
 */
import { expect } from 'chai';
import { AuditContract } from '@hdx/chaincode/dist/audit-contract';
import { IdentityContract } from '@hdx/chaincode/dist/identity-contract';
import { RecordContract } from '@hdx/chaincode/dist/record-contract';
import { REVIEW_OUTCOMES as CHAINCODE_OUTCOMES } from '@hdx/chaincode/dist/protocol';
import { FakeLedger, identity, rejectsWith } from '@hdx/chaincode/dist/test-support/fake-ledger';
import { H1_GATEWAY, H2_GATEWAY, REG_ADMIN, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import { toAuditEvent } from '@hdx/gateway/dist/fhir/audit-events';
import { parseReviewParameters } from '@hdx/gateway/dist/fhir/break-glass-review';
import type { AuditEntry, ReviewState } from '@hdx/chaincode';
import { toAccessRow } from './audit';
import { signCompact } from './jws';
import { generatePatientKey, newNonce, type PatientKey } from './keys';
import { joinQueue, ledgerEventId, outcomeLabel, REVIEW_OUTCOMES, reviewOf, reviewParameters, signReview } from './review';

const audit = new AuditContract();
const identities = new IdentityContract();
const records = new RecordContract();

describe('break-glass review (browser) on the real chaincode', () => {
  let ledger: FakeLedger;
  let auditor: PatientKey;
  let eventId: string;

  beforeEach(async () => {
    ledger = new FakeLedger();
    // The browser signs with the time of day: the test ledger's transactions happen now too.
    ledger.clock = Math.floor(Date.now() / 1000);
    ({ key: auditor } = await generatePatientKey());
    const proof = await signCompact({ action: 'register', did: auditor.did, kind: 'auditor', nonce: newNonce(), iat: ledger.clock }, auditor.privateKey, auditor.kid);
    await ledger.invoke(REG_ADMIN, (ctx) => identities.Register(ctx, JSON.stringify({ kind: 'auditor', publicKeyJwk: auditor.publicJwk, proof })));
    const patient = await registerDid(ledger, 'patient');
    const doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    const commitment = { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') };
    await ledger.invoke(H1_GATEWAY, (ctx) =>
      records.Anchor(ctx, JSON.stringify({ resourceType: 'Observation', id: 'o1', versionId: '1', patient: patient.did, lastUpdated: '2024-05-01T10:00:00Z', commitment })),
    );
    const decided = JSON.parse(
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        audit.AuthorizeAndRecord(
          ctx,
          JSON.stringify({ actor: doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'ETREAT', resource: 'Observation/o1/_history/1' }),
        ),
      ),
    ) as { eventId: string; breakGlass: boolean };
    expect(decided.breakGlass).to.equal(true);
    eventId = decided.eventId;
  });

  it('offers exactly the chaincode’s outcome codes', () => {
    expect(REVIEW_OUTCOMES.map((o) => o.code)).to.deep.equal([...CHAINCODE_OUTCOMES]);
    expect(outcomeLabel('needs-follow-up')).to.equal('Needs follow-up');
    expect(outcomeLabel(undefined)).to.equal('Not reviewed');
  });

  it('a review signed here is recorded by the chaincode, and the page reads its state from the gateway’s AuditEvent', async () => {
    const jws = await signReview(auditor, eventId, 'needs-follow-up');
    // The gateway takes the page's Parameters body as it is.
    expect(parseReviewParameters(reviewParameters('needs-follow-up', jws))).to.deep.equal({ outcome: 'needs-follow-up', proof: jws });
    const result = JSON.parse(await ledger.invoke(identity('RegulatorMSP', 'gateway'), (ctx) => audit.ReviewBreakGlass(ctx, jws))) as {
      entry: AuditEntry;
      review: ReviewState;
    };
    const event = toAuditEvent(result.entry, result.review);
    expect(ledgerEventId(event)).to.equal(eventId);
    expect(reviewOf(event)).to.deep.equal({
      state: 'reviewed',
      reviews: 1,
      outcome: 'needs-follow-up',
      reviewer: auditor.did,
      reviewed: result.review.current?.reviewedAt,
    });
    expect(reviewOf(toAuditEvent(result.entry, { state: 'open', reviews: 0 }))).to.deep.equal({ state: 'open', reviews: 0 });
    // The patient's access history rows carry it too.
    expect(toAccessRow(event).review).to.deep.include({ state: 'reviewed', outcome: 'needs-follow-up' });
    // An AuditEvent without the extension (not break-glass) has no review state.
    expect(reviewOf(toAuditEvent({ ...result.entry, breakGlass: false }, result.review))).to.equal(undefined);
  });

  it('a review signed by another key under the auditor’s kid is refused by the chaincode', async () => {
    const { key: other } = await generatePatientKey();
    const forged = await signReview({ ...other, kid: auditor.kid }, eventId, 'justified');
    await rejectsWith(
      ledger.invoke(identity('RegulatorMSP', 'gateway'), (ctx) => audit.ReviewBreakGlass(ctx, forged)),
      'UNAUTHENTICATED',
    );
  });

  it('a break-glass access from the live stream joins the queue at its place (oldest first), once', () => {
    const entryOf = (n: string, at: string) =>
      toAuditEvent({
        eventId: `${n}.0`,
        recordedAt: at,
        occurredAt: at,
        actor: `did:hdx:${'D'.repeat(43)}`,
        actorOrganization: 'Hospital2MSP',
        actorAuth: 'did',
        vouchedBy: 'Hospital1MSP',
        patient: `did:hdx:${'P'.repeat(43)}`,
        resources: ['Observation/o1/_history/1'],
        action: 'R',
        subtype: 'read',
        purpose: 'ETREAT',
        decision: 'permit',
        consents: [],
        reason: 'break-glass',
        breakGlass: true,
        gateway: 'Hospital1MSP',
        txId: n,
      } as AuditEntry);
    const first = entryOf('a', '2026-12-07T08:00:00.000Z');
    const third = entryOf('c', '2026-12-07T10:00:00.000Z');
    const second = entryOf('b', '2026-12-07T09:00:00.000Z');
    const queue = [first, third];
    const joined = joinQueue(queue, second);
    expect(joined.map(ledgerEventId)).to.deep.equal(['a.0', 'b.0', 'c.0']);
    expect(joinQueue(joined, second)).to.equal(joined);
    const fourth = entryOf('d', '2026-12-07T11:00:00.000Z');
    expect(joinQueue(joined, fourth).map(ledgerEventId)).to.deep.equal(['a.0', 'b.0', 'c.0', 'd.0']);
    expect(queue.map(ledgerEventId)).to.deep.equal(['a.0', 'c.0']);
  });
});
