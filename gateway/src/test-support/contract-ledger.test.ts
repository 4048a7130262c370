import { expect } from 'chai';
import { registerDid } from '@hdx/chaincode/dist/test-support/registry';
import type { AnchorInput } from '../ledger/ledger-client';
import { ChaincodeLedger, ContractLedger } from './contract-ledger';

const input = (id: string, patient: string): AnchorInput => ({
  resourceType: 'Observation',
  id,
  versionId: '1',
  patient,
  lastUpdated: '2024-05-01T10:00:00Z',
  dataMonth: '2024-04',
  commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: string }).code);
  }
  return 'resolved';
}

describe('ContractLedger: the gateway LedgerClient over the REAL chaincode contracts', () => {
  it('decides with the real evaluator: actor kind, purpose, actorAuth and organization', async () => {
    const chain = new ChaincodeLedger();
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    const h2 = new ContractLedger('Hospital2MSP', { chain });
    const patientA = await registerDid(chain, 'patient');
    const patientB = await registerDid(chain, 'patient');
    const doctor = await registerDid(chain, 'practitioner');
    await h1.anchor(input('a1', patientA.did));
    const resource = 'Observation/a1/_history/1';
    expect(await h1.evaluateAccess({ actor: doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource })).to.deep.include({
      decision: 'permit',
      reason: 'custodian-treatment',
    });
    expect(await h1.evaluateAccess({ actor: patientB.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'TREAT', resource })).to.deep.include({
      decision: 'deny',
      reason: 'purpose-not-allowed',
    });
    expect(await h1.evaluateAccess({ actor: patientA.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT', resource })).to.deep.include({
      reason: 'patient-or-guardian',
    });
    // Hospital2 vouching (idp) for Hospital1's doctor is refused by the chaincode.
    expect((await h2.evaluateAccess({ actor: doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource })).reason).to.equal(
      'actor-organization-mismatch',
    );
    // Evaluate commits nothing: an authorization is recorded only by authorizeAndRecord.
    expect((await h1.queryAccess({ patient: patientA.did, requester: patientA.did })).entries).to.deep.equal([]);
    const recorded = await h1.authorizeAndRecord({ actor: doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource });
    expect(recorded.decision).to.equal('permit');
    expect((await h1.queryAccess({ patient: patientA.did, requester: patientA.did })).entries[0]).to.deep.include({ actorAuth: 'idp', vouchedBy: 'Hospital1MSP' });
  });

  it('answers like the Fabric client: NOT_FOUND as undefined, chaincode refusals as OperationOutcomeErrors', async () => {
    const chain = new ChaincodeLedger();
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    const h2 = new ContractLedger('Hospital2MSP', { chain });
    const patient = await registerDid(chain, 'patient');
    const other = await registerDid(chain, 'patient');
    const doctor = await registerDid(chain, 'practitioner');
    expect(await h1.getAnchor('Observation', 'none', '1')).to.equal(undefined);
    await h1.anchor(input('a1', patient.did));
    const foreign = `\u0000hdx.anchor~patient\u0000${other.did}\u0000`;
    expect(
      await codeOf(h1.locateRecords({ patient: patient.did, actor: patient.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT', bookmark: foreign })),
    ).to.equal('INVALID');
    // Hospital2 cannot state an entry about Hospital1's doctor and record (#12).
    const forged = {
      actor: doctor.did,
      actorOrganization: 'Hospital1MSP',
      patient: patient.did,
      resources: ['Observation/a1/_history/1'],
      action: 'R' as const,
      purpose: 'TREAT',
      decision: 'permit' as const,
      breakGlass: false,
      custodian: 'Hospital2MSP',
    };
    expect(await codeOf(h2.recordAccess([forged]))).to.equal('FORBIDDEN');
    const pseudonym = `pseudonym:${'7'.repeat(64)}`;
    await h1.anchorBatch([input('p1', pseudonym)], [{ pseudonym, did: patient.did }]);
    const located = await h1.locateRecords({ patient: patient.did, actor: patient.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT' });
    expect(located.custodians.flatMap((c) => c.resources.map((r) => r.id)).sort()).to.deep.equal(['a1', 'p1']);
  });
});
