import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Anchor } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import type { ResourceStore, StoredVersion } from '../store/store';
import { OperationOutcomeError } from '../errors';
import { Integrity } from './integrity';
import { commitmentFor, type Resource } from './write-plan';

describe('fhir/integrity: the memo of commitment checks that passed', () => {
  const resource: Resource = { resourceType: 'Observation', id: 'o1', meta: { versionId: '1', lastUpdated: '2026-01-01T00:00:00Z' }, status: 'final' };
  const stored = (content: string): StoredVersion => ({
    resourceType: 'Observation',
    id: 'o1',
    versionId: 1,
    lastUpdated: '2026-01-01T00:00:00Z',
    patientId: 'p1',
    deleted: false,
    content,
    state: 'anchored',
  });

  /** An Integrity whose anchor and patient key the test changes, as an erasure, a key swap or a tampered row would. */
  function setup(): { integrity: Integrity; world: { key: Buffer | undefined; anchor: Anchor | undefined } } {
    const key = randomBytes(32);
    const world: { key: Buffer | undefined; anchor: Anchor | undefined } = {
      key,
      anchor: {
        resourceType: 'Observation',
        id: 'o1',
        versionId: '1',
        commitment: { alg: 'HMAC-SHA-256', value: commitmentFor(key, resource) },
        custodian: 'Hospital1MSP',
        txId: 'tx1',
        anchoredAt: '2026-01-01T00:00:01Z',
      },
    };
    const store = { findPatientKey: async () => (world.key ? Buffer.from(world.key) : undefined) } as unknown as ResourceStore;
    const integrity = new Integrity({
      store,
      ledger: { getAnchor: async () => world.anchor },
      log: newLogger('silent'),
      viewAnchors: { anchor: () => world.anchor },
      patientRefOf: async () => 'did:hdx:x',
    });
    return { integrity, world };
  }

  const withheld = async (p: Promise<unknown>): Promise<string | undefined> => {
    try {
      await p;
      return undefined;
    } catch (err) {
      return err instanceof OperationOutcomeError ? err.code : String(err);
    }
  };

  it('passes the same stored text, key and commitment again without recomputing, and serves a fresh copy each time', async () => {
    const { integrity } = setup();
    const content = JSON.stringify(resource);
    const first = await integrity.verified(stored(content));
    const second = await integrity.verified(stored(content));
    expect(second).to.deep.equal(resource);
    expect(second).to.not.equal(first);
    expect(integrity.stats).to.deep.equal({ remembered: 1, computed: 1 });
  });

  it('still withholds a row tampered after it passed (its text differs), and keeps withholding it', async () => {
    const { integrity } = setup();
    await integrity.verified(stored(JSON.stringify(resource)));
    const tampered = stored(JSON.stringify({ ...resource, status: 'entered-in-error' }));
    expect(await withheld(integrity.verified(tampered))).to.equal('INTEGRITY');
    expect(await withheld(integrity.verified(tampered))).to.equal('INTEGRITY');
    // Even text that parses to the same JSON is checked in full (only identical text is remembered).
    expect(await withheld(integrity.verified(stored(JSON.stringify(resource, null, 1))))).to.equal(undefined);
    expect(integrity.stats.computed).to.equal(4);
  });

  it('checks again when the patient key or the anchored commitment changed, and refuses an erased anchor or a destroyed key', async () => {
    const { integrity, world } = setup();
    const content = JSON.stringify(resource);
    await integrity.verified(stored(content));
    // Another key in the store under the same patient: the remembered pass does not apply.
    world.key = randomBytes(32);
    expect(await withheld(integrity.verified(stored(content)))).to.equal('INTEGRITY');
    world.key = undefined;
    expect(await withheld(integrity.verified(stored(content)))).to.equal('INTEGRITY');
    const key = randomBytes(32);
    world.key = key;
    world.anchor = { ...(world.anchor as Anchor), commitment: { alg: 'HMAC-SHA-256', value: commitmentFor(key, resource) } };
    expect(await withheld(integrity.verified(stored(content)))).to.equal(undefined);
    world.anchor = { ...(world.anchor as Anchor), tombstone: { erasedAt: '2026-02-01T00:00:00Z' } as unknown as NonNullable<Anchor['tombstone']> };
    expect(await withheld(integrity.verified(stored(content)))).to.equal('INTEGRITY');
    world.anchor = undefined;
    expect(await withheld(integrity.verified(stored(content)))).to.equal('INTEGRITY');
  });
});
