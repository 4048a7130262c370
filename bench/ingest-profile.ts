/**
 * Issue 11, ingest: where the time of one FHIR transaction Bundle of 500 Observations goes.
 *
 * 1. The chaincode alone (no network): hdx.record:AnchorBatch of 500 anchors on the chaincode's unit-test
 *    ledger (FakeLedger): its time and how many state reads and writes it does per anchor.
 * 2. A network of its own (.hdx/bench-ingest-profile, ports from HDX_BENCH_PORT_BASE, default 47000), the
 *    hospital1 gateway in this process: Bundles of 500 Observations (POST /fhir) from 1 sender, then from 4
 *    at once, in sync and then async audit mode. The gateway reports its phases through its opt-in timing
 *    hook (gateway/src/util/phase-timing.ts: off unless a sink is set); the peers' side comes from their
 *    Prometheus metrics (endorsement, the chaincode's state requests, block validation and commit), read
 *    before and after each row.
 *
 *   npm run bench -- ingest-profile
 *   HDX_BENCH_PROFILE_BUNDLES=4 HDX_BENCH_PROFILE_SENDERS=4 npm run bench -- ingest-profile
 *
 * It always stops and wipes its network. Progress goes to stderr, the tables to stdout.
 */
import './quiet-contracts';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RecordContract } from '@hdx/chaincode/dist/record-contract';
import { FakeLedger, FakeTx } from '@hdx/chaincode/dist/test-support/fake-ledger';
import { H1_GATEWAY } from '@hdx/chaincode/dist/test-support/registry';
import { defaultOptions, down, topology, up } from '@hdx/fabric-network';
import { generateDidKey, type Phase, setPhaseSink } from '@hdx/gateway';
import { httpCall } from '../test/support/fhir-client';
import { expectStatus, type Gw, log, observation, orgIdentities, percentile, printGrid, printTable, startOrgGateway } from './support';

const BUNDLE = 500;
/** Bundles one sender sends one after the other (after one warm-up Bundle). */
const SEQUENTIAL = Number(process.env.HDX_BENCH_PROFILE_BUNDLES ?? '6');
/** Senders at once, each sending PIPELINE_EACH Bundles. */
const SENDERS = Number(process.env.HDX_BENCH_PROFILE_SENDERS ?? '4');
const PIPELINE_EACH = Number(process.env.HDX_BENCH_PROFILE_EACH ?? '2');
/** AnchorBatch calls of 500 on the fake ledger. */
const CHAINCODE_ROUNDS = Number(process.env.HDX_BENCH_PROFILE_CC_ROUNDS ?? '20');
/** The gateway's ledger timeout: a Bundle of 500 on a busy 2-core machine can take longer than the default 15 s. */
const LEDGER_TIMEOUT_MS = process.env.HDX_LEDGER_TIMEOUT_MS ?? '60000';
const MODES = (process.env.HDX_BENCH_PROFILE_MODES ?? 'sync,async').split(',').filter((m) => m === 'sync' || m === 'async');
/**
 * How endorsers are found, each a gateway of its own: `plan`, the Fabric Gateway's plan (hospital1's peer
 * first, then another organization's); `named`, HDX_ENDORSING_ORGS=Hospital1MSP,Hospital2MSP (both at once).
 */
const VARIANTS = (process.env.HDX_BENCH_PROFILE_VARIANTS ?? 'plan,named').split(',').filter((v) => v === 'plan' || v === 'named');
const NAMED_ENDORSERS = 'Hospital1MSP,Hospital2MSP';

const ms = (t0: number): number => performance.now() - t0;
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');

function commitmentOf(i: number): string {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(i, 0);
  return b.toString('base64url');
}

// --- 1. The chaincode alone ---------------------------------------------------------------------------

interface ChaincodeFigures {
  median: number;
  p90: number;
  perCall: Record<string, number>;
  inputBytes: number;
  resultBytes: number;
  writeBytes: number;
}

