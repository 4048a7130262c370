/**
 * Members on separate hosts (issue 13), on this machine: each organization (the orderer organization,
 * hospital1, hospital2, the regulator) runs in its own Linux network namespace with its own address on a
 * bridge the test makes, and the consent flow works across them.
 *
 * Layout (made by the test, removed by it whatever happens): a bridge `hdxnsbr0` in the root namespace with
 * 10.77.0.254/24; per organization a namespace `hdxns-<org>`, a veth pair whose one end is in the bridge and
 * whose other end is in the namespace with the organization's address (orderer 10.77.0.1, hospital1 .2,
 * hospital2 .3, regulator .4), and the namespace's loopback up. The launcher gets the addresses
 * (HDX_ORG_ADDRESSES) and the namespaces (HDX_ORG_NETNS): every CA, orderer, peer and chaincode server
 * runs inside its organization's namespace, listens only on its address and carries it as its TLS name.
 *
 * The HDX gateways run in the root namespace (the test process), pointed at their organization's address:
 * the test's FHIR helpers (registerDid, staffToken, call) drive an in-process gateway, and a process has
 * one network namespace. Their ledger and CA traffic still crosses the bridge into the organization's
 * namespace, with TLS checked against the organization's address (no localhost alias). Not covered: a
 * gateway's own HTTP port reached from another namespace.
 *
 * Last, hospital1's host folder (`units hospital1`): its nodes are stopped, its folder written, the
 * launcher's copy of its material moved away, and its CA, peer and chaincode server started again from
 * their generated units (ExecStart and EnvironmentFile, in hospital1's namespace): a new write through
 * hospital1's gateway needs its peer, so it shows the folder alone runs the member.
 *
 * Needs root and `ip` (iproute2) with network namespaces: otherwise it fails, saying why.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { expect } from 'chai';
import { binariesIn, stopNode, topology, writeHostFolder } from '@hdx/fabric-network';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { startTestGateway } from '../support/network';
import { recordedPid, useOwnNetwork } from '../support/own-network';

const BRIDGE = 'hdxnsbr0';
const BRIDGE_ADDRESS = '10.77.0.254/24';
const ORGS = [
  { org: 'orderer', short: 'ord', address: '10.77.0.1' },
  { org: 'hospital1', short: 'h1', address: '10.77.0.2' },
  { org: 'hospital2', short: 'h2', address: '10.77.0.3' },
  { org: 'regulator', short: 'reg', address: '10.77.0.4' },
] as const;
const nsOf = (short: string): string => `hdxns-${short}`;
/** The veth end in the bridge (root namespace) and the one in the organization's namespace. */
const hostVeth = (short: string): string => `hdxv-${short}`;
const nsVeth = (short: string): string => `hdxp-${short}`;

function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Removes whatever of the layout exists (namespaces first: that destroys their veth ends and so the pairs). */
async function removeLayout(): Promise<string[]> {
  const problems: string[] = [];
  const namespaces = await ip(['netns', 'list']).catch(() => '');
  for (const { short } of ORGS) {
    if (new RegExp(`^${nsOf(short)}\\b`, 'm').test(namespaces)) await ip(['netns', 'del', nsOf(short)]).catch((e: Error) => problems.push(e.message));
  }
  for (const link of [...ORGS.map((o) => hostVeth(o.short)), BRIDGE]) {
    const exists = await ip(['link', 'show', link]).then(
      () => true,
      () => false,
    );
    // A veth whose namespace was just deleted goes by itself, a moment later: gone between the look and
    // the delete is what was wanted. Anything else, or a link still there afterwards, is a problem.
    if (exists) await ip(['link', 'del', link]).catch((e: Error) => (/Cannot find device/.test(e.message) ? undefined : problems.push(e.message)));
    const left = await ip(['link', 'show', link]).then(
      () => true,
      () => false,
    );
    if (left) problems.push(`${link} is still there`);
  }
  return problems;
}

