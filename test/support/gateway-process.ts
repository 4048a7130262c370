/**
 * A gateway run as its own process (`node gateway/dist/main.js` with the launcher's env file, as
 * `npm start` runs it), for the tests that kill it: started, its output kept, its exit awaited, and every
 * one still running killed at the end (or when the test process exits).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

const MAIN = path.resolve(__dirname, '..', '..', 'gateway', 'dist', 'main.js');

export interface GatewayChild {
  readonly proc: ChildProcess;
  /** Lines of stdout and stderr so far. */
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export class GatewayProcesses {
  readonly #children = new Set<GatewayChild>();

  constructor() {
    process.once('exit', () => this.killAll());
  }

  /**
   * Starts `gateway/dist/main.js` with exactly `env` and resolves once `<baseUrl without /fhir>/healthz`
   * answers 200; throws with the process's last output when it exits first or is not healthy in time.
   */
  async start(env: Record<string, string>, baseUrl: string, timeoutMs = 120_000): Promise<GatewayChild> {
    const proc = spawn(process.execPath, [MAIN], { cwd: path.dirname(path.dirname(path.dirname(MAIN))), env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    const keep = (chunk: Buffer): void => {
      output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    let gone = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => {
        gone = true;
        resolve({ code, signal });
      }),
    );
    const child: GatewayChild = { proc, output, exited };
    this.#children.add(child);
    const health = `${baseUrl.replace(/\/fhir$/, '')}/healthz`;
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (gone) throw new Error(`the gateway process exited during start:\n${output.slice(-20).join('\n')}`);
      const ok = await fetch(health).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return child;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for the gateway process to answer /healthz:\n${output.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** SIGKILL to every child still running. */
  killAll(): void {
    for (const c of this.#children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  }

  /** Kills every child still running and waits for all of them to exit. */
  async stopAll(): Promise<void> {
    this.killAll();
    await Promise.all([...this.#children].map((c) => c.exited));
  }
}
