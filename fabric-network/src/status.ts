/**
 * `npm run network -- status`: what an operator needs to see of a running network. Each node: running (by
 * its recorded pid), healthy, endpoint; the block height of each orderer and peer and how far each peer is
 * behind the ordering service; which orderer leads; whether each member's chaincode answers through its
 * peer; and each HDX gateway's health and how far its ledger view lags its peer.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binariesIn } from './binaries';
import { adminEnv, chaincodeServerName, channelMetric, existingTopology, metricsOf, portOpen, readNetworkInfo } from './network';
import { caUrl } from './ca';
import { httpGet, isRunning, readPid, run } from './proc';
import { CHAINCODE_NAME, CHANNEL, endpoint, type NetworkOptions, type OrdererNode, type Topology } from './topology';

export interface NodeStatus {
  readonly name: string;
  readonly kind: 'ca' | 'orderer' | 'peer' | 'chaincode' | 'gateway';
  readonly running: boolean;
  /** Undefined when it cannot be told (a gateway whose URL is not known). */
  readonly healthy: boolean | undefined;
  readonly endpoint: string;
  /** For an orderer: 'leader' when it leads channel hdx (Raft or BFT), else 'follower'. */
  readonly role?: 'leader' | 'follower';
  /** Orderer or peer: the height of its copy of channel hdx (blocks). Gateway: the height of its ledger view. */
  readonly height?: number;
  /**
   * Peer: blocks behind the highest orderer. Gateway: blocks its ledger view had not applied of its peer's,
   * at the view's last height check (/healthz `checks.view.lagBlocks`).
   */
  readonly lagBlocks?: number;
  /** What is wrong (or notable), in a few words: "ledger unavailable", "chaincode does not answer", ... */
  readonly detail?: string;
}

/** A gateway for `status` to ask: its name and base URL (its /healthz is asked). */
export interface GatewayEndpoint {
  readonly name: string;
  readonly url: string;
}

/** The parts of a gateway's /healthz answer (gateway/src/http/app.ts) that status reports. */
interface GatewayHealth {
  status?: string;
  checks?: Record<string, { ok?: boolean; error?: string; lagBlocks?: string; height?: string; fresh?: boolean; streaming?: boolean; pending?: number } | undefined>;
}

/** A gateway row from its /healthz answer: healthy on 200; the failing checks and a stale view as detail. */
export function gatewayStatus(gw: GatewayEndpoint, running: boolean, answer: { status: number; body: string } | undefined): NodeStatus {
  const base = { name: gw.name, kind: 'gateway' as const, running, endpoint: gw.url };
  if (!answer) return { ...base, healthy: false, detail: 'no answer from /healthz' };
  let health: GatewayHealth = {};
  try {
    health = JSON.parse(answer.body) as GatewayHealth;
  } catch {
    return { ...base, healthy: false, detail: `/healthz answered ${answer.status}, not JSON` };
  }
  const checks = health.checks ?? {};
  const problems = Object.entries(checks).flatMap(([name, c]) => (c && c.ok === false ? [c.error ?? `${name} failed`] : []));
  const view = checks.view;
  if (view && view.fresh === false) problems.push(view.streaming === false ? 'view not streaming blocks' : 'view not fresh');
  const num = (x: string | undefined): number | undefined => (x === undefined || !/^\d+$/.test(x) ? undefined : Number(x));
  const height = num(view?.height);
  const lagBlocks = num(view?.lagBlocks);
  return {
    ...base,
    healthy: answer.status === 200,
    ...(height === undefined ? {} : { height }),
    ...(lagBlocks === undefined ? {} : { lagBlocks }),
    ...(problems.length > 0 ? { detail: problems.join('; ') } : {}),
  };
}

/** The gateways `npm start` recorded in pids/ (gateway.<org>.pid with its URL). */
export function recordedGateways(t: Topology): GatewayEndpoint[] {
  if (!fs.existsSync(t.dirs.pids)) return [];
  return fs
    .readdirSync(t.dirs.pids)
    .filter((f) => f.startsWith('gateway.') && f.endsWith('.pid'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -4);
      return { name, url: readPid(t.dirs.pids, name)?.url ?? '' };
    });
}

function heightIn(body: string): { height?: number } {
  const height = channelMetric(body, 'ledger_blockchain_height');
  return height === undefined ? {} : { height };
}

/** Whether an orderer leads channel hdx (from its consensus metrics) and its height; nothing when it does not answer. */
async function ordererRole(t: Topology, o: OrdererNode): Promise<{ role?: 'leader' | 'follower'; height?: number }> {
  const body = await metricsOf(o).catch(() => undefined);
  if (body === undefined) return {};
  const leads = channelMetric(body, t.options.consensus === 'bft' ? 'consensus_BFT_is_leader' : 'consensus_etcdraft_is_leader');
  return { ...(leads === undefined ? {} : { role: leads === 1 ? 'leader' : 'follower' }), ...heightIn(body) };
}

/** The orderer that leads channel hdx now, from the consensus metrics; undefined when none does. */
export async function orderingLeader(t: Topology): Promise<string | undefined> {
  for (const o of t.orderers) {
    const body = await metricsOf(o).catch(() => '');
    const leads = t.options.consensus === 'bft' ? channelMetric(body, 'consensus_BFT_is_leader') === 1 : channelMetric(body, 'consensus_etcdraft_is_leader') === 1;
    if (leads) return o.name;
  }
  return undefined;
}

