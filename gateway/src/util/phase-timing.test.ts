import { expect } from 'chai';
import { phaseClock, setPhaseSink, timeAsync, timeSync } from './phase-timing';

describe('phase timing (the opt-in hook of bench/ingest-profile.ts)', () => {
  afterEach(() => setPhaseSink(undefined));

  it('reports nothing and returns what it runs when no sink is set', async () => {
    expect(timeSync('index', () => 7)).to.equal(7);
    expect(await timeAsync('store-pending', () => Promise.resolve('x'))).to.equal('x');
    expect(phaseClock()).to.equal(undefined);
  });

  it('reports each phase with its duration and detail to the sink', async () => {
    const seen: Array<[string, number, string | undefined]> = [];
    setPhaseSink((phase, ms, detail) => seen.push([phase, ms, detail]));
    timeSync('validate', () => undefined, 'bundle');
    await timeAsync('endorse', () => new Promise((r) => setTimeout(r, 20)), 'AnchorBatch');
    const end = phaseClock();
    end?.('plan');
    expect(seen.map(([p, , d]) => [p, d])).to.deep.equal([
      ['validate', 'bundle'],
      ['endorse', 'AnchorBatch'],
      ['plan', undefined],
    ]);
    // The timer measured the wait (setTimeout may fire a millisecond early).
    expect(seen[1]?.[1]).to.be.greaterThan(15);
  });

  it('reports a failing phase too and passes its error on unchanged', async () => {
    const seen: string[] = [];
    setPhaseSink((phase) => seen.push(phase));
    const boom = new Error('boom');
    expect(() =>
      timeSync('index', () => {
        throw boom;
      }),
    ).to.throw(boom);
    let caught: unknown;
    await timeAsync('commit-wait', () => Promise.reject(boom)).catch((err: unknown) => {
      caught = err;
    });
    expect(caught).to.equal(boom);
    expect(seen).to.deep.equal(['index', 'commit-wait']);
  });

  it('never lets a throwing sink change the outcome of what it measures', async () => {
    setPhaseSink(() => {
      throw new Error('sink failed');
    });
    expect(timeSync('parse', () => 'parsed')).to.equal('parsed');
    expect(await timeAsync('mark-anchored', () => Promise.resolve(3))).to.equal(3);
  });
});
