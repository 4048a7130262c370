import { createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import * as path from 'node:path';
import type { NetworkInfo } from '@hdx/fabric-network';
import { type Config, loadConfig, newLogger, registrationRequest, type RunningGateway, signIdpToken, startGateway } from '@hdx/gateway';
import { httpCall, type Reply } from '../test/support/fhir-client';
import { envFileValues } from '../test/support/network';

export { envFileValues };

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

export function printTable(title: string, rows: ReadonlyArray<readonly [string, string]>): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${title}\n${'-'.repeat(title.length)}\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

/** A table with a header row and left-aligned columns (every row as long as the header). */
export function printGrid(title: string, header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(`\n${title}\n${'-'.repeat(title.length)}\n${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(r)}\n`);
}

/** Progress on stderr (the tables go to stdout). */
export const log = (m: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export interface Gw {
  gateway: RunningGateway;
  config: Config;
}

/** A member's gateway, in this process, on the network's env file (rate limits out of the way: a benchmark measures the gateway). */
export async function startOrgGateway(info: NetworkInfo, org: string, overrides: Record<string, string> = {}): Promise<Gw> {
  const config = loadConfig({
    ...envFileValues(path.join(info.home, 'gateways', `${org}.env`)),
    HDX_GATEWAY_PORT: String(await freePort()),
    HDX_DATA_DIR: path.join(info.home, `gateway-${org}`),
    HDX_LOG_LEVEL: 'warn',
    HDX_RATE_LIMIT_PER_IDENTITY: '1000000',
    HDX_RATE_LIMIT_PER_IP: '1000000',
    ...overrides,
  });
  return { gateway: await startGateway(config, newLogger('warn')), config };
}

export function expectStatus(r: Reply, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status}: ${r.text.slice(0, 500)}`);
}

export type Org = 'hospital1' | 'hospital2';

/**
 * The development identity providers of hospital1 and hospital2 (their keys from the network's home):
 * `staff` signs an IdP token of a practitioner (or `role`), `registerDid` registers a DID through the
 * org's gateway as its admin.
 */
export function orgIdentities(info: NetworkInfo): {
  staff: (gw: Gw, org: Org, opts?: { did?: string; role?: string }) => string;
  registerDid: (gw: Gw, org: Org, kind: string, key: { privateJwk: Parameters<typeof registrationRequest>[0] }) => Promise<void>;
} {
  const idpKey = (org: string) => createPrivateKey(fs.readFileSync(path.join(info.home, 'gateways', `${org}-idp-private.pem`)));
  const keys = { hospital1: idpKey('hospital1'), hospital2: idpKey('hospital2') };
  const staff = (gw: Gw, org: Org, opts: { did?: string; role?: string } = {}): string =>
    signIdpToken({
      key: keys[org],
      issuer: `https://idp.${org}.hdx.test`,
      audience: gw.config.baseUrl,
      subject: `bench-${opts.role ?? 'practitioner'}-${org}`,
      role: opts.role ?? 'practitioner',
      scope: 'user/*.*',
      purposeOfUse: 'TREAT',
      ttlSec: 3600,
      ...(opts.did ? { did: opts.did } : {}),
    });
  const registerDid = async (gw: Gw, org: Org, kind: string, key: { privateJwk: Parameters<typeof registrationRequest>[0] }): Promise<void> => {
    const r = await httpCall(
      `${gw.config.baseUrl.replace(/\/fhir$/, '')}/did`,
      'POST',
      staff(gw, org, { role: 'admin' }),
      registrationRequest(key.privateJwk, kind),
      'application/json',
    );
    expectStatus(r, 201, `register ${kind} DID at ${org}`);
  };
  return { staff, registerDid };
}

/** The i-th heart-rate Observation of a subject (one a minute from 2026-11-20 09:30 UTC): what the exchange and ingest benchmarks write. */
export function observation(subject: string, i: number): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: subject },
    effectiveDateTime: new Date(Date.UTC(2026, 10, 20, 9, 30) + i * 60_000).toISOString(),
    valueQuantity: { value: 50 + (i % 60), unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

/** What one load() row measured. */
export interface LoadResult {
  concurrency: number;
  ok: number;
  errors: number;
  firstError?: string;
  seconds: number;
  /** The latencies of the requests answered 200, ms, ascending. */
  sorted: number[];
  /** CPU time of this process (a gateway run in it AND the load generator) per request, ms. */
  cpuMs: number;
}

const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/**
 * `concurrency` workers issue GETs back to back for `seconds` (keep-alive fetch, a bearer token from
 * `token` when it gives one); every status but 200, and every dropped connection, counts as an error.
 */
export async function load(concurrency: number, seconds: number, url: (i: number) => string, token: () => string | undefined): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        const t = token();
        try {
          const res = await fetch(url(i), { headers: t ? { authorization: `Bearer ${t}` } : {} });
          const text = await res.text();
          if (res.status === 200) latencies.push(msSince(t0));
          else {
            errors++;
            firstError ??= `${res.status} ${text.slice(0, 300)}`;
          }
        } catch (err) {
          // A connection the server dropped is an error of this request, counted, not the end of the run.
          errors++;
          firstError ??= `fetch: ${err instanceof Error ? `${err.message} ${String((err as { cause?: unknown }).cause ?? '')}` : String(err)}`;
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  return {
    concurrency,
    ok: latencies.length,
    errors,
    ...(firstError ? { firstError } : {}),
    seconds: msSince(start) / 1000,
    sorted: latencies,
    cpuMs: (cpu.user + cpu.system) / 1000 / Math.max(1, latencies.length + errors),
  };
}
