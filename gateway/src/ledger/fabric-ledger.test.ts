import { status as GrpcStatus } from '@grpc/grpc-js';
import { peer } from '@hyperledger/fabric-protos';
import { expect } from 'chai';
import { planFallback } from './fabric-ledger';

/** An error shaped as the fabric-gateway client throws it (name, gRPC or validation code, details). */
function fabricError(name: string, code: number, details: string[] = []): Error {
  return Object.assign(new Error(`${name} ${code}`), { name, code, details: details.map((message) => ({ message })) });
}

describe('FabricLedger: endorsers chosen by HDX_ENDORSING_ORGS fall back to the Fabric Gateway plan', () => {
  it('endorses the transaction again with the plan when a chosen organization could not endorse (peer down)', () => {
    expect(planFallback(fabricError('EndorseError', GrpcStatus.UNAVAILABLE, ['connection refused']))).to.equal('this-transaction');
    expect(planFallback(fabricError('EndorseError', GrpcStatus.ABORTED, ['no peers available to endorse for org Hospital2MSP']))).to.equal('this-transaction');
  });

  it('stops choosing endorsers once a transaction was invalidated for its endorsement policy (a member joined)', () => {
    expect(planFallback(fabricError('CommitError', peer.TxValidationCode.ENDORSEMENT_POLICY_FAILURE))).to.equal('from-now-on');
  });

  it('does not retry what the choice of endorsers does not change', () => {
    // The chaincode's refusal: any endorser refuses it the same way.
    expect(planFallback(fabricError('EndorseError', GrpcStatus.ABORTED, ['chaincode response 500, CONFLICT: Observation/1/_history/1 is already anchored']))).to.equal(undefined);
    // A deadline: the time is spent; the caller's settling decides.
    expect(planFallback(fabricError('EndorseError', GrpcStatus.DEADLINE_EXCEEDED))).to.equal(undefined);
    // Invalidated for another reason (an MVCC conflict is retried on its own), or the outcome unknown.
    expect(planFallback(fabricError('CommitError', peer.TxValidationCode.MVCC_READ_CONFLICT))).to.equal(undefined);
    expect(planFallback(fabricError('SubmitError', GrpcStatus.UNAVAILABLE))).to.equal(undefined);
    expect(planFallback(fabricError('CommitStatusError', GrpcStatus.DEADLINE_EXCEEDED))).to.equal(undefined);
    expect(planFallback(new Error('anything else'))).to.equal(undefined);
  });
});
