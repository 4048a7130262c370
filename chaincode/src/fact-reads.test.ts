/**
 * A transaction reads each fact of a decision once (access-decision.ts stubFacts): the decisions of
 * an AuthorizeAndRecordBatch (a gateway's group commit of one actor's reads of one patient) share the
 * actor's identity, its organization's DIDs and the patient's consents, so eight reads cost a few more
 * state reads than one, not eight times as many. What is decided is unchanged.
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { RecordContract } from './record-contract';
import { FakeLedger, FakeTx } from './test-support/fake-ledger';
import { H1_GATEWAY, H2_GATEWAY, grantConsent, registerDid } from './test-support/registry';

const records = new RecordContract();
const audit = new AuditContract();

describe('hdx: one read of each decision fact per transaction', () => {
  it('an AuthorizeAndRecordBatch of 8 reads of one patient reads the shared facts once, and decides each read as alone', async () => {
    const ledger = new FakeLedger();
    const patient = await registerDid(ledger, 'patient');
    const doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    for (let i = 0; i < 8; i++) {
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        records.Anchor(
          ctx,
          JSON.stringify({
            resourceType: 'Observation',
            id: `o${i}`,
            versionId: '1',
            patient: patient.did,
            lastUpdated: '2026-05-01T10:00:00Z',
            dataMonth: '2026-04',
            commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, i).toString('base64url') },
          }),
        ),
      );
    }
    const permit = { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }] };
    await grantConsent(ledger, patient, 'c1', permit);
    const request = (i: number, n: number) => ({
      actor: doctor.did,
      actorOrganization: 'Hospital2MSP',
      actorAuth: 'delegated',
      purpose: 'TREAT',
      resource: `Observation/o${i}/_history/1`,
      entryId: `e${n}-${i}`,
    });
    let reads = 0;
    const getState = FakeTx.prototype.getState;
    const scan = FakeTx.prototype.getStateByPartialCompositeKey;
    FakeTx.prototype.getState = function (this: FakeTx, key: string) {
      reads += 1;
      return getState.call(this, key);
    };
    FakeTx.prototype.getStateByPartialCompositeKey = function (this: FakeTx, objectType: string, attributes: string[]) {
      reads += 1;
      return scan.call(this, objectType, attributes);
    };
    const batch = async (n: number): Promise<{ reads: number; decisions: Array<{ decision: string; consents: string[] }> }> => {
      reads = 0;
      const out = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.AuthorizeAndRecordBatch(ctx, JSON.stringify(Array.from({ length: n }, (_, i) => request(i, n))))));
      return { reads, decisions: out };
    };
    try {
      const one = await batch(1);
      const eight = await batch(8);
      expect(eight.decisions.map((d) => `${d.decision}:${d.consents.join(',')}`)).to.deep.equal(Array(8).fill('permit:c1'));
      expect(one.decisions[0]).to.deep.include({ decision: 'permit', consents: ['c1'] });
      // Each further read costs its own anchor, entryId and entry lookups only (9 state reads each without
      // the per-transaction facts: 72 for the batch of 8, against 30 with them).
      expect(eight.reads - one.reads).to.be.at.most(7 * 3);
      expect(one.reads).to.be.greaterThan(4);
    } finally {
      FakeTx.prototype.getState = getState;
      FakeTx.prototype.getStateByPartialCompositeKey = scan;
    }
  });
});
