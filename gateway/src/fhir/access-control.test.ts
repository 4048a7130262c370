import { expect } from 'chai';
import { newLogger } from '../logger';
import type { StoredVersion } from '../store/store';
import { FakeLedger } from '../test-support/fake-ledger';
import { AccessControl, chunks, MAX_RESOURCES_PER_ENTRY } from './access-control';
import { staffCaller } from '../test-support/callers';

describe('AccessControl.recordDisclosures', () => {
  it('splits a large disclosure into entries of at most 100 resources (the chaincode limit)', async () => {
    const ledger = new FakeLedger();
    const access = new AccessControl(ledger, newLogger('silent'), 'Hospital1MSP');
    const versions: StoredVersion[] = Array.from({ length: 250 }, (_, i) => ({
      resourceType: 'Observation',
      id: `o${i}`,
      versionId: 1,
      lastUpdated: '2026-01-01T00:00:00.000Z',
      patientId: 'p1',
      deleted: false,
      content: '{}',
      state: 'anchored',
    }));
    const decision = { decision: 'permit' as const, consents: [], reason: 'custodian-treatment' as const, breakGlass: false };
    await access.recordDisclosures(
      staffCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP' }),
      versions.map((version) => ({ version, decision })),
      '$everything',
      async () => `pseudonym:${'0'.repeat(64)}`,
    );
    expect(ledger.audit.map((e) => e.resources.length)).to.deep.equal([100, 100, 50]);
    expect(new Set(ledger.audit.flatMap((e) => e.resources)).size).to.equal(250);
  });

  it('chunks keeps order and covers everything', () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).to.deep.equal([[1, 2], [3, 4], [5]]);
    expect(chunks([], MAX_RESOURCES_PER_ENTRY)).to.deep.equal([]);
  });
});
