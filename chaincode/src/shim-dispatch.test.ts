/**
 * Goes through fabric-shim's own dispatch (ChaincodeFromContract, ClientIdentity from a certificate,
 * JSON serializer, decorator metadata), as the peer would call the chaincode.
 */
import { expect } from 'chai';
import { JSONSerializer } from 'fabric-contract-api';
import { contracts } from './index';
import { FakeLedger, FakeTx } from './test-support/fake-ledger';
import { GATEWAY_CERT_PEM } from './test-support/fixtures';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ChaincodeFromContract = require('fabric-shim/lib/contract-spi/chaincodefromcontract') as new (
  classes: unknown[],
  serializers: unknown,
  metadata?: unknown,
  title?: string,
  version?: string,
) => {
  invokeFunctionality(stub: unknown): Promise<{ status: number; message?: string; payload?: Uint8Array }>;
  metadata: { contracts: Record<string, { transactions: Array<{ name: string; tag: string[] }> }> };
};

type Response = { status: number; message?: string; payload?: Uint8Array };

describe('dispatch through fabric-shim (as the peer calls it)', () => {
  const chaincode = new ChaincodeFromContract([...contracts], { transaction: 'jsonSerializer', serializers: { jsonSerializer: JSONSerializer } }, {}, '@hdx/chaincode', '0.1.0');
  let ledger: FakeLedger;

  const call = (fcn: string, ...args: string[]): Promise<Response> =>
    ledger.transact(
      (tx: FakeTx) =>
        chaincode.invokeFunctionality(
          Object.assign(tx, {
            getBufferArgs: () => [fcn, ...args].map((a) => Buffer.from(a)),
            getChannelID: () => 'hdx',
            getCreator: () => ({ mspid: 'Hospital1MSP', idBytes: Buffer.from(GATEWAY_CERT_PEM) }),
          }),
        ),
      (response) => response.status === 200,
    );

  beforeEach(() => {
    ledger = new FakeLedger();
  });

  before(() => {
    // The shim logs every failed transaction; these tests fail some on purpose.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('fabric-shim/lib/logger') as { setLevel(level: string): void }).setLevel('CRITICAL');
  });

  it('exposes exactly the decorated transactions of the four contracts', () => {
    const names = (contract: string) => chaincode.metadata.contracts[contract]?.transactions.map((t) => t.name).sort();
    expect(names('hdx.record')).to.deep.equal(
      ['Anchor', 'AnchorAndRecord', 'AnchorBatch', 'EraseResource', 'ErasePatient', 'GetAnchor', 'GetHistory', 'GetPatientLink', 'LinkPatient', 'LocateRecords', 'Verify'].sort(),
    );
    expect(names('hdx.identity')).to.deep.equal(
      [
        'AddGuardian',
        'ApproveGuardian',
        'ApproveReactivation',
        'Deactivate',
        'FindByIdentifier',
        'FindBySubject',
        'History',
        'ApproveMemberRemoval',
        'MemberStatus',
        'ProposeMemberRemoval',
        'Reactivate',
        'Register',
        'RemoveGuardian',
        'Resolve',
        'RotateKey',
        'Update',
      ].sort(),
    );
    expect(names('hdx.consent')).to.deep.equal(['EvaluateAccess', 'GetConsent', 'Grant', 'History', 'ListAccessRequests', 'ListByPatient', 'RequestAccess', 'Revoke', 'Update']);
    expect(names('hdx.audit')).to.deep.equal([
      'AuthorizeAndRecord',
      'AuthorizeAndRecordBatch',
      'GetEntry',
      'QueryAccess',
      'QueryBreakGlass',
      'RecordAccess',
      'RecordAccessBatch',
      'ReviewBreakGlass',
    ]);
    const getAnchor = chaincode.metadata.contracts['hdx.record']?.transactions.find((t) => t.name === 'GetAnchor');
    expect(getAnchor?.tag).to.deep.equal(['EVALUATE']);
  });

  it('anchors with the custodian from the certificate MSP and reads it back', async () => {
    const anchor = {
      resourceType: 'Patient',
      id: '123',
      versionId: '1',
      patient: `pseudonym:${'0'.repeat(64)}`,
      lastUpdated: '2024-05-01T10:00:00Z',
      commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
    };
    const written = await call('hdx.record:Anchor', JSON.stringify(anchor));
    expect(written.status).to.equal(200);
    const stored = JSON.parse(Buffer.from(written.payload ?? []).toString());
    expect(stored).to.deep.include({ custodian: 'Hospital1MSP', txId: ledger.lastTx?.txId });
    const read = await call('hdx.record:GetAnchor', 'Patient', '123', '1');
    expect(Buffer.from(read.payload ?? []).toString()).to.equal(Buffer.from(written.payload ?? []).toString());
  });

  it('returns only the CODE: message of an error, and commits nothing', async () => {
    const missing = await call('hdx.record:GetAnchor', 'Patient', '123', '9');
    expect(missing.status).to.equal(500);
    expect(missing.message).to.equal('NOT_FOUND: Patient/123/_history/9 is not anchored');
    const bad = await call('hdx.record:Anchor', '{"resourceType":"Patient"}');
    expect(bad.message?.startsWith('INVALID: ')).to.equal(true);
    expect(ledger.state.size).to.equal(0);
  });

  it("runs each contract's beforeTransaction: an identity of a removed member organization is refused by all four", async () => {
    const removal = { mspId: 'Hospital1MSP', status: 'removed', proposedBy: 'Hospital2MSP', proposedAt: '', approvals: [], required: 2, txId: 'tx' };
    ledger.state.set('\u0000hdx.member\u0000Hospital1MSP\u0000', Buffer.from(JSON.stringify(removal)));
    for (const [fn, ...args] of [
      ['hdx.record:GetAnchor', 'Patient', '123', '1'],
      ['hdx.identity:Resolve', `did:hdx:${'a'.repeat(43)}`],
      ['hdx.consent:GetConsent', 'c1'],
      ['hdx.audit:GetEntry', 'e1', ''],
    ] as Array<[string, ...string[]]>) {
      const response = await call(fn, ...args);
      expect(response.message, fn).to.equal('FORBIDDEN: Hospital1MSP was removed from the consortium');
    }
  });

  it('refuses an unknown transaction', async () => {
    const response = await call('hdx.record:NoSuchThing');
    expect(response.status).to.equal(500);
  });
});
