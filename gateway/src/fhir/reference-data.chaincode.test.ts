/**
 * Reference data over the REAL chaincode contracts (ContractLedger): what the chaincode accepts today
 * for a resource in no patient's compartment. Its anchor must name a patient reference, so it carries
 * the custodian's reference-data pseudonym; the read by another member is decided by the gateway (no
 * consent governs reference data) and its access entry, reason reference-data, is accepted on the
 * ledger like any custodian-stated entry.
 */
import { expect } from 'chai';
import { H2_GATEWAY, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import type { Caller } from './policy';
import { ResourceService } from './resource-service';

describe('reference data over the real chaincode contracts', () => {
  it('is anchored under the reference-data pseudonym, read by another member, the read recorded on the ledger', async () => {
    const chain = new ChaincodeLedger();
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    const doctor = await registerDid(chain, 'practitioner');
    const foreign = await registerDid(chain, 'practitioner', H2_GATEWAY);
    const store = testStore();
    const resources = new ResourceService({ store, ledger: h1, log: newLogger('silent'), mspId: 'Hospital1MSP' });
    const staff: Caller = { did: doctor.did, organization: 'Hospital1MSP', purpose: 'TREAT', kind: 'practitioner', actorAuth: 'idp', local: true };
    const other: Caller = { did: foreign.did, organization: 'Hospital2MSP', purpose: 'TREAT', kind: 'practitioner', actorAuth: 'did', local: false };

    const created = await resources.create(staff, 'Organization', { resourceType: 'Organization', name: 'General Hospital' });
    const anchor = await h1.getAnchor('Organization', String(created.id), '1');
    expect(anchor?.patient).to.match(/^pseudonym:[0-9a-f]{64}$/);
    expect(anchor?.patient).to.equal(await resources.patientRef('~reference-data'));

    // The chaincode alone would deny another member (no consent names this pseudonym).
    const resource = `Organization/${String(created.id)}/_history/1`;
    expect((await h1.evaluateAccess({ actor: foreign.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'TREAT', resource })).decision).to.equal('deny');
    // The gateway decides reference data itself, and the access entry is on the ledger.
    const read = await resources.read(other, 'Organization', String(created.id));
    expect(read.name).to.equal('General Hospital');
    const page = await resources.search(other, 'Organization', { count: 10, offset: 0 });
    expect(page.total).to.equal(1);
    const entries = (await h1.queryAccess({ actor: foreign.did, requester: foreign.did })).entries as Array<{ actor: string; decision: string; reason?: string; subtype?: string }>;
    expect(entries.filter((e) => e.actor === foreign.did).map((e) => [e.subtype, e.decision, e.reason])).to.deep.include.members([
      ['read', 'permit', 'reference-data'],
      ['search-type', 'permit', undefined],
    ]);
    await store.close();
  });
});
