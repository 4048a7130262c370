/**
 * Fault under load: one member's peer (peer0.hospital2) killed (SIGKILL, by the pid the launcher recorded)
 * while the hospital1 gateway takes a steady, bounded write load, on a network of its own (3 Raft
 * orderers). The other members keep endorsing: the endorsement policy is a MAJORITY of the three members,
 * and hospital1 and the regulator are two. Meanwhile hospital2's gateway reports unhealthy and refuses a
 * write it cannot anchor and a read whose access it cannot record; when the peer is started again (startNode), the peer catches up on the blocks it
 * missed and the gateway recovers by itself: healthy, its view caught up, writes accepted. Counts what was
 * acknowledged and what is anchored afterwards, read from hospital2's restarted peer: nothing acknowledged
 * may be missing.
 */
import { expect } from 'chai';
import { formatStatus, startNode, status, stopNode, topology } from '@hdx/fabric-network';
import { generateDidKey } from '@hdx/gateway';
import { anchoredOf } from '../support/anchored';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { healthOf, watchHealth, waitUntil } from '../support/health-watch';
import { startTestGateway } from '../support/network';
import { useOwnNetwork, useWriter } from '../support/own-network';
import { summarize, timeline, writeLoad } from '../support/write-load';

const PEER = 'peer0.hospital2';

