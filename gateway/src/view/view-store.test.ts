import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { peer } from '@hyperledger/fabric-protos';
import { expect } from 'chai';
import { buildBlock, compositeKey, type TestTransaction } from '../test-support/blocks';
import { consentWrite, GUARDIAN, identityWrite, ORG, PATIENT, PSEUDONYM } from '../test-support/view-fixtures';
import { parseBlock } from './block-parser';
import { ViewGapError, ViewStore, ViewValueError } from './view-store';

function tmpFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-view-')), 'ledger-view.db');
}

const open = (file: string): ViewStore => new ViewStore(file, { channel: 'hdx', namespace: 'hdx' });

describe('view/view-store', () => {
  let file: string;
  let store: ViewStore;
  beforeEach(() => {
    file = tmpFile();
    store = open(file);
  });
  afterEach(() => store.close());

  const apply = (n: number, txs: TestTransaction[]): boolean => store.apply(parseBlock(buildBlock(n, txs), 'hdx'), 1_000 + n);

  it('keeps identities, organization DIDs, consents, patient links and anchors from the blocks, with the checkpoint', () => {
    expect(store.height()).to.equal(0n);
    expect(apply(0, [{ txId: '', writes: {}, config: true }])).to.equal(true);
    apply(1, [
      { txId: 't1', writes: identityWrite(PATIENT, 'patient', 'active', 1, [GUARDIAN]) },
      { txId: 't2', writes: { hdx: [...(identityWrite(ORG, 'organization').hdx ?? []), { key: compositeKey('hdx.did~org', ['Hospital1MSP', ORG]), value: new Uint8Array([0]) }] } },
    ]);
    apply(2, [
      { txId: 't3', writes: consentWrite('c-1', 'active', 1) },
      {
        txId: 't4',
        writes: {
          hdx: [
            { key: compositeKey('hdx.link', ['Hospital1MSP', PSEUDONYM]), value: { pseudonym: PSEUDONYM, did: PATIENT, custodian: 'Hospital1MSP', linkedAt: 'x', txId: 't4' } },
            {
              key: compositeKey('hdx.anchor', ['Observation', 'o-1', '1']),
              value: { resourceType: 'Observation', id: 'o-1', versionId: '1', patient: PSEUDONYM, custodian: 'Hospital1MSP', commitment: {} },
            },
            { key: compositeKey('hdx.anchor~patient', [PSEUDONYM, 'Hospital1MSP', 'Observation', 'o-1', '1']), value: {} },
            { key: 'hdx.audit~time~2026~t4.0', value: new Uint8Array([0]) },
          ],
        },
      },
    ]);
    expect(store.checkpoint()).to.deep.equal({ block: 2n, txIndex: 1, appliedAt: 1_002 });
    expect(store.height()).to.equal(3n);
    expect(store.identity(PATIENT)).to.include({ kind: 'patient', status: 'active' });
    expect(store.identity(PATIENT)?.guardians).to.deep.equal([GUARDIAN]);
    expect(store.organizationDids('Hospital1MSP')).to.deep.equal([ORG]);
    expect(store.consent('c-1')).to.include({ status: 'active', version: 1 });
    expect(store.consentsOf(PATIENT).map((c) => c.id)).to.deep.equal(['c-1']);
    expect(store.link('Hospital1MSP', PSEUDONYM)?.did).to.equal(PATIENT);
    expect(store.anchor('Observation', 'o-1', '1')).to.include({ custodian: 'Hospital1MSP', patient: PSEUDONYM });
    // Indexes, versions and the access history are not rows of their own.
    expect(store.counts()).to.deep.equal({ identities: 2, org_dids: 1, consents: 1, patient_links: 1, anchors: 1, members: 0 });
  });

  it('follows updates, revocations, tombstones and deleted keys; ignores invalidated transactions', () => {
    apply(0, [
      { txId: 't1', writes: { hdx: [...(consentWrite('c-1', 'active', 1).hdx ?? []), { key: compositeKey('hdx.did~org', ['Hospital1MSP', ORG]), value: new Uint8Array([0]) }] } },
    ]);
    apply(1, [
      // An MVCC conflict: its revoke must not count.
      { txId: 't2', writes: consentWrite('c-1', 'inactive', 2), validationCode: peer.TxValidationCode.MVCC_READ_CONFLICT },
      { txId: 't3', writes: { hdx: [{ key: compositeKey('hdx.did~org', ['Hospital1MSP', ORG]), delete: true }] } },
    ]);
    expect(store.consent('c-1')?.status).to.equal('active');
    expect(store.organizationDids('Hospital1MSP')).to.deep.equal([]);
    apply(2, [{ txId: 't4', writes: consentWrite('c-1', 'inactive', 2) }]);
    expect(store.consent('c-1')).to.include({ status: 'inactive', version: 2 });
    apply(3, [
      {
        txId: 't5',
        writes: {
          hdx: [
            {
              key: compositeKey('hdx.anchor', ['Observation', 'o-1', '1']),
              value: { resourceType: 'Observation', id: 'o-1', versionId: '1', custodian: 'H1', commitment: {}, tombstone: { erasedAt: 'x', txId: 't5' } },
            },
          ],
        },
      },
    ]);
    expect(store.anchor('Observation', 'o-1', '1')?.patient).to.equal(undefined);
    expect(store.snapshot().tables.anchors[0]).to.include({ erased: 1, patient: null });
  });

  it('applies each block once: a block already applied is skipped, a later one than the next is refused', () => {
    apply(0, [{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    apply(1, [{ txId: 't2', writes: consentWrite('c-1', 'inactive', 2) }]);
    // Block 0 again (a stream restarted too early) must not roll the consent back.
    expect(apply(0, [{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }])).to.equal(false);
    expect(store.consent('c-1')?.status).to.equal('inactive');
    expect(() => apply(3, [{ txId: 't4', writes: consentWrite('c-2', 'active', 1) }])).to.throw(ViewGapError, 'expected block 2 and received block 3');
    expect(store.consent('c-2')).to.equal(undefined);
    expect(store.height()).to.equal(2n);
  });

  it('a block with a value it cannot read is not applied at all, rows and checkpoint alike', () => {
    apply(0, [{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    expect(() =>
      apply(1, [
        { txId: 't2', writes: consentWrite('c-2', 'active', 1) },
        { txId: 't3', writes: { hdx: [{ key: compositeKey('hdx.consent', ['c-3']), value: new Uint8Array([0x7b]) }] } },
      ]),
    ).to.throw(ViewValueError, 'block 1 transaction 1');
    expect(store.consent('c-2')).to.equal(undefined);
    expect(store.height()).to.equal(1n);
  });

  it('keeps the member registry: a proposed removal is not a removal, an approved one is', () => {
    const member = (status: string) => ({
      key: compositeKey('hdx.member', ['Hospital3MSP']),
      value: { mspId: 'Hospital3MSP', status, proposedBy: 'Hospital1MSP', approvals: [], required: 2 },
    });
    apply(0, [{ txId: 't1', writes: { hdx: [member('proposed')] } }]);
    expect(store.organizationRemoved('Hospital3MSP')).to.equal(false);
    apply(1, [
      // Invalidated: it must not remove anyone.
      { txId: 't2', writes: { hdx: [member('removed')] }, validationCode: peer.TxValidationCode.MVCC_READ_CONFLICT },
    ]);
    expect(store.organizationRemoved('Hospital3MSP')).to.equal(false);
    apply(2, [{ txId: 't3', writes: { hdx: [member('removed')] } }]);
    expect(store.organizationRemoved('Hospital3MSP')).to.equal(true);
    expect(store.organizationRemoved('Hospital1MSP')).to.equal(false);
    expect(store.counts().members).to.equal(1);
    expect(() =>
      apply(3, [{ txId: 't4', writes: { hdx: [{ key: compositeKey('hdx.member', ['Hospital2MSP']), value: { mspId: 'Hospital3MSP', status: 'removed' } }] } }]),
    ).to.throw(ViewValueError, 'does not match its key');
  });

  it('empties a view of schema 1 (which skipped the member registry), so it follows its peer again from block 0', () => {
    apply(0, [{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    store.close();
    const db = new Database(file);
    db.pragma('user_version = 1');
    db.close();
    store = open(file);
    expect(store.height()).to.equal(0n);
    expect(store.consent('c-1')).to.equal(undefined);
  });

  it('keeps rows and checkpoint across a reopen, and refuses a file of another chaincode', () => {
    apply(0, [{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    store.close();
    store = open(file);
    expect(store.height()).to.equal(1n);
    expect(store.consent('c-1')?.status).to.equal('active');
    expect(() => new ViewStore(file, { channel: 'hdx', namespace: 'other' })).to.throw('not hdx and other');
    expect((fs.statSync(file).mode & 0o777).toString(8)).to.equal('600');
  });
});
