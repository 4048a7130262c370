import { expect } from 'chai';
import { compareViews } from './compare';
import type { ViewSnapshot } from './view-store';

function snapshot(height: bigint, consents: Array<Record<string, string | number>>, orgDids: Array<Record<string, string | number>> = []): ViewSnapshot {
  return { height, tables: { identities: [], org_dids: orgDids, consents, patient_links: [], anchors: [], members: [] } };
}

const consent = (id: string, status: string, block: number): Record<string, string | number> => ({
  id,
  patient: 'did:hdx:p',
  status,
  version: status === 'active' ? 1 : 2,
  record: `{"id":"${id}"}`,
  block,
  tx_id: `t${block}`,
});

describe('view/compare', () => {
  it('finds nothing between equal views', () => {
    const a = snapshot(5n, [consent('c-1', 'active', 2)], [{ msp_id: 'H1', did: 'did:hdx:o', block: 1, tx_id: 't1' }]);
    const b = snapshot(5n, [consent('c-1', 'active', 2)], [{ msp_id: 'H1', did: 'did:hdx:o', block: 1, tx_id: 't1' }]);
    expect(compareViews(a, b)).to.deep.equal({ equal: true, liveHeight: 5n, rebuiltHeight: 5n, differences: [] });
  });

  it('reports rows only in the live view, only in the rebuilt one, and changed columns, by table and key', () => {
    const live = snapshot(5n, [consent('c-1', 'active', 2), consent('c-2', 'active', 3)], [{ msp_id: 'H1', did: 'did:hdx:o', block: 1, tx_id: 't1' }]);
    const rebuilt = snapshot(5n, [consent('c-1', 'inactive', 4), consent('c-3', 'active', 4)]);
    const result = compareViews(live, rebuilt);
    expect(result.equal).to.equal(false);
    expect(result.differences).to.deep.equal([
      { table: 'org_dids', key: ['H1', 'did:hdx:o'], kind: 'live-only' },
      { table: 'consents', key: ['c-1'], kind: 'changed', columns: ['block', 'status', 'tx_id', 'version'] },
      { table: 'consents', key: ['c-2'], kind: 'live-only' },
      { table: 'consents', key: ['c-3'], kind: 'rebuilt-only' },
    ]);
  });

  it('is not equal when the heights differ, even with the same rows', () => {
    const result = compareViews(snapshot(6n, [consent('c-1', 'active', 2)]), snapshot(5n, [consent('c-1', 'active', 2)]));
    expect(result.equal).to.equal(false);
    expect(result.differences).to.deep.equal([]);
  });
});
