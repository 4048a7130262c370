#!/usr/bin/env node
import * as fs from 'node:fs';
import { addOrg } from './add-org';
import { removeOrg } from './remove-org';
import { binariesIn } from './binaries';
import { hostLayout, writeHostFolder } from './host-units';
import { defaultOptions, down, existingTopology, logFiles, readNetworkInfo, startNode, stopNode, up } from './network';
import { formatStatus, status } from './status';
import { NetworkError } from './proc';

const HELP = `Usage: hdx-network <command> [options]
  (from the repository root: npm run network -- <command> [options])

Commands:
  up                 build the Fabric binaries if needed, then start (or resume) the network:
                     Fabric CAs, orderers (Raft, or SmartBFT), peers for hospital1, hospital2, regulator,
                     channel "hdx" and chaincode "hdx" as a service. Idempotent.
  add-org NAME       a new member organization joins the running network: its CA, identities, peer
                     and chaincode server; a channel config update adding its MSP, signed by a
                     majority of the member admins; its peer joins the channel; the chaincode is
                     committed again with every member's approval (endorsement: MAJORITY of the
                     members); its organization DID and gateways/NAME.env. At most 2 per network.
                     Run it again to finish one that was interrupted.
  remove-org NAME    an organization that joined with add-org leaves: its removal on the ledger
                     (proposed and approved by a majority of the remaining members: its identities
                     act nowhere any more), a channel config update removing its MSP signed by
                     remaining admins only, the chaincode committed again by the remaining members,
                     its gateway, chaincode server, peer and CA stopped, its state deleted and its
                     ports freed for a later add-org. Its name is not used again.
                     Run it again to finish one that was interrupted.
  down [--wipe]      stop every process this launcher started; --wipe also deletes all state
  status [--json]    show each node: running, healthy, endpoint; block height of each orderer
                     and peer (and each peer's lag behind the orderers); which orderer leads;
                     whether each member's chaincode answers through its peer; each gateway
                     started by npm start: health and its ledger view's height and lag.
                     Exits 3 when a node is stopped or unhealthy.
  stop NODE [--kill] stop one node (by the pid the launcher recorded): SIGTERM, or SIGKILL at once
                     with --kill (a crash)
  start NODE         start one stopped node again as up starts it, and wait until it is healthy
  logs [NODE] [-n N] print the last N (default 40) lines of a node's log; no NODE lists the logs
  units ORG          write <home>/hosts/ORG/: what ORG's own host needs (its keys, CA, ledgers and
                     gateway files; of the others only their CA certificates) and a systemd unit
                     per node of ORG, paths moved to HDX_HOST_ROOT. ORG's nodes must be stopped.
                     See fabric-network/README.md, "Members on separate hosts".

Environment (defaults in brackets):
  HDX_NETWORK_HOME        state folder [<repo>/.hdx/network]
  HDX_PORT_BASE           first of 110 ports [7000]
  HDX_ORG_ADDRESSES       each organization's address, e.g. orderer=10.77.0.1,hospital1=10.77.0.2
                          (every node of it listens there, its TLS certificates name it) [127.0.0.1]
  HDX_ORG_NETNS           each organization's Linux network namespace, e.g. hospital1=hdx-h1: its
                          nodes start through \`ip netns exec\` [none]
  HDX_HOST_ROOT           units: the HDX root on the organization's host [/opt/hdx]
  HDX_HOST_NODE           units: Node.js on the host [/usr/bin/node]
  HDX_HOST_USER           units: the user the units run as [hdx]
  HDX_ORDERER_TYPE        ordering consensus, raft or bft [raft]
  HDX_ORDERERS            orderers: 3 or 1 with raft [3], 4 with bft [4]
  HDX_BATCH_TIMEOUT       orderer BatchTimeout [200ms]
  HDX_MAX_MESSAGE_COUNT   orderer MaxMessageCount [1 with Raft, 100 with BFT]
  HDX_FABRIC_HOME         Fabric binary cache [~/.cache/hdx/fabric]
  HDX_CHAINCODE_DIR       chaincode package the chaincode servers run [<repo>/chaincode]
`;

// Output cut short by the reader (e.g. `status | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

