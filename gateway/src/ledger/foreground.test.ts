import { expect } from 'chai';
import { ForegroundWrites } from './foreground';

describe('ledger/foreground: writes callers wait on, counted while in flight', () => {
  it('counts anchors and consent changes until they settle (resolved or rejected); reads and audit delivery are not counted', async () => {
    let release: () => void = () => undefined;
    const ledger = {
      anchorBatch: (): Promise<string> => new Promise((resolve) => (release = () => resolve('anchored'))),
      changeConsent: (): Promise<never> => Promise.reject(new Error('refused')),
      recordAccess: (): Promise<number> => Promise.resolve(1),
      getAnchor: (): Promise<undefined> => Promise.resolve(undefined),
      name: 'fake',
    };
    const foreground = new ForegroundWrites();
    const tracked = foreground.track(ledger);
    expect(tracked.name).to.equal('fake');
    const anchoring = tracked.anchorBatch();
    expect(foreground.busy()).to.equal(true);
    await tracked.recordAccess();
    await tracked.getAnchor();
    expect(foreground.inFlight).to.equal(1);
    release();
    expect(await anchoring).to.equal('anchored');
    expect(foreground.busy()).to.equal(false);
    const refused = tracked.changeConsent();
    expect(foreground.inFlight).to.equal(1);
    await refused.catch(() => undefined);
    expect(foreground.busy()).to.equal(false);
  });
});
