/**
 * `npm run network -- units <org>`: what one organization's own host needs, in one folder the launcher
 * writes (`<home>/hosts/<org>/`), to be copied to that host's HDX root (default /opt/hdx):
 *
 * - `state/`: the organization's material with the launcher's layout (so every path the nodes are given
 *   stays valid): its identities, keys and TLS files (`orgs/<org>/`), its CA (`ca/<org>/`), its enrollment
 *   secrets, its gateway's env file, organization key and development identity-provider keys, its
 *   chaincode package, the channel's genesis block, the ledgers of its nodes and its gateway's store when
 *   they exist; of every other organization only the CA certificate (`ca/<other>/server/ca-cert.pem`), the
 *   TLS root its nodes check the others' nodes against. No other organization's key, secret or ledger.
 * - `units/`: a systemd unit per node of the organization (its CA; its orderers, or its peer, chaincode
 *   server and gateway), each with an environment file holding exactly what `up` starts the node with,
 *   every path moved from this machine to the host's layout.
 * - `MANIFEST`: every file, for checking the copy.
 *
 * The nodes keep their organization's address (HDX_ORG_ADDRESSES): the host must own that address.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Binaries, REPO_ROOT } from './binaries';
import { caCertFile, caEnv } from './ca';
import { chaincodeServerName, chaincodeServerSpec, defaultGatewayUrl, gatewayPortOf, gatewayTlsDir, nodeNames, ordererEnv, orgPackage, peerEnv } from './network';
import { isRunning, NetworkError, type ServiceSpec } from './proc';
import { addressOf, CHANNEL, isLoopback, type Org, orgOf, type Topology } from './topology';

/** Where things are on the organization's host. */
export interface HostLayout {
  /** The HDX root on the host: `state/` (this folder's copy), the units' env files, `repo/`, `fabric/`. */
  readonly root: string;
  /** The HDX repository checked out and built on the host (`npm ci && npm run build`). */
  readonly repo: string;
  /** The pinned Fabric binaries (scripts/install-fabric.sh) and their config folder (core.yaml, orderer.yaml). */
  readonly fabricBin: string;
  readonly fabricConfig: string;
  /** Node.js 20 on the host. */
  readonly node: string;
  /** The system user the units run as. */
  readonly user: string;
}

export function hostLayout(env: NodeJS.ProcessEnv = process.env): HostLayout {
  const root = env.HDX_HOST_ROOT ?? '/opt/hdx';
  if (!path.isAbsolute(root)) throw new NetworkError(`HDX_HOST_ROOT must be an absolute path, not ${root}`);
  return {
    root,
    repo: path.join(root, 'repo'),
    fabricBin: path.join(root, 'fabric', 'bin'),
    fabricConfig: path.join(root, 'fabric', 'config'),
    node: env.HDX_HOST_NODE ?? '/usr/bin/node',
    user: env.HDX_HOST_USER ?? 'hdx',
  };
}

/** The state folder on the host (the copy of `state/`). */
export function hostState(layout: HostLayout): string {
  return path.join(layout.root, 'state');
}

/**
 * Moves every local path in `value` to the host's: the network's state folder, the repository, the Fabric
 * binaries and their config, this Node.js. The longest prefix wins (the state folder is inside the repo).
 */
export function toHostPaths(value: string, t: Topology, bins: Binaries, layout: HostLayout): string {
  const map: Array<[string, string]> = [
    [t.options.home, hostState(layout)],
    [bins.binDir, layout.fabricBin],
    [bins.configDir, layout.fabricConfig],
    [REPO_ROOT, layout.repo],
    [process.execPath, layout.node],
  ];
  map.sort((a, b) => b[0].length - a[0].length);
  let out = '';
  let rest = value;
  // One pass, left to right: a replaced path is not rewritten again.
  for (;;) {
    let best: { at: number; from: string; to: string } | undefined;
    for (const [from, to] of map) {
      const at = rest.indexOf(from);
      if (at >= 0 && (best === undefined || at < best.at)) best = { at, from, to };
    }
    if (!best) return out + rest;
    out += rest.slice(0, best.at) + best.to;
    rest = rest.slice(best.at + best.from.length);
  }
}

/** Paths (relative to the network's state folder) the organization's host holds: its own, whole folders or files. */
export function ownPaths(t: Topology, org: Org): string[] {
  const own = [`orgs/${org.name}`, `ca/${org.name}`, `secrets/${org.name}.json`, `channel/${CHANNEL}.block`, 'options.json'];
  if (org.name === 'orderer') return [...own, ...t.orderers.map((o) => `data/${o.name}`)];
  return [
    ...own,
    `chaincode/${org.name}.tgz`,
    `gateways/${org.name}.env`,
    `gateways/${org.name}-org-key.json`,
    `gateways/${org.name}-idp-private.pem`,
    `gateways/${org.name}-idp-public.pem`,
    `data/peer0.${org.name}`,
    `gateway-${org.name}`,
  ];
}