/** AnchorBatch of 500 on FakeLedger: time per call and the stub calls it makes (counted on FakeTx). */
async function chaincodeAlone(): Promise<ChaincodeFigures> {
  const ledger = new FakeLedger();
  const contract = new RecordContract();
  const counts = new Map<string, number>();
  const proto = FakeTx.prototype as unknown as Record<string, unknown>;
  const counted = ['getState', 'putState', 'deleteState', 'getStateByPartialCompositeKey', 'getStateByRange', 'setEvent'];
  const originals = new Map<string, unknown>();
  for (const name of counted) {
    const original = proto[name];
    if (typeof original !== 'function') continue;
    originals.set(name, original);
    proto[name] = function (this: unknown, ...args: unknown[]): unknown {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  try {
    const patient = `pseudonym:${'ab'.repeat(32)}`;
    const batch = (round: number): string =>
      JSON.stringify(
        Array.from({ length: BUNDLE }, (_, i) => ({
          resourceType: 'Observation',
          id: `00000000-0000-4000-8000-${String(round * BUNDLE + i).padStart(12, '0')}`,
          versionId: '1',
          patient,
          lastUpdated: '2026-12-07T12:00:00.000Z',
          dataMonth: '2026-11',
          commitment: { alg: 'HMAC-SHA-256', value: commitmentOf(round * BUNDLE + i) },
        })),
      );
    // Warm-up (not counted).
    await ledger.invoke(H1_GATEWAY, (ctx) => contract.AnchorBatch(ctx, batch(1_000)));
    counts.clear();
    const times: number[] = [];
    let resultBytes = 0;
    let writeBytes = 0;
    const inputBytes = Buffer.byteLength(batch(0));
    for (let r = 0; r < CHAINCODE_ROUNDS; r++) {
      const input = batch(r);
      const t0 = performance.now();
      const result = await ledger.invoke(H1_GATEWAY, (ctx) => contract.AnchorBatch(ctx, input));
      times.push(ms(t0));
      resultBytes = Buffer.byteLength(result);
      writeBytes = [...(ledger.lastTx?.writes ?? new Map<string, Uint8Array | null>())].reduce((n, [k, v]) => n + Buffer.byteLength(k) + (v?.length ?? 0), 0);
    }
    times.sort((a, b) => a - b);
    const perCall: Record<string, number> = {};
    for (const [k, v] of counts) perCall[k] = v / CHAINCODE_ROUNDS;
    return { median: percentile(times, 50), p90: percentile(times, 90), perCall, inputBytes, resultBytes, writeBytes };
  } finally {
    for (const [name, original] of originals) proto[name] = original;
  }
}

// --- 2. Peer metrics ------------------------------------------------------------------------------------

type Metrics = Map<string, number>;

/** Every sample of a Prometheus text body: `name{labels}` → value. */
function parseMetrics(body: string): Metrics {
  const out: Metrics = new Map();
  for (const line of body.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([0-9.eE+-]+|NaN|\+Inf)$/.exec(line);
    if (m?.[1] && m[2]) out.set(m[1], Number(m[2]));
  }
  return out;
}

async function peerMetrics(peers: ReadonlyArray<{ name: string; host: string; operationsPort: number }>): Promise<Map<string, Metrics>> {
  const out = new Map<string, Metrics>();
  for (const p of peers) {
    const res = await fetch(`http://${p.host}:${p.operationsPort}/metrics`);
    out.set(p.name, parseMetrics(await res.text()));
  }
  return out;
}

/** The sum of `name` over samples whose labels contain every `filter` (`key="value"`), after − before. */
function delta(before: Metrics | undefined, after: Metrics | undefined, name: string, filters: readonly string[] = []): number {
  let sum = 0;
  for (const [k, v] of after ?? new Map<string, number>()) {
    const brace = k.indexOf('{');
    const metric = brace < 0 ? k : k.slice(0, brace);
    if (metric !== name) continue;
    if (!filters.every((f) => k.includes(f))) continue;
    sum += v - (before?.get(k) ?? 0);
  }
  return sum;
}

// --- 3. Ingest through the gateway ----------------------------------------------------------------------

interface Row {
  label: string;
  bundles: number;
  seconds: number;
  perBundleMs: number[];
  /** Phase (with detail) → total ms over the row. */
  phases: Map<string, number>;
  counts: Map<string, number>;
  peers: Map<string, { before: Metrics | undefined; after: Metrics | undefined }>;
}

function transaction(subject: string, base: number): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: BUNDLE }, (_, i) => ({ resource: observation(subject, base + i), request: { method: 'POST', url: 'Observation' } })),
  };
}