async function makeLayout(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('this test makes network namespaces, a bridge and veth pairs: it must run as root');
  await ip(['netns', 'list']).catch((e: Error) => {
    throw new Error(`\`ip netns\` is not available (iproute2 with network namespaces is needed): ${e.message}`);
  });
  await removeLayout(); // what an interrupted run left
  await ip(['link', 'add', BRIDGE, 'type', 'bridge']);
  await ip(['addr', 'add', BRIDGE_ADDRESS, 'dev', BRIDGE]);
  await ip(['link', 'set', BRIDGE, 'up']);
  for (const { short, address } of ORGS) {
    const ns = nsOf(short);
    await ip(['netns', 'add', ns]);
    await ip(['link', 'add', hostVeth(short), 'type', 'veth', 'peer', 'name', nsVeth(short)]);
    await ip(['link', 'set', nsVeth(short), 'netns', ns]);
    await ip(['link', 'set', hostVeth(short), 'master', BRIDGE]);
    await ip(['link', 'set', hostVeth(short), 'up']);
    await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', nsVeth(short)]);
    await ip(['-n', ns, 'link', 'set', nsVeth(short), 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  }
}

/** The network namespace a process is in, as the kernel names it (`net:[inode]`). */
function netnsOfPid(pid: number): string {
  return fs.readlinkSync(`/proc/${pid}/ns/net`);
}

/** The kernel name of a namespace made by `ip netns add` (its bind mount in /run/netns). */
function netnsByName(name: string): string {
  return `net:[${fs.statSync(`/run/netns/${name}`).ino}]`;
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.setTimeout(2000, () => {
      sock.destroy();
      resolve(false);
    });
    sock.on('error', () => resolve(false));
  });
}

