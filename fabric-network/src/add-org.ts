/**
 * `npm run network -- add-org <name>`: a member organization joins the running consortium, the Fabric way
 * (as fabric-samples' addOrg3 does it, with the launcher's own nodes):
 *
 *  1. its CA, its identities (admin, peer, chaincode server, gateway) and its peer, on free ports of the
 *     network's block;
 *  2. a channel config update adding its MSP to the Application group: the config is fetched from the
 *     ordering service, the organization's group made by `configtxgen -printOrg`, the update computed by
 *     `configtxlator compute_update`, signed by a MAJORITY of the member admins (the Application group's
 *     Admins policy) and submitted;
 *  3. its peer joins the channel from the genesis block and pulls every block since;
 *  4. its chaincode server runs, its peer installs the package, and the chaincode definition is committed
 *     again (next sequence), approved by every member, the new one included, with the endorsement policy
 *     `/Channel/Application/Endorsement`: MAJORITY Endorsement of the members, now four;
 *  5. gossip membership, its organization DID on the ledger, its gateway env file and network.json.
 *
 * Every step is skipped when done, so an interrupted add-org is finished by running it again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Binaries, binariesIn, ensureBinaries } from './binaries';
import { caCertFile, startCa } from './ca';
import { joiningOrgConfigtx } from './configtx';
import {
  adminEnv,
  done,
  enrollOrg,
  existingTopology,
  joinedMarker,
  markDone,
  metricsOf,
  channelMetric,
  type NetworkInfo,
  ordererArgs,
  orgPackage,
  type Progress,
  readNetworkInfo,
  readOptions,
  registerOrgDids,
  startChaincodeServer,
  startOrderers,
  startPeers,
  timed,
  waitForChaincodeAnswer,
  waitForChaincodeServer,
  waitForMembership,
  writeNetworkInfo,
} from './network';
import { logFile, NetworkError, run, waitFor } from './proc';
import {
  activeSlots,
  CHAINCODE_NAME,
  CHAINCODE_VERSION,
  CHANNEL,
  endpoint,
  invalidOrgName,
  joinedWith,
  MAX_JOINED_ORGS,
  type NetworkOptions,
  orgOf,
  type PeerNode,
  peerOf,
  type Topology,
  topology,
} from './topology';

/** The endorsement policy of the chaincode definition: the channel's MAJORITY of the members' peers. */
export const ENDORSEMENT_POLICY_REF = '/Channel/Application/Endorsement';

/** How many admin signatures a MAJORITY ImplicitMeta policy over `members` organizations needs. */
export function majorityOf(members: number): number {
  return Math.floor(members / 2) + 1;
}

/** The part of a decoded channel config (configtxlator's JSON of common.Config) that add-org reads and edits. */
export interface ChannelConfigJson {
  channel_group: { groups: { Application: { groups: Record<string, unknown> } } };
}

/** The members (MSP ids) of a decoded channel config's Application group. */
export function applicationMembers(config: ChannelConfigJson): string[] {
  return Object.keys(config.channel_group.groups.Application.groups);
}

/** The config with one more member organization (its `configtxgen -printOrg` group) in the Application group. */
export function withMember(config: ChannelConfigJson, mspId: string, orgGroup: unknown): ChannelConfigJson {
  const copy = structuredClone(config);
  copy.channel_group.groups.Application.groups[mspId] = orgGroup;
  return copy;
}

/** A config update wrapped in the envelope `peer channel signconfigtx` and `update` take (HeaderType CONFIG_UPDATE = 2). */
export function updateEnvelope(channel: string, configUpdate: unknown): object {
  return { payload: { header: { channel_header: { channel_id: channel, type: 2 } }, data: { config_update: configUpdate } } };
}

/**
 * Adds organization `name` to the running network described by `requested` (its options.json): see the
 * file comment. Returns the network info with the new member's gateway connection.
 */