/** Of the other organizations, only their CA certificates (public): the TLS roots of their nodes. */
export function otherCertificates(t: Topology, org: Org): string[] {
  return t.orgs.filter((o) => o.name !== org.name).map((o) => path.relative(t.options.home, caCertFile(o.ca)));
}

/** Names of the organization's nodes, in start order. */
function nodesOf(t: Topology, org: Org): string[] {
  return nodeNames(t).filter((n) => nodeOrg(t, n) === org.name);
}

function nodeOrg(t: Topology, node: string): string | undefined {
  if (t.orderers.some((o) => o.name === node)) return 'orderer';
  const ca = t.orgs.find((o) => o.ca.name === node);
  if (ca) return ca.name;
  const peer = t.peers.find((p) => p.name === node || chaincodeServerName(p.org) === node || `gateway.${p.org}` === node);
  return peer?.org;
}

/** A value for a systemd EnvironmentFile line: single-quoted (no expansion, no escapes), or double-quoted with escapes. */
export function envFileValue(value: string): string {
  if (!value.includes("'") && !value.includes('\n')) return `'${value}'`;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

export interface HostUnit {
  /** `hdx-<node>.service` */
  readonly unitName: string;
  readonly unit: string;
  /** The unit's EnvironmentFile, `<root>/units/<node>.env`, and its content. */
  readonly envFile: string;
  readonly env: string;
}

function unitFor(t: Topology, bins: Binaries, layout: HostLayout, spec: ServiceSpec, description: string, after: string[]): HostUnit {
  const host = (v: string): string => toHostPaths(v, t, bins, layout);
  const envFile = path.join(layout.root, 'units', `${spec.name}.env`);
  const env = [
    `# ${description}: the environment \`npm run network -- up\` starts it with, paths moved to this host.`,
    ...Object.entries(spec.env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${envFileValue(host(v))}`),
    '',
  ].join('\n');
  // systemd expands % specifiers in unit files: a literal % is %%.
  const arg = (a: string): string => {
    const v = host(a).replace(/%/g, '%%');
    return /[\s"'\\]/.test(v) ? `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"` : v;
  };
  const unit = [
    '[Unit]',
    `Description=HDX ${description}`,
    'Wants=network-online.target',
    `After=${['network-online.target', ...after].join(' ')}`,
    '',
    '[Service]',
    'Type=simple',
    `User=${layout.user}`,
    `EnvironmentFile=${envFile}`,
    ...(spec.cwd ? [`WorkingDirectory=${host(spec.cwd)}`] : []),
    `ExecStart=${[spec.command, ...spec.args].map(arg).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5',
    'LimitNOFILE=65536',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
  return { unitName: `hdx-${spec.name}.service`, unit, envFile, env };
}

/** The systemd units of one organization's nodes. */
export function hostUnits(t: Topology, bins: Binaries, layout: HostLayout, orgName: string): HostUnit[] {
  const org = orgOf(t, orgName);
  const units: HostUnit[] = [];
  const caUnit = `hdx-${org.ca.name}.service`;
  units.push(unitFor(t, bins, layout, { name: org.ca.name, command: bins.caServer, args: ['start'], env: caEnv(org.ca) }, `${org.name} Fabric CA`, []));
  if (org.name === 'orderer') {
    t.orderers.forEach((o, i) => {
      units.push(unitFor(t, bins, layout, { name: o.name, command: bins.orderer, args: [], env: ordererEnv(t, bins, i) }, `orderer ${o.name}`, [caUnit]));
    });
    return units;
  }
  const peer = t.peers.find((p) => p.org === org.name);
  if (!peer) throw new NetworkError(`no peer for organization ${org.name}`);
  const peerUnit = `hdx-${peer.name}.service`;
  units.push(unitFor(t, bins, layout, { name: peer.name, command: bins.peer, args: ['node', 'start'], env: peerEnv(t, bins, peer) }, `${org.name} peer ${peer.name}`, [caUnit]));
  const cc = chaincodeServerSpec(t, peer, orgPackage(t, peer).packageId);
  units.push(unitFor(t, bins, layout, { ...cc, netns: undefined }, `${org.name} chaincode server`, [peerUnit]));
  const gatewayEnvFile = path.join(t.dirs.gateways, `${org.name}.env`);
  const gatewayEnv = { ...envLines(gatewayEnvFile), ...gatewayListenEnv(t, org) };
  units.push(
    unitFor(
      t,
      bins,
      layout,
      {
        name: `gateway.${org.name}`,
        command: process.execPath,
        args: [path.join(REPO_ROOT, 'gateway', 'dist', 'main.js')],
        env: { ...gatewayEnv, HDX_GATEWAY_PORT: String(gatewayPortOf(t, org.name)), HDX_DATA_DIR: path.join(t.options.home, `gateway-${org.name}`) },
        cwd: REPO_ROOT,
      },
      `${org.name} FHIR gateway`,
      [peerUnit, `hdx-${chaincodeServerName(org.name)}.service`],
    ),
  );
  return units;
}

/** The bundle of the other members' CA certificates a gateway with its own address trusts for their HTTPS gateways. */
export function memberTlsRootsFile(t: Topology, org: Org): string {
  return path.join(t.dirs.gateways, `${org.name}-member-tls-roots.pem`);
}

/**
 * Where a member's gateway listens on its host: on the organization's own address over HTTPS (its TLS
 * certificate from its CA, naming the address), with the other members' CA certificates trusted for
 * their gateways (NODE_EXTRA_CA_CERTS: the exchange's fetches); on the loopback, nothing changes.
 */
function gatewayListenEnv(t: Topology, org: Org): Record<string, string> {
  const address = addressOf(t.options, org.name);
  if (isLoopback(address)) return {};
  const tls = path.join(gatewayTlsDir(org), 'tls');
  return {
    HDX_GATEWAY_HOST: address,
    HDX_GATEWAY_TLS_CERT_FILE: path.join(tls, 'server.crt'),
    HDX_GATEWAY_TLS_KEY_FILE: path.join(tls, 'server.key'),
    HDX_GATEWAY_BASE_URL: defaultGatewayUrl(t, org.name),
    NODE_EXTRA_CA_CERTS: memberTlsRootsFile(t, org),
  };
}

/** KEY=VALUE lines of a launcher env file (comments skipped). */
function envLines(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) env[m[1]] = m[2];
  }
  return env;
}

function copyInto(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(from, to, { recursive: true, preserveTimestamps: true });
}

function listFiles(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [path.relative(base, p)];
  });
}

/** Files under `state/` that hold a private key or a secret and are not the organization's own: none may be there. */
export function foreignSecrets(stateDir: string, own: readonly string[]): string[] {
  return listFiles(stateDir).filter((f) => {
    const mine = own.some((o) => f === o || f.startsWith(`${o}/`));
    if (mine) return false;
    if (/(^|\/)(keystore|secrets)\//.test(f) || /\.key$|-key\.json$|private\.pem$/.test(f)) return true;
    return fs.readFileSync(path.join(stateDir, f), 'utf8').includes('PRIVATE KEY');
  });
}

/**
 * Writes `<home>/hosts/<org>/` (replacing an earlier one): state/, units/ and MANIFEST. Refuses while a
 * node of the organization runs: its ledger would be copied half-written.
 */
export function writeHostFolder(t: Topology, bins: Binaries, orgName: string, layout: HostLayout): { dir: string; files: number; units: string[] } {
  const org = orgOf(t, orgName);
  const running = [...nodesOf(t, org), ...(org.name === 'orderer' ? [] : [`gateway.${org.name}`])].filter((n) => isRunning(t.dirs.pids, n));
  if (running.length > 0) {
    throw new NetworkError(`stop ${org.name}'s nodes before exporting its host folder (their ledgers would be copied half-written): ${running.join(', ')}`);
  }
  const dir = path.join(t.options.home, 'hosts', org.name);
  fs.rmSync(dir, { recursive: true, force: true });
  const state = path.join(dir, 'state');
  const own = ownPaths(t, org);
  for (const rel of [...own, ...otherCertificates(t, org)]) {
    const from = path.join(t.options.home, rel);
    if (fs.existsSync(from)) copyInto(from, path.join(state, rel));
  }
  if (org.name !== 'orderer') {
    const roots = otherCertificates(t, org).map((rel) => fs.readFileSync(path.join(t.options.home, rel), 'utf8').trim());
    const bundle = path.join(state, path.relative(t.options.home, memberTlsRootsFile(t, org)));
    fs.mkdirSync(path.dirname(bundle), { recursive: true });
    fs.writeFileSync(bundle, `${roots.join('\n')}\n`);
  }
  const leaked = foreignSecrets(state, own);
  if (leaked.length > 0) throw new NetworkError(`the host folder of ${org.name} would hold another organization's secrets: ${leaked.join(', ')}`);
  const units = hostUnits(t, bins, layout, org.name);
  for (const u of units) {
    const unitsDir = path.join(dir, 'units');
    fs.mkdirSync(unitsDir, { recursive: true });
    fs.writeFileSync(path.join(unitsDir, u.unitName), u.unit);
    fs.writeFileSync(path.join(unitsDir, path.basename(u.envFile)), u.env, { mode: 0o600 });
  }
  const files = listFiles(dir).sort();
  fs.writeFileSync(path.join(dir, 'MANIFEST'), `${files.join('\n')}\n`);
  return { dir, files: files.length, units: units.map((u) => u.unitName) };
}
