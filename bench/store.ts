/**
 * `npm run bench -- store` (issue 14): reads, searches and ingest on PostgreSQL beside SQLite, in one run.
 *
 * The gateway's HTTP app (testApp: the real Express app, ResourceService, AccessControl) over the
 * gateway's FakeLedger (no Fabric network, no ordering latency: what is left is the gateway and its
 * store). HDX_BENCH_STORE_LEDGER=contract runs the ContractLedger instead (the REAL chaincode contracts
 * in memory), but the chaincode's in-memory test ledger sorts all its keys on every range query, so its
 * cost grows with every anchor and access entry the run adds and hides the store's. Callers come in
 * through the unit tests' x-test-auth header (fakeAuthenticate): no token is verified. The same workload runs on SqliteStore (a file in a temporary folder) and on PgStore (a
 * PostgreSQL cluster this benchmark starts in a temporary folder on a free port, and always stops):
 *
 *  - ingest: HDX_BENCH_STORE_PATIENTS (10) generated Patients with HDX_BENCH_STORE_OBSERVATIONS (1,000)
 *    Observations each, as FHIR transaction Bundles of 500 (POST /fhir), one after the other;
 *  - reads: GET /fhir/Observation/:id at concurrency 1 and 16, HDX_BENCH_STORE_SECONDS (8) each;
 *  - searches, HDX_BENCH_STORE_SEARCHES (40) each, one at a time: a patient's Observations by code and
 *    date (50 matches of the patient's 1,000), the same with _include=Observation:subject, and chained
 *    (patient.identifier=<MRN>);
 *  - PostgreSQL only: two gateway apps sharing the one database (two PgStore instances, one schema),
 *    reads spread over both, in this process and as two worker threads (each its own event loop);
 *    HDX_BENCH_STORE_PG_POOL (10) connections per PgStore.
 *
 * Progress goes to stderr, the tables to stdout.
 */
import './quiet-contracts';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { registerDid } from '@hdx/chaincode/dist/test-support/registry';
import { startPostgres, stopPostgres } from '@hdx/fabric-network';
// Types only: the declaration of req.auth (Express's Request) that fake-auth.ts relies on.
import type {} from '../gateway/src/auth/middleware';
import { DID_IDENTIFIER_SYSTEM } from '../gateway/src/fhir/resource-service';
import type { LedgerClient } from '../gateway/src/ledger/ledger-client';
import { PgStore } from '../gateway/src/store/pg-store';
import { SqliteStore } from '../gateway/src/store/sqlite-store';
import type { ResourceStore } from '../gateway/src/store/store';
import { ChaincodeLedger, ContractLedger } from '../gateway/src/test-support/contract-ledger';
import { asCaller } from '../gateway/src/test-support/fake-auth';
import { FakeLedger } from '../gateway/src/test-support/fake-ledger';
import { testApp } from '../gateway/src/test-support/test-app';
import { freePort, log, percentile, printGrid, printTable } from './support';

/**
 * Settings the environment got wrong: main() refuses to start with them. (Not thrown here: the chaincode
 * library's handler of uncaught exceptions would log them and end the process with status 0.)
 */
const badSettings: string[] = [];

/** A positive number (an integer unless `fraction`) from the environment, else `fallback`. */
function setting(name: string, fallback: number, fraction = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (Number.isFinite(n) && n > 0 && (fraction || Number.isInteger(n))) return n;
  badSettings.push(`${name} must be a positive ${fraction ? 'number' : 'integer'}, not "${raw}"`);
  return fallback;
}

