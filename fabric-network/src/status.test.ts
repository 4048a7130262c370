import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { defaultOptions, nodeNames, startNode, stopNode } from './network';
import { isRunning, killService, startService } from './proc';
import { formatStatus, gatewayStatus, recordedGateways, status } from './status';
import { topology } from './topology';

const gw = { name: 'gateway.hospital2', url: 'http://127.0.0.1:8081' };

describe('status: a gateway row from its /healthz', () => {
  it('a healthy gateway: its view height and lag', () => {
    const body = JSON.stringify({
      status: 'ok',
      checks: { store: { ok: true }, ledger: { ok: true, ms: 4 }, view: { ok: true, height: '42', lagBlocks: '0', fresh: true, streaming: true, decisions: 'local' } },
    });
    expect(gatewayStatus(gw, true, { status: 200, body })).to.deep.equal({
      name: 'gateway.hospital2',
      kind: 'gateway',
      running: true,
      endpoint: 'http://127.0.0.1:8081',
      healthy: true,
      height: 42,
      lagBlocks: 0,
    });
  });

  it('a gateway whose peer is down: unhealthy, and says which check failed and that its view is stale', () => {
    const body = JSON.stringify({
      status: 'unavailable',
      checks: { store: { ok: true }, ledger: { ok: false, error: 'ledger unavailable' }, view: { ok: true, height: '40', lagBlocks: '3', fresh: false, streaming: false } },
    });
    const row = gatewayStatus(gw, true, { status: 503, body });
    expect(row).to.include({ healthy: false, height: 40, lagBlocks: 3, detail: 'ledger unavailable; view not streaming blocks' });
  });

  it('no answer, or not JSON: unhealthy, said so', () => {
    expect(gatewayStatus(gw, false, undefined)).to.include({ healthy: false, running: false, detail: 'no answer from /healthz' });
    expect(gatewayStatus(gw, true, { status: 502, body: '<html>' })).to.include({ healthy: false, detail: '/healthz answered 502, not JSON' });
  });

  it('a gateway without a view (HDX_VIEW=off) has no height or lag', () => {
    const row = gatewayStatus(gw, true, { status: 200, body: JSON.stringify({ status: 'ok', checks: { store: { ok: true }, ledger: { ok: true } } }) });
    expect(row).to.not.have.property('lagBlocks');
    expect(row).to.not.have.property('height');
    expect(row.healthy).to.equal(true);
  });
});

describe('status: the table', () => {
  it('prints state, role, heights, lag and what is wrong', () => {
    const text = formatStatus([
      { name: 'orderer1', kind: 'orderer', running: true, healthy: true, endpoint: '127.0.0.1:7045', role: 'leader', height: 12 },
      { name: 'peer0.hospital2', kind: 'peer', running: false, healthy: false, endpoint: '127.0.0.1:7080' },
      { name: 'peer0.regulator', kind: 'peer', running: true, healthy: true, endpoint: '127.0.0.1:7090', height: 10, lagBlocks: 2 },
      { name: 'gateway.hospital1', kind: 'gateway', running: true, healthy: false, endpoint: 'http://127.0.0.1:8080', height: 9, lagBlocks: 1, detail: 'ledger unavailable' },
    ]).split('\n');
    expect(lineOf(text, 'orderer1')).to.match(/healthy .* leader, height 12$/);
    expect(lineOf(text, 'peer0.hospital2')).to.match(/ stopped /);
    expect(lineOf(text, 'peer0.regulator')).to.match(/height 10, lag 2$/);
    expect(lineOf(text, 'gateway.hospital1')).to.match(/UNHEALTHY .* view height 9, lag 1, ledger unavailable$/);
  });
});

function lineOf(lines: string[], name: string): string {
  const line = lines.find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no line for ${name}`);
  return line;
}

describe('node control', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-status-'));
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('refuses a network that does not exist, and a node it does not have, naming the known ones', async () => {
    const options = defaultOptions({ HDX_NETWORK_HOME: home });
    let err: unknown;
    await stopNode(options, 'peer0.hospital2', { kill: true }).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/no network at/);
    fs.writeFileSync(path.join(home, 'options.json'), JSON.stringify(options));
    err = undefined;
    await stopNode(options, 'peer9.nowhere', { kill: true }).catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/no node "peer9.nowhere".*peer0\.hospital2/);
    err = undefined;
    await startNode(options, 'gateway.hospital1').catch((e: unknown) => (err = e));
    expect(String(err)).to.match(/gateways are started by `npm start`/);
    expect(nodeNames(topology(options))).to.include.members(['ca-orderer', 'orderer0', 'orderer2', 'peer0.regulator', 'chaincode.hospital1']);
  });

  it('killService kills the recorded process at once (SIGKILL) and forgets its pid; a second kill finds nothing', async () => {
    const pids = path.join(home, 'pids');
    const logs = path.join(home, 'logs');
    // A child that ignores SIGTERM: only SIGKILL stops it at once.
    startService({ name: 'stubborn', command: process.execPath, args: ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);"], env: {} }, pids, logs);
    expect(isRunning(pids, 'stubborn')).to.equal(true);
    const t0 = Date.now();
    expect(await killService(pids, 'stubborn')).to.equal(true);
    expect(Date.now() - t0).to.be.below(5000);
    expect(isRunning(pids, 'stubborn')).to.equal(false);
    expect(fs.existsSync(path.join(pids, 'stubborn.pid'))).to.equal(false);
    expect(await killService(pids, 'stubborn')).to.equal(false);
  });

  it('status lists the gateways npm start recorded, with their URL', async () => {
    // A port block where nothing listens (the stored options decide; status does not probe port 7000).
    const options = defaultOptions({ HDX_NETWORK_HOME: home, HDX_PORT_BASE: '1100' });
    fs.writeFileSync(path.join(home, 'options.json'), JSON.stringify(options));
    const t = topology(options);
    fs.mkdirSync(t.dirs.pids, { recursive: true });
    fs.writeFileSync(path.join(t.dirs.pids, 'gateway.hospital1.pid'), JSON.stringify({ pid: 999_999_999, command: 'node', startedAt: '', url: 'http://127.0.0.1:1' }));
    fs.writeFileSync(path.join(t.dirs.pids, 'peer0.hospital1.pid'), JSON.stringify({ pid: 999_999_999, command: 'peer', startedAt: '' }));
    expect(recordedGateways(t)).to.deep.equal([{ name: 'gateway.hospital1', url: 'http://127.0.0.1:1' }]);
    // Nothing runs in this network: every node is reported stopped, the gateway too, with why.
    const rows = await status(defaultOptions({ HDX_NETWORK_HOME: home }));
    expect(rows.map((r) => r.name)).to.include.members(['orderer0', 'orderer1', 'orderer2', 'peer0.hospital1', 'chaincode.regulator', 'gateway.hospital1']);
    expect(rows.every((r) => !r.running)).to.equal(true);
    expect(rows.find((r) => r.name === 'gateway.hospital1')).to.include({ healthy: false, detail: 'no answer from /healthz' });
  });
});
