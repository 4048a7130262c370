/**
 * `npm run bench -- large-bundle` (issue 10, "Bundles as large as real exports ... streamed rather than
 * held whole where that matters"): the gateway's memory and time for one large Bundle POSTed by the
 * custodian's own feed, without a Fabric network.
 *
 * Each row runs in a child process of its own, so its peak is its own: the gateway's HTTP app (createApp,
 * as the unit tests wire it: the real ResourceService, SQLite store in a temporary file, FakeLedger in
 * place of the peers, the unit tests' stand-in for the token check) listening on 127.0.0.1, and one
 * Bundle of HDX_BENCH_BUNDLE_ENTRIES (20,000) entries: a Patient and Observations of about 2 KB each
 * (about 40 MB), sent over HTTP with Content-Length. The figures: the process's resident memory before
 * the request, its peak during it (Linux VmHWM, reset before the request), the time to the last byte of
 * the answer and the answer's size. Rows: a transaction answered in full (`Prefer: return=representation`,
 * the default), the same with `Prefer: return=minimal`, and a batch. Progress goes to stderr, the table to
 * stdout.
 *
 *   npm run bench -- large-bundle
 *   HDX_BENCH_BUNDLE_ENTRIES=5000 npm run bench -- large-bundle   (small)
 *   HDX_BENCH_BUNDLE_HEAP_MB=256 npm run bench -- large-bundle    (each row's V8 heap capped: what fits)
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { asCaller } from '../gateway/src/test-support/fake-auth';
import { FakeLedger } from '../gateway/src/test-support/fake-ledger';
import { testApp } from '../gateway/src/test-support/test-app';
import { SqliteStore } from '../gateway/src/store/sqlite-store';
import { type Phase, setPhaseSink } from '../gateway/src/util/phase-timing';
import { log, observation, printGrid } from './support';

const ENTRIES = Number(process.env.HDX_BENCH_BUNDLE_ENTRIES ?? '20000');
/** When set, each row's process runs with its V8 heap capped at this many MB (--max-old-space-size): a row that needs more fails. */
const HEAP_MB = process.env.HDX_BENCH_BUNDLE_HEAP_MB;
const ROWS = {
  'transaction, return=representation': { type: 'transaction', prefer: 'return=representation' },
  'transaction, return=minimal': { type: 'transaction', prefer: 'return=minimal' },
  'batch, return=representation': { type: 'batch', prefer: 'return=representation' },
} as const;
type Row = keyof typeof ROWS;

interface Figures {
  readonly bodyBytes: number;
  readonly status: number;
  readonly answerBytes: number;
  readonly seconds: number;
  readonly rssBeforeMb: number;
  readonly peakMb: number;
  readonly stored: number;
  /** Seconds per phase of the write (gateway/src/util/phase-timing.ts), and the heap in MB when each last ended. */
  readonly phases: Record<string, { seconds: number; heapMb: number }>;
}

/** The process's peak resident memory since the last reset (VmHWM), in MB. */
function peakMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Resets VmHWM to the current resident memory (Linux: "5" to clear_refs). */
function resetPeak(): void {
  fs.writeFileSync('/proc/self/clear_refs', '5');
}

const PADDING = 'x'.repeat(1500);

/** A Bundle of a Patient and ENTRIES - 1 Observations of it (about 2 KB each). */
function largeBundle(type: 'transaction' | 'batch', patientId: string): Buffer {
  const patient = `urn:uuid:${randomUUID()}`;
  const subject = type === 'transaction' ? patient : `Patient/${patientId}`;
  const entry: object[] = [];
  if (type === 'transaction')
    entry.push({
      fullUrl: patient,
      resource: { resourceType: 'Patient', name: [{ family: 'Bench', given: ['Large'] }], birthDate: '1970-01-01' },
      request: { method: 'POST', url: 'Patient' },
    });
  for (let i = entry.length; i < ENTRIES; i++) {
    entry.push({
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: { ...observation(subject, i), note: [{ text: PADDING }] },
      request: { method: 'POST', url: 'Observation' },
    });
  }
  return Buffer.from(JSON.stringify({ resourceType: 'Bundle', type, entry }));
}

