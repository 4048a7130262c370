/**
 * `npm run network -- remove-org <name>`: a member organization that joined with add-org leaves the
 * running consortium, the reverse of add-org:
 *
 *  1. on the ledger, first: the member registry's removal (hdx.identity:ProposeMemberRemoval by one
 *     remaining member's admin, ApproveMemberRemoval by others until a majority of the members that
 *     remain): from then on no identity of its MSP acts in a decision, at any member, and no consent naming
 *     it permits anything (chaincode/README.md, "Removing a member organization");
 *  2. a channel config update removing its MSP from the Application group (`configtxlator
 *     compute_update`), signed by remaining member admins only: as many as the group's `MAJORITY Admins`
 *     policy needs among the members before the update (the departing member counts there but never signs);
 *  3. the chaincode definition committed again (next sequence), approved by the remaining members, with the
 *     endorsement policy `/Channel/Application/Endorsement`: MAJORITY of the members that remain;
 *  4. its gateway (when `npm start` started it), chaincode server, peer and CA stopped, their state deleted,
 *     and its slot of the port block freed for a later add-org; network.json and the env files rewritten.
 *
 * Only an organization that joined with add-org can be removed: the founding members are in the genesis
 * block and in every `up`'s layout, and the regulator approves the two-organization changes. The name is
 * recorded as leaving first, so an interrupted remove-org is finished by running it again (`up` and add-org
 * refuse to run meanwhile), every step being skipped when done.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Binaries, binariesIn, ensureBinaries } from './binaries';
import { applicationMembers, type ChannelConfigJson, commitDefinition, decode, encode, fetchConfig, majorityOf, signAndSubmit, updateEnvelope, workDir } from './add-org';
import {
  adminEnv,
  done,
  markDone,
  type NetworkInfo,
  ordererArgs,
  orgPackage,
  type Progress,
  readNetworkInfo,
  readOptions,
  chaincodeServerName,
  startChaincodeServer,
  startOrderers,
  startPeers,
  timed,
  waitForChaincodeAnswer,
  waitForChaincodeServer,
  writeNetworkInfo,
} from './network';
import { caCertFile } from './ca';
import { NetworkError, run, stopService, waitFor } from './proc';
import { activeSlots, CHAINCODE_NAME, CHANNEL, endpoint, isFounder, type NetworkOptions, orgOf, peerOf, type Topology, topology } from './topology';

/** Where a member stands in the ledger's member registry (hdx.identity:MemberStatus). */
export interface MemberStatus {
  readonly mspId: string;
  readonly member: boolean;
  readonly removal?: { readonly status: 'proposed' | 'removed'; readonly approvals: ReadonlyArray<{ readonly mspId: string }>; readonly required: number };
}

/** The decoded config without one member organization in its Application group. */
export function withoutMember(config: ChannelConfigJson, mspId: string): ChannelConfigJson {
  const copy = structuredClone(config);
  copy.channel_group.groups.Application.groups = Object.fromEntries(Object.entries(copy.channel_group.groups.Application.groups).filter(([msp]) => msp !== mspId));
  return copy;
}

/**
 * How many remaining admins sign the update removing one of `members`: the Application group's
 * `MAJORITY Admins` is evaluated on the config before the update, the departing member included, so a
 * majority of all of them; never fewer than a majority of those that remain. Undefined when the remaining
 * members alone cannot reach it (a consortium of two cannot remove one).
 */
export function removalSigners(members: number): number | undefined {
  const need = Math.max(majorityOf(members), majorityOf(members - 1));
  return need <= members - 1 ? need : undefined;
}

/** Why `name` cannot be removed from the network of `options`, or undefined when it can. */
export function notRemovable(options: NetworkOptions, name: string): string | undefined {
  if ((options.leaving ?? []).includes(name)) return undefined;
  if (isFounder(name)) return `${name} is a founding member (in the genesis block): remove-org removes only an organization that joined with add-org`;
  if ((options.removed ?? []).includes(name)) return `${name} was already removed`;
  if (!activeSlots(options).some(([n]) => n === name))
    return `${name} is not an organization that joined this network (joined: ${
      activeSlots(options)
        .map(([n]) => n)
        .join(', ') || 'none'
    })`;
  return undefined;
}

/**
 * Removes organization `name` (one that joined with add-org) from the running network described by
 * `requested`: see the file comment. Returns the network info without it.
 */
