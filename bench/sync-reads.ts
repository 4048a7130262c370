/**
 * Sync audit mode, where a consent-checked read waits for its access entry's commit: what the group
 * commit's settings (HDX_GROUP_COMMIT_IN_FLIGHT, HDX_GROUP_COMMIT_LINGER_MS) and the orderer's block
 * cutting (HDX_MAX_MESSAGE_COUNT, given to the launcher) do to reads/s and latency, side by side.
 *
 * It starts its own network (.hdx/bench-sync-reads, ports from HDX_BENCH_PORT_BASE, default 38000),
 * the hospital1 gateway in this process, a patient and 100 Observations, then for each setting restarts
 * the gateway with it and reads `GET /fhir/Observation/:id` at 1 and 32 clients. Per row it also gives
 * the gateway's own timing of the ledger transactions (endorsement, then order and commit wait; from
 * its opt-in phase hook). The network is always stopped and wiped.
 *
 *   npm run bench -- sync-reads
 *   HDX_MAX_MESSAGE_COUNT=100 npm run bench -- sync-reads        (blocks cut by BatchTimeout)
 *   HDX_BENCH_SYNC_SETTINGS=4:0,4:5,8:5 (in-flight:linger ms), HDX_BENCH_SECONDS (12)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultOptions, down, up } from '@hdx/fabric-network';
import { httpCall } from '../test/support/fhir-client';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, type Phase, setPhaseSink } from '@hdx/gateway';
import { expectStatus, type Gw, load, log, observation, orgIdentities, percentile, printGrid, printTable, startOrgGateway } from './support';

const SECONDS = Number(process.env.HDX_BENCH_SECONDS ?? '12');
const SETTINGS = (process.env.HDX_BENCH_SYNC_SETTINGS ?? '4:0,4:5,8:5').split(',').map((s) => {
  const [inFlight = '4', linger = '0'] = s.split(':');
  return { inFlight, linger };
});
const CONCURRENCY = [1, 32];

const mean = (xs: readonly number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

async function main(): Promise<void> {
  const started = Date.now();
  const home = path.resolve('.hdx', 'bench-sync-reads');
  const portBase = process.env.HDX_BENCH_PORT_BASE ?? '38000';
  const options = defaultOptions({ ...process.env, HDX_NETWORK_HOME: home, HDX_PORT_BASE: portBase });
  const rows: string[][] = [];
  let gw: Gw | undefined;
  await down(options, { wipe: true });
  try {
    const info = await up(options, (m) => log(m));
    const { staff, registerDid } = orgIdentities(info);
    const patientKey = generateDidKey();
    const dr = generateDidKey();
    gw = await startOrgGateway(info, 'hospital1', { HDX_AUDIT_MODE: 'sync' });
    await registerDid(gw, 'hospital1', 'patient', patientKey);
    await registerDid(gw, 'hospital1', 'practitioner', dr);
    const setupToken = staff(gw, 'hospital1', { did: dr.did });
    const p = await httpCall(`${gw.config.baseUrl}/Patient`, 'POST', setupToken, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
    });
    expectStatus(p, 201, 'create the Patient');
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: Array.from({ length: 100 }, (_, i) => ({ resource: observation(`Patient/${String(p.body.id)}`, i), request: { method: 'POST', url: 'Observation' } })),
    };
    const r = await httpCall(gw.config.baseUrl, 'POST', setupToken, bundle);
    expectStatus(r, 200, 'create the read set');
    const ids = (r.body.entry as Array<{ resource: { id: string } }>).map((e) => e.resource.id);

    for (const { inFlight, linger } of SETTINGS) {
      await gw.gateway.close();
      gw = await startOrgGateway(info, 'hospital1', { HDX_AUDIT_MODE: 'sync', HDX_GROUP_COMMIT_IN_FLIGHT: inFlight, HDX_GROUP_COMMIT_LINGER_MS: linger });
      const g = gw;
      const token = staff(g, 'hospital1', { did: dr.did });
      const url = (i: number): string => `${g.config.baseUrl}/Observation/${ids[i % ids.length] ?? ''}`;
      await load(4, 2, url, () => token); // warm-up
      for (const c of CONCURRENCY) {
        log(`sync reads, in flight ${inFlight}, linger ${linger} ms, ${c} clients, ${SECONDS} s`);
        const phases = new Map<string, number[]>();
        setPhaseSink((phase: Phase, ms: number, detail?: string) => {
          if (phase !== 'endorse' && phase !== 'commit-wait') return;
          const key = `${phase}:${detail === 'AuthorizeAndRecordBatch' ? 'batch' : 'single'}`;
          phases.set(key, [...(phases.get(key) ?? []), ms]);
        });
        const res = await load(c, SECONDS, url, () => token);
        setPhaseSink(undefined);
        const batches = phases.get('endorse:batch') ?? [];
        const singles = phases.get('endorse:single') ?? [];
        const endorse = [...batches, ...singles];
        const commit = [...(phases.get('commit-wait:batch') ?? []), ...(phases.get('commit-wait:single') ?? [])];
        rows.push([
          `${inFlight} / ${linger} ms`,
          String(c),
          `${(res.ok / res.seconds).toFixed(1)} reads/s`,
          `${percentile(res.sorted, 50).toFixed(1)} ms`,
          `${percentile(res.sorted, 99).toFixed(1)} ms`,
          `${singles.length} + ${batches.length}`,
          `${(res.ok / Math.max(1, endorse.length)).toFixed(1)}`,
          `${mean(endorse).toFixed(1)} ms`,
          `${mean(commit).toFixed(1)} ms`,
          res.errors > 0 ? `${res.errors} errors, first: ${res.firstError ?? ''}` : '',
        ]);
      }
    }
  } finally {
    setPhaseSink(undefined);
    if (gw) await gw.gateway.close();
    log('stopping and wiping the network');
    await down(options, { wipe: true });
  }
  printGrid(
    'Sync audit mode: consent-checked reads (GET /fhir/Observation/:id, decided and recorded by the chaincode, committed before the answer)',
    [
      'in flight / linger',
      'clients',
      'throughput',
      'p50',
      'p99',
      'transactions (single + batch)',
      'reads per transaction',
      'endorse (mean)',
      'order + commit wait (mean)',
      'errors',
    ],
    rows,
  );
  printTable('settings', [
    [
      'network',
      `${options.orderers} ${options.consensus === 'bft' ? 'SmartBFT' : 'Raft'} orderer(s), BatchTimeout ${options.batchTimeout}, MaxMessageCount ${options.maxMessageCount}, endorsement MAJORITY of 3 orgs, TLS`,
    ],
    ['gateway', 'hospital1, in this Node process (the load generator shares its event loop), SQLite store, HDX_AUDIT_MODE=sync'],
    ['in flight / linger', 'HDX_GROUP_COMMIT_IN_FLIGHT / HDX_GROUP_COMMIT_LINGER_MS (the gateway restarted for each)'],
    ['reads', `100 Observations of one patient, ${SECONDS} s per row, a hospital1 practitioner with one reused identity-provider token`],
    [
      'machine',
      `${os.cpus().length} cores, Node ${process.versions.node}, load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} at the end`,
    ],
    ['whole run', `${Math.round((Date.now() - started) / 1000)} s`],
  ]);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