export async function addOrg(requested: NetworkOptions, name: string, progress: Progress = () => {}): Promise<NetworkInfo> {
  const optionsFile = path.join(requested.home, 'options.json');
  if (!fs.existsSync(optionsFile) || !fs.existsSync(path.join(requested.home, 'network.json'))) {
    throw new NetworkError(`no network at ${requested.home}: run \`npm run network -- up\` first`);
  }
  const stored = readOptions(optionsFile);
  if ((stored.leaving ?? []).length > 0) {
    throw new NetworkError(`${(stored.leaving ?? []).join(', ')} is being removed: run \`npm run network -- remove-org ${stored.leaving?.[0] ?? ''}\` again first`);
  }
  if (!activeSlots(stored).some(([n]) => n === name)) {
    const problem = invalidOrgName(topology(stored), name);
    if (problem) throw new NetworkError(problem);
    const joined = joinedWith(stored, name);
    if (!joined) {
      const active = activeSlots(stored).map(([n]) => n);
      throw new NetworkError(`this network already has ${active.length} organizations that joined (${active.join(', ')}): its port block holds at most ${MAX_JOINED_ORGS}`);
    }
    // Recorded first: `down` then stops the new nodes even when add-org fails half-way, and a second run resumes.
    fs.writeFileSync(optionsFile, JSON.stringify({ ...stored, joined }, null, 2));
  }
  const t = topology(readOptions(optionsFile));
  const org = orgOf(t, name);
  const peer = peerOf(t, name);
  const steps = 8;
  let step = 0;
  const s = (label: string): string => `(${++step}/${steps}) ${label}`;

  const bins = await timed(progress, s('Fabric binaries (configtxlator too)'), async () => ensureBinaries());
  if (!fs.existsSync(bins.configtxlator)) throw new NetworkError(`missing ${bins.configtxlator}; run scripts/install-fabric.sh`);
  await timed(progress, s(`Running network (orderers, the members' peers and chaincode servers started when stopped)`), async () => {
    await startOrderers(t, bins);
    const members = t.peers.filter((p) => p.org !== name);
    await startPeers({ ...t, peers: members }, bins);
    for (const p of members) startChaincodeServer(t, p, orgPackage(t, p).packageId);
    await Promise.all(members.map((p) => waitForChaincodeServer(t, p)));
  });
  await timed(progress, s(`CA, identities and peer of ${name} (${org.mspId})`), async () => {
    await startCa(t, bins, org);
    await enrollOrg(t, bins, org);
    await startPeers({ ...t, peers: [peer] }, bins);
  });
  await timed(progress, s(`Channel ${CHANNEL}: add ${org.mspId} (config update signed by a majority of the member admins)`), () => addToChannel(t, bins, name, progress));
  await timed(progress, s(`${peer.name} joins channel ${CHANNEL} and catches up`), () => joinChannel(t, bins, name));
  await timed(progress, s(`Chaincode ${CHAINCODE_NAME}: ${name} installs it; definition committed again, endorsement MAJORITY of ${t.peers.length}`), () =>
    redefineChaincode(t, bins, name, progress),
  );
  await timed(progress, s(`Gossip membership (each of the ${t.peers.length} peers sees the others)`), () => waitForMembership(t));
  await timed(progress, s(`Organization DID of ${name} on the ledger; gateway env file`), () => registerOrgDids(t, bins));
  const info = writeNetworkInfo(t, bins);
  markDone(t, joinedMarker(name));
  return info;
}

/** The running network's topology and the binaries it was brought up with. */
function runningNetwork(requested: NetworkOptions): { t: Topology; bins: Binaries } {
  const t = existingTopology(requested);
  return { t, bins: binariesIn(readNetworkInfo(t.options.home).fabricBinaries) };
}

