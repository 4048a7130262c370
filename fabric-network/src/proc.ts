import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

/** A failure the operator can act on: the message says what went wrong, `details` the log lines that matter. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly details: string[] = [],
  ) {
    super(message);
    this.name = NetworkError.name;
  }
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a command to completion; on failure throws a NetworkError carrying the tail of its output. */
export function run(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: { ...process.env, ...opts.env },
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err) {
          const lines = `${stdout}\n${stderr}`.split('\n').filter((l) => l.trim() !== '');
          reject(new NetworkError(`${path.basename(file)} ${args.slice(0, 3).join(' ')} failed: ${err.message.split('\n')[0] ?? ''}`, lines.slice(-15)));
          return;
        }
        resolve(stdout);
      },
    );
  });
}

export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** A Linux network namespace to run it in: the command becomes `ip netns exec <netns> <command> ...`. */
  readonly netns?: string | undefined;
}

/** The program and arguments that start a service: in its network namespace, through `ip netns exec`. */
export function commandLine(spec: Pick<ServiceSpec, 'command' | 'args' | 'netns'>): { file: string; args: string[] } {
  if (spec.netns === undefined) return { file: spec.command, args: [...spec.args] };
  return { file: 'ip', args: ['netns', 'exec', spec.netns, spec.command, ...spec.args] };
}

export function pidFile(pidsDir: string, name: string): string {
  return path.join(pidsDir, `${name}.pid`);
}

export function logFile(logsDir: string, name: string): string {
  return path.join(logsDir, `${name}.log`);
}

interface PidRecord {
  pid: number;
  command: string;
  startedAt: string;
  /** For a gateway started by scripts/start.sh: its base URL (http://127.0.0.1:<port>), read by `status`. */
  url?: string;
}

export function readPid(pidsDir: string, name: string): PidRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(pidFile(pidsDir, name), 'utf8')) as PidRecord;
  } catch {
    return undefined;
  }
}

/** True when the recorded process is alive and is still the program we started (not a recycled pid). */
export function isRunning(pidsDir: string, name: string): boolean {
  const rec = readPid(pidsDir, name);
  if (!rec) return false;
  try {
    process.kill(rec.pid, 0);
  } catch {
    return false;
  }
  try {
    const cmdline = fs.readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8');
    return cmdline.includes(path.basename(rec.command));
  } catch {
    return true; // no /proc: trust the signal check
  }
}

/** Starts a long-running node as a detached process, logging to logs/<name>.log, pid in pids/<name>.pid. */
export function startService(spec: ServiceSpec, pidsDir: string, logsDir: string): number {
  fs.mkdirSync(pidsDir, { recursive: true });
  fs.mkdirSync(logsDir, { recursive: true });
  const out = fs.openSync(logFile(logsDir, spec.name), 'a');
  fs.writeSync(out, `\n===== ${new Date().toISOString()} starting ${spec.name}\n`);
  // `ip netns exec` enters the namespace and then execs the command in the same process, so the recorded
  // pid is the node's own and isRunning finds its program in /proc/<pid>/cmdline.
  const { file, args } = commandLine(spec);
  const child = spawn(file, args, {
    env: { ...process.env, ...spec.env },
    cwd: spec.cwd,
    detached: true,
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  if (child.pid === undefined) throw new NetworkError(`could not start ${spec.name} (${spec.command})`);
  child.unref();
  const rec: PidRecord = { pid: child.pid, command: spec.command, startedAt: new Date().toISOString() };
  fs.writeFileSync(pidFile(pidsDir, spec.name), JSON.stringify(rec));
  return child.pid;
}

/** Stops a node we started (by its recorded pid): SIGTERM, then SIGKILL after the grace period. */
export async function stopService(pidsDir: string, name: string, graceMs = 10_000): Promise<boolean> {
  const rec = readPid(pidsDir, name);
  if (!rec) return false;
  const running = isRunning(pidsDir, name);
  if (running) {
    // The process leads its own group (detached): signal the group so helpers it spawned stop too.
    signal(rec.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && isAlive(rec.pid)) await sleep(100);
    if (isAlive(rec.pid)) signal(rec.pid, 'SIGKILL');
    while (isAlive(rec.pid)) await sleep(50);
  }
  fs.rmSync(pidFile(pidsDir, name), { force: true });
  return running;
}

/**
 * Kills a node we started (by its recorded pid) at once, with SIGKILL, as a crash would: no clean shutdown.
 * Returns false when it was not running.
 */
export async function killService(pidsDir: string, name: string): Promise<boolean> {
  const rec = readPid(pidsDir, name);
  if (!rec || !isRunning(pidsDir, name)) return false;
  signal(rec.pid, 'SIGKILL');
  while (isAlive(rec.pid)) await sleep(50);
  fs.rmSync(pidFile(pidsDir, name), { force: true });
  return true;
}

/** The pid recorded for a node this launcher started, when it is running. */
export function runningPid(pidsDir: string, name: string): number | undefined {
  return isRunning(pidsDir, name) ? readPid(pidsDir, name)?.pid : undefined;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by its parent) counts as gone.
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** GET a URL and resolve with status and body; never throws for HTTP errors. */
export function httpGet(url: string, ca?: Buffer, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { timeout: timeoutMs, ...(ca ? { ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Last lines of a log file that look like problems (errors, panics), else the plain tail. */
export function importantLogLines(file: string, max = 12): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [`(no log at ${file})`];
  }
  const lines = text
    // eslint-disable-next-line no-control-regex -- ANSI colour codes start with ESC (0x1B)
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '');
  // Fabric levels (ERRO, FATA, PANI, WARN), fabric-ca ([ERROR], [FATAL]) and Node chaincode (error).
  const bad = lines.filter((l) => /\b(ERRO|FATA|PANI|WARN|ERROR|FATAL|error)\b|panic:/.test(l));
  return (bad.length > 0 ? bad : lines).slice(-max);
}

/**
 * Polls `check` until it returns true. If the process dies or time runs out, throws a NetworkError naming
 * the node and carrying the log lines that matter.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, opts: { timeoutMs: number; pidsDir?: string; name?: string; log?: string }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not ready yet */
    }
    if (opts.pidsDir && opts.name && !isRunning(opts.pidsDir, opts.name)) {
      throw new NetworkError(`${what}: the process exited`, opts.log ? importantLogLines(opts.log) : []);
    }
    if (Date.now() > deadline) {
      throw new NetworkError(`${what}: not ready after ${Math.round(opts.timeoutMs / 1000)}s`, opts.log ? importantLogLines(opts.log) : []);
    }
    await sleep(250);
  }
}

/** Waits for an operations endpoint's /healthz to report OK. */
export function waitHealthy(name: string, url: string, opts: { timeoutMs: number; pidsDir: string; log: string; ca?: Buffer }): Promise<void> {
  return waitFor(
    `${name} (${url})`,
    async () => {
      const res = await httpGet(url, opts.ca);
      return res.status === 200;
    },
    { timeoutMs: opts.timeoutMs, pidsDir: opts.pidsDir, name, log: opts.log },
  );
}
