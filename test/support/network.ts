import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NetworkInfo, NetworkOptions } from '@hdx/fabric-network';
import { type Config, loadConfig, newLogger, type RunningGateway, startGateway } from '@hdx/gateway';
import * as net from 'node:net';

let info: NetworkInfo | undefined;
let opts: NetworkOptions | undefined;

export function setNetwork(i: NetworkInfo, o: NetworkOptions): void {
  info = i;
  opts = o;
}

/** The network the global fixture started. */
export function network(): { info: NetworkInfo; options: NetworkOptions } {
  if (!info || !opts) throw new Error('the test network is not up (test/support/global-network.ts)');
  return { info, options: opts };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** KEY=VALUE lines of an env file written by the network launcher. */
export function envFileValues(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) env[m[1]] = m[2];
  }
  return env;
}

/** The launcher's env file of an org's gateway (`gateways/<org>.env`), as `npm start` sources it. */
export function gatewayEnv(org: string): Record<string, string> {
  return envFileValues(path.join(network().info.home, 'gateways', `${org}.env`));
}

/** An org's gateway configuration, exactly as main.ts would load it from the launcher's env file. */
export async function gatewayConfig(org: string, overrides: Record<string, string> = {}): Promise<Config> {
  const port = await freePort();
  return loadConfig({
    ...gatewayEnv(org),
    HDX_GATEWAY_PORT: String(port),
    HDX_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), `hdx-${org}-`)),
    HDX_LOG_LEVEL: process.env.HDX_TEST_LOG_LEVEL ?? 'warn',
    ...overrides,
  });
}

/** Starts an org's real gateway (real CA enrollment, real peer, real SQLite, real HTTP) in this process. */
export async function startTestGateway(org: string, overrides: Record<string, string> = {}): Promise<{ gateway: RunningGateway; config: Config }> {
  const config = await gatewayConfig(org, overrides);
  const gateway = await startGateway(config, newLogger(config.logLevel));
  return { gateway, config };
}