describe(`faults: one member's peer (${PEER}) killed under a steady write load at hospital1`, function () {
  this.timeout(300_000);
  const own = useOwnNetwork('peer-down', 600, { HDX_ORDERER_TYPE: 'raft', HDX_ORDERERS: '3' });
  const writer = useWriter();
  let h2: Gw | undefined;
  let h2Token = '';
  before(async () => {
    // With its ledger view (HDX_VIEW=on), so its lag is reported and must catch up after the outage. Its
    // log is quiet: every /healthz during the outage is a 503 logged as an error.
    h2 = await startTestGateway('hospital2', { HDX_VIEW: 'on', HDX_LOG_LEVEL: process.env.HDX_TEST_LOG_LEVEL ?? 'fatal' });
    const practitioner = generateDidKey();
    await registerDid(h2, 'hospital2', 'practitioner', practitioner);
    h2Token = staffToken(h2, 'hospital2', { did: practitioner.did });
  });
  after(async () => {
    await h2?.gateway.close();
  });

  const patient = (tag: string): object => ({
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: `PEERDOWN-${process.pid}-${tag}` }],
    name: [{ family: 'Peerdown', given: [tag] }],
    gender: 'unknown',
  });

  it('the other members keep endorsing; hospital2 reports unhealthy, refuses a write, and recovers by itself when its peer returns', async () => {
    const { h1, token, hospital2 } = writer();
    if (!h2) throw new Error('no hospital2 gateway');
    const gw2 = h2;
    const options = own().options;
    const t = topology(options);
    const gateways = [{ name: 'gateway.hospital2 (in-process)', url: gw2.config.baseUrl.replace(/\/fhir$/, '') }];
    expect((await healthOf(gw2.config.baseUrl)).status, 'hospital2 gateway healthy before the fault').to.equal(200);

    // A record of hospital2's, created before the fault, to read during it.
    const own2 = await call(gw2, 'POST', '/Patient', h2Token, patient('before'));
    expect(own2.status, own2.text).to.equal(201);
    const own2Id = (own2.body as { id: string }).id;

    const watch = watchHealth(gw2.config.baseUrl);
    let faultAt = 0;
    let refused: { status: number; ms: number; code: string | undefined } | undefined;
    let readDuring: { status: number; ms: number } | undefined;
    let statusDuring: Awaited<ReturnType<typeof status>> = [];
    let restart: Promise<unknown> | undefined;
    let restartedAt = 0;
    let peerBackAt = 0;
    const count = 100;
    const killAt = 20;
    const restartAt = 75;
    const results = await writeLoad(h1, token, {
      count,
      intervalMs: 200,
      maxInFlight: 10,
      deadlineMs: 120_000,
      onStart: async (n) => {
        if (n === killAt) {
          faultAt = Date.now();
          expect(await stopNode(options, PEER, { kill: true }), `${PEER} was running`).to.equal(true);
        }
        if (n === killAt + 25) {
          // Not awaited: the load keeps its schedule. hospital2's gateway cannot anchor a write now.
          void (async () => {
            const started = Date.now();
            const res = await call(gw2, 'POST', '/Patient', h2Token, patient('refused'));
            const body = res.body as { issue?: Array<{ code?: string }> } | undefined;
            refused = { status: res.status, ms: Date.now() - started, code: body?.issue?.[0]?.code };
            // A read must be recorded on the ledger before anything is disclosed (sync audit mode): refused too.
            const readStarted = Date.now();
            const read = await call(gw2, 'GET', `/Patient/${own2Id}`, h2Token);
            readDuring = { status: read.status, ms: Date.now() - readStarted };
          })();
          statusDuring = await status(options, { gateways });
        }
        if (n === restartAt) {
          restartedAt = Date.now();
          restart = startNode(options, PEER).then(() => (peerBackAt = Date.now()));
        }
      },
    });
    await restart;

    // The gateway recovers by itself: healthy again, its view streaming and caught up with the peer.
    const recovered = await waitUntil(120_000, async () => {
      const h = await healthOf(gw2.config.baseUrl);
      return h.status === 200 && h.lagBlocks === 0 && h.fresh === true;
    });
    const recoveredAt = Date.now();
    await watch.stop();
    // The gateways keep writing in the background (async audit mode delivers its outbox every 200 ms), so a
    // peer or view may be one block behind at the instant of a status: sampled until both have caught up.
    const caughtUp = (rows: Awaited<ReturnType<typeof status>>): boolean =>
      rows.find((r) => r.name === PEER)?.lagBlocks === 0 && rows.find((r) => r.name === 'gateway.hospital2 (in-process)')?.lagBlocks === 0;
    let afterStatus = await status(options, { gateways });
    for (let i = 0; i < 20 && !caughtUp(afterStatus); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      afterStatus = await status(options, { gateways });
    }

    const s = summarize(results, faultAt);
    const acked = results.flatMap((r) => (r.id ? [r.id] : []));
    // Read from hospital2's own (restarted) peer: it caught up on the blocks ordered while it was down.
    const anchored = await anchoredOf(hospital2, acked);
    const unhealthy = watch.samples.filter((x) => x.at > faultAt && x.status !== 200);
    const firstUnhealthy = unhealthy[0];
    const backHealthy = watch.samples.find((x) => x.at > peerBackAt && x.status === 200);
    process.stderr.write(
      `      ${PEER} killed at write ${killAt} of ${count}, started again at write ${restartAt} (${((restartedAt - faultAt) / 1000).toFixed(1)} s later, healthy after ${peerBackAt - restartedAt} ms): ` +
        `hospital1 ${s.acknowledged} acknowledged, ${anchored.found} of them anchored (seen from hospital2's restarted peer), ${s.failed} not acknowledged (statuses ${JSON.stringify(s.statuses)}); ` +
        `longest stall under load ${s.stallMs} ms, slowest acknowledged write #${s.slowest?.n ?? '-'} took ${s.slowest?.ms ?? '-'} ms\n`,
    );
    process.stderr.write(`      hospital1 acknowledgements per 5 s from the fault: ${timeline(results, faultAt)}\n`);
    process.stderr.write(
      `      hospital2 gateway: unhealthy ${firstUnhealthy ? `${firstUnhealthy.at - faultAt} ms after the kill` : 'NEVER'} (${unhealthy.length} of ${watch.samples.length} samples); ` +
        `write during the outage answered ${refused?.status ?? '-'} (${refused?.code ?? '-'}) in ${refused?.ms ?? '-'} ms, a read ${readDuring?.status ?? '-'} in ${readDuring?.ms ?? '-'} ms; ` +
        `healthy again ${backHealthy ? `${backHealthy.at - peerBackAt} ms` : 'NOT'} after the peer was back; view caught up ${recovered ? `${recoveredAt - peerBackAt} ms` : 'NOT within 120 s'} after\n`,
    );
    process.stderr.write(`      status during the outage:\n${indent(formatStatus(statusDuring.filter((r) => r.kind !== 'ca')))}\n`);
    process.stderr.write(`      status after recovery:\n${indent(formatStatus(afterStatus.filter((r) => r.kind !== 'ca')))}\n`);

    // Nothing acknowledged is missing, and the other members kept endorsing: every write acknowledged.
    expect(anchored.missing, 'acknowledged but not on the ledger').to.deep.equal([]);
    expect(s.acknowledged, `acknowledged (statuses ${JSON.stringify(s.statuses)})`).to.equal(count);
    expect(s.slowest?.ms ?? 0, `slowest write #${s.slowest?.n ?? '-'}`).to.be.below(30_000);
    // hospital2's gateway said it was unhealthy, and refused what it could not do: a write it cannot anchor.
    expect(firstUnhealthy, 'hospital2 gateway reported unhealthy while its peer was down').to.not.equal(undefined);
    expect(refused?.status, 'a write at hospital2 during the outage').to.equal(503);
    expect(refused?.ms ?? Infinity, 'answered promptly').to.be.below(30_000);
    expect(readDuring?.status, 'a read at hospital2 during the outage (its access cannot be recorded)').to.equal(503);
    expect(readDuring?.ms ?? Infinity, 'answered promptly').to.be.below(30_000);
    expect(statusDuring.find((r) => r.name === PEER)).to.include({ running: false, healthy: false });
    expect(statusDuring.find((r) => r.name === 'gateway.hospital2 (in-process)')).to.include({ running: true, healthy: false });
    expect(statusDuring.find((r) => r.name === 'chaincode.hospital2')?.healthy, 'chaincode through the dead peer').to.equal(false);
    // ... and recovered by itself.
    expect(recovered, 'hospital2 gateway healthy with its view caught up').to.equal(true);
    // Promptly: gRPC reconnects at most 5 s apart, and the view reconnects once its peer answers.
    expect(backHealthy, 'hospital2 gateway healthy again').to.not.equal(undefined);
    expect((backHealthy?.at ?? Infinity) - peerBackAt, 'ms from the peer back to the gateway healthy').to.be.below(10_000);
    expect(recoveredAt - peerBackAt, 'ms from the peer back to the view caught up').to.be.below(15_000);
    expect(afterStatus.find((r) => r.name === PEER)).to.include({ running: true, healthy: true, lagBlocks: 0 });
    expect(afterStatus.find((r) => r.name === 'gateway.hospital2 (in-process)')).to.include({ healthy: true, lagBlocks: 0 });
    expect(afterStatus.filter((r) => r.kind === 'chaincode').every((r) => r.healthy)).to.equal(true);
    const again = await call(gw2, 'POST', '/Patient', h2Token, patient('after'));
    expect(again.status, again.text).to.equal(201);
    const readAgain = await call(gw2, 'GET', `/Patient/${own2Id}`, h2Token);
    expect(readAgain.status, readAgain.text).to.equal(200);
    // The refused write left nothing behind.
    const found = await call(gw2, 'GET', `/Patient?identifier=${encodeURIComponent(`urn:oid:1.2.36.146.595.217.0.1|PEERDOWN-${process.pid}-refused`)}`, h2Token);
    expect(found.status, found.text).to.equal(200);
    expect((found.body as { total?: number; entry?: unknown[] }).entry ?? []).to.have.length(0);
    expect(t.peers.map((p) => p.name)).to.include(PEER);
  });
});

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `        ${l}`)
    .join('\n');
}