export async function removeOrg(requested: NetworkOptions, name: string, progress: Progress = () => {}): Promise<NetworkInfo> {
  const optionsFile = path.join(requested.home, 'options.json');
  if (!fs.existsSync(optionsFile) || !fs.existsSync(path.join(requested.home, 'network.json'))) {
    throw new NetworkError(`no network at ${requested.home}: run \`npm run network -- up\` first`);
  }
  const stored = readOptions(optionsFile);
  const problem = notRemovable(stored, name);
  if (problem) throw new NetworkError(problem);
  const other = (stored.leaving ?? []).find((n) => n !== name);
  if (other) throw new NetworkError(`${other} is being removed: run \`npm run network -- remove-org ${other}\` again first`);
  if (!(stored.leaving ?? []).includes(name)) {
    // Recorded first: a second run resumes, and `up` and add-org wait for it to finish.
    fs.writeFileSync(optionsFile, JSON.stringify({ ...stored, leaving: [name] }, null, 2));
  }
  const t = topology(readOptions(optionsFile));
  const org = orgOf(t, name);
  const remaining = t.peers.filter((p) => p.org !== name);
  const steps = 6;
  let step = 0;
  const s = (label: string): string => `(${++step}/${steps}) ${label}`;

  const bins = await timed(progress, s('Fabric binaries (configtxlator too)'), async () => ensureBinaries());
  if (!fs.existsSync(bins.configtxlator)) throw new NetworkError(`missing ${bins.configtxlator}; run scripts/install-fabric.sh`);
  await timed(progress, s(`Running network (orderers, the remaining members' peers and chaincode servers started when stopped)`), async () => {
    await startOrderers(t, bins);
    await startPeers({ ...t, peers: remaining }, bins);
    for (const p of remaining) startChaincodeServer(t, p, orgPackage(t, p).packageId);
    await Promise.all(remaining.map((p) => waitForChaincodeServer(t, p)));
  });
  await timed(progress, s(`Ledger: ${org.mspId} removed from the member registry (proposed and approved by a majority of the remaining members)`), () =>
    removeFromRegistry(t, bins, name, progress),
  );
  await timed(progress, s(`Channel ${CHANNEL}: remove ${org.mspId} (config update signed by remaining member admins)`), () => removeFromChannel(t, bins, name, progress));
  await timed(
    progress,
    s(`Chaincode ${CHAINCODE_NAME}: definition committed again by the ${remaining.length} remaining members, endorsement MAJORITY of ${remaining.length}`),
    async () => {
      if (!done(t, `removed-${name}-chaincode`)) {
        await commitDefinition(t, bins, remaining, path.join(workDir(t, name, 'remove-org'), 'chaincode-sequence'), progress);
        markDone(t, `removed-${name}-chaincode`);
      }
      await Promise.all(remaining.map((p) => waitForChaincodeAnswer(t, bins, p)));
    },
  );
  await timed(progress, s(`${name}'s gateway, chaincode server, peer and CA stopped; its state deleted and its ports freed`), () => retire(t, name, progress));

  const final = readOptions(optionsFile);
  const options: NetworkOptions = { ...final, leaving: (final.leaving ?? []).filter((n) => n !== name), removed: [...(final.removed ?? []).filter((n) => n !== name), name] };
  fs.writeFileSync(optionsFile, JSON.stringify(options, null, 2));
  return writeNetworkInfo(topology(options), bins);
}

/** The ledger's member registry entry of `mspId`, read through an admin of `asOrg`. */
async function memberStatus(t: Topology, bins: Binaries, asOrg: string, mspId: string): Promise<MemberStatus> {
  const out = await run(bins.peer, ['chaincode', 'query', '-C', CHANNEL, '-n', CHAINCODE_NAME, '-c', JSON.stringify({ Args: ['hdx.identity:MemberStatus', mspId] })], {
    env: adminEnv(t, bins, asOrg),
  });
  return JSON.parse(out) as MemberStatus;
}

/** The ledger's member registry entry of a network's member, as the first founding member reads it (for tests and tools). */
export async function ledgerMemberStatus(requested: NetworkOptions, mspId: string): Promise<MemberStatus> {
  const t = topology(readOptions(path.join(requested.home, 'options.json')));
  const asOrg = t.peers[0]?.org;
  if (!asOrg) throw new Error('no member');
  return memberStatus(t, binariesIn(readNetworkInfo(t.options.home).fabricBinaries), asOrg, mspId);
}

/**
 * Step 1: the departing member's removal on the ledger, proposed by the first remaining member's admin
 * and approved by the next ones until the chaincode says it is in force. Endorsed by the remaining
 * members' peers (a majority of the channel's members, the departing one not needed).
 */
