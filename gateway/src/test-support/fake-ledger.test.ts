import { expect } from 'chai';
import type { AnchorInput, Decision } from '../ledger/ledger-client';
import { FakeLedger } from './fake-ledger';

const DID = `did:hdx:${'a'.repeat(43)}`;
const OTHER = `did:hdx:${'b'.repeat(43)}`;
const PSEUDO = `pseudonym:${'1'.repeat(64)}`;
const input = (id: string, patient: string): AnchorInput => ({
  resourceType: 'Observation',
  id,
  versionId: '1',
  patient,
  lastUpdated: '2024-05-01T10:00:00Z',
  commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
});
const locateAll = { actor: DID, actorOrganization: 'Hospital1MSP', purpose: 'TREAT' };

describe('gateway FakeLedger keeps the chaincode and Fabric semantics the gateway relies on', () => {
  it("locates only the patient's anchors and those under pseudonyms linked to it, deciding each with the row's own patient", async () => {
    const ledger = new FakeLedger();
    const seen: string[] = [];
    ledger.decide = (request): Decision => {
      seen.push(String(request.patient));
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    };
    await ledger.anchorBatch([input('d1', DID), input('o1', OTHER)]);
    await ledger.anchorBatch([input('p1', PSEUDO)], [{ pseudonym: PSEUDO, did: DID }]);
    const result = await ledger.locateRecords({ patient: DID, ...locateAll });
    expect(result.custodians.flatMap((c) => c.resources.map((r) => r.id)).sort()).to.deep.equal(['d1', 'p1']);
    expect(seen).to.deep.equal([DID, DID]);
    await ledger.linkPatient(PSEUDO, DID);
    let message = '';
    await ledger.linkPatient(PSEUDO, OTHER).catch((error: Error) => (message = error.message));
    expect(message).to.match(/already linked/);
  });

  it('pages with a bookmark that must belong to the query (never clamped into range)', async () => {
    const ledger = new FakeLedger();
    ledger.decide = () => ({ decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false });
    await ledger.anchorBatch([input('d1', DID), input('d2', DID), input('d3', DID), input('o1', OTHER)]);
    const ids: string[] = [];
    let bookmark = '';
    for (let i = 0; i < 5; i++) {
      const page = await ledger.locateRecords({ patient: DID, ...locateAll, pageSize: 2, ...(bookmark ? { bookmark } : {}) });
      ids.push(...page.custodians.flatMap((c) => c.resources.map((r) => r.id)));
      bookmark = page.bookmark;
      if (!bookmark) break;
    }
    expect(ids).to.deep.equal(['d1', 'd2', 'd3']);
    let code = '';
    await ledger.locateRecords({ patient: DID, ...locateAll, bookmark: `${OTHER}\u0000` }).catch((error: { code?: string }) => (code = String(error.code)));
    expect(code).to.equal('INVALID');
  });

  it("records actorAuth and vouchedBy as the chaincode does; an admin's patient deactivation suspends", async () => {
    const ledger = new FakeLedger();
    const [delegated, idp] = await ledger.recordAccess([
      { actor: DID, actorOrganization: 'Hospital2MSP', patient: DID, action: 'R', purpose: 'TREAT', decision: 'permit', breakGlass: false },
      { actor: DID, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', patient: DID, action: 'R', purpose: 'TREAT', decision: 'permit', breakGlass: false },
    ]);
    expect(delegated).to.deep.include({ actorAuth: 'delegated', vouchedBy: 'Hospital2MSP' });
    expect(idp).to.deep.include({ actorAuth: 'idp', vouchedBy: 'Hospital1MSP' });
    await ledger.registerDid({ did: DID, kind: 'patient' });
    expect((await ledger.deactivateDid({ did: DID })).hdx.status).to.equal('suspended');
    await ledger.reactivateDid({ did: DID });
    expect((await ledger.approveReactivation({ did: DID })).hdx.status).to.equal('active');
  });
});