function say(message: string): void {
  process.stderr.write(`[hdx-network] ${message}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const options = defaultOptions();
  switch (command) {
    case 'up': {
      const start = Date.now();
      const info = await up(options, say);
      say(`network is up in ${((Date.now() - start) / 1000).toFixed(1)}s (state in ${info.home})`);
      for (const org of Object.values(info.orgs)) say(`  ${org.org}: peer ${org.peerEndpoint}, CA ${org.caUrl}`);
      return 0;
    }
    case 'add-org': {
      const name = rest.find((a) => !a.startsWith('-'));
      if (!name) throw new NetworkError("add-org needs the new organization's name, e.g. `npm run network -- add-org hospital3`");
      const start = Date.now();
      const info = await addOrg(options, name, say);
      const org = info.orgs[name];
      say(
        `${name} joined in ${((Date.now() - start) / 1000).toFixed(1)}s: peer ${org?.peerEndpoint ?? '?'}, CA ${org?.caUrl ?? '?'}, gateway env ${info.home}/gateways/${name}.env`,
      );
      return 0;
    }
    case 'remove-org': {
      const name = rest.find((a) => !a.startsWith('-'));
      if (!name) throw new NetworkError("remove-org needs the organization's name, e.g. `npm run network -- remove-org hospital3`");
      const start = Date.now();
      await removeOrg(options, name, say);
      say(`${name} removed in ${((Date.now() - start) / 1000).toFixed(1)}s`);
      return 0;
    }
    case 'down':
      await down(options, { wipe: rest.includes('--wipe') }, say);
      return 0;
    case 'status': {
      const rows = await status(options);
      if (rest.includes('--json')) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else if (rows.length === 0) {
        say(`no network at ${options.home}`);
      } else {
        process.stdout.write(`${formatStatus(rows)}\n`);
      }
      return rows.every((r) => r.running && r.healthy !== false) ? 0 : 3;
    }
    case 'stop':
    case 'start': {
      const name = rest.find((a) => !a.startsWith('-'));
      if (!name) throw new NetworkError(`${command} needs a node name, e.g. \`npm run network -- ${command} peer0.hospital2\` (names: npm run network -- status)`);
      const started = Date.now();
      if (command === 'stop') {
        const kill = rest.includes('--kill');
        const stopped = await stopNode(options, name, { kill });
        say(stopped ? `${name} ${kill ? 'killed (SIGKILL)' : 'stopped'}` : `${name} was not running`);
      } else {
        const result = await startNode(options, name);
        say(result === 'running' ? `${name} is already running` : `${name} started and healthy in ${((Date.now() - started) / 1000).toFixed(1)}s`);
      }
      return 0;
    }
    case 'logs': {
      const files = logFiles(options);
      const name = rest.find((a) => !a.startsWith('-') && !/^\d+$/.test(a));
      const nIdx = rest.indexOf('-n');
      const n = nIdx >= 0 ? Number(rest[nIdx + 1]) : 40;
      if (!name) {
        for (const f of files) process.stdout.write(`${f.name.padEnd(22)} ${f.file}\n`);
        return 0;
      }
      const f = files.find((x) => x.name === name);
      if (!f) throw new NetworkError(`no log for "${name}"; known: ${files.map((x) => x.name).join(', ') || 'none'}`);
      const lines = fs.readFileSync(f.file, 'utf8').split('\n');
      process.stdout.write(`${lines.slice(-n - 1).join('\n')}\n`);
      return 0;
    }
    case 'units': {
      const org = rest.find((a) => !a.startsWith('-'));
      if (!org) throw new NetworkError("units needs an organization's name, e.g. `npm run network -- units hospital1`");
      const t = existingTopology(options);
      const out = writeHostFolder(t, binariesIn(readNetworkInfo(t.options.home).fabricBinaries), org, hostLayout());
      say(`${org}: ${out.files} files in ${out.dir} (copy it to the host's ${hostLayout().root}); units: ${out.units.join(', ')}`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof NetworkError) {
      say(`error: ${err.message}`);
      for (const line of err.details) process.stderr.write(`    ${line}\n`);
      say('see `npm run network -- logs` and `npm run network -- status`');
    } else {
      say(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    process.exitCode = 1;
  },
);