/** POSTs `body` to `path` of the gateway: the status, the answer's size (not kept) and its Location. */
function post(port: number, path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; bytes: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/fhir+json', 'content-length': String(body.length), ...headers } },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, location: res.headers.location }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One row, in this (child) process: prints its figures as JSON on stdout. */
async function runRow(row: Row): Promise<void> {
  const { type, prefer } = ROWS[row];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bench-bundle-'));
  const store = new SqliteStore(path.join(dir, 'hdx.db'));
  const staff = asCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*', role: 'system' });
  const { app } = testApp({ store, ledger: new FakeLedger() });
  const server = http.createServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as AddressInfo).port;
  try {
    // The batch's Observations refer to a Patient the gateway holds already.
    const body = largeBundle(type, await firstPatient(port, staff));
    const phases: Record<string, { seconds: number; heapMb: number }> = {};
    setPhaseSink((phase: Phase, ms: number, detail?: string) => {
      const name = detail === undefined ? phase : `${phase} (${detail})`;
      const p = (phases[name] ??= { seconds: 0, heapMb: 0 });
      p.seconds += ms / 1000;
      // The heap in use, from V8's own counters (process.memoryUsage() reads /proc: costly at three reports per version).
      p.heapMb = getHeapStatistics().used_heap_size / (1024 * 1024);
    });
    if (global.gc) global.gc();
    const rssBeforeMb = process.memoryUsage().rss / (1024 * 1024);
    resetPeak();
    const start = process.hrtime.bigint();
    const answer = await post(port, '/fhir', body, { [staff[0]]: staff[1], prefer: prefer });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const figures: Figures = {
      bodyBytes: body.length,
      status: answer.status,
      answerBytes: answer.bytes,
      seconds,
      rssBeforeMb,
      peakMb: peakMb(),
      phases,
      stored: (await store.search({ resourceType: 'Observation', criteria: [], limit: ENTRIES + 1 })).length,
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    server.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The id of a Patient created through POST /fhir/Patient (from its Location, `…/Patient/<id>/_history/1`). */
async function firstPatient(port: number, staff: [string, string]): Promise<string> {
  const body = Buffer.from(JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Bench', given: ['Batch'] }] }));
  const created = await post(port, '/fhir/Patient', body, { [staff[0]]: staff[1] });
  const id = /\/Patient\/([^/]+)\/_history\//.exec(created.location ?? '')?.[1];
  if (created.status !== 201 || id === undefined) throw new Error(`creating the batch's Patient answered ${created.status}`);
  return id;
}

function main(): void {
  const rows: string[][] = [];
  const phaseRows: string[][] = [];
  for (const row of Object.keys(ROWS) as Row[]) {
    log(`large-bundle: ${row}, ${ENTRIES} entries`);
    let out: string;
    try {
      out = execFileSync(
        process.execPath,
        ['--expose-gc', ...(HEAP_MB ? [`--max-old-space-size=${HEAP_MB}`] : []), '-r', 'ts-node/register/transpile-only', __filename, '--row', row],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 20,
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
    } catch (err) {
      // A row that ran out of its capped heap (or failed otherwise) is reported, and the others still run.
      const status = (err as { status?: number | null; signal?: string | null }).status ?? (err as { signal?: string }).signal;
      rows.push([row, '', `failed (exit ${String(status)}${HEAP_MB ? `; heap capped at ${HEAP_MB} MB` : ''})`]);
      continue;
    }
    const f = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Figures;
    const top = Object.entries(f.phases)
      .sort((a, b) => b[1].seconds - a[1].seconds)
      .slice(0, 6)
      .map(([name, p]) => `${name} ${p.seconds.toFixed(1)} s (${p.heapMb.toFixed(0)} MB)`);
    phaseRows.push([row, top.join(', ')]);
    rows.push([
      row,
      `${(f.bodyBytes / 1e6).toFixed(1)} MB`,
      String(f.status),
      `${f.stored}`,
      `${f.seconds.toFixed(1)} s`,
      `${(ENTRIES / f.seconds).toFixed(0)}/s`,
      `${f.rssBeforeMb.toFixed(0)} MB`,
      `${f.peakMb.toFixed(0)} MB`,
      `+${(f.peakMb - f.rssBeforeMb).toFixed(0)} MB`,
      `${(f.answerBytes / 1e6).toFixed(1)} MB`,
    ]);
  }
  printGrid('Where the time went (seconds per phase of the write; heap in MB when the phase last ended)', ['row', 'phases'], phaseRows);
  printGrid(
    `One large Bundle POSTed by the custodian's feed (${ENTRIES} entries, in-process gateway, SQLite, FakeLedger${HEAP_MB ? `, V8 heap capped at ${HEAP_MB} MB` : ''})`,
    ['row', 'body', 'status', 'stored', 'time', 'entries', 'RSS before', 'peak RSS', 'peak - before', 'answer'],
    rows,
  );
}

const at = process.argv.indexOf('--row');
if (at >= 0) {
  runRow(process.argv[at + 1] as Row).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
