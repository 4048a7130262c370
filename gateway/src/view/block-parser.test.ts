import { peer } from '@hyperledger/fabric-protos';
import { expect } from 'chai';
import { buildBlock, compositeKey } from '../test-support/blocks';
import { MalformedBlockError, parseBlock } from './block-parser';

const consentKey = compositeKey('hdx.consent', ['c-1']);
const orgIndexKey = compositeKey('hdx.did~org', ['Hospital1MSP', 'did:hdx:org']);

describe('view/block-parser', () => {
  it('lists the writes of the namespace by valid transactions, in block order, with txId, block number and index', () => {
    const block = buildBlock(7, [
      { txId: 'tx-a', writes: { hdx: [{ key: consentKey, value: { id: 'c-1', status: 'active' } }], other: [{ key: 'x', value: 1 }] } },
      { txId: 'tx-b', writes: { hdx: [{ key: 'hdx.audit~time~t~e', value: new Uint8Array([0]) }] } },
    ]);
    const parsed = parseBlock(block, 'hdx');
    expect(parsed.blockNumber).to.equal(7n);
    expect(parsed.envelopes).to.equal(2);
    expect(parsed.writes.map((w) => [w.key, w.txId, w.blockNumber, w.txIndex, w.deleted])).to.deep.equal([
      [consentKey, 'tx-a', 7n, 0, false],
      ['hdx.audit~time~t~e', 'tx-b', 7n, 1, false],
    ]);
    expect(JSON.parse(Buffer.from(parsed.writes[0]?.value ?? []).toString('utf8'))).to.deep.equal({ id: 'c-1', status: 'active' });
    // Another chaincode's namespace is not the view's.
    expect(parsed.writes.some((w) => w.key === 'x')).to.equal(false);
  });

  it('gives the function and arguments each valid transaction invoked on the namespace, as its proposal named them', () => {
    const block = buildBlock(5, [
      { txId: 'tx-a', writes: { hdx: [] }, call: { fn: 'hdx.audit:AuthorizeAndRecord', args: ['{"a":1}'] } },
      { txId: 'tx-bad', writes: { hdx: [] }, call: { fn: 'hdx.audit:RecordAccess', args: ['{}'] }, validationCode: peer.TxValidationCode.MVCC_READ_CONFLICT },
      { txId: 'tx-other', writes: { other: [] }, call: { fn: 'Other', chaincode: 'other' } },
      { txId: 'tx-none', writes: { hdx: [] } },
    ]);
    // Only when asked for: the live view does not decode them.
    expect(parseBlock(block, 'hdx')).not.to.have.property('calls');
    const parsed = parseBlock(block.serializeBinary(), 'hdx', { calls: true });
    expect(parsed.calls?.map((c) => [c.txId, c.txIndex, c.fn, c.args.map((a) => Buffer.from(a).toString('utf8'))])).to.deep.equal([
      ['tx-a', 0, 'hdx.audit:AuthorizeAndRecord', ['{"a":1}']],
    ]);
  });

  it('ignores an invalidated transaction (an MVCC conflict) and lists its txId', () => {
    const block = buildBlock(8, [
      { txId: 'tx-conflict', writes: { hdx: [{ key: consentKey, value: { id: 'c-1', status: 'inactive' } }] }, validationCode: peer.TxValidationCode.MVCC_READ_CONFLICT },
      { txId: 'tx-ok', writes: { hdx: [{ key: orgIndexKey, value: new Uint8Array([0]) }] } },
    ]);
    const parsed = parseBlock(block, 'hdx');
    expect(parsed.invalid).to.deep.equal(['tx-conflict']);
    expect(parsed.writes.map((w) => w.txId)).to.deep.equal(['tx-ok']);
  });

  it('gives a deleted key as deleted, without a value', () => {
    const parsed = parseBlock(buildBlock(9, [{ txId: 'tx-d', writes: { hdx: [{ key: orgIndexKey, delete: true }] } }]), 'hdx');
    expect(parsed.writes).to.have.length(1);
    expect(parsed.writes[0]).to.include({ key: orgIndexKey, deleted: true, value: undefined, txId: 'tx-d' });
  });

  it('reads a block from its bytes as from its protos, and skips config transactions', () => {
    const block = buildBlock(0, [{ txId: '', writes: {}, config: true }]);
    const parsed = parseBlock(block.serializeBinary(), 'hdx');
    expect(parsed.blockNumber).to.equal(0n);
    expect(parsed.envelopes).to.equal(1);
    expect(parsed.writes).to.deep.equal([]);
  });

  it('refuses a block without a validation code for a transaction, and bytes that are not a block', () => {
    const block = buildBlock(3, [{ txId: 'tx-a', writes: { hdx: [{ key: consentKey, value: {} }] } }]);
    block.getMetadata()?.setMetadataList([]);
    expect(() => parseBlock(block, 'hdx')).to.throw(MalformedBlockError, 'no validation code');
    expect(() => parseBlock(new Uint8Array([0xff, 0xff, 0xff]), 'hdx')).to.throw(MalformedBlockError);
  });
});