async function main(): Promise<void> {
  const runStart = Date.now();
  const loadBefore = os.loadavg();

  log(`chaincode alone: AnchorBatch of ${BUNDLE} on FakeLedger, ${CHAINCODE_ROUNDS} rounds`);
  const cc = await chaincodeAlone();

  const home = path.resolve('.hdx', 'bench-ingest-profile');
  const portBase = process.env.HDX_BENCH_PORT_BASE ?? '47000';
  const options = defaultOptions({ ...process.env, HDX_NETWORK_HOME: home, HDX_PORT_BASE: portBase });
  const peers = topology(options).peers.map((p) => ({ name: p.name, host: p.host, operationsPort: p.operationsPort }));
  const rows: Row[] = [];
  const notes: string[] = [];
  let gw: Gw | undefined;
  let upMs = 0;
  let current: Row | undefined;
  setPhaseSink((phase: Phase, t: number, detail?: string) => {
    if (!current) return;
    const key = detail === undefined ? phase : `${phase}:${detail}`;
    current.phases.set(key, (current.phases.get(key) ?? 0) + t);
    current.counts.set(key, (current.counts.get(key) ?? 0) + 1);
  });

  log(`network: ${home}, ports ${portBase}..${Number(portBase) + 109}`);
  await down(options, { wipe: true });
  try {
    const upStart = Date.now();
    const info = await up(options, (m) => log(m));
    upMs = Date.now() - upStart;
    const { staff, registerDid } = orgIdentities(info);
    const dr = generateDidKey();
    let serial = 0;
    let failures = 0;

    let registered = false;
    for (const mode of MODES)
      for (const variant of VARIANTS) {
        log(`hospital1 gateway, ${mode} audit mode, endorsers: ${variant}`);
        gw = await startOrgGateway(info, 'hospital1', {
          HDX_AUDIT_MODE: mode,
          HDX_LEDGER_TIMEOUT_MS: LEDGER_TIMEOUT_MS,
          ...(variant === 'named' ? { HDX_ENDORSING_ORGS: NAMED_ENDORSERS } : {}),
        });
        const g = gw;
        const tag = variant === 'named' ? ', endorsers named' : '';
        if (!registered) await registerDid(g, 'hospital1', 'practitioner', dr);
        registered = true;
        const token = staff(g, 'hospital1', { did: dr.did });
        const p = await httpCall(`${g.config.baseUrl}/Patient`, 'POST', token, { resourceType: 'Patient', name: [{ family: 'Profile', given: ['Ingest'] }] });
        expectStatus(p, 201, 'create Patient');
        const subject = `Patient/${String(p.body.id)}`;
        /** One Bundle: its round trip, or undefined (counted and noted) when the gateway did not answer 200. */
        const send = async (): Promise<number | undefined> => {
          const t0 = performance.now();
          let why: string;
          try {
            const r = await httpCall(g.config.baseUrl, 'POST', token, transaction(subject, (serial += BUNDLE)));
            if (r.status === 200) return ms(t0);
            why = `answered ${r.status}: ${r.text.slice(0, 200)}`;
          } catch (err) {
            // The connection failed (a reset, say): that Bundle's outcome is unknown to the client.
            why = `not answered: ${err instanceof Error ? `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}` : String(err)}`;
          }
          failures++;
          notes.push(`${mode}${tag}: a Bundle sent at ${(t0 / 1000).toFixed(1)} s of the process was ${why} after ${(ms(t0) / 1000).toFixed(1)} s`);
          return undefined;
        };
        log('warm-up Bundle');
        await send();

        const measure = async (label: string, senders: number, each: number): Promise<void> => {
          log(`${label}: ${senders} sender(s) × ${each} Bundle(s) of ${BUNDLE}`);
          const failedBefore = failures;
          const row: Row = { label, bundles: senders * each, seconds: 0, perBundleMs: [], phases: new Map(), counts: new Map(), peers: new Map() };
          const before = await peerMetrics(peers);
          current = row;
          const t0 = performance.now();
          await Promise.all(
            Array.from({ length: senders }, async () => {
              for (let b = 0; b < each; b++) {
                const t = await send();
                if (t !== undefined) row.perBundleMs.push(t);
              }
            }),
          );
          row.seconds = ms(t0) / 1000;
          current = undefined;
          // Throughput and means count the Bundles that were written (a failed one wrote nothing).
          row.bundles -= failures - failedBefore;
          const after = await peerMetrics(peers);
          for (const peer of peers) row.peers.set(peer.name, { before: before.get(peer.name), after: after.get(peer.name) });
          row.perBundleMs.sort((a, b) => a - b);
          rows.push(row);
        };
        await measure(`${mode}, 1 sender${tag}`, 1, SEQUENTIAL);
        await measure(`${mode}, ${SENDERS} senders${tag}`, SENDERS, PIPELINE_EACH);
        await g.gateway.close();
        gw = undefined;
      }
  } finally {
    setPhaseSink(undefined);
    await gw?.gateway.close().catch(() => {});
    log('stopping and wiping the network');
    await down(options, { wipe: true });
  }

  // --- Tables ---
  printTable(`hdx.record:AnchorBatch of ${BUNDLE} on the chaincode's FakeLedger (no network), ${CHAINCODE_ROUNDS} calls`, [
    ['time per call', `median ${f1(cc.median)} ms, p90 ${f1(cc.p90)} ms (${f1((cc.median / BUNDLE) * 1000)} µs per anchor)`],
    ...Object.entries(cc.perCall).map(([k, v]): [string, string] => [`${k} per call`, `${v.toFixed(0)} (${(v / BUNDLE).toFixed(2)} per anchor)`]),
    ['argument (anchors JSON)', `${(cc.inputBytes / 1024).toFixed(0)} KiB`],
    ['result (stored anchors JSON)', `${(cc.resultBytes / 1024).toFixed(0)} KiB`],
    ['write set (keys + values)', `${(cc.writeBytes / 1024).toFixed(0)} KiB`],
  ]);

  const get = (r: Row, key: string): number => r.phases.get(key) ?? 0;
  const per = (r: Row, total: number): string => f1(total / r.bundles);
  const anchorTx = (r: Row, phase: string): number => get(r, `${phase}:AnchorBatch`) + get(r, `${phase}:AnchorAndRecord`) + get(r, `${phase}:Anchor`);
  const lines: Array<[string, (r: Row) => number]> = [
    ['body parse (JSON)', (r) => get(r, 'parse')],
    ['FHIR validation (Bundle)', (r) => get(r, 'validate:bundle')],
    ['FHIR validation (500 entries)', (r) => get(r, 'validate:resource')],
    ['write plan (rest)', (r) => get(r, 'plan') - get(r, 'validate:resource') - get(r, 'index') - get(r, 'commitment')],
    ['commitments + anchor inputs', (r) => get(r, 'commitment')],
    ['search indexing', (r) => get(r, 'index')],
    ['pending check (earlier writes)', (r) => get(r, 'pending-check')],
    ['store pending write', (r) => get(r, 'store-pending')],
    ['ledger: endorsement (anchors)', (r) => anchorTx(r, 'endorse')],
    ['ledger: order + commit wait (anchors)', (r) => anchorTx(r, 'commit-wait')],
    ['mark anchored', (r) => get(r, 'mark-anchored')],
    ['audit (change entries)', (r) => get(r, 'audit')],
  ];
  const header = ['phase (ms per Bundle, mean)', ...rows.map((r) => r.label)];
  const grid: string[][] = lines.map(([name, f]) => [name, ...rows.map((r) => per(r, f(r)))]);
  const sumOf = (r: Row): number => lines.reduce((n, [, f]) => n + f(r), 0);
  const mean = (r: Row): number => r.perBundleMs.reduce((a, b) => a + b, 0) / r.perBundleMs.length;
  grid.push(['sum of the phases', ...rows.map((r) => per(r, sumOf(r)))]);
  grid.push(['Bundle round trip at the client (mean)', ...rows.map((r) => f1(mean(r)))]);
  grid.push(['  rest: HTTP, response, waiting for the event loop', ...rows.map((r) => f1(mean(r) - sumOf(r) / r.bundles))]);
  grid.push(['Bundle round trip p50 / max', ...rows.map((r) => `${f1(percentile(r.perBundleMs, 50))} / ${f1(r.perBundleMs[r.perBundleMs.length - 1] ?? NaN)}`)]);
  grid.push(['throughput (resources/s)', ...rows.map((r) => Math.round((r.bundles * BUNDLE) / r.seconds).toLocaleString('en-US'))]);
  grid.push(['Bundles', ...rows.map((r) => `${r.bundles} in ${r.seconds.toFixed(1)} s`)]);
  // Other ledger transactions during the row (the async outbox's RecordAccessBatch, say).
  const others = new Set<string>();
  for (const r of rows) for (const k of r.phases.keys()) if (/^(endorse|commit-wait):/.test(k) && !/:(AnchorBatch|AnchorAndRecord|Anchor)$/.test(k)) others.add(k);
  for (const k of [...others].sort()) grid.push([`other ledger: ${k} (n)`, ...rows.map((r) => `${per(r, get(r, k))} (${r.counts.get(k) ?? 0})`)]);
  printGrid('Where one Bundle of 500 Observations spends its time (the gateway, hospital1)', header, grid);

  // Peer side, per Bundle: endorsement and the chaincode's state requests, block validation + commit.
  const peerGrid: string[][] = [];
  for (const peer of peers) {
    const cells = (f: (b: Metrics | undefined, a: Metrics | undefined, r: Row) => string): string[] => [
      ...rows.map((r) => {
        const m = r.peers.get(peer.name);
        return f(m?.before, m?.after, r);
      }),
    ];
    const ratio = (n: number, d: number): string => (d > 0 ? f1((n / d) * 1000) : '-');
    peerGrid.push([
      `${peer.name}: proposals endorsed / Bundle`,
      ...cells((b, a, r) => (delta(b, a, 'endorser_proposal_duration_count', ['channel="hdx"']) / r.bundles).toFixed(2)),
    ]);
    peerGrid.push([
      `${peer.name}: endorsement ms / proposal`,
      ...cells((b, a) => ratio(delta(b, a, 'endorser_proposal_duration_sum', ['channel="hdx"']), delta(b, a, 'endorser_proposal_duration_count', ['channel="hdx"']))),
    ]);
    for (const type of ['GET_STATE', 'PUT_STATE']) {
      peerGrid.push([
        `${peer.name}: ${type} requests / Bundle (ms each)`,
        ...cells(
          (b, a, r) =>
            `${(delta(b, a, 'chaincode_shim_request_duration_count', [`type="${type}"`]) / r.bundles).toFixed(0)} (${ratio(
              delta(b, a, 'chaincode_shim_request_duration_sum', [`type="${type}"`]),
              delta(b, a, 'chaincode_shim_request_duration_count', [`type="${type}"`]),
            ).replace(/^(\d+\.\d).*/, '$1')} ms)`,
        ),
      ]);
    }
    peerGrid.push([
      `${peer.name}: block validation + commit ms / block (blocks)`,
      ...cells(
        (b, a) =>
          `${ratio(delta(b, a, 'ledger_block_processing_time_sum', ['channel="hdx"']), delta(b, a, 'ledger_block_processing_time_count', ['channel="hdx"']))} (${delta(
            b,
            a,
            'ledger_block_processing_time_count',
            ['channel="hdx"'],
          )})`,
      ),
    ]);
  }
  printGrid('The peers, per row (their Prometheus metrics, after − before)', ['measure', ...rows.map((r) => r.label)], peerGrid);

  const cpu = os.cpus();
  printTable('settings', [
    [
      'network',
      `${options.orderers} Raft orderer(s), BatchTimeout ${options.batchTimeout}, MaxMessageCount ${options.maxMessageCount}, endorsement MAJORITY of 3 orgs, TLS, native processes, ports ${portBase}..${Number(portBase) + 109}`,
    ],
    [
      'gateway',
      `hospital1, in this Node process (the client shares its event loop), SQLite store, log level warn, HDX_LEDGER_TIMEOUT_MS ${LEDGER_TIMEOUT_MS}; phases from its timing hook (setPhaseSink)`,
    ],
    [
      'ingest',
      `transaction Bundles of ${BUNDLE} Observations of one patient (POST /fhir): 1 warm-up Bundle, then ${SEQUENTIAL} from 1 sender, then ${SENDERS} senders × ${PIPELINE_EACH}; both modes: AnchorAndRecord (the anchors and the change entries in one transaction)`,
    ],
    ['endorsers', `plan: the Fabric Gateway plans (its own peer first, then the others); endorsers named: HDX_ENDORSING_ORGS=${NAMED_ENDORSERS}, asked at once`],
    ['phases', 'means over the Bundles of the row; with several senders the Bundles overlap, so the phases of one Bundle add up to more than the wall time per Bundle'],
    ['machine', `${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), Node ${process.versions.node}, ${os.platform()}/${os.arch()}`],
    [
      'load average (1/5/15 min)',
      `before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    ],
    ['network up', `${(upMs / 1000).toFixed(1)} s`],
    ['whole run', `${((Date.now() - runStart) / 1000).toFixed(0)} s`],
    ...notes.map((n, i): [string, string] => [`note ${i + 1}`, n]),
  ]);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
