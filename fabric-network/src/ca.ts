import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Binaries } from './binaries';
import { isRunning, logFile, NetworkError, run, startService, waitHealthy } from './proc';
import { type CaNode, endpoint, type Org, tlsHostsOf, type Topology } from './topology';

/** The root certificate of an org's CA: signs the org's enrollment and TLS certificates and the CA's own TLS cert. */
export function caCertFile(ca: CaNode): string {
  return path.join(ca.home, 'server', 'ca-cert.pem');
}

export function caUrl(ca: CaNode): string {
  return `https://${endpoint(ca.host, ca.port)}`;
}

export interface OrgSecrets {
  caAdmin: string;
  [enrollmentId: string]: string;
}

/** Per-network random passwords, kept with mode 0600 under secrets/. */
export function orgSecrets(t: Topology, org: Org): OrgSecrets {
  const file = path.join(t.dirs.secrets, `${org.name}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as OrgSecrets;
  fs.mkdirSync(t.dirs.secrets, { recursive: true, mode: 0o700 });
  const secrets: OrgSecrets = { caAdmin: newSecret() };
  fs.writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

function saveSecrets(t: Topology, org: Org, secrets: OrgSecrets): void {
  fs.writeFileSync(path.join(t.dirs.secrets, `${org.name}.json`), JSON.stringify(secrets, null, 2), { mode: 0o600 });
}

function newSecret(): string {
  return randomBytes(18).toString('base64url');
}

/** The environment fabric-ca-server runs with (its home, address, TLS names), as `up` and the host units start it. */
export function caEnv(ca: CaNode): NodeJS.ProcessEnv {
  return {
    FABRIC_CA_SERVER_HOME: path.join(ca.home, 'server'),
    FABRIC_CA_SERVER_ADDRESS: ca.host,
    FABRIC_CA_SERVER_PORT: String(ca.port),
    FABRIC_CA_SERVER_CA_NAME: ca.name,
    FABRIC_CA_SERVER_CSR_CN: ca.name,
    FABRIC_CA_SERVER_CSR_HOSTS: tlsHostsOf(ca.host).join(','),
    FABRIC_CA_SERVER_TLS_ENABLED: 'true',
    FABRIC_CA_SERVER_OPERATIONS_LISTENADDRESS: endpoint(ca.host, ca.operationsPort),
    FABRIC_CA_SERVER_METRICS_PROVIDER: 'disabled',
  };
}

/** Starts (and on first start initializes) the org's fabric-ca-server with TLS, and waits for /healthz. */
export async function startCa(t: Topology, bins: Binaries, org: Org): Promise<void> {
  const ca = org.ca;
  if (isRunning(t.dirs.pids, ca.name)) return;
  const secrets = orgSecrets(t, org);
  const home = path.join(ca.home, 'server');
  fs.mkdirSync(home, { recursive: true });
  const env = caEnv(ca);
  // The bootstrap admin's secret goes only to the short-lived `init`, which stores the identity: the
  // long-running server's command line (visible to every local user) never carries it.
  if (!fs.existsSync(path.join(home, 'fabric-ca-server.db'))) {
    await run(bins.caServer, ['init', '-b', `admin:${secrets.caAdmin}`], { env, timeoutMs: 60_000 });
  }
  startService({ name: ca.name, command: bins.caServer, args: ['start'], env, netns: ca.netns }, t.dirs.pids, t.dirs.logs);
  await waitHealthy(ca.name, `http://${endpoint(ca.host, ca.operationsPort)}/healthz`, {
    timeoutMs: 60_000,
    pidsDir: t.dirs.pids,
    log: logFile(t.dirs.logs, ca.name),
  });
}

function clientArgs(ca: CaNode): string[] {
  return ['--caname', ca.name, '--tls.certfiles', caCertFile(ca)];
}

async function caClient(t: Topology, bins: Binaries, org: Org, args: string[], clientHome: string): Promise<string> {
  fs.mkdirSync(clientHome, { recursive: true });
  return run(bins.caClient, [...args, ...clientArgs(org.ca), '-H', clientHome], { timeoutMs: 60_000 });
}

/** Enrolls the CA's bootstrap admin (the registrar) once. */
async function enrollRegistrar(t: Topology, bins: Binaries, org: Org): Promise<string> {
  const home = path.join(org.ca.home, 'registrar');
  if (!fs.existsSync(path.join(home, 'msp', 'signcerts', 'cert.pem'))) {
    const { caAdmin } = orgSecrets(t, org);
    await caClient(t, bins, org, ['enroll', '-u', `https://admin:${caAdmin}@${endpoint(org.ca.host, org.ca.port)}`], home);
  }
  return home;
}

