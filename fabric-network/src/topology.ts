import * as path from 'node:path';

/** The founding members of the HDX consortium: the organizations in the channel's genesis block. */
export const PEER_ORGS = ['hospital1', 'hospital2', 'regulator'] as const;
/** A member organization: a founding one, or one that joined later (`add-org`). */
export type PeerOrgName = string;
export type OrgName = PeerOrgName;

/** How many organizations may join a running network (`add-org`): the free ports of the block hold two. */
export const MAX_JOINED_ORGS = 2;

export const CHANNEL = 'hdx';
export const CHAINCODE_NAME = 'hdx';
export const CHAINCODE_LABEL = 'hdx_1.0';
export const CHAINCODE_VERSION = '1.0';

export type Consensus = 'raft' | 'bft';

export interface NetworkOptions {
  /** Folder holding every file of this network (certificates, ledgers, logs, pids). */
  readonly home: string;
  /** First port of the block of ports the network uses (default 7000; 110 ports are used). */
  readonly portBase: number;
  /**
   * Ordering consensus: 'raft' (etcdraft, crash fault tolerant; the default) or 'bft' (SmartBFT, Fabric 3;
   * tolerates one faulty, even dishonest, orderer of four).
   */
  readonly consensus: Consensus;
  /** Orderers: 3 (default, survives one failing) or 1 for Raft; 4 for BFT (3f+1 with f = 1). */
  readonly orderers: 1 | 3 | 4;
  /** Orderer BatchTimeout, e.g. '200ms'. */
  readonly batchTimeout: string;
  /** Orderer MaxMessageCount per block. */
  readonly maxMessageCount: number;
  /**
   * Organizations that joined the running network (`add-org`): slot k of the port block is `joined[k]`.
   * A removed organization keeps its slot (so the others keep their ports) until add-org gives it to
   * the next organization that joins.
   */
  readonly joined?: readonly string[];
  /** Organizations `remove-org` is removing (started, not finished): still in the topology. */
  readonly leaving?: readonly string[];
  /** Organizations removed (`remove-org` finished): out of the topology; their names are not used again. */
  readonly removed?: readonly string[];
  /**
   * The address each organization's nodes listen on and are reached at (`HDX_ORG_ADDRESSES`), by
   * organization name ('orderer' for the ordering organization); an organization not listed uses 127.0.0.1.
   */
  readonly addresses?: Readonly<Record<string, string>>;
  /** The Linux network namespace each organization's processes run in (`HDX_ORG_NETNS`); absent: this one. */
  readonly netns?: Readonly<Record<string, string>>;
}

/** The address of a node that was not given one: this machine's loopback. */
export const LOOPBACK = '127.0.0.1';

/** The address an organization's nodes listen on and are reached at. */
export function addressOf(options: NetworkOptions, org: OrgName): string {
  return options.addresses?.[org] ?? LOOPBACK;
}

/** The network namespace an organization's processes are started in, if any. */
export function netnsOf(options: NetworkOptions, org: OrgName): string | undefined {
  return options.netns?.[org];
}

/** Whether an address is this machine's loopback (127.0.0.0/8, ::1 or localhost). */
export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/**
 * The names a node's TLS certificate carries (its subject alternative names): its organization's address;
 * on the loopback also `localhost`, as before (a gateway on this machine may name its peer `localhost`).
 */
export function tlsHostsOf(address: string): string[] {
  return isLoopback(address) ? [...new Set([address, LOOPBACK, 'localhost'])] : [address];
}

/** `host:port`, with an IPv6 address in brackets. */
export function endpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses `org=value,org=value` (HDX_ORG_ADDRESSES, HDX_ORG_NETNS). `check` says why a value is refused, or
 * undefined. Throws an Error naming the variable and the entry at fault.
 */
export function parseOrgMap(variable: string, text: string | undefined, check: (value: string) => string | undefined): Record<string, string> | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const map: Record<string, string> = {};
  for (const entry of text.split(',').map((e) => e.trim())) {
    const m = /^([a-z][a-z0-9]{1,19})=(.+)$/.exec(entry);
    if (!m?.[1] || m[2] === undefined) throw new Error(`${variable}: "${entry}" is not <organization>=<value> (e.g. hospital1=10.77.0.2)`);
    if (m[1] in map) throw new Error(`${variable}: organization ${m[1]} is given twice`);
    const why = check(m[2]);
    if (why) throw new Error(`${variable}: ${m[1]}=${m[2]}: ${why}`);
    map[m[1]] = m[2];
  }
  return map;
}