const PATIENTS = setting('HDX_BENCH_STORE_PATIENTS', 10);
const OBSERVATIONS = setting('HDX_BENCH_STORE_OBSERVATIONS', 1000);
const SECONDS = setting('HDX_BENCH_STORE_SECONDS', 8, true);
const SEARCHES = setting('HDX_BENCH_STORE_SEARCHES', 40);
const LEDGER = process.env.HDX_BENCH_STORE_LEDGER ?? 'fake';
if (LEDGER !== 'fake' && LEDGER !== 'contract') badSettings.push(`HDX_BENCH_STORE_LEDGER is contract or fake, not "${LEDGER}"`);
/** Connections of each PgStore's pool (PgStore's default: 10). */
const PG_POOL = setting('HDX_BENCH_STORE_PG_POOL', 10);
/** Seconds of warm-up reads through worker-thread replicas before their row (the main thread's rows: 1 s). */
const REPLICA_WARM_UP = 4;
/** Entries per transaction Bundle (the gateway anchors a transaction in one ledger transaction, 500 at most). */
const BUNDLE = 500;
const H1 = 'Hospital1MSP';
const LOINC = 'http://loinc.org';
const MRN = 'urn:oid:2.16.840.1.113883.3.9999.1';
/** Each patient's Observations cycle over these codes: one code is 1/10 of them. */
const CODES = ['8867-4', '8480-6', '8462-4', '8310-5', '9279-1', '2708-6', '29463-7', '8302-2', '39156-5', '2339-0'] as const;
/** Observation j of a patient is dated START + j × 12 h; the searched range holds the first half. */
const START = Date.UTC(2024, 0, 1, 8);
const HALF_DAY = 12 * 3_600_000;

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const int = (n: number): string => Math.round(n).toLocaleString('en-US');

interface Caller {
  header: [string, string];
}

/** What a run on one store gives: the figures of each row. */
interface Figures {
  ingest: { resources: number; seconds: number; bundles: number };
  reads: Record<string, { count: number; seconds: number; p50: number; p99: number }>;
  searches: Record<string, { p50: number; p99: number; count: number; total: number; entries: number }>;
}

/** One gateway app listening on 127.0.0.1 (a free port): its FHIR base and how to close it. */
interface Gateway {
  base: string;
  close: () => Promise<void>;
}

