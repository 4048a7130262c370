/**
 * For the consortium tests (BFT, faults): a Fabric network of their own, with its own folder and port block,
 * started by the launcher before the suite and always stopped and wiped after it. While it runs, the test
 * helpers (startTestGateway, staffToken, ...) point at it; afterwards they point back at the network of the
 * global fixture, if there is one. The port block is HDX_TEST_PORT_BASE (default 27000) + `offset`; the
 * nodes' logs of the last run stay in .hdx/test-<name>-logs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultOptions, down, type NetworkInfo, type NetworkOptions, up } from '@hdx/fabric-network';
import { enrollGatewayIdentity, FabricLedger, generateDidKey, newLogger } from '@hdx/gateway';
import { type Gw, registerDid, staffToken } from './fhir-client';
import { gatewayConfig, network, setNetwork, startTestGateway } from './network';

const repo = path.resolve(__dirname, '..', '..');

export interface OwnNetwork {
  readonly info: NetworkInfo;
  readonly options: NetworkOptions;
}

export function ownNetworkOptions(name: string, offset: number, env: Record<string, string>): NetworkOptions {
  const base = Number(process.env.HDX_TEST_PORT_BASE ?? '27000') + offset;
  return defaultOptions({ ...process.env, ...env, HDX_NETWORK_HOME: path.join(repo, '.hdx', `test-${name}`), HDX_PORT_BASE: String(base) });
}

const say =
  (name: string) =>
  (m: string): void => {
    if (process.env.HDX_TEST_VERBOSE) process.stderr.write(`  [${name} network] ${m}\n`);
  };

/** Stops the network and wipes it, keeping the nodes' logs (for reading what happened during a fault). */
async function stopKeepingLogs(options: NetworkOptions): Promise<void> {
  await down(options, { wipe: false }, () => {});
  const logs = path.join(options.home, 'logs');
  const kept = `${options.home}-logs`;
  // (Called twice when `before` fails: once there, once by `after`; the second call keeps the first copy.)
  if (fs.existsSync(logs)) {
    fs.rmSync(kept, { recursive: true, force: true });
    fs.cpSync(logs, kept, { recursive: true });
  }
  await down(options, { wipe: true }, () => {});
}

/**
 * Mocha hooks for a suite that needs its own network: `before` brings it up (wiping what an interrupted run
 * left), `after` stops and wipes it. Returns a getter for the running network.
 */
export function useOwnNetwork(name: string, offset: number, env: Record<string, string>): () => OwnNetwork {
  const options = ownNetworkOptions(name, offset, env);
  let current: OwnNetwork | undefined;
  let previous: ReturnType<typeof network> | undefined;
  before(async function () {
    this.timeout(300_000);
    try {
      previous = network();
    } catch {
      previous = undefined;
    }
    await down(options, { wipe: true }, () => {});
    const start = Date.now();
    try {
      const info = await up(options, say(name));
      current = { info, options };
    } catch (err) {
      await stopKeepingLogs(options);
      throw err;
    }
    process.stderr.write(`  [${name} network] up in ${((Date.now() - start) / 1000).toFixed(1)}s on ports ${options.portBase}-${options.portBase + 109}\n`);
    setNetwork(current.info, current.options);
  });
  after(async function () {
    this.timeout(120_000);
    if (previous) setNetwork(previous.info, previous.options);
    await stopKeepingLogs(options);
  });
  return () => {
    if (!current) throw new Error(`the ${name} network is not up`);
    return current;
  };
}

/** An org's ledger client (its own peer, its gateway identity), for checking what is on the ledger. */
export async function ledgerOf(org: string): Promise<FabricLedger> {
  const config = await gatewayConfig(org);
  return new FabricLedger(config, await enrollGatewayIdentity(config, newLogger('silent')));
}

/** The pid the launcher recorded for one of its nodes. */
export function recordedPid(own: OwnNetwork, node: string): number {
  const rec = JSON.parse(fs.readFileSync(path.join(own.info.home, 'pids', `${node}.pid`), 'utf8')) as { pid: number };
  return rec.pid;
}

/** A named metric of channel hdx from a node's operations endpoint (Prometheus text). */
export async function channelMetric(operationsPort: number, metric: string): Promise<number | undefined> {
  try {
    const body = await (await fetch(`http://127.0.0.1:${operationsPort}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const m = new RegExp(`^${metric}\\{channel="hdx"\\} ([0-9.e+-]+)$`, 'm').exec(body);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** What the consortium tests write with: hospital1's gateway, a registered practitioner's token, hospital2's ledger client. */
export interface Writer {
  readonly h1: Gw;
  readonly token: string;
  readonly hospital2: FabricLedger;
}

/**
 * Mocha hooks (call after useOwnNetwork): `before` starts hospital1's gateway on the suite's network with a
 * registered practitioner and opens hospital2's ledger client; `after` closes both. Returns a getter.
 */
export function useWriter(): () => Writer {
  let writer: Writer | undefined;
  let h1: Gw | undefined;
  let hospital2: FabricLedger | undefined;
  before(async () => {
    h1 = await startTestGateway('hospital1');
    hospital2 = await ledgerOf('hospital2');
    const practitioner = generateDidKey();
    await registerDid(h1, 'hospital1', 'practitioner', practitioner);
    writer = { h1, hospital2, token: staffToken(h1, 'hospital1', { did: practitioner.did }) };
  });
  after(async () => {
    hospital2?.close();
    await h1?.gateway.close();
  });
  return () => {
    if (!writer) throw new Error('the writer is not set up');
    return writer;
  };
}