export interface IdentitySpec {
  readonly id: string;
  readonly type: 'peer' | 'orderer' | 'admin' | 'client';
  /** `name=value` attributes put into the enrollment certificate (`:ecert`). */
  readonly attrs?: readonly string[];
}

/** Registers an identity with the org's CA (idempotent) and returns its enrollment secret. */
export async function register(t: Topology, bins: Binaries, org: Org, spec: IdentitySpec): Promise<string> {
  const secrets = orgSecrets(t, org);
  const existing = secrets[spec.id];
  if (existing) return existing;
  const registrar = await enrollRegistrar(t, bins, org);
  const secret = newSecret();
  const args = ['register', '--id.name', spec.id, '--id.secret', secret, '--id.type', spec.type, '-u', caUrl(org.ca)];
  if (spec.attrs && spec.attrs.length > 0) args.push('--id.attrs', spec.attrs.map((a) => `${a}:ecert`).join(','));
  await caClient(t, bins, org, args, registrar);
  secrets[spec.id] = secret;
  saveSecrets(t, org, secrets);
  return secret;
}

/**
 * Enrolls `spec` into `dir`: dir/msp (signing identity, NodeOUs on) and, for nodes, dir/tls
 * (server.crt, server.key, ca.crt) from the CA's TLS profile, its SANs its organization's address (`tlsHostsOf`).
 */
export async function enrollIdentity(t: Topology, bins: Binaries, org: Org, spec: IdentitySpec, dir: string, withTls: boolean): Promise<void> {
  const secret = await register(t, bins, org, spec);
  const url = `https://${spec.id}:${secret}@${endpoint(org.ca.host, org.ca.port)}`;
  const hosts = tlsHostsOf(org.ca.host).join(',');
  const mspDir = path.join(dir, 'msp');
  if (!fs.existsSync(path.join(mspDir, 'signcerts', 'cert.pem'))) {
    await caClient(t, bins, org, ['enroll', '-u', url, '-M', mspDir, '--csr.hosts', hosts], path.join(dir, '.ca-client'));
    normalizeMsp(org, mspDir);
  }
  if (withTls && !fs.existsSync(path.join(dir, 'tls', 'server.key'))) {
    const tlsMsp = path.join(dir, '.tls-msp');
    await caClient(t, bins, org, ['enroll', '-u', url, '-M', tlsMsp, '--enrollment.profile', 'tls', '--csr.hosts', hosts], path.join(dir, '.ca-client'));
    const tlsDir = path.join(dir, 'tls');
    fs.mkdirSync(tlsDir, { recursive: true });
    fs.copyFileSync(path.join(tlsMsp, 'signcerts', 'cert.pem'), path.join(tlsDir, 'server.crt'));
    fs.copyFileSync(onlyFile(path.join(tlsMsp, 'keystore')), path.join(tlsDir, 'server.key'));
    fs.copyFileSync(caCertFile(org.ca), path.join(tlsDir, 'ca.crt'));
    fs.rmSync(tlsMsp, { recursive: true, force: true });
  }
}

function onlyFile(dir: string): string {
  const files = fs.readdirSync(dir).filter((f) => !f.startsWith('.'));
  if (files.length !== 1 || files[0] === undefined) throw new NetworkError(`expected exactly one file in ${dir}, found ${files.length}`);
  return path.join(dir, files[0]);
}

const NODE_OUS = `NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca.pem
    OrganizationalUnitIdentifier: orderer
`;

/** Gives an enrolled MSP folder a stable CA file name, the TLS root and the NodeOUs config. */
function normalizeMsp(org: Org, mspDir: string): void {
  const cacerts = path.join(mspDir, 'cacerts');
  fs.rmSync(cacerts, { recursive: true, force: true });
  writeMspRoots(org, mspDir);
  fs.rmSync(path.join(mspDir, 'IssuerPublicKey'), { force: true });
  fs.rmSync(path.join(mspDir, 'IssuerRevocationPublicKey'), { force: true });
  fs.rmSync(path.join(mspDir, 'user'), { recursive: true, force: true });
}

function writeMspRoots(org: Org, mspDir: string): void {
  for (const sub of ['cacerts', 'tlscacerts']) {
    fs.mkdirSync(path.join(mspDir, sub), { recursive: true });
    fs.copyFileSync(caCertFile(org.ca), path.join(mspDir, sub, 'ca.pem'));
  }
  fs.writeFileSync(path.join(mspDir, 'config.yaml'), NODE_OUS);
}

/** The org's verifying MSP (roots only), as referenced by configtx.yaml. */
export function writeOrgMsp(org: Org): string {
  const mspDir = path.join(org.dir, 'msp');
  writeMspRoots(org, mspDir);
  return mspDir;
}