async function listen(store: ResourceStore, ledger: LedgerClient): Promise<Gateway> {
  // Rate limits out of the way (1,000,000 a minute, the most the gateway takes): a benchmark measures the gateway.
  const { app } = testApp({ store, ledger, rateLimits: { perIdentity: 1_000_000, perIp: 1_000_000 } });
  const server = http.createServer(app);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}/fhir`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function call(url: string, caller: Caller, method = 'GET', body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method,
    headers: { [caller.header[0]]: caller.header[1], ...(body !== undefined ? { 'content-type': 'application/fhir+json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON: the status says what went wrong */
  }
  if (res.status >= 300) throw new Error(`${method} ${url.replace(/^http:\/\/[^/]+/, '')}: ${res.status} ${text.slice(0, 400)}`);
  return { status: res.status, json };
}

/** Reads of `ids` spread over `bases`, `concurrency` at a time, for `seconds`. */
async function readLoad(
  bases: readonly string[],
  ids: readonly string[],
  caller: Caller,
  concurrency: number,
  seconds: number,
): Promise<{ count: number; seconds: number; p50: number; p99: number }> {
  const times: number[] = [];
  let next = 0;
  const until = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const i = next++;
        const t = process.hrtime.bigint();
        // Requests alternate over the apps; a prime stride spreads them over the whole set.
        await call(`${bases[i % bases.length] as string}/Observation/${ids[(i * 7919) % ids.length] as string}`, caller);
        times.push(ms(t));
      }
    }),
  );
  const took = ms(t0) / 1000;
  times.sort((a, b) => a - b);
  return { count: times.length, seconds: took, p50: percentile(times, 50), p99: percentile(times, 99) };
}

interface World {
  ledger: LedgerClient;
  chain: ChaincodeLedger | undefined;
  caller: Caller;
  patientDids: string[];
}

/** A ledger with the practitioner and the patients registered: the FakeLedger (default) or the real contracts in memory. */
async function newWorld(patients = PATIENTS): Promise<World> {
  if (LEDGER === 'fake') {
    const ledger = new FakeLedger();
    const doctor = `did:hdx:${randomBytes(32).toString('base64url')}`;
    await ledger.registerDid({ did: doctor, kind: 'practitioner' });
    const patientDids: string[] = [];
    for (let p = 0; p < patients; p++) {
      const did = `did:hdx:${randomBytes(32).toString('base64url')}`;
      await ledger.registerDid({ did, kind: 'patient' });
      patientDids.push(did);
    }
    return { ledger, chain: undefined, caller: { header: asCaller({ did: doctor, organization: H1, purpose: 'TREAT', scope: 'user/*.*' }) }, patientDids };
  }
  const chain = new ChaincodeLedger();
  const ledger = new ContractLedger(H1, { chain });
  const doctor = await registerDid(chain, 'practitioner');
  const patientDids: string[] = [];
  for (let p = 0; p < patients; p++) patientDids.push((await registerDid(chain, 'patient')).did);
  return { ledger, chain, caller: { header: asCaller({ did: doctor.did, organization: H1, purpose: 'TREAT', scope: 'user/*.*' }) }, patientDids };
}

const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');
/** The searched date range: the first half of a patient's Observations (an even number: two a day, from 08:00). */
const IN_RANGE = 2 * Math.ceil(OBSERVATIONS / 4);
const RANGE = { ge: iso(START).slice(0, 10), lt: iso(START + IN_RANGE * HALF_DAY).slice(0, 10) };

function observation(subject: string, j: number): Record<string, unknown> {
  const code = CODES[j % CODES.length] as string;
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code }] },
    subject: { reference: subject },
    effectiveDateTime: iso(START + j * HALF_DAY),
    valueQuantity: { value: 40 + (j % 90), unit: '1', system: 'http://unitsofmeasure.org', code: '1' },
  };
}

const entryOf = (resource: Record<string, unknown>, fullUrl?: string): Record<string, unknown> => ({
  ...(fullUrl ? { fullUrl } : {}),
  resource,
  request: { method: 'POST', url: resource.resourceType },
});

interface Loaded {
  patients: string[];
  observations: string[];
}

/** Every patient and their Observations, in transaction Bundles of 500, one after the other. */
async function ingest(base: string, world: World, figures: Figures, observations = OBSERVATIONS, quiet = false): Promise<Loaded> {
  const loaded: Loaded = { patients: [], observations: [] };
  const locations = (json: Record<string, unknown>): string[] => ((json.entry ?? []) as Array<{ response: { location: string } }>).map((e) => e.response.location);
  let resources = 0;
  let bundles = 0;
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < world.patientDids.length; p++) {
    const patientUrl = `urn:uuid:${randomBytes(16)
      .toString('hex')
      .replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')}`;
    const patient = {
      resourceType: 'Patient',
      identifier: [
        { system: DID_IDENTIFIER_SYSTEM, value: world.patientDids[p] },
        { system: MRN, value: `BENCH-${p}` },
      ],
      gender: p % 2 === 0 ? 'female' : 'male',
      birthDate: `19${50 + (p % 50)}-0${1 + (p % 9)}-15`,
    };
    // The first Bundle: the Patient and 499 of its Observations (by the Patient's fullUrl); then 500 a Bundle.
    let subject = patientUrl;
    for (let j = 0, first = true; first || j < observations; first = false) {
      const count = Math.min(BUNDLE - (first ? 1 : 0), observations - j);
      const entry = [...(first ? [entryOf(patient, patientUrl)] : []), ...Array.from({ length: count }, (_, k) => entryOf(observation(subject, j + k)))];
      const { json } = await call(base, world.caller, 'POST', { resourceType: 'Bundle', type: 'transaction', entry });
      const locs = locations(json);
      if (locs.length !== entry.length) throw new Error(`the Bundle answered ${locs.length} entries for ${entry.length}`);
      if (first) {
        subject = (locs.shift() as string).split('/_history/')[0] as string;
        loaded.patients.push(subject.split('/')[1] as string);
      }
      loaded.observations.push(...locs.map((l) => l.split('/')[1] as string));
      resources += entry.length;
      bundles += 1;
      j += count;
    }
    if (!quiet) log(`  ingest: patient ${p + 1}/${PATIENTS}, ${int(resources)} resources, ${f1(resources / (ms(t0) / 1000))} resources/s`);
  }
  figures.ingest = { resources, seconds: ms(t0) / 1000, bundles };
  return loaded;
}

