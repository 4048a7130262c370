/**
 * `npm run bench -- read-path` (issue 11, "decisions at store speed"): where a consent-checked read
 * spends its time beyond the store, without a Fabric network.
 *
 * The gateway's HTTP app in this process, wired as server.ts wires it in the default mode (async audit,
 * local decisions): the real token verifier with an identity provider key (one reused IdP token, as
 * bench/exchange.ts reads), the real ResourceService and AccessControl, metrics, the real ledger view
 * (ViewStore, an SQLite file, and LedgerView following a FakePeer's committed blocks), LocalDecisions on
 * it, and the real outbox (AuditOutbox on its SQLite file, WAL, synchronous FULL). The ledger behind it
 * is the REAL hdx contracts in memory (ContractLedger): DIDs, the Patient and the Observations are
 * registered and anchored through them, then their whole state is committed as a block the view
 * applies. The outbox delivers to a FakeLedger (the in-memory chaincode would put its own cost in the
 * gateway's process; Fabric puts it on the peers).
 *
 * Rows, HDX_BENCH_READ_SECONDS (10) each, at 1 and 8 clients: GET /fhir/Observation/:id as the
 * hospital1 practitioner, and the store-only route (SqliteStore.readCurrent + the stored JSON, as in
 * bench/exchange.ts) on the same file, side by side with the ratio. Ledger calls during the read rows
 * are counted: a fresh view must decide every read (0 EvaluateAccess). Then a CPU profile (node:inspector)
 * of HDX_BENCH_READ_PROFILE_SECONDS (5) of consent-checked reads at 8 clients, its top self-time
 * functions. Progress goes to stderr, the tables to stdout.
 */
import './quiet-contracts';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import express from 'express';
import { H1_GATEWAY, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import { AuditOutbox } from '../gateway/src/audit/outbox';
import { SqliteOutboxQueue } from '../gateway/src/audit/outbox-queue';
import { signIdpToken } from '../gateway/src/auth/issue';
import { authenticate } from '../gateway/src/auth/middleware';
import { SqliteJtiStore } from '../gateway/src/auth/replay';
import { AuditService } from '../gateway/src/fhir/audit-events';
import { ConsentService } from '../gateway/src/fhir/consent-service';
import { DID_IDENTIFIER_SYSTEM, ResourceService } from '../gateway/src/fhir/resource-service';
import { createApp } from '../gateway/src/http/app';
import type { LedgerClient } from '../gateway/src/ledger/ledger-client';
import { ForegroundWrites } from '../gateway/src/ledger/foreground';
import { newLogger } from '../gateway/src/logger';
import { createMetrics, instrumentLedger } from '../gateway/src/metrics';
import { SqliteStore } from '../gateway/src/store/sqlite-store';
import { FakePeer } from '../gateway/src/test-support/blocks';
import { ChaincodeLedger, ContractLedger } from '../gateway/src/test-support/contract-ledger';
import { FakeLedger } from '../gateway/src/test-support/fake-ledger';
import { LedgerView } from '../gateway/src/view/ledger-view';
import { LocalDecisions, notingDecisionInputs, ViewFacts, viewHealth } from '../gateway/src/view/local-decisions';
import { ViewStore } from '../gateway/src/view/view-store';
import { load, type LoadResult, log, percentile, printGrid, printTable } from './support';

const SECONDS = Number(process.env.HDX_BENCH_READ_SECONDS ?? 10);
const PROFILE_SECONDS = Number(process.env.HDX_BENCH_READ_PROFILE_SECONDS ?? 5);
const RESOURCES = 100;
const CONCURRENCY = [1, 8] as const;
const H1 = 'Hospital1MSP';
const BASE = 'http://127.0.0.1:8080/fhir';
const FHIR = 'application/fhir+json';
const TOP = 25;

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');
const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Every ledger call by method name: a Proxy that counts, then calls the target. */
function counting<L extends object>(target: L, calls: Map<string, number>): L {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const value: unknown = Reflect.get(t, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
}

async function listen(app: http.RequestListener): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(app);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Self time per function (name, file:line) of a V8 CPU profile, largest first. */
function selfTimes(profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] }): Array<{ name: string; where: string; share: number }> {
  const parents = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node);
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  // The profiler's own work (Profiler.start and .stop, under node:inspector's post) is left out.
  const profilerOwn = (id: number): boolean => {
    for (let n = nodes.get(id); n; n = parents.get(n.id)) if (n.callFrame.url === 'node:inspector') return true;
    return false;
  };
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  samples.forEach((id, i) => {
    if (!profilerOwn(id)) byNode.set(id, (byNode.get(id) ?? 0) + (deltas[i] ?? 0));
  });
  const total = [...byNode.values()].reduce((a, b) => a + b, 0) || 1;
  const root = path.resolve(__dirname, '..');
  const whereOf = (node: ProfileNode): string => {
    const file = node.callFrame.url.replace(/^file:\/\//, '').replace(`${root}/`, '');
    return file ? `${file}:${node.callFrame.lineNumber + 1}` : '';
  };
  const byFunction = new Map<string, { name: string; where: string; time: number }>();
  for (const node of profile.nodes) {
    const time = byNode.get(node.id) ?? 0;
    if (time === 0) continue;
    const name = node.callFrame.functionName || '(anonymous)';
    // A native function (no file: better-sqlite3's run/get/all, a socket write, ...) is named by its JavaScript caller.
    let caller = parents.get(node.id);
    while (caller && !whereOf(caller) && caller.callFrame.functionName !== '(root)') caller = parents.get(caller.id);
    const where = whereOf(node) || (caller && whereOf(caller) ? `native, called by ${caller.callFrame.functionName || '(anonymous)'} ${whereOf(caller)}` : '');
    const key = `${name} ${where}`;
    const entry = byFunction.get(key) ?? { name, where, time: 0 };
    entry.time += time;
    byFunction.set(key, entry);
  }
  return [...byFunction.values()].sort((a, b) => b.time - a.time).map((e) => ({ name: e.name, where: e.where, share: e.time / total }));
}

