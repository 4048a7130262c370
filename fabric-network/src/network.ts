import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { type Binaries, binariesIn, ensureBinaries, REPO_ROOT } from './binaries';
import { caCertFile, caUrl, enrollIdentity, orgSecrets, register, startCa, writeOrgMsp } from './ca';
import { ccaasPackage } from './chaincode-package';
import { configtx, PROFILE } from './configtx';
import { orgKey, orgRegistration } from './org-did';
import { httpGet, importantLogLines, isRunning, killService, logFile, NetworkError, run, type ServiceSpec, startService, stopService, waitFor, waitHealthy } from './proc';
import {
  activeSlots,
  CHAINCODE_LABEL,
  CHAINCODE_NAME,
  CHAINCODE_VERSION,
  CHANNEL,
  identityDir,
  type NetworkOptions,
  type Org,
  orgOf,
  type PeerNode,
  PEER_ORGS,
  type PeerOrgName,
  type Topology,
  topology,
  endpoint,
  invalidAddress,
  invalidNetns,
  isLoopback,
  parseOrgMap,
  addressOf,
} from './topology';

export type Progress = (message: string) => void;

/** The chaincode package the org chaincode servers run (its package.json `main` exports `contracts`). */
const CHAINCODE_DIR = path.resolve(process.env.HDX_CHAINCODE_DIR ?? path.join(REPO_ROOT, 'chaincode'));
const BUILDER_DIR = path.join(REPO_ROOT, 'fabric-network', 'builders', 'ccaas');
/** Fabric's default log format without the colour codes, so log files read well and can be searched. */
const LOG_FORMAT = '%{time:2006-01-02 15:04:05.000 MST} %{id:04x} %{level:.4s} [%{module}] %{shortfunc} -> %{message}';

/** What `up` writes to <home>/network.json: enough for gateways, tests and `status` to find everything. */
export interface NetworkInfo {
  readonly home: string;
  readonly options: NetworkOptions;
  readonly channel: string;
  readonly chaincode: string;
  readonly fabricBinaries: string;
  readonly orgs: Record<string, GatewayConnection>;
  readonly orderers: ReadonlyArray<{ name: string; endpoint: string }>;
}

/** Everything an org's HDX gateway needs to reach its CA and peer. Written as gateways/<org>.env too. */
export interface GatewayConnection {
  readonly org: string;
  readonly mspId: string;
  readonly peerEndpoint: string;
  /**
   * The TLS name the gateway checks the peer's certificate against instead of the endpoint's host:
   * `localhost` on the loopback (as before); absent when the peer is at another address, whose
   * certificate names that address.
   */
  readonly peerHostAlias?: string;
  readonly peerTlsCaFile: string;
  readonly caUrl: string;
  readonly caName: string;
  readonly caTlsCaFile: string;
  readonly enrollmentId: string;
  readonly enrollmentSecret: string;
  /** Private JWK of the organization's DID (member-to-member requests). */
  readonly orgKeyFile: string;
  readonly orgDid: string;
  /** The port `npm start` serves its gateway on, the one its organization DID's FHIR base URL names. */
  readonly gatewayPort: number;
}

export function defaultOptions(env: NodeJS.ProcessEnv = process.env): NetworkOptions {
  const consensus = env.HDX_ORDERER_TYPE ?? 'raft';
  if (consensus !== 'raft' && consensus !== 'bft') throw new NetworkError(`HDX_ORDERER_TYPE must be raft or bft, not ${consensus}`);
  // Three Raft orderers by default: the ordering service survives one of them failing (a Raft majority of 2).
  const orderers = Number(env.HDX_ORDERERS ?? (consensus === 'bft' ? '4' : '3')) as NetworkOptions['orderers'];
  if (consensus === 'raft' && orderers !== 1 && orderers !== 3) throw new NetworkError(`HDX_ORDERERS must be 1 or 3 with Raft, not ${env.HDX_ORDERERS}`);
  if (consensus === 'bft' && orderers !== 4) throw new NetworkError(`HDX_ORDERERS must be 4 with BFT (3f+1 orderers for f = 1), not ${env.HDX_ORDERERS}`);
  const portBase = Number(env.HDX_PORT_BASE ?? '7000');
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase > 65_000) {
    throw new NetworkError(`HDX_PORT_BASE must be an integer between 1024 and 65000, not ${env.HDX_PORT_BASE}`);
  }
  // Raft: a block per transaction by default. The gateways already batch (group commit of sync reads,
  // the outbox's RecordAccessBatch, a Bundle's AnchorBatch), so an orderer waiting BatchTimeout for more
  // transactions only adds latency: a sync read at 32 clients 84 → 157 reads/s, p50 331 → 192 ms
  // (bench/README.md, `exchange`, stop 23). SmartBFT keeps 100: three rounds among four orderers per
  // block were not measured with one request each.
  const maxMessageCount = Number(env.HDX_MAX_MESSAGE_COUNT ?? (consensus === 'bft' ? '100' : '1'));
  if (!Number.isInteger(maxMessageCount) || maxMessageCount < 1) {
    throw new NetworkError(`HDX_MAX_MESSAGE_COUNT must be a positive integer, not ${env.HDX_MAX_MESSAGE_COUNT}`);
  }
  const batchTimeout = env.HDX_BATCH_TIMEOUT ?? '200ms';
  if (!/^\d+(ms|s)$/.test(batchTimeout)) throw new NetworkError(`HDX_BATCH_TIMEOUT must look like 200ms or 1s, not ${batchTimeout}`);
  let addresses: Record<string, string> | undefined;
  let netns: Record<string, string> | undefined;
  try {
    addresses = parseOrgMap('HDX_ORG_ADDRESSES', env.HDX_ORG_ADDRESSES, invalidAddress);
    netns = parseOrgMap('HDX_ORG_NETNS', env.HDX_ORG_NETNS, invalidNetns);
  } catch (err) {
    throw new NetworkError((err as Error).message);
  }
  return {
    home: path.resolve(env.HDX_NETWORK_HOME ?? path.join(REPO_ROOT, '.hdx', 'network')),
    portBase,
    consensus,
    orderers,
    batchTimeout,
    maxMessageCount,
    // Only when given, so a network's options.json (and every existing layout) is as before.
    ...(addresses ? { addresses } : {}),
    ...(netns ? { netns } : {}),
  };
}