describe('members on separate hosts: each organization in its own network namespace, the consent flow across them', function () {
  const started = Date.now();
  let gw1: Gw | undefined;
  let gw2: Gw | undefined;
  const started1 = (): Gw => {
    if (!gw1) throw new Error("hospital1's gateway did not start");
    return gw1;
  };
  const started2 = (): Gw => {
    if (!gw2) throw new Error("hospital2's gateway did not start");
    return gw2;
  };
  before(async function () {
    this.timeout(60_000);
    await makeLayout();
  });
  // `after` hooks run in the order they are registered: the gateways close first, then the network stops
  // (useOwnNetwork), then the namespaces, veths and bridge go.
  after(async () => {
    await Promise.all([gw1, gw2].map((g) => g?.gateway.close()));
  });

  const own = useOwnNetwork('netns', 1400, {
    HDX_ORDERER_TYPE: 'raft',
    HDX_ORDERERS: '3',
    HDX_ORG_ADDRESSES: ORGS.map((o) => `${o.org}=${o.address}`).join(','),
    HDX_ORG_NETNS: ORGS.map((o) => `${o.org}=${nsOf(o.short)}`).join(','),
  });

  // Registered after useOwnNetwork's: runs after the network is stopped (its processes held the namespaces).
  after(async function () {
    this.timeout(60_000);
    const problems = await removeLayout();
    process.stderr.write(`  [netns] took ${((Date.now() - started) / 1000).toFixed(1)}s in all (namespaces, network, consent flow, clean-up)\n`);
    if (problems.length > 0) throw new Error(`could not remove all the test's namespaces and links: ${problems.join('; ')}`);
  });

  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  let observationId: string;
  let patientId: string;
  const consentId = '7c0d2a4e-1b3f-4a5c-8d6e-9f0a1b2c3d4e';
  const consent = permitOrganizationConsent(consentId, patientKey.did, 'Hospital2MSP', 'TREAT') as { id: string } & Record<string, unknown>;
  const h2Token = (): string => signDidToken({ key: drH2.privateJwk, audience: started1().config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 });
  const patientToken = (): string => signDidToken({ key: patientKey.privateJwk, audience: started1().config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });

  before(async function () {
    this.timeout(180_000);
    [gw1, gw2] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2')]);
    const [h1, h2] = [started1(), started2()];
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Vasquez-Holm', given: ['Ines'] }],
      birthDate: '1979-02-11',
    });
    expect(p.status, p.text).to.equal(201);
    patientId = p.body.id;
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${p.body.id}` },
      effectiveDateTime: '2026-11-21T10:00:00Z',
      valueQuantity: { value: 71, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = o.body.id;
  });

  it("runs every node in its organization's namespace, listening only on its organization's address", async () => {
    const { info } = own();
    for (const { org, short } of ORGS) {
      const nodes = org === 'orderer' ? ['ca-orderer', 'orderer0', 'orderer1', 'orderer2'] : [`ca-${org}`, `peer0.${org}`, `chaincode.${org}`];
      for (const node of nodes) expect(netnsOfPid(recordedPid(own(), node)), node).to.equal(netnsByName(nsOf(short)));
    }
    const h1Peer = info.orgs.hospital1?.peerEndpoint ?? '';
    expect(h1Peer).to.match(/^10\.77\.0\.2:\d+$/);
    const port = Number(h1Peer.split(':')[1]);
    expect(await portOpen('10.77.0.2', port), 'hospital1 peer at its address').to.equal(true);
    // Not on this (the root) namespace's loopback: nothing is reached through 127.0.0.1 any more.
    expect(await portOpen('127.0.0.1', port), 'hospital1 peer on 127.0.0.1').to.equal(false);
    expect(info.orderers.map((o) => o.endpoint.split(':')[0])).to.deep.equal(['10.77.0.1', '10.77.0.1', '10.77.0.1']);
  });

  it("points each gateway at its organization's address, with TLS checked against that address (no localhost alias)", () => {
    expect(started1().config.peerEndpoint).to.match(/^10\.77\.0\.2:/);
    expect(started2().config.peerEndpoint).to.match(/^10\.77\.0\.3:/);
    expect(started1().config.caUrl).to.match(/^https:\/\/10\.77\.0\.2:/);
    expect(started1().config.peerHostAlias).to.equal(undefined);
    expect(started2().config.peerHostAlias).to.equal(undefined);
  });

  it('denies a hospital2 practitioner without consent, as if the record did not exist', async () => {
    const read = await call(started1(), 'GET', `/Observation/${observationId}`, h2Token());
    expect(read.status, read.text).to.equal(404);
    expect(read.text).to.not.include('Vasquez');
    const search = await call(started1(), 'GET', `/Observation?patient=${patientKey.did}`, h2Token());
    expect(search.status, search.text).to.equal(200);
    expect(search.body.total).to.equal(0);
  });

  it('the patient grants consent; the hospital2 practitioner is then permitted', async () => {
    const granted = await call(started1(), 'POST', '/Consent', patientToken(), signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose');
    expect(granted.status, granted.text).to.equal(201);
    const read = await call(started1(), 'GET', `/Observation/${observationId}`, h2Token());
    expect(read.status, read.text).to.equal(200);
    expect(read.body.valueQuantity.value).to.equal(71);
  });

  it('the patient revokes; the next read is denied', async () => {
    const revoked = await call(started1(), 'PUT', `/Consent/${consentId}`, patientToken(), signConsent(patientKey.privateJwk, consent, 'revoke'), 'application/jose');
    expect(revoked.status, revoked.text).to.equal(200);
    expect(revoked.body.status).to.equal('inactive');
    const read = await call(started1(), 'GET', `/Observation/${observationId}`, h2Token());
    expect(read.status, read.text).to.equal(404);
  });

  let hostFolder: { dir: string; units: string[] } | undefined;
  /** Starts a node from its generated unit (ExecStart, EnvironmentFile, WorkingDirectory) in hospital1's namespace, as systemd would there. */
  const startUnit = (out: { dir: string; units: string[] }, unit: string): Record<string, string> => {
    const { info } = own();
    const root = out.dir;
    expect(out.units).to.include(unit);
    const text = fs.readFileSync(path.join(out.dir, 'units', unit), 'utf8');
    const envFile = /^EnvironmentFile=(.+)$/m.exec(text)?.[1] ?? '';
    const exec = (/^ExecStart=(.+)$/m.exec(text)?.[1] ?? '').split(' ').map((a) => a.replace(/%%/g, '%'));
    const cwd = /^WorkingDirectory=(.+)$/m.exec(text)?.[1];
    const env: Record<string, string> = {};
    for (const line of fs.readFileSync(envFile, 'utf8').split('\n')) {
      const m = /^([A-Z0-9_]+)='(.*)'$/.exec(line);
      if (m?.[1] && m[2] !== undefined) env[m[1]] = m[2];
    }
    // Every path the node is given is in the host folder (or the binaries, or the repository's code).
    for (const v of Object.values(env)) expect(v.includes(`${info.home}/`) && !v.includes(`${root}/`), v).to.equal(false);
    const name = unit.slice('hdx-'.length, -'.service'.length);
    const log = fs.openSync(path.join(info.home, 'logs', `${name}.log`), 'a');
    const child = spawn('ip', ['netns', 'exec', nsOf('h1'), ...exec], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      cwd,
      detached: true,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    child.unref();
    // Recorded as the launcher records its nodes, so the network's `down` stops it.
    fs.writeFileSync(path.join(info.home, 'pids', `${name}.pid`), JSON.stringify({ pid: child.pid, command: exec[0], startedAt: new Date().toISOString() }));
    return env;
  };

  it('runs hospital1 again from its host folder alone (`units hospital1`): its CA, peer and chaincode server from their units', async function () {
    this.timeout(240_000);
    const { info, options } = own();
    const t = topology(options);
    const bins = binariesIn(info.fabricBinaries);
    for (const node of ['chaincode.hospital1', 'peer0.hospital1', 'ca-hospital1']) await stopNode(options, node, { kill: false });
    const root = path.join(info.home, 'hosts', 'hospital1');
    const repo = path.resolve(__dirname, '..', '..');
    const out = writeHostFolder(t, bins, 'hospital1', { root, repo, fabricBin: bins.binDir, fabricConfig: bins.configDir, node: process.execPath, user: 'root' });
    // The launcher's own copy of hospital1's material goes away: the nodes can only use the host folder.
    for (const rel of ['orgs/hospital1', 'ca/hospital1', 'data/peer0.hospital1']) fs.renameSync(path.join(info.home, rel), path.join(info.home, `${rel}.moved`));
    hostFolder = out;
    const started = Date.now();
    for (const unit of ['hdx-ca-hospital1.service', 'hdx-peer0.hospital1.service', 'hdx-chaincode.hospital1.service']) startUnit(out, unit);
    const h1 = started1();
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const body = {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${patientId}` },
      effectiveDateTime: '2026-11-22T10:00:00Z',
      valueQuantity: { value: 68, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    };
    let last = '';
    for (;;) {
      const written = await call(h1, 'POST', '/Observation', staff, body);
      if (written.status === 201) break;
      last = `${written.status} ${written.text.slice(0, 300)}`;
      if (Date.now() - started > 180_000) throw new Error(`no write through hospital1's peer started from its host folder: ${last}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    process.stderr.write(`  [netns] hospital1 ran from its host folder (${out.files} files): a write went through after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  });

  it("serves hospital1's FHIR API from its gateway unit, in its namespace, over HTTPS at its own address, reached from outside", async function () {
    this.timeout(180_000);
    if (!hostFolder) throw new Error('the host folder step did not run');
    const env = startUnit(hostFolder, 'hdx-gateway.hospital1.service');
    expect(env.HDX_GATEWAY_HOST).to.equal('10.77.0.2');
    const base = env.HDX_GATEWAY_BASE_URL ?? '';
    expect(base).to.match(/^https:\/\/10\.77\.0\.2:\d+\/fhir$/);
    // Its certificate, issued by hospital1's CA, names the address; checked against that CA alone.
    const ca = fs.readFileSync(path.join(hostFolder.dir, 'state', 'ca', 'hospital1', 'server', 'ca-cert.pem'));
    const started = Date.now();
    let metadata: { status: number; body: string } | undefined;
    let last = '';
    while (!metadata) {
      metadata = await httpsCall('GET', `${base}/metadata`, ca).catch((e: Error) => {
        last = e.message;
        return undefined;
      });
      if (!metadata && Date.now() - started > 150_000) throw new Error(`hospital1's gateway unit did not answer over HTTPS at ${base}: ${last}`);
      if (!metadata) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(metadata.status).to.equal(200);
    expect((JSON.parse(metadata.body) as { resourceType: string }).resourceType).to.equal('CapabilityStatement');
    process.stderr.write(`  [netns] hospital1's gateway unit answered over HTTPS at ${base} after ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    // A caller with a staff token writes and reads, across the bridge, over TLS: this gateway's own store
    // is new (the test's in-process gateway kept the earlier records), its write endorsed and anchored.
    const staff = staffToken({ config: { ...started1().config, baseUrl: base } } as Gw, 'hospital1', { did: drH1.did });
    const created = await httpsCall('POST', `${base}/Patient`, ca, staff, { resourceType: 'Patient', birthDate: '1966-06-16', gender: 'other' });
    expect(created.status, created.body).to.equal(201);
    const id = (JSON.parse(created.body) as { id: string }).id;
    const read = await httpsCall('GET', `${base}/Patient/${id}`, ca, staff);
    expect(read.status, read.body).to.equal(200);
    expect((JSON.parse(read.body) as { birthDate: string }).birthDate).to.equal('1966-06-16');
    // Plain HTTP is not served there, and a client that does not trust hospital1's CA refuses the certificate.
    const port = Number(new URL(base).port);
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '10.77.0.2', port, path: '/fhir/metadata', timeout: 5000 }, (res) => resolve(`answered ${String(res.statusCode)}`));
      req.on('error', (e) => resolve(`error ${e.message}`));
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    expect(plain).to.not.match(/^answered 200/);
    const untrusted = await httpsCall('GET', `${base}/metadata`, undefined).then(
      () => 'accepted',
      (e: Error) => e.message,
    );
    expect(untrusted).to.match(/self.signed|unable to (get|verify)|certificate/i);
  });
});

/** A call over HTTPS trusting `ca` only (undefined: the system's roots), with an optional bearer token and JSON body. */
function httpsCall(method: string, url: string, ca: Buffer | undefined, token?: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {
      accept: 'application/fhir+json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/fhir+json' } : {}),
    };
    const req = httpsRequest(url, { method, ...(ca ? { ca } : {}), headers, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}
