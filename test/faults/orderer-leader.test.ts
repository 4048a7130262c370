/**
 * Fault under load: three Raft orderers (HDX_ORDERERS=3), their own folder and port block. The Raft leader
 * is killed (SIGKILL, by the pid the launcher recorded) while the hospital1 gateway takes a steady, bounded
 * write load. Counts what was acknowledged and what is anchored afterwards (read by hospital2 from its own
 * peer): nothing acknowledged may be missing. Prints the time to resume.
 */
import { expect } from 'chai';
import { orderingLeader, topology } from '@hdx/fabric-network';
import { anchoredOf } from '../support/anchored';
import { recordedPid, useOwnNetwork, useWriter } from '../support/own-network';
import { summarize, timeline, writeLoad } from '../support/write-load';

describe('faults: the Raft leader (of 3 orderers) killed under a steady write load', function () {
  this.timeout(300_000);
  const own = useOwnNetwork('raft3', 400, { HDX_ORDERER_TYPE: 'raft', HDX_ORDERERS: '3' });
  const writer = useWriter();

  it('resumes writing under a new leader; every acknowledged write is anchored', async () => {
    const { h1, token, hospital2 } = writer();
    const t = topology(own().options);
    const leader = await orderingLeader(t);
    if (!leader) throw new Error('no Raft leader');
    let faultAt = 0;
    const count = 120;
    const killAt = 40;
    const results = await writeLoad(h1, token, {
      count,
      intervalMs: 200,
      maxInFlight: 10,
      deadlineMs: 120_000,
      onStart: (n) => {
        if (n !== killAt) return;
        process.kill(recordedPid(own(), leader), 'SIGKILL');
        faultAt = Date.now();
      },
    });
    const s = summarize(results, faultAt);
    const acked = results.flatMap((r) => (r.id ? [r.id] : []));
    const anchored = await anchoredOf(hospital2, acked);
    const newLeader = await orderingLeader(t);
    const inFlight = results.filter((r) => r.startedAt < faultAt && r.endedAt >= faultAt).length;
    process.stderr.write(
      `      Raft x3, ${leader} (leader) killed at write ${killAt} of ${count} (${inFlight} in flight): ${s.acknowledged} acknowledged, ${anchored.found} of them anchored (seen from hospital2), ` +
        `${s.failed} not acknowledged (statuses ${JSON.stringify(s.statuses)}); time to resume ${s.resumeMs ?? 'never'} ms, longest stall under load ${s.stallMs} ms, slowest acknowledged write #${s.slowest?.n ?? '-'} took ${s.slowest?.ms ?? '-'} ms; new leader ${newLeader ?? 'none'}\n`,
    );
    for (const r of results.filter((x) => x.status !== 201).slice(0, 3)) process.stderr.write(`      not acknowledged: write ${r.n}: ${r.status} ${r.error ?? ''}\n`);
    process.stderr.write(`      acknowledgements per 5 s from the fault: ${timeline(results, faultAt)}\n`);
    expect(anchored.missing, 'acknowledged but not on the ledger').to.deep.equal([]);
    expect(s.resumeMs, 'writes resumed after the leader was killed').to.not.equal(undefined);
    // A write caught by the fault gets a prompt answer: the gateway re-sends a transaction Raft dropped once
    // its commit-status wait (HDX_LEDGER_TIMEOUT_MS, 15 s) ends, instead of hanging for a minute.
    expect(s.slowest?.ms ?? 0, `slowest write #${s.slowest?.n ?? '-'}`).to.be.below(30_000);
    expect(newLeader, 'a new leader was elected').to.not.equal(undefined);
    expect(newLeader).to.not.equal(leader);
    // Writes after the fault are acknowledged: the two remaining orderers are a Raft majority.
    const late = results.filter((r) => r.startedAt >= faultAt + 15_000);
    expect(
      late.every((r) => r.status === 201),
      'writes started 15 s after the fault',
    ).to.equal(true);
  });
});
