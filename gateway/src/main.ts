#!/usr/bin/env node
import { ConfigError, loadConfig } from './config';
import { newLogger } from './logger';
import { startGateway } from './server';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hdx-gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = newLogger(config.logLevel);
  let gateway;
  try {
    gateway = await startGateway(config, log);
  } catch (err) {
    log.fatal({ err }, 'gateway failed to start');
    process.stderr.write(`hdx-gateway: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  log.info({ url: gateway.url, org: config.org }, 'HDX gateway listening');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    void gateway.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
