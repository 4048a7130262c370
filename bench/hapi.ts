/**
 * A HAPI FHIR JPA R4 server beside HDX in the same benchmark run (issues 10 and 11): bench/hapi/ (a Maven
 * project: hapi-fhir-jpaserver-base 8.8.0 with an H2 file database, our own Spring Boot main) built once
 * into a runnable jar cached under ~/.cache/hdx/hapi-<hash of the pom and sources>/, then started as a
 * child process on 127.0.0.1 with its database in a folder of its own.
 *
 * `tryStartHapi` never throws: a benchmark prints "HAPI: not run (<reason>)" and goes on, so HAPI can never
 * make the HDX figures fail. `HDX_BENCH_HAPI=0` skips it; `HDX_BENCH_HAPI_HEAP` (3g) sets the heap,
 * `HDX_BENCH_HAPI_START_SECONDS` (600) the time it may take to answer GET /fhir/metadata.
 *
 * This file is not a benchmark: scripts/bench.sh skips it (it has no main).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { log } from './support';

export const HAPI_VERSION = '8.8.0';
const PROJECT = path.join(__dirname, 'hapi');
const JAR = 'hdx-bench-hapi.jar';

export interface Hapi {
  /** The FHIR base, http://127.0.0.1:<port>/fhir */
  baseUrl: string;
  /** The server's process id. */
  pid: number;
  /** Seconds from spawn to the first 200 of GET /fhir/metadata. */
  startSeconds: number;
  heap: string;
  /** Stops the server (by its pid) and deletes its folder; safe to call more than once. */
  stop: () => Promise<void>;
}

/** The files the jar is built from, relative to bench/hapi, sorted. */
function sources(dir = PROJECT, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) {
      if (rel === '' && (e.name === 'target' || e.name.startsWith('.'))) continue;
      out.push(...sources(dir, r));
    } else if (!(rel === '' && e.name.startsWith('.'))) out.push(r);
  }
  return out.sort();
}