async function removeFromRegistry(t: Topology, bins: Binaries, name: string, progress: Progress): Promise<void> {
  const mspId = orgOf(t, name).mspId;
  const admins = t.peers.map((p) => p.org).filter((o) => o !== name);
  const first = admins[0];
  if (!first) throw new Error('no member organization');
  const peerArgs = t.peers.filter((p) => p.org !== name).flatMap((p) => ['--peerAddresses', endpoint(p.host, p.port), '--tlsRootCertFiles', caCertFile(orgOf(t, p.org).ca)]);
  const invoke = (asOrg: string, fn: string): Promise<string> =>
    run(
      bins.peer,
      [
        'chaincode',
        'invoke',
        ...ordererArgs(t),
        '-C',
        CHANNEL,
        '-n',
        CHAINCODE_NAME,
        ...peerArgs,
        '-c',
        JSON.stringify({ Args: [fn, JSON.stringify({ mspId })] }),
        '--waitForEvent',
      ],
      {
        env: adminEnv(t, bins, asOrg),
      },
    );
  let current = await memberStatus(t, bins, first, mspId);
  for (const admin of admins) {
    if (current.removal?.status === 'removed') break;
    const adminMsp = orgOf(t, admin).mspId;
    if (current.removal?.approvals.some((a) => a.mspId === adminMsp)) continue;
    await invoke(admin, current.removal ? 'hdx.identity:ApproveMemberRemoval' : 'hdx.identity:ProposeMemberRemoval');
    current = await memberStatus(t, bins, first, mspId);
    progress(`  ${current.removal?.approvals.length === 1 ? 'proposed' : 'approved'} by ${adminMsp} (${current.removal?.status ?? '?'})`);
  }
  if (current.removal?.status !== 'removed') {
    throw new NetworkError(`the removal of ${mspId} is not in force on the ledger (${JSON.stringify(current.removal ?? { member: current.member })})`);
  }
  progress(`  ${mspId} removed on the ledger, approved by ${current.removal.approvals.map((a) => a.mspId).join(', ')} (${current.removal.required} needed)`);
}

/** Step 2: the config update removing the organization's MSP, signed by remaining member admins only. */
async function removeFromChannel(t: Topology, bins: Binaries, name: string, progress: Progress): Promise<void> {
  if (done(t, `removed-${name}-config`)) return;
  const mspId = orgOf(t, name).mspId;
  const dir = workDir(t, name, 'remove-org');
  const admins = t.peers.map((p) => p.org).filter((o) => o !== name);
  const first = admins[0];
  if (!first) throw new Error('no member organization');
  const config = await fetchConfig(t, bins, first, dir);
  const members = applicationMembers(config);
  if (members.includes(mspId)) {
    const original = await encode(bins, 'common.Config', config, path.join(dir, 'original.pb'));
    const updated = await encode(bins, 'common.Config', withoutMember(config, mspId), path.join(dir, 'updated.pb'));
    const updatePb = path.join(dir, 'update.pb');
    await run(bins.configtxlator, ['compute_update', '--channel_id', CHANNEL, '--original', original, '--updated', updated, '--output', updatePb]);
    const update = await decode(bins, 'common.ConfigUpdate', updatePb);
    const envelope = await encode(bins, 'common.Envelope', updateEnvelope(CHANNEL, update), path.join(dir, 'update-envelope.pb'));
    const need = removalSigners(members.length);
    if (need === undefined) throw new NetworkError(`the channel has ${members.length} members: the ${members.length - 1} that remain cannot reach a majority of the Admins policy`);
    // The departing member's admin never signs: the remaining ones alone reach the policy.
    const signers = admins.filter((o) => members.includes(orgOf(t, o).mspId));
    if (signers.length < need)
      throw new NetworkError(`removing ${mspId} needs ${need} admin signatures; this launcher holds the admins of only ${signers.length} remaining members`);
    const chosen = signers.slice(0, need);
    await signAndSubmit(t, bins, envelope, chosen);
    progress(`  config update signed by the admins of ${chosen.join(', ')} (${need} of the ${members.length} members before the update; ${name} did not sign) and submitted`);
  }
  await waitFor(`channel ${CHANNEL} config without ${mspId}`, async () => !applicationMembers(await fetchConfig(t, bins, first, dir)).includes(mspId), { timeoutMs: 60_000 });
  markDone(t, `removed-${name}-config`);
}

/** Step 4: its processes stopped (gateway first), its files deleted; its logs stay in logs/. */
async function retire(t: Topology, name: string, progress: Progress): Promise<void> {
  const org = orgOf(t, name);
  const peer = peerOf(t, name);
  const stopped: string[] = [];
  for (const node of [`gateway.${name}`, chaincodeServerName(name), peer.name, org.ca.name]) {
    if (await stopService(t.dirs.pids, node)) stopped.push(node);
  }
  progress(`  stopped ${stopped.join(', ') || 'nothing (none was running)'}`);
  const files = [
    org.dir,
    org.ca.home,
    path.join(t.dirs.data, peer.name),
    path.join(t.dirs.chaincode, `${name}.tgz`),
    path.join(t.dirs.gateways, `${name}.env`),
    path.join(t.dirs.gateways, `${name}-org-key.json`),
    path.join(t.dirs.gateways, `${name}-idp-private.pem`),
    path.join(t.dirs.gateways, `${name}-idp-public.pem`),
    path.join(t.dirs.secrets, `${name}.json`),
    workDir(t, name),
  ];
  for (const file of files) fs.rmSync(file, { recursive: true, force: true });
  // Its add-org steps are forgotten (a later organization in its slot starts from scratch).
  const stepsDir = path.join(t.options.home, 'steps');
  if (fs.existsSync(stepsDir)) {
    for (const marker of fs.readdirSync(stepsDir)) {
      if (marker === `joined-${name}` || marker.startsWith(`joined-${name}-`) || marker === `org-did-${name}`) fs.rmSync(path.join(stepsDir, marker), { force: true });
    }
  }
}
