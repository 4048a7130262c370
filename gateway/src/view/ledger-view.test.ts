import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import pino from 'pino';
import { FakePeer } from '../test-support/blocks';
import { compareViews } from './compare';
import { LedgerView } from './ledger-view';
import { rebuildView } from './rebuild';
import { ViewStore } from './view-store';
import { consentWrite, identityWrite, PATIENT } from '../test-support/view-fixtures';

const log = pino({ level: 'silent' });

describe('view/ledger-view', () => {
  let dir: string;
  let peer: FakePeer;
  let clock: number;
  const views: LedgerView[] = [];
  const stores: ViewStore[] = [];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-view-'));
    peer = new FakePeer();
    peer.commit([{ txId: '', writes: {}, config: true }]);
    clock = 1_000_000;
  });
  afterEach(async () => {
    for (const v of views.splice(0)) await v.stop();
    for (const s of stores.splice(0)) s.close();
  });

  function newView(file = path.join(dir, 'ledger-view.db')): LedgerView {
    const store = new ViewStore(file, { channel: 'hdx', namespace: 'hdx' });
    stores.push(store);
    // Polls only when the test calls poll(); reconnects quickly.
    const view = new LedgerView({ store, source: peer, namespace: 'hdx', log, pollMs: 1e9, retryMs: 5, now: () => clock });
    views.push(view);
    return view;
  }

  it('applies every committed block as it comes, and knows its height', async () => {
    const view = newView();
    view.start();
    await view.waitForHeight(1n, 2000);
    peer.commit([{ txId: 't1', writes: identityWrite(PATIENT, 'patient') }]);
    peer.commit([{ txId: 't2', writes: consentWrite('c-1', 'active', 1) }]);
    await view.waitForHeight(3n, 2000);
    expect(view.height()).to.equal(3n);
    expect(stores[0]?.consent('c-1')?.status).to.equal('active');
    expect(view.lastEventAt).to.equal(clock);
    await view.poll();
    expect(view.lagBlocks()).to.equal(0n);
  });

  it('resumes after a restart mid-stream from its checkpoint: no gap, no double, same rows as a rebuild', async () => {
    const file = path.join(dir, 'ledger-view.db');
    const first = newView(file);
    first.start();
    for (let i = 1; i <= 5; i++) peer.commit([{ txId: `t${i}`, writes: consentWrite(`c-${i}`, 'active', 1) }]);
    await first.waitForHeight(4n, 2000);
    await first.stop();
    const stoppedAt = first.height();
    // Blocks keep committing while the gateway is down.
    for (let i = 6; i <= 8; i++) peer.commit([{ txId: `t${i}`, writes: consentWrite(`c-${i % 3}`, 'inactive', 2) }]);
    stores.shift()?.close();
    views.shift();

    const second = newView(file);
    const seen: Array<[bigint, boolean]> = [];
    second.onBlock((n, applied) => seen.push([n, applied]));
    second.start();
    await second.waitForHeight(9n, 2000);
    expect(peer.opened.at(-1)).to.equal(stoppedAt);
    // Consecutive from the checkpoint on, each applied once.
    expect(seen).to.deep.equal(Array.from({ length: 9 - Number(stoppedAt) }, (_, i) => [stoppedAt + BigInt(i), true]));

    const rebuilt = await rebuildView({ source: peer, channel: 'hdx', namespace: 'hdx', file: path.join(dir, 'rebuilt.db'), height: 9n });
    stores.push(rebuilt);
    const comparison = compareViews((stores[0] as ViewStore).snapshot(), rebuilt.snapshot());
    expect(comparison.differences).to.deep.equal([]);
    expect(comparison.equal).to.equal(true);
  });

  it('reconnects from the checkpoint when the stream drops', async () => {
    const view = newView();
    view.start();
    await view.waitForHeight(1n, 2000);
    peer.breakStreams();
    peer.commit([{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    await view.waitForHeight(2n, 2000);
    expect(peer.opened).to.deep.equal([0n, 1n]);
    expect(stores[0]?.consent('c-1')?.status).to.equal('active');
  });

  it('reconnects as soon as a height check finds its peer back, without waiting out the back-off', async () => {
    const store = new ViewStore(path.join(dir, 'ledger-view.db'), { channel: 'hdx', namespace: 'hdx' });
    stores.push(store);
    // A back-off far longer than the test: only the poll can bring the stream back in time.
    const view = new LedgerView({ store, source: peer, namespace: 'hdx', log, pollMs: 1e9, retryMs: 3_600_000, now: () => clock });
    views.push(view);
    view.start();
    await view.waitForHeight(1n, 2000);
    peer.down = true;
    peer.breakStreams();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await view.poll(); // the peer is down: nothing to do
    peer.commit([{ txId: 't1', writes: consentWrite('c-1', 'active', 1) }]);
    expect(peer.opened).to.deep.equal([0n]);
    expect(view.status().streaming).to.equal(false);

    peer.down = false;
    await view.poll();
    await view.waitForHeight(2n, 2000);
    expect(peer.opened).to.deep.equal([0n, 1n]);
    expect(stores[0]?.consent('c-1')?.status).to.equal('active');
  });

  it('is fresh only while caught up with the peer and streaming, within the bound; fails closed when the stream is down', async () => {
    const view = newView();
    expect(view.fresh(1000)).to.equal(false); // never confirmed
    view.start();
    await view.waitForHeight(1n, 2000);
    await view.poll();
    expect(view.fresh(1000)).to.equal(true);
    clock += 1001;
    expect(view.fresh(1000)).to.equal(false); // not confirmed since
    await view.poll();
    expect(view.fresh(1000)).to.equal(true);

    // The deliver stream goes down; the peer still answers, and commits a revocation the view cannot see.
    peer.deliveryDown = true;
    peer.breakStreams();
    await new Promise((resolve) => setTimeout(resolve, 20));
    peer.commit([{ txId: 't1', writes: consentWrite('c-1', 'inactive', 2) }]);
    clock += 500;
    await view.poll();
    expect(view.lagBlocks()).to.equal(1n);
    expect(view.fresh(1000)).to.equal(true); // within the bound of the last confirmation
    clock += 501;
    expect(view.fresh(1000)).to.equal(false);
    expect(view.status(1000)).to.include({ streaming: false, fresh: false, lagBlocks: '1' });

    // Back up: it catches up, and the next poll confirms it.
    peer.deliveryDown = false;
    await view.waitForHeight(2n, 2000);
    await view.poll();
    expect(view.fresh(1000)).to.equal(true);

    // The whole peer down: no height, so no confirmation.
    peer.down = true;
    peer.breakStreams();
    clock += 1001;
    await view.poll();
    expect(view.fresh(1000)).to.equal(false);
  });
});