/** The member organizations (MSP ids) in channel hdx's current config, as the ordering service hands it out. */
export async function channelMembers(requested: NetworkOptions): Promise<string[]> {
  const { t, bins } = runningNetwork(requested);
  const asOrg = t.peers[0]?.org;
  if (!asOrg) throw new Error('no member');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-config-'));
  try {
    return applicationMembers(await fetchConfig(t, bins, asOrg, dir));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The committed definition of chaincode hdx: its sequence, endorsement policy reference and which members approved it. */
export interface CommittedDefinition {
  readonly sequence: number;
  readonly endorsementPolicy: string;
  readonly approvals: Record<string, boolean>;
}

/** The committed definition of chaincode hdx, as the first member's admin reads it from its peer. */
export async function committedDefinition(requested: NetworkOptions): Promise<CommittedDefinition> {
  const { t, bins } = runningNetwork(requested);
  const asOrg = t.peers[0]?.org;
  if (!asOrg) throw new Error('no member');
  return queryCommitted(t, bins, asOrg);
}

/**
 * A config update envelope signed by each chosen org's admin (`peer channel signconfigtx`) and submitted
 * by the last of them (`peer channel update` adds the submitter's signature, completing the set).
 */
export async function signAndSubmit(t: Topology, bins: Binaries, envelope: string, chosen: readonly string[]): Promise<void> {
  const last = chosen[chosen.length - 1];
  if (last === undefined) throw new Error('a config update needs at least one signer');
  for (const signer of chosen.slice(0, -1)) {
    await run(bins.peer, ['channel', 'signconfigtx', '-f', envelope], { env: adminEnv(t, bins, signer) });
  }
  await run(bins.peer, ['channel', 'update', '-f', envelope, '-c', CHANNEL, ...ordererArgs(t)], { env: adminEnv(t, bins, last) });
}

export function workDir(t: Topology, name: string, command = 'add-org'): string {
  const dir = path.join(t.dirs.config, `${command}-${name}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** The channel's current config (configtxlator's JSON of common.Config), fetched from the ordering service by an admin of `asOrg`. */
export async function fetchConfig(t: Topology, bins: Binaries, asOrg: string, dir: string): Promise<ChannelConfigJson> {
  const block = path.join(dir, 'config_block.pb');
  await run(bins.peer, ['channel', 'fetch', 'config', block, ...ordererArgs(t), '-c', CHANNEL], { env: adminEnv(t, bins, asOrg) });
  const decoded = (await decode(bins, 'common.Block', block)) as {
    data: { data: Array<{ payload: { data: { config: ChannelConfigJson } } }> };
  };
  const config = decoded.data.data[0]?.payload.data.config;
  if (!config) throw new NetworkError(`the config block of channel ${CHANNEL} holds no config`);
  return config;
}

/** configtxlator proto_decode to a file (it cannot write to a pipe's /dev/stdout), parsed. */
export async function decode(bins: Binaries, type: string, file: string): Promise<unknown> {
  await run(bins.configtxlator, ['proto_decode', '--input', file, '--type', type, '--output', `${file}.json`]);
  return JSON.parse(fs.readFileSync(`${file}.json`, 'utf8')) as unknown;
}

export async function encode(bins: Binaries, type: string, value: unknown, file: string): Promise<string> {
  fs.writeFileSync(`${file}.json`, JSON.stringify(value));
  await run(bins.configtxlator, ['proto_encode', '--input', `${file}.json`, '--type', type, '--output', file]);
  return file;
}

/** Step 2: the config update adding the organization's MSP, signed by a majority of the member admins. */
async function addToChannel(t: Topology, bins: Binaries, name: string, progress: Progress): Promise<void> {
  if (done(t, `joined-${name}-config`)) return;
  const org = orgOf(t, name);
  const dir = workDir(t, name);
  const admins = t.peers.map((p) => p.org).filter((o) => o !== name);
  const first = admins[0];
  if (!first) throw new Error('no member organization');
  const config = await fetchConfig(t, bins, first, dir);
  const members = applicationMembers(config);
  if (!members.includes(org.mspId)) {
    // The organization's group, exactly as configtxgen writes members into a genesis block.
    const cfgDir = path.join(dir, 'configtx');
    fs.mkdirSync(cfgDir, { recursive: true });
    fs.writeFileSync(path.join(cfgDir, 'configtx.yaml'), JSON.stringify(joiningOrgConfigtx(t, org), null, 2));
    const orgGroup = JSON.parse(await run(bins.configtxgen, ['-printOrg', org.mspId], { env: { FABRIC_CFG_PATH: cfgDir } })) as unknown;
    const original = await encode(bins, 'common.Config', config, path.join(dir, 'original.pb'));
    const updated = await encode(bins, 'common.Config', withMember(config, org.mspId, orgGroup), path.join(dir, 'updated.pb'));
    const updatePb = path.join(dir, 'update.pb');
    await run(bins.configtxlator, ['compute_update', '--channel_id', CHANNEL, '--original', original, '--updated', updated, '--output', updatePb]);
    const update = await decode(bins, 'common.ConfigUpdate', updatePb);
    const envelope = await encode(bins, 'common.Envelope', updateEnvelope(CHANNEL, update), path.join(dir, 'update-envelope.pb'));

    // The Application group's mod_policy is Admins: MAJORITY of the current members' admins. The launcher
    // holds every member's admin identity; a real consortium passes the envelope from member to member.
    const signers = t.peers.map((p) => p.org).filter((o) => members.includes(orgOf(t, o).mspId));
    const need = majorityOf(members.length);
    if (signers.length < need) throw new NetworkError(`the channel has ${members.length} members; this launcher holds the admins of only ${signers.length} of them`);
    const chosen = signers.slice(0, need);
    await signAndSubmit(t, bins, envelope, chosen);
    progress(`  config update signed by the admins of ${chosen.join(', ')} (${need} of ${members.length} members) and submitted`);
  }
  // Committed: the config the ordering service hands out now names the organization.
  await waitFor(`channel ${CHANNEL} config naming ${org.mspId}`, async () => applicationMembers(await fetchConfig(t, bins, first, dir)).includes(org.mspId), { timeoutMs: 60_000 });
  markDone(t, `joined-${name}-config`);
}

/** Step 3: the new peer joins from the genesis block, then pulls every block since from the orderers. */
async function joinChannel(t: Topology, bins: Binaries, name: string): Promise<void> {
  const peer = peerOf(t, name);
  const env = adminEnv(t, bins, name);
  const joined = await run(bins.peer, ['channel', 'list'], { env });
  if (!joined.split('\n').includes(CHANNEL)) await run(bins.peer, ['channel', 'join', '-b', path.join(t.dirs.channel, `${CHANNEL}.block`)], { env });
  const first = t.orderers[0];
  if (!first) throw new Error('no orderer');
  await waitFor(
    `${peer.name} to catch up with the ordering service on channel ${CHANNEL}`,
    async () => {
      const [ordered, held] = await Promise.all([metricsOf(first), metricsOf(peer)]);
      const top = channelMetric(ordered, 'ledger_blockchain_height');
      const height = channelMetric(held, 'ledger_blockchain_height');
      return top !== undefined && height !== undefined && height >= top;
    },
    { timeoutMs: 120_000, pidsDir: t.dirs.pids, name: peer.name, log: logFile(t.dirs.logs, peer.name) },
  );
}

/** The committed definition (querycommitted as an admin of `asOrg`). */
async function queryCommitted(t: Topology, bins: Binaries, asOrg: string): Promise<CommittedDefinition> {
  const out = await run(bins.peer, ['lifecycle', 'chaincode', 'querycommitted', '-C', CHANNEL, '-n', CHAINCODE_NAME, '-O', 'json'], { env: adminEnv(t, bins, asOrg) });
  return committedDefinitionOf(JSON.parse(out) as unknown);
}

/**
 * The parts of `peer lifecycle chaincode querycommitted -O json` add-org reads. The validation parameter is
 * the serialized ApplicationPolicy (base64): for a channel config policy reference it holds the reference's
 * text, which is read out of it.
 */
export function committedDefinitionOf(json: unknown): CommittedDefinition {
  const d = json as { sequence?: unknown; validation_parameter?: unknown; approvals?: unknown };
  if (typeof d.sequence !== 'number') throw new NetworkError('querycommitted answered without a sequence');
  const parameter = typeof d.validation_parameter === 'string' ? Buffer.from(d.validation_parameter, 'base64').toString('latin1') : '';
  const reference = /\/Channel\/[A-Za-z0-9/]+/.exec(parameter)?.[0] ?? '';
  const approvals = d.approvals && typeof d.approvals === 'object' ? (d.approvals as Record<string, boolean>) : {};
  return { sequence: d.sequence, endorsementPolicy: reference, approvals };
}

export async function committedSequence(t: Topology, bins: Binaries, asOrg: string): Promise<number> {
  return (await queryCommitted(t, bins, asOrg)).sequence;
}

/**
 * Step 4: the new member's chaincode server and package; the definition committed again at the next
 * sequence with every member's approval (the lifecycle needs a MAJORITY of the four) and the channel's
 * MAJORITY endorsement policy.
 */
async function redefineChaincode(t: Topology, bins: Binaries, name: string, progress: Progress): Promise<void> {
  const peer = peerOf(t, name);
  const pkg = orgPackage(t, peer);
  startChaincodeServer(t, peer, pkg.packageId);
  await waitForChaincodeServer(t, peer);
  const env = adminEnv(t, bins, name);
  const file = path.join(t.dirs.chaincode, `${name}.tgz`);
  fs.writeFileSync(file, pkg.bytes);
  const installed = await run(bins.peer, ['lifecycle', 'chaincode', 'queryinstalled'], { env });
  if (!installed.includes(pkg.packageId)) await run(bins.peer, ['lifecycle', 'chaincode', 'install', file], { env });

  if (!done(t, `joined-${name}-chaincode`)) {
    await commitDefinition(t, bins, t.peers, path.join(workDir(t, name), 'chaincode-sequence'), progress);
    markDone(t, `joined-${name}-chaincode`);
  }
  await Promise.all(t.peers.map((p) => waitForChaincodeAnswer(t, bins, p)));
}

/**
 * Commits the chaincode definition again at the next sequence (kept in `targetFile`, so a resumed run
 * finishes the same redefinition), approved by each of `members` with its own package, endorsement policy
 * `/Channel/Application/Endorsement` (MAJORITY Endorsement of the channel's members at each validation).
 */
export async function commitDefinition(t: Topology, bins: Binaries, members: readonly PeerNode[], targetFile: string, progress: Progress): Promise<void> {
  const first = members[0]?.org;
  if (!first) throw new Error('no member');
  if (!fs.existsSync(targetFile)) fs.writeFileSync(targetFile, String((await committedSequence(t, bins, first)) + 1));
  const sequence = fs.readFileSync(targetFile, 'utf8').trim();
  const definition = ['-C', CHANNEL, '-n', CHAINCODE_NAME, '-v', CHAINCODE_VERSION, '--sequence', sequence, '--channel-config-policy', ENDORSEMENT_POLICY_REF];
  // Each member approves for itself, with its own package (its own chaincode server): all at once, as
  // their approvals are separate keys.
  await Promise.all(
    members.map(async (p) => {
      const orgEnv = adminEnv(t, bins, p.org);
      const own = orgPackage(t, p).packageId;
      const approved = await run(bins.peer, ['lifecycle', 'chaincode', 'queryapproved', '-C', CHANNEL, '-n', CHAINCODE_NAME, '--sequence', sequence], { env: orgEnv }).catch(
        () => '',
      );
      if (!approved.includes(own)) {
        await run(bins.peer, ['lifecycle', 'chaincode', 'approveformyorg', ...ordererArgs(t), ...definition, '--package-id', own], { env: orgEnv });
      }
    }),
  );
  if ((await committedSequence(t, bins, first)) < Number(sequence)) {
    const peerArgs = members.flatMap((p) => ['--peerAddresses', endpoint(p.host, p.port), '--tlsRootCertFiles', caCertFile(orgOf(t, p.org).ca)]);
    await run(bins.peer, ['lifecycle', 'chaincode', 'commit', ...ordererArgs(t), ...definition, ...peerArgs], { env: adminEnv(t, bins, first) });
  }
  progress(`  definition sequence ${sequence} committed, approved by ${members.map((p) => orgOf(t, p.org).mspId).join(', ')}`);
}
