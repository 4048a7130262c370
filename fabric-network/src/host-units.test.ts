import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { type Binaries, REPO_ROOT } from './binaries';
import { envFileValue, foreignSecrets, hostLayout, hostUnits, toHostPaths, writeHostFolder } from './host-units';
import { defaultOptions } from './network';
import { NetworkError } from './proc';
import { identityDir, orgOf, peerOf, type Topology, topology } from './topology';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A network state folder as `up` leaves it, with stand-in certificates, keys, secrets and ledgers. */
function fakeNetwork(): { t: Topology; bins: Binaries } {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-units-'));
  const t = topology(
    defaultOptions({ HDX_NETWORK_HOME: home, HDX_PORT_BASE: '52000', HDX_ORG_ADDRESSES: 'orderer=10.77.0.1,hospital1=10.77.0.2,hospital2=10.77.0.3,regulator=10.77.0.4' }),
  );
  for (const org of t.orgs) {
    write(path.join(org.ca.home, 'server', 'ca-cert.pem'), CERT);
    write(path.join(org.ca.home, 'server', 'msp', 'keystore', 'ca_sk'), KEY);
    write(path.join(org.ca.home, 'server', 'fabric-ca-server.db'), 'db');
    write(path.join(org.dir, 'msp', 'cacerts', 'ca.pem'), CERT);
    write(path.join(identityDir(org, 'admin', 'admin'), 'msp', 'keystore', 'k_sk'), KEY);
    write(path.join(t.dirs.secrets, `${org.name}.json`), '{"caAdmin":"s"}');
  }
  for (const o of t.orderers) write(path.join(t.options.home, 'data', o.name, 'ledger', 'chain'), 'blocks');
  for (const p of t.peers) {
    const org = orgOf(t, p.org);
    for (const kind of ['peer', 'chaincode'] as const) {
      const dir = identityDir(org, kind, kind === 'peer' ? 'peer0' : 'server');
      write(path.join(dir, 'tls', 'server.crt'), CERT);
      write(path.join(dir, 'tls', 'server.key'), KEY);
    }
    write(path.join(t.options.home, 'data', p.name, 'ledgersData', 'x'), 'ledger');
    write(path.join(t.dirs.gateways, `${p.org}-org-key.json`), '{"d":"secret"}');
    write(
      path.join(t.dirs.gateways, `${p.org}.env`),
      `HDX_ORG=${p.org}\nHDX_PEER_ENDPOINT=${p.host}:${p.port}\nHDX_PEER_TLS_CA_FILE=${path.join(org.ca.home, 'server', 'ca-cert.pem')}\nHDX_CA_ENROLLMENT_SECRET=sec\n`,
    );
  }
  write(path.join(t.dirs.channel, 'hdx.block'), 'block');
  const cache = path.join(home, 'cache');
  const bins: Binaries = {
    binDir: path.join(cache, 'bin'),
    configDir: path.join(cache, 'config'),
    peer: path.join(cache, 'bin', 'peer'),
    orderer: path.join(cache, 'bin', 'orderer'),
    configtxgen: path.join(cache, 'bin', 'configtxgen'),
    osnadmin: path.join(cache, 'bin', 'osnadmin'),
    configtxlator: path.join(cache, 'bin', 'configtxlator'),
    caServer: path.join(cache, 'bin', 'fabric-ca-server'),
    caClient: path.join(cache, 'bin', 'fabric-ca-client'),
  };
  return { t, bins };
}

