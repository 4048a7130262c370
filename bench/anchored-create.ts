/**
 * Benchmark: latency of one anchored FHIR create through the hospital1 gateway (token check, validate,
 * store in SQLite, HMAC commitment, anchor endorsed by a MAJORITY of peers, ordered and committed, then
 * the change recorded on the ledger in sync audit mode), sequential requests.
 * Starts its own network (own folder and ports) and stops it afterwards.
 *
 *   npm run bench -- anchored-create      (HDX_BENCH_N requests, default 20, after 3 warm-up requests)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultOptions, down, up } from '@hdx/fabric-network';
import { createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import { generateDidKey, loadConfig, newLogger, registrationRequest, signIdpToken, startGateway } from '@hdx/gateway';
import { envFileValues, percentile, printTable } from './support';

async function main(): Promise<void> {
  const n = Number(process.env.HDX_BENCH_N ?? '20');
  const options = defaultOptions({ ...process.env, HDX_NETWORK_HOME: path.resolve('.hdx', 'bench-network'), HDX_PORT_BASE: process.env.HDX_BENCH_PORT_BASE ?? '37000' });
  await down(options, { wipe: true });
  const upStart = Date.now();
  const info = await up(options, (m) => process.stderr.write(`[bench] ${m}\n`));
  const upMs = Date.now() - upStart;
  const config = loadConfig({
    ...envFileValues(path.join(info.home, 'gateways', 'hospital1.env')),
    HDX_GATEWAY_PORT: '0',
    HDX_DATA_DIR: path.join(info.home, 'gateway-hospital1'),
    HDX_LOG_LEVEL: 'warn',
    // A benchmark measures the gateway, not its rate limiter: one identity sends thousands a minute.
    HDX_RATE_LIMIT_PER_IDENTITY: '1000000',
    HDX_RATE_LIMIT_PER_IP: '1000000',
  });
  const gateway = await startGateway(config, newLogger('warn'));
  // A hospital1 practitioner with a registered DID, authenticated by hospital1's (development) identity provider.
  const idp = (role: string, did?: string): string =>
    signIdpToken({
      key: createPrivateKey(fs.readFileSync(path.join(info.home, 'gateways', 'hospital1-idp-private.pem'))),
      issuer: 'https://idp.hospital1.hdx.test',
      audience: config.baseUrl,
      subject: 'bench',
      role,
      scope: 'user/*.*',
      purposeOfUse: 'TREAT',
      ...(did ? { did } : {}),
    });
  const practitioner = generateDidKey();
  const registered = await fetch(`http://127.0.0.1:${gateway.port}/did`, {
    method: 'POST',
    headers: { authorization: `Bearer ${idp('admin')}`, 'content-type': 'application/json' },
    body: JSON.stringify(registrationRequest(practitioner.privateJwk, 'practitioner')),
  });
  if (registered.status !== 201) throw new Error(`registering the practitioner failed: ${registered.status}`);
  const token = idp('practitioner', practitioner.did);
  const url = `http://127.0.0.1:${gateway.port}/fhir/Patient`;
  const body = JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Bench', given: ['Mark'] }], gender: 'unknown' });
  const once = async (): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` }, body });
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  try {
    for (let i = 0; i < 3; i++) await once();
    const ms: number[] = [];
    for (let i = 0; i < n; i++) ms.push(await once());
    ms.sort((a, b) => a - b);
    printTable('anchored create through the hospital1 gateway (sequential)', [
      ['requests', String(n)],
      ['median', `${percentile(ms, 50).toFixed(1)} ms`],
      ['p90', `${percentile(ms, 90).toFixed(1)} ms`],
      ['min / max', `${ms[0]?.toFixed(1)} / ${ms[ms.length - 1]?.toFixed(1)} ms`],
      [
        'network',
        `${options.orderers} ${options.consensus === 'bft' ? 'SmartBFT' : 'Raft'} orderer(s), BatchTimeout ${options.batchTimeout}, MaxMessageCount ${options.maxMessageCount}, endorsement MAJORITY of 3`,
      ],
      ['network up (binaries cached, fresh state)', `${(upMs / 1000).toFixed(1)} s`],
      ['machine', `${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}`],
    ]);
  } finally {
    await gateway.close();
    await down(options, { wipe: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