const SEARCH_KINDS = ['code + date', 'code + date, _include=Observation:subject', 'chained patient.identifier + code + date'] as const;

function searchUrl(base: string, kind: (typeof SEARCH_KINDS)[number], patient: string, p: number, code: string): string {
  const common = `code=${encodeURIComponent(`${LOINC}|${code}`)}&date=ge${RANGE.ge}&date=lt${RANGE.lt}&_count=100`;
  if (kind === 'code + date') return `${base}/Observation?patient=Patient/${patient}&${common}`;
  if (kind === 'code + date, _include=Observation:subject') return `${base}/Observation?patient=Patient/${patient}&${common}&_include=Observation:subject`;
  return `${base}/Observation?patient.identifier=${encodeURIComponent(`${MRN}|BENCH-${p}`)}&${common}`;
}

/** Matches of code `c` in the range among a patient's first `observations`: the first half, one in ten. */
const matchesOf = (observations: number, c: number): number => {
  const n = Math.min(observations, IN_RANGE);
  return Math.floor(n / CODES.length) + (c < n % CODES.length ? 1 : 0);
};
const EXPECTED_MATCHES = matchesOf(OBSERVATIONS, 0);

async function searches(base: string, world: World, loaded: Loaded, figures: Figures, observations = OBSERVATIONS, count = SEARCHES): Promise<void> {
  for (const kind of SEARCH_KINDS) {
    const times: number[] = [];
    let total = -1;
    let entries = -1;
    for (let i = -1; i < count; i++) {
      const p = (i + 1) % loaded.patients.length;
      const c = (i + 1) % CODES.length;
      const code = CODES[c] as string;
      const t = process.hrtime.bigint();
      const { json } = await call(searchUrl(base, kind, loaded.patients[p] as string, p, code), world.caller);
      const took = ms(t);
      const got = (json.entry ?? []) as unknown[];
      const matches = typeof json.total === 'number' ? json.total : -1;
      if (matches !== matchesOf(observations, c)) throw new Error(`${kind}: total ${matches}, expected ${matchesOf(observations, c)}`);
      // Every match on the one page, and the patient once with _include.
      const included = kind === 'code + date, _include=Observation:subject' && matches > 0 ? 1 : 0;
      if (got.length !== matches + included) throw new Error(`${kind}: ${got.length} entries for ${matches} matches`);
      if (i >= 0) times.push(took);
      total = matches;
      entries = got.length;
    }
    times.sort((a, b) => a - b);
    figures.searches[kind] = { p50: percentile(times, 50), p99: percentile(times, 99), count: times.length, total, entries };
    log(`  search ${kind}: p50 ${f1(percentile(times, 50))} ms`);
  }
}

/** A read row: `warmUp` seconds of the same load first, not counted. */
async function reads(bases: readonly string[], label: string, ids: readonly string[], caller: Caller, concurrency: number, figures: Figures, warmUp = 1): Promise<void> {
  await readLoad(bases, ids, caller, concurrency, Math.min(warmUp, SECONDS));
  const r = await readLoad(bases, ids, caller, concurrency, SECONDS);
  figures.reads[label] = r;
  log(`  reads ${label}: ${int(r.count / r.seconds)} reads/s, p50 ${f1(r.p50)} ms`);
}

// ---------------------------------------------------------------------------------------------------
// Replicas in worker threads: each its own event loop, its own PgStore on the one schema, and its own
// copy of the ledger stand-in's state (the ledger both would share on a real channel is in memory here).
// ---------------------------------------------------------------------------------------------------

/** A copy of the ledger's state for a replica in another thread (structured clone: Maps and plain data). */
type LedgerCopy =
  | { kind: 'contract'; state: Array<[string, Uint8Array]>; clock: number }
  | {
      kind: 'fake';
      anchors: FakeLedger['anchors'];
      dids: FakeLedger['dids'];
      links: FakeLedger['links'];
      consents: FakeLedger['consents'];
      subjects: FakeLedger['subjects'];
    };

