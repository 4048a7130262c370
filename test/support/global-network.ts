/**
 * Mocha global fixture for the integration tests: one real Fabric network, started by the project's own
 * launcher in its own folder and port block, and always stopped and wiped afterwards, even when tests
 * fail or setup itself fails.
 */
import * as path from 'node:path';
import { defaultOptions, down, type NetworkOptions, up } from '@hdx/fabric-network';
import { setNetwork } from './network';

const repo = path.resolve(__dirname, '..', '..');

function testOptions(): NetworkOptions {
  return defaultOptions({
    ...process.env,
    HDX_NETWORK_HOME: process.env.HDX_TEST_NETWORK_HOME ?? path.join(repo, '.hdx', 'test-network'),
    HDX_PORT_BASE: process.env.HDX_TEST_PORT_BASE ?? '27000',
  });
}

const say = (m: string): void => {
  process.stderr.write(`  [test network] ${m}\n`);
};

let started = false;

async function stop(): Promise<void> {
  if (!started) return;
  started = false;
  await down(testOptions(), { wipe: true }, say);
}

export async function mochaGlobalSetup(): Promise<void> {
  const options = testOptions();
  // A network left by an interrupted run is stopped and wiped first: every run starts clean.
  await down(options, { wipe: true }, () => {});
  started = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void stop().finally(() => process.exit(130));
    });
  }
  try {
    setNetwork(await up(options, say), options);
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function mochaGlobalTeardown(): Promise<void> {
  await stop();
}