/** Why `value` cannot be a node address (an IPv4 address, an IPv6 address or a DNS name), or undefined. */
export function invalidAddress(value: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(value)) return value.split('.').every((o) => Number(o) <= 255) ? undefined : 'not an IPv4 address';
  if (value.includes(':')) return /^[0-9a-fA-F:]+$/.test(value) ? undefined : 'not an IPv6 address';
  return /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(value) ? undefined : 'not an IP address or host name';
}

/** Why `value` cannot be a network namespace name, or undefined. */
export function invalidNetns(value: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(value) ? undefined : 'not a network namespace name (letters, digits, ".", "_", "-")';
}

export interface CaNode {
  readonly org: OrgName;
  readonly name: string;
  /** The address it listens on and is reached at: its organization's. */
  readonly host: string;
  /** The network namespace it runs in, if any: its organization's. */
  readonly netns?: string;
  readonly port: number;
  readonly operationsPort: number;
  readonly home: string;
}

export interface OrdererNode {
  readonly name: string;
  /** The ordering organization's address. */
  readonly host: string;
  readonly netns?: string;
  readonly port: number;
  readonly adminPort: number;
  readonly operationsPort: number;
  readonly dir: string;
  /** The orderer's consenter id in a BFT channel's ConsenterMapping (1-based). */
  readonly consenterId: number;
}

export interface PeerNode {
  readonly org: PeerOrgName;
  readonly name: string;
  /** Its organization's address: the peer, its chaincode listener, operations and chaincode server listen there. */
  readonly host: string;
  readonly netns?: string;
  readonly port: number;
  readonly chaincodeListenPort: number;
  readonly operationsPort: number;
  readonly dir: string;
  /** The org's chaincode-as-a-service server. */
  readonly chaincodePort: number;
}

export interface Org {
  readonly name: OrgName;
  readonly mspId: string;
  /** Org folder: msp/ (the org MSP for configtx), admin/ (org admin identity), nodes. */
  readonly dir: string;
  readonly ca: CaNode;
}

export interface Topology {
  readonly options: NetworkOptions;
  readonly orgs: readonly Org[];
  readonly orderers: readonly OrdererNode[];
  readonly peers: readonly PeerNode[];
  readonly dirs: {
    readonly config: string;
    readonly logs: string;
    readonly pids: string;
    readonly data: string;
    readonly channel: string;
    readonly chaincode: string;
    readonly gateways: string;
    readonly secrets: string;
  };
}

export function mspIdOf(org: OrgName): string {
  return `${org.charAt(0).toUpperCase()}${org.slice(1)}MSP`;
}

/**
 * Lays out every node's ports and folders. Ports: CAs at base+0..39 (10 per org), orderers at
 * base+40..59 (5 per orderer, up to 4), peers at base+70..99, chaincode servers at base+100..102.
 * An organization that joined later (in slot k, k = 0 or 1) takes base+60+5k..64+5k (its CA and CA
 * operations, its peer, chaincode listener and operations) and its chaincode server base+103+k.
 */