interface ReplicaData {
  url: string;
  schema: string;
  ledger: LedgerCopy;
}

function copyOf(world: World): LedgerCopy {
  if (world.chain) return { kind: 'contract', state: [...world.chain.state.entries()], clock: world.chain.clock };
  const l = world.ledger as FakeLedger;
  return { kind: 'fake', anchors: l.anchors, dids: l.dids, links: l.links, consents: l.consents, subjects: l.subjects };
}

function ledgerFrom(copy: LedgerCopy): LedgerClient {
  if (copy.kind === 'contract') {
    const chain = new ChaincodeLedger();
    for (const [k, v] of copy.state) chain.state.set(k, v);
    chain.clock = copy.clock;
    return new ContractLedger(H1, { chain });
  }
  const ledger = new FakeLedger();
  for (const name of ['anchors', 'dids', 'links', 'consents', 'subjects'] as const) {
    const to = ledger[name] as Map<string, unknown>;
    for (const [k, v] of copy[name] as Map<string, unknown>) to.set(k, v);
  }
  return ledger;
}

async function replicaMain(): Promise<void> {
  const data = workerData as ReplicaData;
  const store = new PgStore({ url: data.url, schema: data.schema, poolSize: PG_POOL });
  const gateway = await listen(store, ledgerFrom(data.ledger));
  parentPort?.on('message', (m: unknown) => {
    if (m !== 'stop') return;
    void gateway
      .close()
      .then(() => store.close())
      .then(() => parentPort?.postMessage('stopped'));
  });
  parentPort?.postMessage({ base: gateway.base });
}

interface Replica {
  base: string;
  stop: () => Promise<void>;
}

