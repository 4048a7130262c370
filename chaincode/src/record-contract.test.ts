import { expect } from 'chai';
import * as sinon from 'sinon';
import { RecordContract } from './record-contract';
import { FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';

const H1 = identity('Hospital1MSP', 'gateway');
const H2 = identity('Hospital2MSP', 'gateway');
const COMMITMENT = Buffer.alloc(32, 7).toString('base64url');
const OTHER_COMMITMENT = Buffer.alloc(32, 8).toString('base64url');
const PSEUDONYM = `pseudonym:${'ab'.repeat(32)}`;

function anchorInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id: '123',
    versionId: '1',
    patient: PSEUDONYM,
    securityLabels: ['N'],
    lastUpdated: '2024-05-01T10:00:00.000Z',
    commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT },
    ...overrides,
  };
}

describe('hdx.record Anchor / GetAnchor', () => {
  let ledger: FakeLedger;
  const contract = new RecordContract();
  const anchor = (who = H1, input: unknown = anchorInput()) => ledger.invoke(who, (ctx) => contract.Anchor(ctx, typeof input === 'string' ? input : JSON.stringify(input)));

  beforeEach(() => {
    ledger = new FakeLedger();
  });

  it('is the contract hdx.record', () => {
    expect(contract.getName()).to.equal('hdx.record');
  });

  it('anchors a version with the caller as custodian and the transaction time', async () => {
    const stored = JSON.parse(await anchor());
    expect(stored).to.deep.equal({
      ...anchorInput(),
      custodian: 'Hospital1MSP',
      txId: ledger.lastTx?.txId,
      anchoredAt: new Date((ledger.clock - 1) * 1000 + 123).toISOString(),
    });
    const read = await ledger.invoke(H2, (ctx) => contract.GetAnchor(ctx, 'Patient', '123', '1'));
    expect(JSON.parse(read)).to.deep.equal(stored);
  });

  it('returns canonical JSON (sorted keys, no whitespace)', async () => {
    const text = await anchor();
    expect(text.startsWith('{"anchoredAt":')).to.equal(true);
    expect(text).to.not.match(/\s/);
  });

  it('accepts a DID as patient and no security labels', async () => {
    const did = `did:hdx:${'A'.repeat(43)}`;
    const input = anchorInput({ patient: did });
    delete input.securityLabels;
    const stored = JSON.parse(await anchor(H1, input));
    expect(stored.patient).to.equal(did);
    expect(stored).to.not.have.property('securityLabels');
  });

  it('ignores any custodian in the input: it is refused as an unknown field', async () => {
    await rejectsWith(anchor(H1, anchorInput({ custodian: 'Hospital2MSP' })), 'INVALID');
  });

  it('is idempotent: the same commitment and custodian return the stored anchor and write nothing', async () => {
    const first = await anchor();
    const retry = await ledger.invoke(H1, async (ctx) => {
      const put = sinon.spy(ctx.stub, 'putState');
      const result = await contract.Anchor(ctx, JSON.stringify(anchorInput({ lastUpdated: '2024-05-02T00:00:00Z' })));
      expect(put.called).to.equal(false);
      return result;
    });
    expect(retry).to.equal(first);
  });

  it('refuses a different commitment for an anchored version with CONFLICT', async () => {
    await anchor();
    const message = await rejectsWith(anchor(H1, anchorInput({ commitment: { alg: 'HMAC-SHA-256', value: OTHER_COMMITMENT } })), 'CONFLICT');
    expect(message).to.equal('CONFLICT: Patient/123/_history/1 is already anchored with a different commitment');
  });

  it('refuses the same version from another custodian with CONFLICT', async () => {
    await anchor();
    await rejectsWith(anchor(H2), 'CONFLICT');
  });

  it('anchors other versions of the same resource independently', async () => {
    await anchor();
    await anchor(H1, anchorInput({ versionId: '2', commitment: { alg: 'HMAC-SHA-256', value: OTHER_COMMITMENT } }));
    const v2 = JSON.parse(await ledger.invoke(H1, (ctx) => contract.GetAnchor(ctx, 'Patient', '123', '2')));
    expect(v2.commitment.value).to.equal(OTHER_COMMITMENT);
  });

  it('writes the anchor and a patient~resource index entry', async () => {
    await anchor();
    expect(ledger.keys('hdx.anchor')).to.have.length(1);
    expect(ledger.keys('hdx.anchor~patient')).to.have.length(1);
  });

  it('refuses auditors with FORBIDDEN and orderer identities with UNAUTHENTICATED', async () => {
    await rejectsWith(anchor(identity('RegulatorMSP', 'auditor')), 'FORBIDDEN');
    await rejectsWith(anchor(identity('OrdererMSP', 'admin')), 'UNAUTHENTICATED');
  });

  const invalidInputs: Array<[string, unknown]> = [
    ['not JSON', '{'],
    ['an array', '[]'],
    ['an empty string', ''],
    ['a missing resourceType', anchorInput({ resourceType: undefined })],
    ['a lowercase resourceType', anchorInput({ resourceType: 'patient' })],
    ['an id with a slash', anchorInput({ id: '1/2' })],
    ['an id longer than 64', anchorInput({ id: 'a'.repeat(65) })],
    ['a missing versionId', anchorInput({ versionId: undefined })],
    ['a local identifier as patient', anchorInput({ patient: 'MRN-0001' })],
    ['an uppercase pseudonym', anchorInput({ patient: `pseudonym:${'AB'.repeat(32)}` })],
    ['a short pseudonym', anchorInput({ patient: `pseudonym:${'ab'.repeat(31)}` })],
    ['another DID method', anchorInput({ patient: `did:web:${'a'.repeat(43)}` })],
    ['a security label with a space', anchorInput({ securityLabels: ['very restricted'] })],
    ['duplicate security labels', anchorInput({ securityLabels: ['N', 'N'] })],
    ['security labels not an array', anchorInput({ securityLabels: 'N' })],
    ['a date as lastUpdated', anchorInput({ lastUpdated: '2024-05-01' })],
    ['lastUpdated without a zone', anchorInput({ lastUpdated: '2024-05-01T10:00:00' })],
    ['lastUpdated on a day that does not exist', anchorInput({ lastUpdated: '2023-02-29T10:00:00Z' })],
    ['another commitment alg', anchorInput({ commitment: { alg: 'SHA-256', value: COMMITMENT } })],
    ['a 31-byte commitment', anchorInput({ commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(31).toString('base64url') } })],
    ['a padded base64 commitment', anchorInput({ commitment: { alg: 'HMAC-SHA-256', value: `${Buffer.alloc(32).toString('base64')}` } })],
    ['extra commitment fields', anchorInput({ commitment: { alg: 'HMAC-SHA-256', value: COMMITMENT, salt: 'x' } })],
    ['a missing commitment', anchorInput({ commitment: undefined })],
  ];
  for (const [what, input] of invalidInputs) {
    it(`refuses ${what} with INVALID and writes nothing`, async () => {
      await rejectsWith(anchor(H1, input), 'INVALID');
      expect(ledger.state.size).to.equal(0);
    });
  }

  it('does not echo the offending value in the error message', async () => {
    const message = await rejectsWith(anchor(H1, anchorInput({ patient: 'MRN-SECRET-42' })), 'INVALID');
    expect(message).to.not.contain('MRN-SECRET-42');
    expect(message).to.contain('patient');
  });

  it('GetAnchor throws NOT_FOUND for a version that is not anchored', async () => {
    const message = await rejectsWith(
      ledger.invoke(H1, (ctx) => contract.GetAnchor(ctx, 'Patient', '123', '1')),
      'NOT_FOUND',
    );
    expect(message).to.equal('NOT_FOUND: Patient/123/_history/1 is not anchored');
  });

  it('GetAnchor validates its parameters', async () => {
    await rejectsWith(
      ledger.invoke(H1, (ctx) => contract.GetAnchor(ctx, 'Patient', '', '1')),
      'INVALID',
    );
    await rejectsWith(
      ledger.invoke(H1, (ctx) => contract.GetAnchor(ctx, 'Patient', '1', 'x/y')),
      'INVALID',
    );
  });
});