async function healthz(host: string, port: number): Promise<boolean> {
  try {
    return (await httpGet(`http://${endpoint(host, port)}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/**
 * Whether the chaincode answers through an org's peer (the contract metadata, asked as the org admin with
 * the peer CLI): the peer, its connection to the org's chaincode server and the server all work.
 */
async function chaincodeAnswers(t: Topology, peerBinDir: string | undefined, org: Topology['peers'][number]['org']): Promise<string | undefined> {
  if (!peerBinDir) return 'network not fully up (no network.json)';
  try {
    const out = await run(binariesIn(peerBinDir).peer, ['chaincode', 'query', '-C', CHANNEL, '-n', CHAINCODE_NAME, '-c', '{"Args":["org.hyperledger.fabric:GetMetadata"]}'], {
      env: adminEnv(t, binariesIn(peerBinDir), org),
      timeoutMs: 15_000,
    });
    return out.includes('"contracts"') ? undefined : 'chaincode answered without its metadata';
  } catch {
    return `chaincode does not answer through peer0.${org}`;
  }
}

/**
 * Every node's status. `opts.gateways` adds gateways started elsewhere (tests run them in-process) to the
 * ones `npm start` recorded.
 */
export async function status(requested: NetworkOptions, opts: { gateways?: readonly GatewayEndpoint[] } = {}): Promise<NodeStatus[]> {
  if (!fs.existsSync(path.join(requested.home, 'options.json'))) return [];
  const t = existingTopology(requested);
  let binDir: string | undefined;
  try {
    binDir = readNetworkInfo(t.options.home).fabricBinaries;
  } catch {
    binDir = undefined;
  }
  const gateways = [...recordedGateways(t), ...(opts.gateways ?? [])];
  const [cas, orderers, peers, chaincodes, gws] = await Promise.all([
    Promise.all(
      t.orgs.map(async (o): Promise<NodeStatus> => ({
        name: o.ca.name,
        kind: 'ca',
        running: isRunning(t.dirs.pids, o.ca.name),
        healthy: await healthz(o.ca.host, o.ca.operationsPort),
        endpoint: caUrl(o.ca),
      })),
    ),
    Promise.all(
      t.orderers.map(async (o): Promise<NodeStatus> => ({
        name: o.name,
        kind: 'orderer',
        running: isRunning(t.dirs.pids, o.name),
        healthy: await healthz(o.host, o.operationsPort),
        endpoint: endpoint(o.host, o.port),
        ...(await ordererRole(t, o)),
      })),
    ),
    Promise.all(
      t.peers.map(async (p): Promise<NodeStatus> => ({
        name: p.name,
        kind: 'peer',
        running: isRunning(t.dirs.pids, p.name),
        healthy: await healthz(p.host, p.operationsPort),
        endpoint: endpoint(p.host, p.port),
        ...heightIn(await metricsOf(p).catch(() => '')),
      })),
    ),
    Promise.all(
      t.peers.map(async (p): Promise<NodeStatus> => {
        const name = chaincodeServerName(p.org);
        const running = isRunning(t.dirs.pids, name);
        const listening = await portOpen(p.host, p.chaincodePort);
        const problem = !listening ? 'not listening' : await chaincodeAnswers(t, binDir, p.org);
        return { name, kind: 'chaincode', running, healthy: problem === undefined, endpoint: endpoint(p.host, p.chaincodePort), ...(problem ? { detail: problem } : {}) };
      }),
    ),
    Promise.all(
      gateways.map(async (g): Promise<NodeStatus> => {
        const recorded = readPid(t.dirs.pids, g.name) !== undefined;
        if (g.url === '') return { name: g.name, kind: 'gateway', running: isRunning(t.dirs.pids, g.name), healthy: undefined, endpoint: '', detail: 'URL not recorded' };
        const answer = await httpGet(`${g.url.replace(/\/+$/, '')}/healthz`, undefined, 20_000).catch(() => undefined);
        // A gateway started elsewhere (no pid record) runs when it answers.
        return gatewayStatus(g, recorded ? isRunning(t.dirs.pids, g.name) : answer !== undefined, answer);
      }),
    ),
  ]);
  // A peer's lag: how many blocks the highest orderer has that the peer does not.
  const top = Math.max(0, ...orderers.flatMap((o) => (o.height === undefined ? [] : [o.height])));
  const peersWithLag = peers.map((p) => (p.height === undefined || top === 0 ? p : { ...p, lagBlocks: Math.max(0, top - p.height) }));
  return [...cas, ...orderers, ...peersWithLag, ...chaincodes, ...gws];
}

/** The status table the CLI prints: one line per node. */
export function formatStatus(rows: readonly NodeStatus[]): string {
  return rows
    .map((r) => {
      const state = !r.running ? 'stopped' : r.healthy === undefined ? 'unknown' : r.healthy ? 'healthy' : 'UNHEALTHY';
      const facts = [
        r.role ?? '',
        r.height === undefined ? '' : `${r.kind === 'gateway' ? 'view height' : 'height'} ${r.height}`,
        r.lagBlocks === undefined ? '' : `lag ${r.lagBlocks}`,
        r.detail ?? '',
      ].filter((x) => x !== '');
      return `${r.name.padEnd(22)} ${r.kind.padEnd(10)} ${state.padEnd(10)} ${r.endpoint.padEnd(24)} ${facts.join(', ')}`.trimEnd();
    })
    .join('\n');
}