function startReplica(data: ReplicaData): Promise<Replica> {
  const code = `require('ts-node/register/transpile-only'); require(${JSON.stringify(__filename)});`;
  const worker = new Worker(code, { eval: true, workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (m: { base: string }) => {
      resolve({
        base: m.base,
        stop: () =>
          new Promise<void>((done) => {
            worker.once('message', () => void worker.terminate().then(() => done()));
            worker.postMessage('stop');
          }),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------

const READ_ROWS = ['c=1', 'c=16'] as const;
const REPLICA_ROWS = ['2 apps in this process, c=16', '1 worker-thread app, c=16', '2 worker-thread apps, c=16'] as const;

/**
 * PostgreSQL plans by its table statistics, which a bulk load leaves stale until autovacuum's ANALYZE
 * comes by (within about a minute by default): done here at once, so every search row runs on fresh ones.
 */
async function analyze(pg: { url: string; schema: string }): Promise<void> {
  const client = new Client({ connectionString: pg.url, options: `-c search_path=${pg.schema}` });
  await client.connect();
  try {
    const t = process.hrtime.bigint();
    await client.query('ANALYZE');
    log(`  ANALYZE after the load: ${f1(ms(t))} ms`);
  } finally {
    await client.end();
  }
}

async function runOn(kind: 'sqlite' | 'postgres', store: ResourceStore, pg: { url: string; schema: string } | undefined): Promise<Figures> {
  const figures: Figures = { ingest: { resources: 0, seconds: 0, bundles: 0 }, reads: {}, searches: {} };
  const world = await newWorld();
  const gateway = await listen(store, world.ledger);
  const extra: Array<() => Promise<void>> = [];
  try {
    log(`${kind}: ingest of ${PATIENTS} patients × ${OBSERVATIONS} Observations`);
    const loaded = await ingest(gateway.base, world, figures);
    if (pg) await analyze(pg);
    log(`${kind}: reads`);
    for (const row of READ_ROWS) await reads([gateway.base], row, loaded.observations, world.caller, row === 'c=1' ? 1 : 16, figures);
    log(`${kind}: searches`);
    await searches(gateway.base, world, loaded, figures);
    if (pg) {
      log(`${kind}: two apps on the one database`);
      const second = new PgStore({ url: pg.url, schema: pg.schema, poolSize: PG_POOL });
      const ledger2 = world.chain ? new ContractLedger(H1, { chain: world.chain }) : world.ledger;
      const gateway2 = await listen(second, ledger2);
      extra.push(() => gateway2.close().then(() => second.close()));
      await reads([gateway.base, gateway2.base], REPLICA_ROWS[0], loaded.observations, world.caller, 16, figures);
      const data: ReplicaData = { url: pg.url, schema: pg.schema, ledger: copyOf(world) };
      for (const [row, n] of [
        [REPLICA_ROWS[1], 1],
        [REPLICA_ROWS[2], 2],
      ] as const) {
        const replicas: Replica[] = [];
        try {
          for (let i = 0; i < n; i++) replicas.push(await startReplica(data));
          // A worker starts cold (a new V8 isolate, nothing compiled yet): a longer warm-up than the main thread's rows.
          await reads(
            replicas.map((r) => r.base),
            row,
            loaded.observations,
            world.caller,
            16,
            figures,
            REPLICA_WARM_UP,
          );
        } finally {
          await Promise.all(replicas.map((r) => r.stop()));
        }
      }
    }
  } finally {
    for (const close of extra) await close();
    await gateway.close();
    await store.close();
  }
  return figures;
}

/** The first store measured would otherwise pay for the process's warm-up alone. */
async function warmUp(): Promise<void> {
  const store = new SqliteStore(':memory:');
  const world = await newWorld(1);
  const gateway = await listen(store, world.ledger);
  try {
    const figures: Figures = { ingest: { resources: 0, seconds: 0, bundles: 0 }, reads: {}, searches: {} };
    const loaded = await ingest(gateway.base, world, figures, Math.min(OBSERVATIONS, 200), true);
    await readLoad([gateway.base], loaded.observations, world.caller, 4, 1);
    await searches(gateway.base, world, loaded, figures, Math.min(OBSERVATIONS, 200), 2);
  } finally {
    await gateway.close();
    await store.close();
  }
}

async function main(): Promise<void> {
  if (badSettings.length > 0) throw new Error(badSettings.join('; '));
  const started = Date.now();
  const load = { before: os.loadavg() };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bench-store-'));
  // A folder of its own: startPostgres gives it to the postgres user (as root), who could not reach into `dir`.
  const pgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bench-store-pg-'));
  let pgStarted = false;
  // One stop, whichever path asks first (the end of the run, a failure, a signal): the others wait for it.
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      if (pgStarted) {
        log('stopping PostgreSQL');
        await stopPostgres(pgDir).catch((err: unknown) => log(`stopping PostgreSQL failed: ${String(err)}`));
      }
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(pgDir, { recursive: true, force: true });
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log('warm-up (JIT, module loading): a small load, reads and searches on a throwaway SQLite store in memory');
    await warmUp();
    log('SQLite');
    const sqlite = await runOn('sqlite', new SqliteStore(path.join(dir, 'hdx.db')), undefined);
    log('PostgreSQL: starting a cluster in a temporary folder');
    const port = await freePort();
    pgStarted = true;
    const server = await startPostgres({ dir: pgDir, port });
    const version = fs.readFileSync(path.join(pgDir, 'data', 'PG_VERSION'), 'utf8').trim();
    const schema = 'bench_store';
    const postgres = await runOn('postgres', new PgStore({ url: server.url, schema, poolSize: PG_POOL }), { url: server.url, schema });
    report(sqlite, postgres, { version, port, started, loadBefore: load.before });
  } finally {
    await stopAll();
  }
}

function report(sqlite: Figures, postgres: Figures, run: { version: string; port: number; started: number; loadBefore: number[] }): void {
  const rows: string[][] = [];
  const both = (measure: string, variant: string, cell: (f: Figures) => string): void => {
    rows.push([measure, variant, cell(sqlite), cell(postgres)]);
  };
  both('ingest (POST /fhir transaction)', `${int(sqlite.ingest.resources)} resources, Bundles of ≤ ${BUNDLE}`, (f) =>
    f.ingest.seconds > 0 ? `${int(f.ingest.resources / f.ingest.seconds)} resources/s (${f1(f.ingest.seconds)} s)` : '-',
  );
  for (const row of READ_ROWS) {
    both('read by id (GET)', row, (f) => {
      const r = f.reads[row];
      return r ? `${int(r.count / r.seconds)} reads/s, p50 ${f1(r.p50)} / p99 ${f1(r.p99)} ms` : '-';
    });
  }
  for (const kind of SEARCH_KINDS) {
    both('search, p50 / p99', kind, (f) => {
      const s = f.searches[kind];
      return s ? `${f1(s.p50)} / ${f1(s.p99)} ms (${s.entries} entries)` : '-';
    });
  }
  for (const row of REPLICA_ROWS) {
    both('read by id, shared PostgreSQL', row, (f) => {
      const r = f.reads[row];
      return r ? `${int(r.count / r.seconds)} reads/s, p50 ${f1(r.p50)} / p99 ${f1(r.p99)} ms` : '-';
    });
  }
  printGrid(`HDX store benchmark (issue 14), ${new Date().toISOString().slice(0, 16)}Z`, ['measure', 'variant', 'SQLite', 'PostgreSQL'], rows);
  printTable('settings', [
    ['gateway', 'testApp (the real Express app, ResourceService, AccessControl) in this process; callers by the unit tests’ x-test-auth header (no token verified); log silent'],
    [
      'ledger',
      LEDGER === 'fake'
        ? 'FakeLedger (gateway test-support, HDX_BENCH_STORE_LEDGER=fake, the default): anchors, DIDs and access entries in Maps, the custodian’s TREAT permitted as the chaincode decides it; no Fabric, no ordering'
        : 'ContractLedger (HDX_BENCH_STORE_LEDGER=contract): the real hdx chaincode contracts on the chaincode’s in-memory test ledger, which sorts all its keys on every range query (its cost grows with every anchor and access entry of the run); no Fabric, no ordering',
    ],
    ['caller', 'a hospital1 practitioner, TREAT (custodian treatment: every record released); every read and search recorded on the ledger before release'],
    ['data', `${PATIENTS} Patients × ${int(OBSERVATIONS)} Observations (${CODES.length} LOINC codes cycling, one every 12 h from ${RANGE.ge})`],
    ['SQLite', 'SqliteStore: one file in a temporary folder (WAL, synchronous=FULL)'],
    [
      'PostgreSQL',
      `PgStore (pool of ${PG_POOL} each) on PostgreSQL ${run.version}: its own cluster (initdb, pg_ctl) in a temporary folder, 127.0.0.1:${run.port}, default settings, ANALYZE once after the load (autovacuum would, within a minute); stopped at the end`,
    ],
    [
      'reads',
      `GET /fhir/Observation/:id over all the Observations, ${SECONDS} s per row after 1 s of warm-up (${REPLICA_WARM_UP} s through worker-thread apps), c concurrent clients (fetch, keep-alive) in this process`,
    ],
    [
      'searches',
      `${SEARCHES} per row after 1 warm-up, one at a time, _count=100: code=${LOINC}|<code>&date=ge${RANGE.ge}&date=lt${RANGE.lt} (${EXPECTED_MATCHES} matches of the patient's ${int(OBSERVATIONS)}), patients and codes rotating; each total checked`,
    ],
    [
      'replicas',
      `two apps in this process: a second PgStore on the same schema, the same ledger (${LEDGER === 'fake' ? 'the one FakeLedger' : 'a second ContractLedger on the same chain'}), one event loop, requests alternating; worker threads: each app in a thread of its own (its own event loop, its own PgStore on the schema) over its own copy of the ledger’s state after the load (the access entries of its reads stay in its copy); the client stays in the main thread`,
    ],
    [
      'machine',
      `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB, Node ${process.versions.node}, ${process.platform}/${process.arch}`,
    ],
    [
      'load average (1/5/15 min)',
      `before ${run.loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    ],
    ['whole run', `${((Date.now() - run.started) / 1000).toFixed(0)} s`],
  ]);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`store: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else {
  replicaMain().catch((err: unknown) => {
    process.stderr.write(`store replica: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