describe('host folders and systemd units (`units <org>`)', () => {
  const layout = hostLayout({});
  let net: { t: Topology; bins: Binaries };
  beforeEach(() => {
    net = fakeNetwork();
  });
  afterEach(() => fs.rmSync(net.t.options.home, { recursive: true, force: true }));

  it("holds the organization's keys and ledger, and of the others only their CA certificates", () => {
    const { t, bins } = net;
    const out = writeHostFolder(t, bins, 'hospital1', layout);
    const state = path.join(out.dir, 'state');
    const files = fs.readFileSync(path.join(out.dir, 'MANIFEST'), 'utf8').trim().split('\n');
    expect(files).to.include.members([
      'state/orgs/hospital1/peers/peer0/tls/server.key',
      'state/orgs/hospital1/users/admin/msp/keystore/k_sk',
      'state/ca/hospital1/server/msp/keystore/ca_sk',
      'state/secrets/hospital1.json',
      'state/gateways/hospital1.env',
      'state/gateways/hospital1-org-key.json',
      'state/data/peer0.hospital1/ledgersData/x',
      'state/channel/hdx.block',
      'state/ca/hospital2/server/ca-cert.pem',
      'state/ca/orderer/server/ca-cert.pem',
      'units/hdx-peer0.hospital1.service',
    ]);
    const others = files.filter((f) => /hospital2|regulator|orderer/.test(f));
    expect(others.sort()).to.deep.equal(['state/ca/hospital2/server/ca-cert.pem', 'state/ca/orderer/server/ca-cert.pem', 'state/ca/regulator/server/ca-cert.pem']);
    expect(fs.existsSync(path.join(state, 'network.json'))).to.equal(false);
    expect(out.units).to.deep.equal(['hdx-ca-hospital1.service', 'hdx-peer0.hospital1.service', 'hdx-chaincode.hospital1.service', 'hdx-gateway.hospital1.service']);

    const orderer = writeHostFolder(t, bins, 'orderer', layout);
    expect(orderer.units).to.deep.equal(['hdx-ca-orderer.service', 'hdx-orderer0.service', 'hdx-orderer1.service', 'hdx-orderer2.service']);
    const ordFiles = fs.readFileSync(path.join(orderer.dir, 'MANIFEST'), 'utf8');
    expect(ordFiles).to.include('state/data/orderer0/ledger/chain');
    expect(ordFiles).to.not.match(/data\/peer0|orgs\/hospital|secrets\/hospital/);
  });

  it("the units start each node as `up` does, at its organization's address, with every path on the host", () => {
    const { t, bins } = net;
    const units = hostUnits(t, bins, layout, 'hospital1');
    const all = units.map((u) => `${u.unit}\n${u.env}`).join('\n');
    expect(all).to.not.include(t.options.home);
    expect(all).to.not.include(REPO_ROOT);
    expect(all).to.not.include(bins.binDir);
    const peer = units.find((u) => u.unitName === 'hdx-peer0.hospital1.service');
    expect(peer?.unit).to.include('ExecStart=/opt/hdx/fabric/bin/peer node start');
    expect(peer?.unit).to.include('EnvironmentFile=/opt/hdx/units/peer0.hospital1.env');
    expect(peer?.unit).to.include('User=hdx');
    expect(peer?.env).to.include(`CORE_PEER_LISTENADDRESS='10.77.0.2:${peerOf(t, 'hospital1').port}'`);
    expect(peer?.env).to.include("CORE_PEER_MSPCONFIGPATH='/opt/hdx/state/orgs/hospital1/peers/peer0/msp'");
    expect(peer?.env).to.include("CORE_PEER_TLS_ROOTCERT_FILE='/opt/hdx/state/orgs/hospital1/peers/peer0/tls/ca.crt'");
    const ca = units.find((u) => u.unitName === 'hdx-ca-hospital1.service');
    expect(ca?.env).to.include("FABRIC_CA_SERVER_ADDRESS='10.77.0.2'");
    expect(ca?.env).to.include("FABRIC_CA_SERVER_CSR_HOSTS='10.77.0.2'");
    const cc = units.find((u) => u.unitName === 'hdx-chaincode.hospital1.service');
    expect(cc?.unit).to.match(/ExecStart=\/usr\/bin\/node \/opt\/hdx\/repo\/\S*fabric-shim\/cli\.js server --chaincode-address 10\.77\.0\.2:52100 /);
    const gw = units.find((u) => u.unitName === 'hdx-gateway.hospital1.service');
    expect(gw?.unit).to.include('ExecStart=/usr/bin/node /opt/hdx/repo/gateway/dist/main.js');
    expect(gw?.unit).to.include('After=network-online.target hdx-peer0.hospital1.service hdx-chaincode.hospital1.service');
    expect(gw?.env).to.include("HDX_PEER_TLS_CA_FILE='/opt/hdx/state/ca/hospital1/server/ca-cert.pem'");
    expect(gw?.env).to.include("HDX_DATA_DIR='/opt/hdx/state/gateway-hospital1'");
    expect(gw?.env).to.include("HDX_GATEWAY_PORT='8080'");
    // On its own address the gateway serves HTTPS there (the gateway refuses plain HTTP off the loopback),
    // with its TLS certificate from its CA, and trusts the other members' CAs for their gateways.
    expect(gw?.env).to.include("HDX_GATEWAY_HOST='10.77.0.2'");
    expect(gw?.env).to.include("HDX_GATEWAY_BASE_URL='https://10.77.0.2:8080/fhir'");
    expect(gw?.env).to.include("HDX_GATEWAY_TLS_CERT_FILE='/opt/hdx/state/orgs/hospital1/gateway/gateway/tls/server.crt'");
    expect(gw?.env).to.include("HDX_GATEWAY_TLS_KEY_FILE='/opt/hdx/state/orgs/hospital1/gateway/gateway/tls/server.key'");
    expect(gw?.env).to.include("NODE_EXTRA_CA_CERTS='/opt/hdx/state/gateways/hospital1-member-tls-roots.pem'");
  });

  it("writes the bundle of the other members' CA certificates the gateway trusts, and only certificates", () => {
    const { t, bins } = net;
    const out = writeHostFolder(t, bins, 'hospital1', layout);
    const bundle = fs.readFileSync(path.join(out.dir, 'state', 'gateways', 'hospital1-member-tls-roots.pem'), 'utf8');
    expect(bundle.match(/-----BEGIN CERTIFICATE-----/g)).to.have.length(3); // orderer, hospital2, regulator
    expect(bundle).to.not.include('PRIVATE KEY');
    expect(fs.readFileSync(path.join(out.dir, 'MANIFEST'), 'utf8')).to.include('state/gateways/hospital1-member-tls-roots.pem');
  });

  it("refuses while one of the organization's nodes runs (its ledger would be copied half-written)", () => {
    const { t, bins } = net;
    fs.mkdirSync(t.dirs.pids, { recursive: true });
    fs.writeFileSync(path.join(t.dirs.pids, 'chaincode.hospital1.pid'), JSON.stringify({ pid: process.pid, command: process.execPath, startedAt: '' }));
    expect(() => writeHostFolder(t, bins, 'hospital1', layout)).to.throw(NetworkError, 'stop hospital1');
    expect(writeHostFolder(t, bins, 'hospital2', layout).units).to.have.length(4);
  });

  it("finds another organization's key or secret in a host folder", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-state-'));
    write(path.join(dir, 'orgs', 'hospital1', 'peers', 'peer0', 'tls', 'server.key'), KEY);
    write(path.join(dir, 'ca', 'hospital2', 'server', 'ca-cert.pem'), CERT);
    expect(foreignSecrets(dir, ['orgs/hospital1'])).to.deep.equal([]);
    write(path.join(dir, 'orgs', 'hospital2', 'users', 'admin', 'msp', 'signcerts', 'cert.pem'), KEY);
    write(path.join(dir, 'secrets', 'hospital2.json'), '{}');
    expect(foreignSecrets(dir, ['orgs/hospital1']).sort()).to.deep.equal(['orgs/hospital2/users/admin/msp/signcerts/cert.pem', 'secrets/hospital2.json']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('moves paths to the host once, longest prefix first, and quotes environment values for systemd', () => {
    const { t, bins } = net;
    expect(toHostPaths(`[${t.options.home}/orgs/a.pem]`, t, bins, layout)).to.equal('[/opt/hdx/state/orgs/a.pem]');
    expect(toHostPaths(`[{name: ccaas, path: ${REPO_ROOT}/fabric-network/builders/ccaas}]`, t, bins, layout)).to.equal(
      '[{name: ccaas, path: /opt/hdx/repo/fabric-network/builders/ccaas}]',
    );
    expect(envFileValue('%{time} a b')).to.equal("'%{time} a b'");
    expect(envFileValue(`it's "$x"`)).to.equal('"it\'s \\"\\$x\\""');
    expect(() => hostLayout({ HDX_HOST_ROOT: 'relative' })).to.throw(NetworkError, 'absolute');
  });
});
