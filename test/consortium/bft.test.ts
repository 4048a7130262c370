/**
 * BFT ordering on a real network: four SmartBFT orderers (HDX_ORDERER_TYPE=bft), their own folder and port
 * block. A Patient created at the hospital1 gateway is ordered by the BFT cluster and its anchor is read by
 * hospital2 from its own peer; then the BFT leader is killed under a steady write load and the channel keeps
 * ordering: every acknowledged write is on the ledger.
 */
import { expect } from 'chai';
import { orderingLeader, topology } from '@hdx/fabric-network';
import { channelMetric, recordedPid, useOwnNetwork, useWriter } from '../support/own-network';
import { summarize, timeline, writeLoad } from '../support/write-load';
import { anchoredOf } from '../support/anchored';

describe('BFT ordering (SmartBFT, 4 orderers)', function () {
  this.timeout(300_000);
  const own = useOwnNetwork('bft', 200, { HDX_ORDERER_TYPE: 'bft', HDX_ORDERERS: '4' });
  const writer = useWriter();

  it('runs a 4-node SmartBFT cluster that agrees on one leader', async () => {
    const t = topology(own().options);
    expect(t.orderers).to.have.length(4);
    const sizes = await Promise.all(t.orderers.map((o) => channelMetric(o.operationsPort, 'consensus_BFT_cluster_size')));
    expect(sizes).to.deep.equal([4, 4, 4, 4]);
    const leaders = await Promise.all(t.orderers.map((o) => channelMetric(o.operationsPort, 'consensus_BFT_leader_id')));
    expect(new Set(leaders).size, `leader ids ${leaders.join(',')}`).to.equal(1);
    expect(await orderingLeader(t)).to.match(/^orderer[0-3]$/);
  });

  it('commits a transaction through the BFT cluster: a Patient created at hospital1 is anchored, seen from hospital2', async () => {
    const { h1, token, hospital2 } = writer();
    const res = await fetch(`${h1.config.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Byzantine' }], gender: 'other' }),
    });
    expect(res.status).to.equal(201);
    const { id } = (await res.json()) as { id: string };
    const anchored = await anchoredOf(hospital2, [id]);
    expect(anchored.missing).to.deep.equal([]);
    // Every orderer holds the block: the cluster replicated it, not just the leader.
    const t = topology(own().options);
    const heights = await Promise.all(t.orderers.map((o) => channelMetric(o.operationsPort, 'ledger_blockchain_height')));
    expect(new Set(heights).size, `heights ${heights.join(',')}`).to.be.at.most(2); // one may be a block behind for a moment
  });

  it('keeps ordering with the leader killed under a steady write load; nothing acknowledged is missing', async () => {
    const { h1, token, hospital2 } = writer();
    const t = topology(own().options);
    const leader = await orderingLeader(t);
    if (!leader) throw new Error('no BFT leader');
    let faultAt = 0;
    const results = await writeLoad(h1, token, {
      count: 60,
      intervalMs: 250,
      maxInFlight: 10,
      deadlineMs: 120_000,
      onStart: (n) => {
        if (n !== 12) return;
        process.kill(recordedPid(own(), leader), 'SIGKILL');
        faultAt = Date.now();
      },
    });
    const s = summarize(results, faultAt);
    const acked = results.flatMap((r) => (r.id ? [r.id] : []));
    const anchored = await anchoredOf(hospital2, acked);
    const newLeader = await orderingLeader(t);
    process.stderr.write(
      `      BFT, ${leader} (leader) killed at write 12 of ${results.length}: ${s.acknowledged} acknowledged, ${anchored.found} of them anchored (seen from hospital2), ` +
        `${s.failed} not acknowledged (statuses ${JSON.stringify(s.statuses)}); time to resume ${s.resumeMs ?? 'never'} ms, longest stall under load ${s.stallMs} ms, slowest acknowledged write #${s.slowest?.n ?? '-'} took ${s.slowest?.ms ?? '-'} ms; new leader ${newLeader ?? 'none'}\n`,
    );
    process.stderr.write(`      acknowledgements per 5 s from the fault: ${timeline(results, faultAt)}\n`);
    expect(anchored.missing, 'acknowledged but not on the ledger').to.deep.equal([]);
    expect(s.resumeMs, 'writes resumed').to.not.equal(undefined);
    expect(s.acknowledged).to.be.greaterThan(results.length / 2);
    expect(newLeader).to.not.equal(leader);
  });
});
