import { expect } from 'chai';
import type { Binaries } from './binaries';
import { caUrl } from './ca';
import { configtx, joiningOrgConfigtx, PROFILE } from './configtx';
import { adminEnv, defaultGatewayUrl, defaultOptions, type GatewayConnection, gatewayEnv, ordererArgs, ordererEnv, peerEnv } from './network';
import { commandLine, NetworkError } from './proc';
import { endpoint, orgOf, peerOf, tlsHostsOf, topology } from './topology';

const ADDRESSES = 'orderer=10.77.0.1,hospital1=10.77.0.2,hospital2=10.77.0.3,regulator=10.77.0.4';
const bins: Binaries = {
  binDir: '/bin',
  configDir: '/cfg',
  peer: '/bin/peer',
  orderer: '/bin/orderer',
  configtxgen: '/bin/configtxgen',
  osnadmin: '/bin/osnadmin',
  configtxlator: '/bin/configtxlator',
  caServer: '/bin/fabric-ca-server',
  caClient: '/bin/fabric-ca-client',
};

type RaftProfile = {
  Orderer: { EtcdRaft: { Consenters: Array<{ Host: string; Port: number }> }; Organizations: Array<{ OrdererEndpoints: string[] }> };
  Application: { Organizations: Array<{ Name: string; AnchorPeers: Array<{ Host: string; Port: number }> }> };
};
type BftProfile = { Orderer: { ConsenterMapping: Array<{ Host: string; Port: number }> } };