export const STATE_FILE = 'network.json';

/**
 * The orderers' cluster RPC timeout (General.Cluster.RPCTimeout). Also bounds each consensus message
 * send: on slow links between hosts (a full 10 MB block), raise it with ORDERER_GENERAL_CLUSTER_RPCTIMEOUT.
 */
const CLUSTER_RPC_TIMEOUT = process.env.ORDERER_GENERAL_CLUSTER_RPCTIMEOUT ?? '3s';

/** A network's options.json; networks created before BFT existed have no `consensus`: they are Raft. */
export function readOptions(file: string): NetworkOptions {
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Omit<NetworkOptions, 'consensus'> & { consensus?: NetworkOptions['consensus'] };
  return { ...stored, consensus: stored.consensus ?? 'raft' };
}

/** Reads the options a network was created with, so a later `up` or `status` uses the same layout. */
function loadOrCreateOptions(requested: NetworkOptions): NetworkOptions {
  const file = path.join(requested.home, 'options.json');
  if (fs.existsSync(file)) return readOptions(file);
  fs.mkdirSync(requested.home, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(requested, null, 2));
  return requested;
}

export function readNetworkInfo(home: string): NetworkInfo {
  const file = path.join(home, STATE_FILE);
  if (!fs.existsSync(file)) throw new NetworkError(`no network at ${home}: run \`npm run network -- up\` first`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as NetworkInfo;
}

function marker(t: Topology, step: string): string {
  return path.join(t.options.home, 'steps', step);
}
export function done(t: Topology, step: string): boolean {
  return fs.existsSync(marker(t, step));
}
/** The step marker of a finished add-org: until it is there, `up` refuses to run (add-org is to be run again). */
export function joinedMarker(name: string): string {
  return `joined-${name}`;
}
export function markDone(t: Topology, step: string): void {
  fs.mkdirSync(path.dirname(marker(t, step)), { recursive: true });
  fs.writeFileSync(marker(t, step), new Date().toISOString());
}

export async function timed<T>(progress: Progress, label: string, fn: () => Promise<T>): Promise<T> {
  const start = Date.now();
  progress(`${label} ...`);
  const result = await fn();
  progress(`${label}: done in ${((Date.now() - start) / 1000).toFixed(1)}s`);
  return result;
}

/**
 * Brings the network up, idempotently: creates what is missing (certificates, channel, chaincode
 * definition) and starts what is not running. A network that is already up is left as it is.
 */
export async function up(requested: NetworkOptions, progress: Progress = () => {}): Promise<NetworkInfo> {
  const options = loadOrCreateOptions(requested);
  const t = topology(options);
  // An organization whose add-org was interrupted is in the topology but maybe not yet in the channel: up
  // would try to join its peer and register its DID. add-org finishes it (and starts the rest too).
  const leaving = options.leaving ?? [];
  if (leaving[0] !== undefined) throw new NetworkError(`${leaving.join(', ')} did not finish leaving: run \`npm run network -- remove-org ${leaving[0]}\` again`);
  const unfinished = activeSlots(options)
    .map(([name]) => name)
    .filter((name) => !done(t, joinedMarker(name)));
  if (unfinished[0] !== undefined) throw new NetworkError(`${unfinished.join(', ')} did not finish joining: run \`npm run network -- add-org ${unfinished[0]}\` again`);
  if (!fs.existsSync(path.join(CHAINCODE_DIR, 'dist', 'index.js'))) {
    throw new NetworkError('the chaincode is not built: run `npm run build` first');
  }
  const steps = 10;
  let step = 0;
  const s = (label: string): string => `(${++step}/${steps}) ${label}`;

  const bins = await timed(progress, s('Fabric binaries'), async () => ensureBinaries());
  for (const dir of Object.values(t.dirs)) fs.mkdirSync(dir, { recursive: true });

  await timed(progress, s(`Fabric CAs for ${t.orgs.map((o) => o.name).join(', ')}`), async () => {
    await Promise.all(t.orgs.map((org) => startCa(t, bins, org)));
  });
  await timed(progress, s('Identities (enrolled from each CA)'), () => enrollAll(t, bins));
  const ordering = t.options.consensus === 'bft' ? 'SmartBFT' : 'Raft';
  await timed(progress, s(`${ordering} ordering service (${t.orderers.length} node${t.orderers.length > 1 ? 's' : ''})`), () => startOrderers(t, bins));
  await timed(progress, s(`Peers (${t.peers.map((p) => p.org).join(', ')})`), () => startPeers(t, bins));
  await timed(progress, s(`Channel ${CHANNEL}`), () => createChannel(t, bins));
  await timed(progress, s(`Chaincode ${CHAINCODE_NAME} (as a service, endorsement MAJORITY)`), () => deployChaincode(t, bins));

  await timed(progress, s(`Every orderer holds the blocks ordered so far (${ordering} cluster ordering)`), () => waitForOrdererHeights(t));
  await timed(progress, s('Gossip membership (each peer sees the other organizations, so endorsements can be planned)'), () => waitForMembership(t));
  await timed(progress, s('Organization DIDs (each member onboarded on the ledger with its gateway URL)'), () => registerOrgDids(t, bins));

  return writeNetworkInfo(t, bins);
}

async function enrollAll(t: Topology, bins: Binaries): Promise<void> {
  await Promise.all(t.orgs.map((org) => enrollOrg(t, bins, org)));
}

/** Enrolls an organization's identities from its CA (each only once): admin, and its orderers or its peer, chaincode server and gateway. */
export async function enrollOrg(t: Topology, bins: Binaries, org: Org): Promise<void> {
  writeOrgMsp(org);
  await enrollIdentity(t, bins, org, { id: 'orgadmin', type: 'admin', attrs: ['hdx.role=admin'] }, identityDir(org, 'admin', 'admin'), true);
  if (org.name === 'orderer') {
    for (const o of t.orderers) await enrollIdentity(t, bins, org, { id: o.name, type: 'orderer' }, o.dir, true);
    return;
  }
  await enrollIdentity(t, bins, org, { id: 'peer0', type: 'peer' }, identityDir(org, 'peer', 'peer0'), true);
  await enrollIdentity(t, bins, org, { id: 'chaincode', type: 'client' }, identityDir(org, 'chaincode', 'server'), true);
  // The org's HDX gateway enrolls itself (fabric-ca-client) with this id and secret.
  await register(t, bins, org, { id: 'gateway', type: 'client', attrs: ['hdx.role=gateway'] });
  // A member on its own address serves its FHIR API over HTTPS (the gateway refuses plain HTTP off the
  // loopback): a TLS server certificate from its CA naming that address, used by its host unit.
  if (!isLoopback(addressOf(t.options, org.name))) await enrollIdentity(t, bins, org, { id: 'gateway-tls', type: 'client' }, gatewayTlsDir(org), true);
}

/** Where the TLS server certificate of an organization's gateway is kept (tls/server.crt, server.key, ca.crt), when it has its own address. */
export function gatewayTlsDir(org: Org): string {
  return identityDir(org, 'gateway', 'gateway');
}

function consensusDir(t: Topology): string {
  return t.options.consensus === 'bft' ? 'smartbft' : 'etcdraft';
}

export function ordererEnv(t: Topology, bins: Binaries, i: number): NodeJS.ProcessEnv {
  const o = t.orderers[i];
  if (!o) throw new Error(`no orderer ${i}`);
  const tls = path.join(o.dir, 'tls');
  const data = path.join(t.dirs.data, o.name);
  const orgCa = caCertFile(orgOf(t, 'orderer').ca);
  return {
    FABRIC_CFG_PATH: bins.configDir,
    FABRIC_LOGGING_SPEC: 'info:grpc=error',
    FABRIC_LOGGING_FORMAT: LOG_FORMAT,
    ORDERER_GENERAL_LISTENADDRESS: o.host,
    ORDERER_GENERAL_LISTENPORT: String(o.port),
    ORDERER_GENERAL_LOCALMSPID: 'OrdererMSP',
    ORDERER_GENERAL_LOCALMSPDIR: path.join(o.dir, 'msp'),
    ORDERER_GENERAL_TLS_ENABLED: 'true',
    ORDERER_GENERAL_TLS_PRIVATEKEY: path.join(tls, 'server.key'),
    ORDERER_GENERAL_TLS_CERTIFICATE: path.join(tls, 'server.crt'),
    ORDERER_GENERAL_TLS_ROOTCAS: `[${path.join(tls, 'ca.crt')}]`,
    ORDERER_GENERAL_BOOTSTRAPMETHOD: 'none',
    // How long a Raft follower waits on forwarding a transaction to the leader (Fabric's default 7 s). A
    // transaction forwarded to a leader that just died is refused only when this ends, and the peers'
    // Fabric Gateway then tries the next orderer: this bounds how soon writes resume after the leader dies.
    ORDERER_GENERAL_CLUSTER_RPCTIMEOUT: CLUSTER_RPC_TIMEOUT,
    ORDERER_CHANNELPARTICIPATION_ENABLED: 'true',
    ORDERER_FILELEDGER_LOCATION: path.join(data, 'ledger'),
    ORDERER_CONSENSUS_WALDIR: path.join(data, consensusDir(t), 'wal'),
    ORDERER_CONSENSUS_SNAPDIR: path.join(data, consensusDir(t), 'snapshot'),
    ORDERER_OPERATIONS_LISTENADDRESS: endpoint(o.host, o.operationsPort),
    ORDERER_METRICS_PROVIDER: 'prometheus',
    ORDERER_ADMIN_LISTENADDRESS: endpoint(o.host, o.adminPort),
    ORDERER_ADMIN_TLS_ENABLED: 'true',
    ORDERER_ADMIN_TLS_CERTIFICATE: path.join(tls, 'server.crt'),
    ORDERER_ADMIN_TLS_PRIVATEKEY: path.join(tls, 'server.key'),
    ORDERER_ADMIN_TLS_ROOTCAS: `[${orgCa}]`,
    ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED: 'true',
    ORDERER_ADMIN_TLS_CLIENTROOTCAS: `[${orgCa}]`,
  };
}

export async function startOrderers(t: Topology, bins: Binaries): Promise<void> {
  await Promise.all(t.orderers.map((o, i) => startOrderer(t, bins, i)));
}

/** Starts one orderer unless it runs, and waits for its /healthz. */
async function startOrderer(t: Topology, bins: Binaries, i: number): Promise<void> {
  const o = t.orderers[i];
  if (!o) throw new Error(`no orderer ${i}`);
  if (!isRunning(t.dirs.pids, o.name)) {
    startService({ name: o.name, command: bins.orderer, args: [], env: ordererEnv(t, bins, i), netns: o.netns }, t.dirs.pids, t.dirs.logs);
  }
  await waitHealthy(o.name, `http://${endpoint(o.host, o.operationsPort)}/healthz`, {
    timeoutMs: 60_000,
    pidsDir: t.dirs.pids,
    log: logFile(t.dirs.logs, o.name),
  });
}

export function peerEnv(t: Topology, bins: Binaries, p: PeerNode): NodeJS.ProcessEnv {
  const org = orgOf(t, p.org);
  const tls = path.join(p.dir, 'tls');
  const data = path.join(t.dirs.data, p.name);
  return {
    FABRIC_CFG_PATH: bins.configDir,
    FABRIC_LOGGING_SPEC: 'info:grpc=error:gossip,discovery=warning',
    FABRIC_LOGGING_FORMAT: LOG_FORMAT,
    CORE_PEER_ID: p.name,
    CORE_PEER_ADDRESS: endpoint(p.host, p.port),
    CORE_PEER_LISTENADDRESS: endpoint(p.host, p.port),
    CORE_PEER_CHAINCODEADDRESS: endpoint(p.host, p.chaincodeListenPort),
    CORE_PEER_CHAINCODELISTENADDRESS: endpoint(p.host, p.chaincodeListenPort),
    CORE_PEER_GOSSIP_BOOTSTRAP: endpoint(p.host, p.port),
    CORE_PEER_GOSSIP_EXTERNALENDPOINT: endpoint(p.host, p.port),
    // Peers join the channel one after another, so their first cross-org handshakes fail; the stock
    // 25 s reconnect interval then delays discovery (and endorsement planning) by half a minute.
    CORE_PEER_GOSSIP_RECONNECTINTERVAL: '2s',
    CORE_PEER_GOSSIP_ALIVETIMEINTERVAL: '2s',
    CORE_PEER_GOSSIP_ALIVEEXPIRATIONTIMEOUT: '10s',
    CORE_PEER_LOCALMSPID: org.mspId,
    CORE_PEER_MSPCONFIGPATH: path.join(p.dir, 'msp'),
    CORE_PEER_TLS_ENABLED: 'true',
    CORE_PEER_TLS_CERT_FILE: path.join(tls, 'server.crt'),
    CORE_PEER_TLS_KEY_FILE: path.join(tls, 'server.key'),
    CORE_PEER_TLS_ROOTCERT_FILE: path.join(tls, 'ca.crt'),
    CORE_PEER_FILESYSTEMPATH: data,
    CORE_LEDGER_SNAPSHOTS_ROOTDIR: path.join(data, 'snapshots'),
    CORE_OPERATIONS_LISTENADDRESS: endpoint(p.host, p.operationsPort),
    CORE_METRICS_PROVIDER: 'prometheus',
    // No Docker: chaincode runs only as a service, through our external builder.
    CORE_VM_ENDPOINT: '',
    CORE_CHAINCODE_EXTERNALBUILDERS: `[{name: ccaas, path: ${BUILDER_DIR}}]`,
    CORE_CHAINCODE_STARTUPTIMEOUT: '30s',
    CORE_CHAINCODE_EXECUTETIMEOUT: '30s',
  };
}

export async function startPeers(t: Topology, bins: Binaries): Promise<void> {
  await Promise.all(t.peers.map((p) => startPeer(t, bins, p)));
}

/** Starts one peer unless it runs, and waits for its /healthz. */
export async function startPeer(t: Topology, bins: Binaries, p: PeerNode): Promise<void> {
  if (!isRunning(t.dirs.pids, p.name)) {
    startService({ name: p.name, command: bins.peer, args: ['node', 'start'], env: peerEnv(t, bins, p), netns: p.netns }, t.dirs.pids, t.dirs.logs);
  }
  await waitHealthy(p.name, `http://${endpoint(p.host, p.operationsPort)}/healthz`, {
    timeoutMs: 60_000,
    pidsDir: t.dirs.pids,
    log: logFile(t.dirs.logs, p.name),
  });
}

/** Environment for the `peer` CLI acting as an org's admin against its own peer. */
export function adminEnv(t: Topology, bins: Binaries, orgName: PeerOrgName): NodeJS.ProcessEnv {
  const org = orgOf(t, orgName);
  const p = t.peers.find((x) => x.org === orgName);
  if (!p) throw new Error(`no peer for ${orgName}`);
  return {
    FABRIC_CFG_PATH: bins.configDir,
    FABRIC_LOGGING_SPEC: 'warning',
    CORE_PEER_LOCALMSPID: org.mspId,
    CORE_PEER_MSPCONFIGPATH: path.join(identityDir(org, 'admin', 'admin'), 'msp'),
    CORE_PEER_ADDRESS: endpoint(p.host, p.port),
    CORE_PEER_TLS_ENABLED: 'true',
    CORE_PEER_TLS_ROOTCERT_FILE: caCertFile(org.ca),
  };
}

export function ordererArgs(t: Topology): string[] {
  const o = t.orderers[0];
  if (!o) throw new Error('no orderer');
  return ['-o', endpoint(o.host, o.port), '--tls', '--cafile', caCertFile(orgOf(t, 'orderer').ca)];
}

async function createChannel(t: Topology, bins: Binaries): Promise<void> {
  const block = path.join(t.dirs.channel, `${CHANNEL}.block`);
  if (!fs.existsSync(block)) {
    const cfgDir = path.join(t.dirs.config, 'configtx');
    fs.mkdirSync(cfgDir, { recursive: true });
    fs.writeFileSync(path.join(cfgDir, 'configtx.yaml'), JSON.stringify(configtx(t), null, 2));
    await run(bins.configtxgen, ['-profile', PROFILE, '-channelID', CHANNEL, '-outputBlock', `${block}.partial`], {
      env: { FABRIC_CFG_PATH: cfgDir },
    });
    fs.renameSync(`${block}.partial`, block);
  }
  const ordererOrg = orgOf(t, 'orderer');
  const adminTls = path.join(identityDir(ordererOrg, 'admin', 'admin'), 'tls');
  // All orderers join at once: a BFT consenter that joins seconds after the others finds them changing
  // views for want of a quorum, and the cluster takes a while to settle.
  await Promise.all(
    t.orderers.map(async (o) => {
      const adminArgs = [
        '-o',
        endpoint(o.host, o.adminPort),
        '--ca-file',
        caCertFile(ordererOrg.ca),
        '--client-cert',
        path.join(adminTls, 'server.crt'),
        '--client-key',
        path.join(adminTls, 'server.key'),
      ];
      const list = await run(bins.osnadmin, ['channel', 'list', '--channelID', CHANNEL, ...adminArgs]).catch(() => '');
      if (!list.includes(`"name": "${CHANNEL}"`)) {
        // osnadmin exits 0 whatever the orderer answered: the status line tells (201 Created).
        const out = await run(bins.osnadmin, ['channel', 'join', '--channelID', CHANNEL, '--config-block', block, ...adminArgs]);
        if (!/^Status: 201\b/m.test(out)) {
          throw new NetworkError(`${o.name} refused to join channel ${CHANNEL}`, [
            ...out.split('\n').filter((l) => l.trim() !== ''),
            ...importantLogLines(logFile(t.dirs.logs, o.name), 4),
          ]);
        }
      }
    }),
  );
  await waitForLeader(t);
  for (const p of t.peers) {
    const env = adminEnv(t, bins, p.org);
    const joined = await run(bins.peer, ['channel', 'list'], { env });
    if (!joined.split('\n').includes(CHANNEL)) await run(bins.peer, ['channel', 'join', '-b', block], { env });
  }
  markDone(t, 'channel');
}

/** An orderer's or peer's Prometheus metrics (its operations endpoint). */
export async function metricsOf(node: { readonly host: string; readonly operationsPort: number }): Promise<string> {
  return (await httpGet(`http://${endpoint(node.host, node.operationsPort)}/metrics`)).body;
}

/** A metric of channel hdx in an orderer's or peer's Prometheus text, e.g. consensus_BFT_leader_id. */
export function channelMetric(body: string, name: string): number | undefined {
  const m = new RegExp(`^${name}\\{channel="${CHANNEL}"\\} ([0-9.e+-]+)$`, 'm').exec(body);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/**
 * The channel takes transactions once its consenters agree on a leader. Raft: orderer0 has seen a leader
 * elected. BFT: every orderer reports the same leader (its consenter id), i.e. all four run the protocol.
 */
async function waitForLeader(t: Topology): Promise<void> {
  const first = t.orderers[0];
  if (!first) throw new Error('no orderer');
  if (t.options.consensus === 'raft') {
    await waitFor(
      `Raft leader for channel ${CHANNEL}`,
      async () => {
        const body = await metricsOf(first);
        return channelMetric(body, 'consensus_etcdraft_is_leader') === 1 || (channelMetric(body, 'consensus_etcdraft_leader_changes') ?? 0) >= 1;
      },
      { timeoutMs: 60_000, pidsDir: t.dirs.pids, name: first.name, log: logFile(t.dirs.logs, first.name) },
    );
    return;
  }
  await waitFor(
    `SmartBFT leader agreed by all ${t.orderers.length} orderers of channel ${CHANNEL}`,
    async () => {
      const leaders = await Promise.all(t.orderers.map(async (o) => channelMetric(await metricsOf(o), 'consensus_BFT_leader_id')));
      const l = leaders[0];
      return l !== undefined && l >= 1 && leaders.every((x) => x === l);
    },
    { timeoutMs: 60_000, pidsDir: t.dirs.pids, name: first.name, log: logFile(t.dirs.logs, first.name) },
  );
}

/**
 * After the chaincode definition and its approvals went through ordering, every orderer of the cluster
 * must hold the same chain (height > 1): proof that the cluster orders and replicates blocks, not just
 * that its processes are healthy.
 */
async function waitForOrdererHeights(t: Topology): Promise<void> {
  const first = t.orderers[0];
  if (!first) throw new Error('no orderer');
  await waitFor(
    `every orderer to hold the blocks of channel ${CHANNEL}`,
    async () => {
      const heights = await Promise.all(t.orderers.map(async (o) => channelMetric(await metricsOf(o), 'ledger_blockchain_height')));
      const h = heights[0];
      return h !== undefined && h > 1 && heights.every((x) => x === h);
    },
    { timeoutMs: 60_000, pidsDir: t.dirs.pids, name: first.name, log: logFile(t.dirs.logs, first.name) },
  );
}

/**
 * The Fabric Gateway plans endorsements from gossip discovery: until every peer knows the peers of the
 * other organizations, a MAJORITY endorsement cannot be planned ("no peer combination can satisfy the
 * endorsement policy"). Wait for each peer's `gossip_membership_total_peers_known` to reach the others.
 */
export async function waitForMembership(t: Topology): Promise<void> {
  const others = t.peers.length - 1;
  await Promise.all(
    t.peers.map((p) =>
      waitFor(
        `${p.name} to see the other ${others} peers through gossip`,
        async () => {
          const res = await httpGet(`http://${endpoint(p.host, p.operationsPort)}/metrics`);
          const m = /gossip_membership_total_peers_known\{channel="hdx"\} (\d+)/.exec(res.body);
          return m?.[1] !== undefined && Number(m[1]) >= others;
        },
        { timeoutMs: 90_000, pidsDir: t.dirs.pids, name: p.name, log: logFile(t.dirs.logs, p.name) },
      ),
    ),
  );
}

/**
 * Where `npm start` serves each org's gateway: 8080, 8081, 8082 for the founding members, then 8083 + k for
 * the organization in slot k of those that joined (so a member keeps its port when another leaves); the
 * organization DIDs name these FHIR base URLs.
 */
export function gatewayPortOf(t: Topology, org: PeerOrgName): number {
  const founder = (PEER_ORGS as readonly string[]).indexOf(org);
  if (founder >= 0) return 8080 + founder;
  const slot = activeSlots(t.options).find(([name]) => name === org)?.[1];
  if (slot === undefined) throw new Error(`unknown organization ${org}`);
  return 8080 + PEER_ORGS.length + slot;
}

export function defaultGatewayUrl(t: Topology, org: PeerOrgName): string {
  const address = addressOf(t.options, org);
  return `${isLoopback(address) ? 'http' : 'https'}://${endpoint(address, gatewayPortOf(t, org))}/fhir`;
}

function orgKeyFile(t: Topology, org: PeerOrgName): string {
  return path.join(t.dirs.gateways, `${org}-org-key.json`);
}

/** Registers each member's organization DID (as the org admin), once. */
export async function registerOrgDids(t: Topology, bins: Binaries): Promise<void> {
  const peerArgs = t.peers.flatMap((p) => ['--peerAddresses', endpoint(p.host, p.port), '--tlsRootCertFiles', caCertFile(orgOf(t, p.org).ca)]);
  for (const org of t.peers.map((p) => p.org)) {
    if (done(t, `org-did-${org}`)) continue;
    const key = orgKey(orgKeyFile(t, org));
    const env = adminEnv(t, bins, org);
    const known = await run(bins.peer, ['chaincode', 'query', '-C', CHANNEL, '-n', CHAINCODE_NAME, '-c', JSON.stringify({ Args: ['hdx.identity:Resolve', key.did] })], {
      env,
    }).then(
      () => true,
      () => false,
    );
    if (!known) {
      const args = JSON.stringify({ Args: ['hdx.identity:Register', JSON.stringify(orgRegistration(key, defaultGatewayUrl(t, org)))] });
      await run(bins.peer, ['chaincode', 'invoke', ...ordererArgs(t), '-C', CHANNEL, '-n', CHAINCODE_NAME, ...peerArgs, '-c', args, '--waitForEvent'], { env });
    }
    markDone(t, `org-did-${org}`);
  }
}

export function chaincodeServerName(org: PeerOrgName): string {
  return `chaincode.${org}`;
}

/** Each org runs its own chaincode server (TLS, client certificates required); its package points there. */
export function orgPackage(t: Topology, p: PeerNode): ReturnType<typeof ccaasPackage> {
  const org = orgOf(t, p.org);
  const peerTls = path.join(p.dir, 'tls');
  return ccaasPackage(CHAINCODE_LABEL, {
    address: endpoint(p.host, p.chaincodePort),
    dial_timeout: '10s',
    tls_required: true,
    client_auth_required: true,
    root_cert: fs.readFileSync(caCertFile(org.ca), 'utf8'),
    client_cert: fs.readFileSync(path.join(peerTls, 'server.crt'), 'utf8'),
    client_key: fs.readFileSync(path.join(peerTls, 'server.key'), 'utf8'),
  });
}

export function startChaincodeServer(t: Topology, p: PeerNode, packageId: string): void {
  const name = chaincodeServerName(p.org);
  if (isRunning(t.dirs.pids, name)) return;
  startService(chaincodeServerSpec(t, p, packageId), t.dirs.pids, t.dirs.logs);
}

/** How an org's chaincode server is started (program, arguments, environment, namespace). */
export function chaincodeServerSpec(t: Topology, p: PeerNode, packageId: string): ServiceSpec {
  const org = orgOf(t, p.org);
  const tls = path.join(identityDir(org, 'chaincode', 'server'), 'tls');
  const cli = require.resolve('fabric-shim/cli.js', { paths: [CHAINCODE_DIR] });
  return {
    name: chaincodeServerName(p.org),
    command: process.execPath,
    args: [
      cli,
      'server',
      '--chaincode-address',
      endpoint(p.host, p.chaincodePort),
      '--chaincode-id',
      packageId,
      '--module-path',
      CHAINCODE_DIR,
      '--chaincode-tls-cert-file',
      path.join(tls, 'server.crt'),
      '--chaincode-tls-key-file',
      path.join(tls, 'server.key'),
      '--chaincode-tls-client-cacert-file',
      caCertFile(org.ca),
    ],
    env: { CORE_PEER_LOCALMSPID: org.mspId, CORE_CHAINCODE_LOGGING_LEVEL: 'info' },
    cwd: CHAINCODE_DIR,
    netns: p.netns,
  };
}

export function waitForChaincodeServer(t: Topology, p: PeerNode): Promise<void> {
  return waitFor(`chaincode server for ${p.org} on ${endpoint(p.host, p.chaincodePort)}`, () => portOpen(p.host, p.chaincodePort), {
    timeoutMs: 30_000,
    pidsDir: t.dirs.pids,
    name: chaincodeServerName(p.org),
    log: logFile(t.dirs.logs, chaincodeServerName(p.org)),
  });
}

export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

async function deployChaincode(t: Topology, bins: Binaries): Promise<void> {
  const packages = new Map(t.peers.map((p) => [p.org, orgPackage(t, p)]));
  // Chaincode servers first: the peer dials its org's server at commit and on each invoke.
  for (const p of t.peers) {
    const pkg = packages.get(p.org);
    if (!pkg) throw new Error('package missing');
    startChaincodeServer(t, p, pkg.packageId);
  }
  await Promise.all(t.peers.map((p) => waitForChaincodeServer(t, p)));

  if (!done(t, 'chaincode')) {
    const sequence = '1';
    for (const p of t.peers) {
      const pkg = packages.get(p.org);
      if (!pkg) throw new Error('package missing');
      const env = adminEnv(t, bins, p.org);
      const file = path.join(t.dirs.chaincode, `${p.org}.tgz`);
      fs.writeFileSync(file, pkg.bytes);
      const installed = await run(bins.peer, ['lifecycle', 'chaincode', 'queryinstalled'], { env });
      if (!installed.includes(pkg.packageId)) await run(bins.peer, ['lifecycle', 'chaincode', 'install', file], { env });
      const approved = await run(bins.peer, ['lifecycle', 'chaincode', 'queryapproved', '-C', CHANNEL, '-n', CHAINCODE_NAME, '--sequence', sequence], { env }).catch(() => '');
      if (!approved.includes(pkg.packageId)) {
        await run(
          bins.peer,
          [
            'lifecycle',
            'chaincode',
            'approveformyorg',
            ...ordererArgs(t),
            '-C',
            CHANNEL,
            '-n',
            CHAINCODE_NAME,
            '-v',
            CHAINCODE_VERSION,
            '--package-id',
            pkg.packageId,
            '--sequence',
            sequence,
          ],
          { env },
        );
      }
    }
    const env = adminEnv(t, bins, 'hospital1');
    const committed = await run(bins.peer, ['lifecycle', 'chaincode', 'querycommitted', '-C', CHANNEL, '-n', CHAINCODE_NAME], { env }).catch(() => '');
    if (!committed.includes(`Sequence: ${sequence}`)) {
      const peerArgs = t.peers.flatMap((p) => ['--peerAddresses', endpoint(p.host, p.port), '--tlsRootCertFiles', caCertFile(orgOf(t, p.org).ca)]);
      await run(
        bins.peer,
        ['lifecycle', 'chaincode', 'commit', ...ordererArgs(t), '-C', CHANNEL, '-n', CHAINCODE_NAME, '-v', CHAINCODE_VERSION, '--sequence', sequence, ...peerArgs],
        { env },
      );
    }
    markDone(t, 'chaincode');
  }

  // Ready when every peer can reach its org's chaincode server: ask each for the contract metadata.
  await Promise.all(t.peers.map((p) => waitForChaincodeAnswer(t, bins, p)));
}

/** Waits until the chaincode answers through a peer (the contract metadata, asked as the org admin). */
export function waitForChaincodeAnswer(t: Topology, bins: Binaries, p: PeerNode): Promise<void> {
  return waitFor(
    `chaincode ${CHAINCODE_NAME} answering through ${p.name}`,
    async () => {
      const out = await run(bins.peer, ['chaincode', 'query', '-C', CHANNEL, '-n', CHAINCODE_NAME, '-c', '{"Args":["org.hyperledger.fabric:GetMetadata"]}'], {
        env: adminEnv(t, bins, p.org),
        timeoutMs: 20_000,
      });
      return out.includes('"contracts"');
    },
    { timeoutMs: 60_000, pidsDir: t.dirs.pids, name: chaincodeServerName(p.org), log: logFile(t.dirs.logs, p.name) },
  );
}

export function writeNetworkInfo(t: Topology, bins: Binaries): NetworkInfo {
  const orgs: Record<string, GatewayConnection> = {};
  for (const name of t.peers.map((p) => p.org)) {
    const org = orgOf(t, name);
    const p = t.peers.find((x) => x.org === name);
    if (!p) throw new Error(`no peer for ${name}`);
    const conn: GatewayConnection = {
      org: name,
      mspId: org.mspId,
      peerEndpoint: endpoint(p.host, p.port),
      ...(isLoopback(p.host) ? { peerHostAlias: 'localhost' } : {}),
      peerTlsCaFile: caCertFile(org.ca),
      caUrl: caUrl(org.ca),
      caName: org.ca.name,
      caTlsCaFile: caCertFile(org.ca),
      enrollmentId: 'gateway',
      enrollmentSecret: orgSecrets(t, org).gateway ?? '',
      orgKeyFile: orgKeyFile(t, name),
      orgDid: orgKey(orgKeyFile(t, name)).did,
      gatewayPort: gatewayPortOf(t, name),
    };
    orgs[name] = conn;
    fs.writeFileSync(path.join(t.dirs.gateways, `${name}.env`), gatewayEnv(conn, devIdentityProvider(t, name)), { mode: 0o600 });
  }
  const info: NetworkInfo = {
    home: t.options.home,
    options: t.options,
    channel: CHANNEL,
    chaincode: CHAINCODE_NAME,
    fabricBinaries: bins.binDir,
    orgs,
    orderers: t.orderers.map((o) => ({ name: o.name, endpoint: endpoint(o.host, o.port) })),
  };
  fs.writeFileSync(path.join(t.options.home, STATE_FILE), JSON.stringify(info, null, 2), { mode: 0o600 });
  return info;
}

/**
 * A development stand-in for each hospital's identity provider: a P-256 key pair whose public half the
 * org's gateway trusts (HDX_IDP_*) and whose private half `hdx idp-token` signs with. A real deployment
 * points HDX_IDP_* at its own identity provider instead.
 */
function devIdentityProvider(t: Topology, org: string): { issuer: string; publicKeyFile: string; privateKeyFile: string } {
  const privateKeyFile = path.join(t.dirs.gateways, `${org}-idp-private.pem`);
  const publicKeyFile = path.join(t.dirs.gateways, `${org}-idp-public.pem`);
  if (!fs.existsSync(privateKeyFile) || !fs.existsSync(publicKeyFile)) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fs.writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  return { issuer: `https://idp.${org}.hdx.test`, publicKeyFile, privateKeyFile };
}

export function gatewayEnv(c: GatewayConnection, idp: { issuer: string; publicKeyFile: string; privateKeyFile: string }): string {
  return [
    `# Written by the HDX network launcher: how the ${c.org} gateway reaches its peer and CA.`,
    `HDX_ORG=${c.org}`,
    `HDX_MSP_ID=${c.mspId}`,
    `HDX_PEER_ENDPOINT=${c.peerEndpoint}`,
    `HDX_PEER_TLS_CA_FILE=${c.peerTlsCaFile}`,
    ...(c.peerHostAlias === undefined
      ? ['# the peer certificate names the address above; TLS checks it']
      : ['# the peer certificates name localhost and 127.0.0.1; TLS uses the host name', `HDX_PEER_HOST_ALIAS=${c.peerHostAlias}`]),
    `HDX_CA_URL=${c.caUrl}`,
    `HDX_CA_NAME=${c.caName}`,
    `HDX_CA_TLS_CA_FILE=${c.caTlsCaFile}`,
    `HDX_CA_ENROLLMENT_ID=${c.enrollmentId}`,
    `HDX_CA_ENROLLMENT_SECRET=${c.enrollmentSecret}`,
    `HDX_CHANNEL=${CHANNEL}`,
    `HDX_CHAINCODE=${CHAINCODE_NAME}`,
    '# The organization DID (on the ledger) this gateway signs member-to-member requests with',
    `HDX_ORG_KEY_FILE=${c.orgKeyFile}`,
    '# Development identity provider (tokens: hdx idp-token --idp-key <private key below>)',
    `HDX_IDP_ISSUER=${idp.issuer}`,
    `HDX_IDP_PUBLIC_KEY_FILE=${idp.publicKeyFile}`,
    `# private key: ${idp.privateKeyFile}`,
    '',
  ].join('\n');
}

/** Every process name the launcher may have started, in stop order (dependents first). */
function serviceNames(t: Topology): string[] {
  const extra = fs.existsSync(t.dirs.pids)
    ? fs
        .readdirSync(t.dirs.pids)
        .filter((f) => f.endsWith('.pid'))
        .map((f) => f.slice(0, -4))
    : [];
  const core = [...t.peers.map((p) => chaincodeServerName(p.org)), ...t.peers.map((p) => p.name), ...t.orderers.map((o) => o.name), ...t.orgs.map((o) => o.ca.name)];
  // Anything else registered in pids/ (e.g. gateways started by scripts/start.sh) stops first.
  return [...extra.filter((n) => !core.includes(n)), ...core];
}

/** Stops exactly the processes this network's launcher started (by recorded pid); `wipe` deletes all state. */
export async function down(requested: NetworkOptions, opts: { wipe: boolean }, progress: Progress = () => {}): Promise<void> {
  const optionsFile = path.join(requested.home, 'options.json');
  const options = fs.existsSync(optionsFile) ? readOptions(optionsFile) : requested;
  const t = topology(options);
  const list: string[] = [];
  for (const name of serviceNames(t)) {
    if (await stopService(t.dirs.pids, name)) list.push(name);
  }
  progress(list.length > 0 ? `stopped ${list.join(', ')}` : 'nothing was running');
  if (opts.wipe) {
    fs.rmSync(options.home, { recursive: true, force: true });
    progress(`removed ${options.home}`);
  }
}

/** A network's topology as it was created (options.json); a NetworkError when there is none. */
export function existingTopology(requested: NetworkOptions): Topology {
  const file = path.join(requested.home, 'options.json');
  if (!fs.existsSync(file)) throw new NetworkError(`no network at ${requested.home}: run \`npm run network -- up\` first`);
  return topology(readOptions(file));
}

/** The Fabric nodes `startNode` can start again: CAs, orderers, peers and chaincode servers. */
export function nodeNames(t: Topology): string[] {
  return [...t.orgs.map((o) => o.ca.name), ...t.orderers.map((o) => o.name), ...t.peers.map((p) => p.name), ...t.peers.map((p) => chaincodeServerName(p.org))];
}

/**
 * Stops one node this launcher started, by its recorded pid: with `kill`, at once by SIGKILL, as a crash
 * would; otherwise SIGTERM, then SIGKILL after 10 s. A gateway started by `npm start` can be stopped too.
 * Returns false when it was not running.
 */
export async function stopNode(requested: NetworkOptions, name: string, opts: { kill: boolean }): Promise<boolean> {
  const t = existingTopology(requested);
  const known = serviceNames(t);
  if (!known.includes(name)) throw new NetworkError(`no node "${name}" in this network; known: ${known.join(', ')}`);
  return opts.kill ? killService(t.dirs.pids, name) : stopService(t.dirs.pids, name);
}

/**
 * Starts one stopped node again, exactly as `up` starts it (same settings, same state folder), and waits
 * until it is healthy: an orderer or a peer answers /healthz, a CA too, a chaincode server accepts
 * connections. A node that runs is left alone. The rest of the network is not touched: a restarted peer
 * catches up on the blocks it missed from the ordering service by itself.
 */
export async function startNode(requested: NetworkOptions, name: string): Promise<'started' | 'running'> {
  const t = existingTopology(requested);
  if (!nodeNames(t).includes(name)) {
    const hint = name.startsWith('gateway.') ? ' (gateways are started by `npm start`)' : '';
    throw new NetworkError(`cannot start "${name}"${hint}; nodes: ${nodeNames(t).join(', ')}`);
  }
  if (isRunning(t.dirs.pids, name)) return 'running';
  // The binaries the network was brought up with (network.json), else build or find them as `up` does.
  const infoFile = path.join(t.options.home, STATE_FILE);
  const bins = fs.existsSync(infoFile) ? binariesIn(readNetworkInfo(t.options.home).fabricBinaries) : ensureBinaries();
  const ordererIndex = t.orderers.findIndex((o) => o.name === name);
  const peer = t.peers.find((p) => p.name === name);
  const chaincodeOf = t.peers.find((p) => chaincodeServerName(p.org) === name);
  const ca = t.orgs.find((o) => o.ca.name === name);
  if (ordererIndex >= 0) await startOrderer(t, bins, ordererIndex);
  else if (peer) await startPeer(t, bins, peer);
  else if (chaincodeOf) {
    startChaincodeServer(t, chaincodeOf, orgPackage(t, chaincodeOf).packageId);
    await waitForChaincodeServer(t, chaincodeOf);
  } else if (ca) await startCa(t, bins, ca);
  return 'started';
}

/** The names of the nodes that have logs, and the path of each log. */
export function logFiles(requested: NetworkOptions): Array<{ name: string; file: string }> {
  const dir = path.join(requested.home, 'logs');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .map((f) => ({ name: f.slice(0, -4), file: path.join(dir, f) }));
}

export type { Org };