async function main(): Promise<void> {
  const started = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-read-path-'));
  const closers: Array<() => unknown> = [];
  try {
    // --- The ledger: the real contracts in memory; every call counted ---
    const chain = new ChaincodeLedger();
    const calls = new Map<string, number>();
    const contracts = counting(new ContractLedger(H1, { chain }), calls);
    const doctor = await registerDid(chain, 'practitioner', H1_GATEWAY);
    const patient = await registerDid(chain, 'patient');

    // --- The gateway, as server.ts wires it in async audit mode with local decisions ---
    const logger = newLogger('warn');
    const metrics = createMetrics();
    const foreground = new ForegroundWrites();
    const ledger: LedgerClient = foreground.track(instrumentLedger(contracts, metrics));
    const store = new SqliteStore(path.join(dir, 'hdx.db'));
    closers.push(() => store.close());
    const viewStore = new ViewStore(path.join(dir, 'ledger-view.db'), { channel: 'hdx', namespace: 'hdx' });
    const peer = new FakePeer();
    const view = new LedgerView({ store: viewStore, source: peer, namespace: 'hdx', log: logger });
    closers.push(async () => {
      await view.stop();
      viewStore.close();
    });
    const viewFacts = new ViewFacts(viewStore);
    const localDecisions = new LocalDecisions({ store: viewStore, freshness: view, mspId: H1, facts: viewFacts });
    const noted = notingDecisionInputs(ledger, localDecisions);
    const delivered = new Map<string, number>();
    // The queue AuditOutbox would open on this file, made here to count its disk flushes.
    const queue = new SqliteOutboxQueue(path.join(dir, 'outbox.db'));
    const outbox = new AuditOutbox({
      queue,
      ledger: counting(new FakeLedger(), delivered),
      log: logger,
      changes: store,
      flushMs: 200,
      batchSize: 100,
      inFlight: 4,
      busy: () => foreground.busy(),
    });
    closers.push(() => outbox.close());
    const resources = new ResourceService({ store, ledger: noted, log: logger, mspId: H1, auditSink: outbox, localDecisions, viewAnchors: viewFacts });
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jti = new SqliteJtiStore(path.join(dir, 'tokens.db'));
    closers.push(() => jti.close());
    const issuer = 'https://idp.hospital1.hdx.test';
    const app = createApp({
      config: { baseUrl: BASE, mspId: H1 },
      log: logger,
      resources,
      consents: new ConsentService(noted),
      audit: new AuditService(ledger),
      ledger: noted,
      store,
      authenticate: authenticate({
        audience: BASE,
        mspId: H1,
        idp: { issuer, audience: BASE, keys: [{ key: idp.publicKey }] },
        resolveDid: (did) => ledger.resolveDid(did),
        jtiStore: jti,
        subjectLinkSecret: randomBytes(32),
      }),
      metrics,
      outbox,
      idpIssuer: issuer,
      rateLimits: { perIdentity: 1_000_000, perIp: 1_000_000 },
      ledgerView: { health: () => viewHealth(view, 1_500, 'local') },
    });
    const gateway = await listen(app);
    closers.push(() => gateway.close());
    outbox.start();
    const token = signIdpToken({
      key: idp.privateKey,
      issuer,
      audience: BASE,
      subject: 'bench-practitioner-hospital1',
      role: 'practitioner',
      scope: 'user/*.*',
      purposeOfUse: 'TREAT',
      did: doctor.did,
    });

    // --- The Patient and the read set, one transaction Bundle, anchored through the contracts ---
    log(`a Patient and ${RESOURCES} Observations through the app (anchored by the contracts in memory)`);
    const patientUrl = 'urn:uuid:8d4c2f0e-1b7a-4c55-9a9e-2f6b1c3d4e5f';
    const entry = [
      {
        fullUrl: patientUrl,
        resource: { resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patient.did }], gender: 'female', birthDate: '1970-01-01' },
        request: { method: 'POST', url: 'Patient' },
      },
      ...Array.from({ length: RESOURCES }, (_, j) => ({
        resource: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
          subject: { reference: patientUrl },
          effectiveDateTime: new Date(Date.UTC(2026, 0, 1) + j * 3_600_000).toISOString(),
          valueQuantity: { value: 60 + (j % 40), unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
        },
        request: { method: 'POST', url: 'Observation' },
      })),
    ];
    const posted = await fetch(`http://127.0.0.1:${gateway.port}/fhir`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': FHIR },
      body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }),
    });
    const bundle = (await posted.json()) as { entry?: Array<{ response: { location: string } }> };
    if (posted.status !== 200) throw new Error(`the transaction Bundle: ${posted.status} ${JSON.stringify(bundle).slice(0, 500)}`);
    const readSet = (bundle.entry ?? [])
      .map((e) => e.response.location.split('/'))
      .filter((p) => p[0] === 'Observation')
      .map((p) => p[1] as string);
    if (readSet.length !== RESOURCES) throw new Error(`expected ${RESOURCES} Observations, got ${readSet.length}`);

    // --- The view: the contracts' whole state as one committed block, then fresh ---
    peer.commit([{ txId: 'state', writes: { hdx: [...chain.state.entries()].map(([key, value]) => ({ key, value })) } }]);
    view.start();
    await view.waitForHeight(1n, 10_000);
    const freshBy = Date.now() + 10_000;
    while (!localDecisions.fresh() && Date.now() < freshBy) await new Promise((r) => setTimeout(r, 100));
    if (!localDecisions.fresh()) throw new Error('the ledger view did not become fresh');

    // --- The store-only route on the same file ---
    const baselineStore = new SqliteStore(path.join(dir, 'hdx.db'));
    closers.push(() => baselineStore.close());
    const plain = express();
    plain.get('/fhir/:type/:id', async (req, res) => {
      const v = await baselineStore.readCurrent(String(req.params.type), String(req.params.id));
      if (!v || v.deleted || v.state !== 'anchored') res.status(404).end();
      else res.type(FHIR).send(v.content);
    });
    const baseline = await listen(plain);
    closers.push(() => baseline.close());

    const hdxUrl = (i: number): string => `http://127.0.0.1:${gateway.port}/fhir/Observation/${readSet[i % RESOURCES] as string}`;
    const storeUrl = (i: number): string => `http://127.0.0.1:${baseline.port}/fhir/Observation/${readSet[i % RESOURCES] as string}`;
    log('warm-up, 2 s each');
    await load(2, 2, hdxUrl, () => token);
    await load(2, 2, storeUrl, () => undefined);

    const results: Array<{ c: number; hdx: LoadResult; base: LoadResult }> = [];
    calls.clear();
    const stats0 = { ...localDecisions.stats };
    const commits0 = { ...outbox.commits };
    const flushes0 = queue.wal?.flushes ?? 0;
    for (const c of CONCURRENCY) {
      log(`consent-checked reads, ${c} client(s), ${SECONDS} s`);
      const hdx = await load(c, SECONDS, hdxUrl, () => token);
      log(`store-only reads, ${c} client(s), ${SECONDS} s`);
      const base = await load(c, SECONDS, storeUrl, () => undefined);
      results.push({ c, hdx, base });
    }
    const readCalls = new Map(calls);
    const local = localDecisions.stats.local - stats0.local;
    const stale = localDecisions.stats.stale - stats0.stale;
    const undecidable = localDecisions.stats.undecidable - stats0.undecidable;
    const commits = { transactions: outbox.commits.transactions - commits0.transactions, records: outbox.commits.records - commits0.records };
    const flushes = (queue.wal?.flushes ?? 0) - flushes0;
    const reads = results.reduce((sum, r) => sum + r.hdx.ok + r.hdx.errors, 0);

    log(`CPU profile of ${PROFILE_SECONDS} s of consent-checked reads at 8 clients`);
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    const profiled = await load(8, PROFILE_SECONDS, hdxUrl, () => token);
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] } };
    session.disconnect();
    if (process.env.HDX_BENCH_READ_CPUPROFILE) fs.writeFileSync(process.env.HDX_BENCH_READ_CPUPROFILE, JSON.stringify(profile));

    const failures = results.flatMap((r) => [r.hdx, r.base]).filter((r) => r.errors > 0);
    printGrid(
      `HDX read path (issue 11), ${new Date().toISOString().slice(0, 16)}Z`,
      ['clients', 'consent-checked reads/s', 'p50', 'p99', 'CPU/read', 'store-only reads/s', 'p50', 'p99', 'CPU/read', 'ratio'],
      results.map(({ c, hdx, base }) => [
        String(c),
        int(hdx.ok / hdx.seconds),
        `${f2(percentile(hdx.sorted, 50))} ms`,
        `${f1(percentile(hdx.sorted, 99))} ms`,
        `${f2(hdx.cpuMs)} ms`,
        int(base.ok / base.seconds),
        `${f2(percentile(base.sorted, 50))} ms`,
        `${f1(percentile(base.sorted, 99))} ms`,
        `${f2(base.cpuMs)} ms`,
        `${f2(hdx.ok / hdx.seconds / (base.ok / base.seconds))}x`,
      ]),
    );
    const top = selfTimes(profile).slice(0, TOP);
    printGrid(
      `CPU profile: top ${TOP} functions by self time, consent-checked reads at 8 clients (${int(profiled.ok / profiled.seconds)} reads/s while profiled)`,
      ['self', 'function', 'where'],
      top.map((t) => [`${(t.share * 100).toFixed(1)}%`, t.name, t.where]),
    );
    const evaluateAccess = readCalls.get('evaluateAccess') ?? 0;
    const outboxStats = await outbox.stats();
    printTable('Settings and checks', [
      ['rows', `${SECONDS} s each at ${CONCURRENCY.join(' and ')} clients after 2 s of warm-up; ${RESOURCES} Observations read round-robin`],
      ['consent-checked', `GET /fhir/Observation/:id, hospital1 practitioner, one reused IdP token (ES256), async audit, local decisions`],
      ['CPU/read', "this process's CPU time (user + system) per request: the gateway or the plain route AND the load generator (fetch), which share the process"],
      ['store-only', 'plain Express route: SqliteStore.readCurrent + the stored JSON on the same file, no token, consent, audit or anchor check'],
      ['decisions during the rows', `${int(local)} on the view, ${int(stale)} stale, ${int(undecidable)} undecidable, for ${int(reads)} reads`],
      ['ledger calls during the rows', readCalls.size === 0 ? 'none' : [...readCalls.entries()].map(([k, v]) => `${k} ${v}`).join(', ')],
      [
        'outbox group commits',
        `${int(commits.transactions)} transactions for ${int(commits.records)} reads' entries (${f2(commits.records / commits.transactions)} a transaction), ${int(flushes)} disk flushes (${f2(commits.records / Math.max(1, flushes))} reads' entries a flush)`,
      ],
      ['outbox', `${int(outboxStats.pending)} pending at the end, ${int(delivered.get('recordAccess') ?? 0)} recordAccess deliveries to the FakeLedger in the run`],
      ['failed requests', failures.length === 0 ? 'none' : failures.map((r) => `${r.errors} (${r.firstError ?? ''})`).join('; ')],
      [
        'machine',
        `${os.cpus().length} cores, load average ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}, Node ${process.version}`,
      ],
      ['took', `${((Date.now() - started) / 1000).toFixed(0)} s`],
    ]);
    if (evaluateAccess > 0 || stale > 0 || undecidable > 0)
      throw new Error(`a fresh view must decide every read: ${evaluateAccess} EvaluateAccess calls, ${stale} stale, ${undecidable} undecidable`);
    if (failures.length > 0) throw new Error('some reads failed (above)');
  } finally {
    for (const close of closers.reverse()) await close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