describe('per-organization addresses (HDX_ORG_ADDRESSES, HDX_ORG_NETNS)', () => {
  it('by default every node is on 127.0.0.1, in no namespace, and the options carry neither setting', () => {
    const options = defaultOptions({});
    expect(options).to.not.have.property('addresses');
    expect(options).to.not.have.property('netns');
    const t = topology(options);
    const nodes = [...t.orgs.map((o) => o.ca), ...t.orderers, ...t.peers];
    for (const n of nodes) {
      expect(n.host).to.equal('127.0.0.1');
      expect(n.netns).to.equal(undefined);
    }
    expect(ordererEnv(t, bins, 0)).to.include({ ORDERER_GENERAL_LISTENADDRESS: '127.0.0.1' });
    expect(tlsHostsOf('127.0.0.1')).to.deep.equal(['127.0.0.1', 'localhost']);
  });

  it("puts every node of an organization at its organization's address: listen, advertised, CLI and channel config", () => {
    const t = topology(defaultOptions({ HDX_ORG_ADDRESSES: ADDRESSES, HDX_PORT_BASE: '52000' }));
    const h1 = peerOf(t, 'hospital1');
    const h2 = peerOf(t, 'hospital2');
    expect(t.orgs.map((o) => [o.name, o.ca.host])).to.deep.equal([
      ['orderer', '10.77.0.1'],
      ['hospital1', '10.77.0.2'],
      ['hospital2', '10.77.0.3'],
      ['regulator', '10.77.0.4'],
    ]);
    expect(t.orderers.map((o) => o.host)).to.deep.equal(['10.77.0.1', '10.77.0.1', '10.77.0.1']);
    expect(t.peers.map((p) => p.host)).to.deep.equal(['10.77.0.2', '10.77.0.3', '10.77.0.4']);
    expect(caUrl(orgOf(t, 'hospital2').ca)).to.equal('https://10.77.0.3:52020');

    const o = ordererEnv(t, bins, 1);
    expect(o).to.include({ ORDERER_GENERAL_LISTENADDRESS: '10.77.0.1', ORDERER_ADMIN_LISTENADDRESS: '10.77.0.1:52046', ORDERER_OPERATIONS_LISTENADDRESS: '10.77.0.1:52047' });
    const p = peerEnv(t, bins, h2);
    expect(p).to.include({
      CORE_PEER_ADDRESS: '10.77.0.3:52080',
      CORE_PEER_LISTENADDRESS: '10.77.0.3:52080',
      CORE_PEER_CHAINCODEADDRESS: '10.77.0.3:52081',
      CORE_PEER_CHAINCODELISTENADDRESS: '10.77.0.3:52081',
      CORE_PEER_GOSSIP_EXTERNALENDPOINT: '10.77.0.3:52080',
      CORE_OPERATIONS_LISTENADDRESS: '10.77.0.3:52082',
    });
    expect(adminEnv(t, bins, 'hospital1')).to.include({ CORE_PEER_ADDRESS: '10.77.0.2:52070' });
    expect(ordererArgs(t).slice(0, 2)).to.deep.equal(['-o', '10.77.0.1:52040']);
    // The organization DID's URL: HTTPS on a member's own address (its gateway serves TLS there).
    expect(defaultGatewayUrl(t, 'hospital2')).to.equal('https://10.77.0.3:8081/fhir');

    const raft = (configtx(t) as { Profiles: Record<string, RaftProfile> }).Profiles[PROFILE] as RaftProfile;
    expect(raft.Orderer.Organizations[0]?.OrdererEndpoints).to.deep.equal(['10.77.0.1:52040', '10.77.0.1:52045', '10.77.0.1:52050']);
    expect(raft.Orderer.EtcdRaft.Consenters.map((c) => c.Host)).to.deep.equal(['10.77.0.1', '10.77.0.1', '10.77.0.1']);
    expect(raft.Application.Organizations.map((a) => a.AnchorPeers)).to.deep.equal([
      [{ Host: '10.77.0.2', Port: h1.port }],
      [{ Host: '10.77.0.3', Port: h2.port }],
      [{ Host: '10.77.0.4', Port: peerOf(t, 'regulator').port }],
    ]);
    const bft = topology(defaultOptions({ HDX_ORG_ADDRESSES: ADDRESSES, HDX_ORDERER_TYPE: 'bft' }));
    const mapping = (configtx(bft) as { Profiles: Record<string, BftProfile> }).Profiles[PROFILE] as BftProfile;
    expect(mapping.Orderer.ConsenterMapping.map((c) => c.Host)).to.deep.equal(['10.77.0.1', '10.77.0.1', '10.77.0.1', '10.77.0.1']);
  });

  it('an organization that joins later gets its own address too; one not listed stays on 127.0.0.1', () => {
    const t = topology({ ...defaultOptions({ HDX_ORG_ADDRESSES: 'hospital3=10.77.0.5,orderer=10.77.0.1' }), joined: ['hospital3'] });
    expect(peerOf(t, 'hospital3').host).to.equal('10.77.0.5');
    expect(orgOf(t, 'hospital3').ca.host).to.equal('10.77.0.5');
    expect(peerOf(t, 'hospital1').host).to.equal('127.0.0.1');
    const org = (joiningOrgConfigtx(t, orgOf(t, 'hospital3')) as { Organizations: Array<{ AnchorPeers: unknown[] }> }).Organizations[0];
    expect(org?.AnchorPeers).to.deep.equal([{ Host: '10.77.0.5', Port: peerOf(t, 'hospital3').port }]);
  });

  it('TLS certificates name the address only, off the loopback; IPv6 endpoints are bracketed', () => {
    expect(tlsHostsOf('10.77.0.2')).to.deep.equal(['10.77.0.2']);
    expect(tlsHostsOf('peer.hospital1.example.org')).to.deep.equal(['peer.hospital1.example.org']);
    expect(tlsHostsOf('127.0.0.2')).to.deep.equal(['127.0.0.2', '127.0.0.1', 'localhost']);
    expect(endpoint('fd00::2', 7051)).to.equal('[fd00::2]:7051');
    expect(endpoint('10.77.0.2', 7051)).to.equal('10.77.0.2:7051');
  });

  it('the gateway env file drops the localhost alias when its peer is not on the loopback', () => {
    const conn = (peerEndpoint: string, alias?: string): GatewayConnection => ({
      org: 'hospital1',
      mspId: 'Hospital1MSP',
      peerEndpoint,
      ...(alias ? { peerHostAlias: alias } : {}),
      peerTlsCaFile: '/ca.pem',
      caUrl: 'https://10.77.0.2:52010',
      caName: 'ca-hospital1',
      caTlsCaFile: '/ca.pem',
      enrollmentId: 'gateway',
      enrollmentSecret: 's',
      orgKeyFile: '/k.json',
      orgDid: 'did:example',
      gatewayPort: 8080,
    });
    const idp = { issuer: 'https://idp', publicKeyFile: '/p.pem', privateKeyFile: '/q.pem' };
    const remote = gatewayEnv(conn('10.77.0.2:52070'), idp);
    expect(remote).to.include('HDX_PEER_ENDPOINT=10.77.0.2:52070\n');
    expect(remote).to.include('HDX_CA_URL=https://10.77.0.2:52010\n');
    expect(remote).to.not.include('HDX_PEER_HOST_ALIAS');
    expect(gatewayEnv(conn('127.0.0.1:7070', 'localhost'), idp)).to.include('HDX_PEER_HOST_ALIAS=localhost\n');
  });

  it('starts a node of an organization with a namespace through `ip netns exec`, and records the node itself', () => {
    const t = topology(defaultOptions({ HDX_ORG_ADDRESSES: ADDRESSES, HDX_ORG_NETNS: 'hospital1=hdx-h1,orderer=hdx-ord' }));
    expect(peerOf(t, 'hospital1').netns).to.equal('hdx-h1');
    expect(t.orderers.every((o) => o.netns === 'hdx-ord')).to.equal(true);
    expect(orgOf(t, 'orderer').ca.netns).to.equal('hdx-ord');
    expect(peerOf(t, 'hospital2').netns).to.equal(undefined);
    expect(commandLine({ command: '/bin/peer', args: ['node', 'start'], netns: 'hdx-h1' })).to.deep.equal({
      file: 'ip',
      args: ['netns', 'exec', 'hdx-h1', '/bin/peer', 'node', 'start'],
    });
    expect(commandLine({ command: '/bin/peer', args: ['node', 'start'] })).to.deep.equal({ file: '/bin/peer', args: ['node', 'start'] });
  });

  for (const [env, message] of [
    [{ HDX_ORG_ADDRESSES: 'hospital1' }, 'HDX_ORG_ADDRESSES: "hospital1" is not <organization>=<value>'],
    [{ HDX_ORG_ADDRESSES: 'hospital1=10.77.0.256' }, 'HDX_ORG_ADDRESSES: hospital1=10.77.0.256: not an IPv4 address'],
    [{ HDX_ORG_ADDRESSES: 'hospital1=10.0.0.2,hospital1=10.0.0.3' }, 'organization hospital1 is given twice'],
    [{ HDX_ORG_ADDRESSES: 'hospital1=bad_host!' }, 'not an IP address or host name'],
    [{ HDX_ORG_NETNS: 'hospital1=../x' }, 'HDX_ORG_NETNS: hospital1=../x: not a network namespace name'],
  ] as const) {
    it(`refuses ${JSON.stringify(env)}, saying why`, () => {
      expect(() => defaultOptions(env)).to.throw(NetworkError, message);
    });
  }
});