export function topology(options: NetworkOptions): Topology {
  const { home, portBase: b } = options;
  const joined = options.joined ?? [];
  if (joined.length > MAX_JOINED_ORGS) throw new Error(`at most ${MAX_JOINED_ORGS} organizations can join a network, not ${joined.length}`);
  const placed = (org: string): { host: string; netns?: string } => {
    const netns = netnsOf(options, org);
    return { host: addressOf(options, org), ...(netns === undefined ? {} : { netns }) };
  };
  const caOf = (name: string, port: number): CaNode => ({ org: name, name: `ca-${name}`, ...placed(name), port, operationsPort: port + 1, home: path.join(home, 'ca', name) });
  const orgOfName = (name: string, ca: CaNode): Org => ({ name, mspId: mspIdOf(name), dir: path.join(home, 'orgs', name), ca });
  const orgs: Org[] = [
    ...['orderer', ...PEER_ORGS].map((name, i) => orgOfName(name, caOf(name, b + i * 10))),
    ...activeSlots(options).map(([name, k]) => orgOfName(name, caOf(name, b + 60 + 5 * k))),
  ];
  const orderers: OrdererNode[] = Array.from({ length: options.orderers }, (_, i) => ({
    name: `orderer${i}`,
    ...placed('orderer'),
    port: b + 40 + i * 5,
    adminPort: b + 41 + i * 5,
    operationsPort: b + 42 + i * 5,
    dir: path.join(home, 'orgs', 'orderer', 'orderers', `orderer${i}`),
    consenterId: i + 1,
  }));
  const peerOfOrg = (org: string, port: number, chaincodePort: number): PeerNode => ({
    org,
    name: `peer0.${org}`,
    ...placed(org),
    port,
    chaincodeListenPort: port + 1,
    operationsPort: port + 2,
    dir: path.join(home, 'orgs', org, 'peers', 'peer0'),
    chaincodePort,
  });
  const peers: PeerNode[] = [
    ...PEER_ORGS.map((org, i) => peerOfOrg(org, b + 70 + i * 10, b + 100 + i)),
    ...activeSlots(options).map(([org, k]) => peerOfOrg(org, b + 62 + 5 * k, b + 103 + k)),
  ];
  return {
    options,
    orgs,
    orderers,
    peers,
    dirs: {
      config: path.join(home, 'config'),
      logs: path.join(home, 'logs'),
      pids: path.join(home, 'pids'),
      data: path.join(home, 'data'),
      channel: path.join(home, 'channel'),
      chaincode: path.join(home, 'chaincode'),
      gateways: path.join(home, 'gateways'),
      secrets: path.join(home, 'secrets'),
    },
  };
}

/** The organizations that joined and were not removed, each with its slot of the port block. */
export function activeSlots(options: NetworkOptions): Array<[string, number]> {
  const removed = options.removed ?? [];
  return (options.joined ?? []).map((name, k): [string, number] => [name, k]).filter(([name]) => !removed.includes(name));
}

/**
 * `joined` with `name` in the first slot a removed organization freed, else in a new slot at the end;
 * undefined when every slot is taken by an organization still in the network.
 */
export function joinedWith(options: NetworkOptions, name: string): string[] | undefined {
  const joined = [...(options.joined ?? [])];
  const removed = options.removed ?? [];
  const free = joined.findIndex((n) => removed.includes(n));
  if (free >= 0) {
    joined[free] = name;
    return joined;
  }
  return joined.length < MAX_JOINED_ORGS ? [...joined, name] : undefined;
}

/** Whether an organization is a founding member (in the genesis block), not one that joined later. */
export function isFounder(name: string): boolean {
  return (PEER_ORGS as readonly string[]).includes(name);
}

/**
 * Why `name` cannot be the name of a new member organization, or undefined when it can: lower-case
 * letters and digits (it becomes a folder, a node name and, capitalized, the MSP id `<Name>MSP`).
 */
export function invalidOrgName(t: Topology, name: string): string | undefined {
  if (!/^[a-z][a-z0-9]{1,19}$/.test(name)) return `"${name}" is not a valid organization name: 2 to 20 lower-case letters and digits, starting with a letter`;
  if (t.orgs.some((o) => o.name === name || o.mspId === mspIdOf(name))) return `organization ${name} is already in this network`;
  if ((t.options.removed ?? []).some((n) => mspIdOf(n) === mspIdOf(name))) {
    return `organization ${name} was removed from this network, and its MSP id ${mspIdOf(name)} stays removed on the ledger: choose another name`;
  }
  return undefined;
}

export function orgOf(t: Topology, name: OrgName): Org {
  const org = t.orgs.find((o) => o.name === name);
  if (!org) throw new Error(`unknown organization ${name}`);
  return org;
}

export function peerOf(t: Topology, org: PeerOrgName): PeerNode {
  const peer = t.peers.find((p) => p.org === org);
  if (!peer) throw new Error(`no peer for organization ${org}`);
  return peer;
}

/** Where an identity enrolled from its org's CA keeps its MSP (signcerts, keystore, cacerts) and TLS files. */
export function identityDir(org: Org, kind: 'admin' | 'peer' | 'orderer' | 'chaincode' | 'gateway', name: string): string {
  const sub = kind === 'admin' ? 'users' : kind === 'peer' ? 'peers' : kind === 'orderer' ? 'orderers' : kind === 'gateway' ? 'gateway' : 'chaincode';
  return path.join(org.dir, sub, name);
}