/** A hash of the pom and the sources: the jar's cache key. */
export function hapiSourceHash(): string {
  const h = createHash('sha256');
  for (const f of sources()) {
    h.update(f);
    h.update('\0');
    h.update(fs.readFileSync(path.join(PROJECT, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** Runs a command, its output lines to `onLine`; rejects with the last lines when it fails. */
function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const tail: string[] = [];
    const lines = (chunk: Buffer): void => {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (l.trim() === '') continue;
        tail.push(l);
        if (tail.length > 30) tail.shift();
        onLine(l);
      }
    };
    child.stdout?.on('data', lines);
    child.stderr?.on('data', lines);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const stopOnSignal = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', stopOnSignal);
    child.on('error', (err) => {
      clearTimeout(timer);
      process.removeListener('exit', stopOnSignal);
      reject(new Error(`${cmd}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', stopOnSignal);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal ?? '?'}: ${tail.slice(-8).join(' | ')}`));
    });
  });
}

/**
 * The runnable jar: from the cache, or built with `mvn package` (Maven Central only; the first build
 * downloads about 300 MB of dependencies) in a temporary copy of bench/hapi, then cached.
 */
export async function hapiJar(): Promise<string> {
  const cacheDir = path.join(os.homedir(), '.cache', 'hdx', `hapi-${HAPI_VERSION}-${hapiSourceHash()}`);
  const jar = path.join(cacheDir, JAR);
  if (fs.existsSync(jar)) return jar;
  const build = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-hapi-build-'));
  try {
    for (const f of sources()) {
      fs.mkdirSync(path.dirname(path.join(build, f)), { recursive: true });
      fs.copyFileSync(path.join(PROJECT, f), path.join(build, f));
    }
    log(`HAPI: building bench/hapi with Maven (once; cached in ${cacheDir})`);
    let downloads = 0;
    const started = Date.now();
    await run('mvn', ['-B', 'package'], build, 1_800_000, (line) => {
      if (/^\[INFO\] Downloaded from /.test(line)) {
        // Progress, without a line per artifact: every 100th download.
        if (++downloads % 100 === 0) log(`HAPI: Maven downloaded ${downloads} files (${Math.round((Date.now() - started) / 1000)} s)`);
      } else if (/^\[(ERROR|WARNING)\]|BUILD (SUCCESS|FAILURE)|Building jar|Replacing main artifact|Compiling \d+ source/.test(line)) log(`HAPI: mvn ${line}`);
    });
    const built = path.join(build, 'target', JAR);
    if (!fs.existsSync(built)) throw new Error(`Maven finished but ${JAR} is not in target/`);
    fs.mkdirSync(cacheDir, { recursive: true });
    const tmp = `${jar}.tmp-${process.pid}`;
    fs.copyFileSync(built, tmp);
    fs.renameSync(tmp, jar);
    log(`HAPI: built in ${Math.round((Date.now() - started) / 1000)} s, ${downloads} files downloaded`);
    return jar;
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
  }
}

/**
 * Starts the HAPI FHIR server on 127.0.0.1:`port` with its H2 database in `dir` (created; deleted by
 * stop()), builds the jar first if needed, and waits for GET /fhir/metadata. On a failure, a time-out, the
 * process's exit or Ctrl-C the server is stopped and its folder deleted.
 */
export async function startHapi(opts: { dir: string; port: number; heap?: string; startSeconds?: number }): Promise<Hapi> {
  const heap = opts.heap ?? process.env.HDX_BENCH_HAPI_HEAP ?? '3g';
  const startSeconds = opts.startSeconds ?? Number(process.env.HDX_BENCH_HAPI_START_SECONDS ?? '600');
  const jar = await hapiJar();
  fs.rmSync(opts.dir, { recursive: true, force: true });
  fs.mkdirSync(opts.dir, { recursive: true });
  const logFile = path.join(opts.dir, 'hapi.log');
  const out = fs.openSync(logFile, 'a');
  const t0 = Date.now();
  let child: ChildProcess;
  try {
    child = spawn('java', [`-Xmx${heap}`, '-jar', jar, `--hdx.hapi.dir=${opts.dir}`, `--server.port=${opts.port}`], {
      stdio: ['ignore', out, out],
    });
  } finally {
    fs.closeSync(out);
  }
  let exited: string | undefined;
  child.on('exit', (code, signal) => {
    exited = `exited with ${code ?? signal ?? '?'}`;
  });
  child.on('error', (err) => {
    exited = `could not start java: ${err.message}`;
  });

  let stopped = false;
  const killNow = (): void => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(opts.dir, { recursive: true, force: true });
  };
  // Ctrl-C or kill: stop the server and delete its folder, then let the signal do what it would have done.
  const onSignal = (signal: NodeJS.Signals): void => {
    killNow();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const onExit = (): void => {
    killNow();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('exit', onExit);
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      }, 20_000);
      await gone;
      clearTimeout(timer);
    }
    fs.rmSync(opts.dir, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${opts.port}/fhir`;
  try {
    log(`HAPI: starting (pid ${child.pid ?? '?'}, heap ${heap}, port ${opts.port}), waiting for GET /fhir/metadata (at most ${startSeconds} s)`);
    const deadline = t0 + startSeconds * 1000;
    let lastLog = Date.now();
    for (;;) {
      if (exited) throw new Error(`the HAPI server ${exited} before it answered: ${lastLines(logFile)}`);
      if (Date.now() > deadline) throw new Error(`the HAPI server did not answer GET /fhir/metadata within ${startSeconds} s: ${lastLines(logFile)}`);
      try {
        const r = await fetch(`${baseUrl}/metadata`, { signal: AbortSignal.timeout(10_000) });
        await r.text();
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() - lastLog > 30_000) {
        log(`HAPI: still starting (${Math.round((Date.now() - t0) / 1000)} s)`);
        lastLog = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const seconds = (Date.now() - t0) / 1000;
  log(`HAPI: ready at ${baseUrl} after ${seconds.toFixed(1)} s`);
  return { baseUrl, pid: child.pid ?? -1, startSeconds: seconds, heap, stop };
}

function lastLines(file: string): string {
  try {
    const lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !/^\s+at /.test(l));
    return lines.slice(-6).join(' | ').slice(0, 800) || '(no output)';
  } catch {
    return '(no log)';
  }
}

/** startHapi for a benchmark: the server, or why it is not run (never throws). */
export async function tryStartHapi(opts: { dir: string; port: number }): Promise<{ hapi: Hapi; reason?: undefined } | { hapi?: undefined; reason: string }> {
  if (process.env.HDX_BENCH_HAPI === '0') return { reason: 'skipped: HDX_BENCH_HAPI=0' };
  try {
    return { hapi: await startHapi(opts) };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    log(`HAPI: not run (${reason})`);
    return { reason: reason.replace(/\s+/g, ' ').slice(0, 400) };
  }
}

/**
 * One POST of a FHIR Bundle: status, the entries whose response is 2xx, and the first failure. Over
 * node:http with no time-out: fetch (undici) gives up after 300 s without response headers, and HAPI can
 * take longer than that for Synthea's largest transaction on a busy machine.
 */
export function postBundle(baseUrl: string, text: string): Promise<{ status: number; ok: number; entries: number; problem: string }> {
  return new Promise((resolve) => {
    const body = Buffer.from(text, 'utf8');
    const req = http.request(baseUrl, { method: 'POST', headers: { 'content-type': 'application/fhir+json', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => resolve({ status: res.statusCode ?? 0, ok: 0, entries: 0, problem: `response: ${err.message}` }));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        let parsed: { entry?: Array<{ response?: { status?: string } }>; issue?: Array<{ diagnostics?: string }> } | undefined;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof parsed;
        } catch {
          parsed = undefined;
        }
        const entries = parsed?.entry ?? [];
        const failed = entries.filter((e) => !/^2/.test(e.response?.status ?? ''));
        const problem =
          status !== 200
            ? `${status}: ${(parsed?.issue?.[0]?.diagnostics ?? '').slice(0, 240)}`
            : failed.length > 0
              ? `${failed.length} entries failed, first: ${failed[0]?.response?.status ?? '?'}`
              : '';
        resolve({ status, ok: status === 200 ? entries.length - failed.length : 0, entries: entries.length, problem });
      });
    });
    req.on('error', (err) => resolve({ status: 0, ok: 0, entries: 0, problem: `request: ${err.message}` }));
    req.end(body);
  });
}
