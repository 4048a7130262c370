import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { configtx, joiningOrgConfigtx, PROFILE } from './configtx';
import { defaultOptions } from './network';
import { importantLogLines } from './proc';
import { invalidOrgName, orgOf, peerOf, topology } from './topology';

describe('topology', () => {
  for (const [consensus, orderers] of [
    ['raft', 1],
    ['raft', 3],
    ['bft', 4],
  ] as const) {
    it(`gives every node of a ${orderers}-orderer ${consensus} network distinct ports inside its block`, () => {
      const t = topology({ home: '/h', portBase: 7000, consensus, orderers, batchTimeout: '200ms', maxMessageCount: 100 });
      const ports = [
        ...t.orgs.flatMap((o) => [o.ca.port, o.ca.operationsPort]),
        ...t.orderers.flatMap((o) => [o.port, o.adminPort, o.operationsPort]),
        ...t.peers.flatMap((p) => [p.port, p.chaincodeListenPort, p.operationsPort, p.chaincodePort]),
      ];
      expect(new Set(ports).size).to.equal(ports.length);
      for (const p of ports) expect(p).to.be.within(7000, 7109);
      expect(t.orgs.map((o) => o.mspId)).to.deep.equal(['OrdererMSP', 'Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP']);
    });
  }

  it('configtx: Raft consenters for every orderer, MAJORITY endorsement, anchor peers, low-latency cutting', () => {
    const t = topology({ home: '/h', portBase: 7000, consensus: 'raft', orderers: 3, batchTimeout: '250ms', maxMessageCount: 10 });
    // The parts of the configtx profile this test reads.
    type Profile = {
      Orderer: { EtcdRaft: { Consenters: unknown[] }; BatchTimeout: string; BatchSize: { MaxMessageCount: number } };
      Application: { Policies: Record<'Endorsement' | 'LifecycleEndorsement', { Rule: string }>; Organizations: Array<{ AnchorPeers: unknown[] }> };
    };
    const p = (configtx(t) as { Profiles: Record<string, Profile> }).Profiles[PROFILE] as Profile;
    expect(p.Orderer.EtcdRaft.Consenters).to.have.length(3);
    expect(p.Orderer.BatchTimeout).to.equal('250ms');
    expect(p.Orderer.BatchSize.MaxMessageCount).to.equal(10);
    expect(p.Application.Policies.Endorsement.Rule).to.equal('MAJORITY Endorsement');
    expect(p.Application.Policies.LifecycleEndorsement.Rule).to.equal('MAJORITY Endorsement');
    expect(p.Application.Organizations.map((o: { AnchorPeers: unknown[] }) => o.AnchorPeers.length)).to.deep.equal([1, 1, 1]);
  });

  it('block cutting by default: a block per transaction with Raft (the gateways batch already), 100 with BFT; HDX_MAX_MESSAGE_COUNT overrides either', () => {
    expect(defaultOptions({})).to.include({ consensus: 'raft', maxMessageCount: 1, batchTimeout: '200ms' });
    expect(defaultOptions({ HDX_ORDERER_TYPE: 'bft' })).to.include({ consensus: 'bft', maxMessageCount: 100 });
    expect(defaultOptions({ HDX_MAX_MESSAGE_COUNT: '100' }).maxMessageCount).to.equal(100);
    expect(() => defaultOptions({ HDX_MAX_MESSAGE_COUNT: '0' })).to.throw(/HDX_MAX_MESSAGE_COUNT must be a positive integer/);
  });

  it('configtx: BFT maps each of 4 orderers to a consenter id, its MSP, signing identity and TLS certificates', () => {
    const t = topology({ home: '/h', portBase: 7000, consensus: 'bft', orderers: 4, batchTimeout: '100ms', maxMessageCount: 20 });
    type Consenter = { ID: number; Host: string; Port: number; MSPID: string; Identity: string; ClientTLSCert: string; ServerTLSCert: string };
    type Profile = {
      Capabilities: Record<string, boolean>;
      Orderer: {
        OrdererType: string;
        EtcdRaft?: unknown;
        ConsenterMapping: Consenter[];
        SmartBFT: Record<string, string | number | boolean>;
        Organizations: Array<{ OrdererEndpoints: string[] }>;
      };
    };
    const p = (configtx(t) as { Profiles: Record<string, Profile> }).Profiles[PROFILE] as Profile;
    // Fabric refuses BFT without the V3_0 channel capability.
    expect(p.Capabilities.V3_0).to.equal(true);
    expect(p.Orderer.OrdererType).to.equal('BFT');
    expect(p.Orderer.EtcdRaft).to.equal(undefined);
    expect(p.Orderer.ConsenterMapping.map((c) => c.ID)).to.deep.equal([1, 2, 3, 4]);
    expect(p.Orderer.ConsenterMapping.map((c) => c.Port)).to.deep.equal(t.orderers.map((o) => o.port));
    for (const [i, c] of p.Orderer.ConsenterMapping.entries()) {
      expect(c).to.include({ Host: '127.0.0.1', MSPID: 'OrdererMSP' });
      expect(c.Identity).to.equal(`/h/orgs/orderer/orderers/orderer${i}/msp/signcerts/cert.pem`);
      expect(c.ServerTLSCert).to.equal(`/h/orgs/orderer/orderers/orderer${i}/tls/server.crt`);
      expect(c.ClientTLSCert).to.equal(c.ServerTLSCert);
    }
    // Every consenter is also a delivery/broadcast endpoint (1:1, as Fabric recommends for BFT).
    expect(p.Orderer.Organizations[0]?.OrdererEndpoints).to.deep.equal(t.orderers.map((o) => `127.0.0.1:${o.port}`));
    // No zero values: the orderer's SmartBFT validation refuses them at channel join.
    for (const [k, v] of Object.entries(p.Orderer.SmartBFT)) if (typeof v !== 'boolean') expect(v, k).to.not.be.oneOf([0, '', '0s']);
    expect(p.Orderer.SmartBFT).to.include({ RequestBatchMaxCount: 20, RequestBatchMaxInterval: '100ms' });
    // The SmartBFT ordering of timeouts its validation requires.
    const sec = (d: unknown): number => (String(d).endsWith('m') ? 60 : 1) * parseFloat(String(d));
    const o = p.Orderer.SmartBFT;
    expect(sec(o.RequestForwardTimeout)).to.be.at.most(sec(o.RequestComplainTimeout));
    expect(sec(o.RequestComplainTimeout)).to.be.at.most(sec(o.RequestAutoRemoveTimeout));
    expect(sec(o.ViewChangeResendInterval)).to.be.at.most(sec(o.ViewChangeTimeout));
  });
});

describe('defaultOptions', () => {
  it('refuses values that cannot work, naming the variable', () => {
    expect(() => defaultOptions({ HDX_ORDERERS: '2' })).to.throw(/HDX_ORDERERS must be 1 or 3/);
    expect(() => defaultOptions({ HDX_ORDERER_TYPE: 'kafka' })).to.throw(/HDX_ORDERER_TYPE must be raft or bft/);
    expect(() => defaultOptions({ HDX_ORDERER_TYPE: 'bft', HDX_ORDERERS: '3' })).to.throw(/HDX_ORDERERS must be 4 with BFT/);
    expect(defaultOptions({ HDX_ORDERER_TYPE: 'bft' })).to.include({ consensus: 'bft', orderers: 4 });
    expect(defaultOptions({ HDX_ORDERERS: '1' })).to.include({ consensus: 'raft', orderers: 1 });
    expect(() => defaultOptions({ HDX_PORT_BASE: '80' })).to.throw(/HDX_PORT_BASE/);
    expect(() => defaultOptions({ HDX_BATCH_TIMEOUT: 'soon' })).to.throw(/HDX_BATCH_TIMEOUT/);
    expect(defaultOptions({ HDX_ORDERERS: '3', HDX_NETWORK_HOME: '/n' })).to.include({ orderers: 3, home: '/n', portBase: 7000 });
  });
});

describe('the default network', () => {
  it('orders with three Raft orderers, each a consenter, every one named in the channel config for the peers to fail over to', () => {
    const options = defaultOptions({});
    expect(options).to.include({ consensus: 'raft', orderers: 3, portBase: 7000 });
    const t = topology(options);
    expect(t.orderers.map((o) => o.port)).to.deep.equal([7040, 7045, 7050]);
    type Profile = { Orderer: { OrdererType: string; EtcdRaft: { Consenters: Array<{ Port: number }> }; Organizations: Array<{ OrdererEndpoints: string[] }> } };
    const p = (configtx(t) as { Profiles: Record<string, Profile> }).Profiles[PROFILE] as Profile;
    expect(p.Orderer.OrdererType).to.equal('etcdraft');
    expect(p.Orderer.EtcdRaft.Consenters.map((c) => c.Port)).to.deep.equal([7040, 7045, 7050]);
    // The peers' Fabric Gateway (which the HDX gateways submit through) sends each transaction to one of
    // these, and to another when one fails.
    expect(p.Orderer.Organizations[0]?.OrdererEndpoints).to.deep.equal(['127.0.0.1:7040', '127.0.0.1:7045', '127.0.0.1:7050']);
  });
});

describe('importantLogLines', () => {
  it('prefers error lines, without colour codes', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'log-')), 'x.log');
    fs.writeFileSync(file, ['\u001b[34m2026 INFO\u001b[0m [peer] all good', '2026 ERRO [comm] TLS handshake failed', '2026 INFO [peer] more'].join('\n'));
    expect(importantLogLines(file)).to.deep.equal(['2026 ERRO [comm] TLS handshake failed']);
  });
});

describe('organizations that joined (add-org)', () => {
  const base = { home: '/h', portBase: 7000, batchTimeout: '200ms', maxMessageCount: 100 } as const;

  for (const [consensus, orderers] of [
    ['raft', 3],
    ['bft', 4],
  ] as const) {
    it(`gives two joined organizations ports of their own inside the block of a ${orderers}-orderer ${consensus} network`, () => {
      const t = topology({ ...base, consensus, orderers, joined: ['hospital3', 'clinic4'] });
      const ports = [
        ...t.orgs.flatMap((o) => [o.ca.port, o.ca.operationsPort]),
        ...t.orderers.flatMap((o) => [o.port, o.adminPort, o.operationsPort]),
        ...t.peers.flatMap((p) => [p.port, p.chaincodeListenPort, p.operationsPort, p.chaincodePort]),
      ];
      expect(new Set(ports).size).to.equal(ports.length);
      for (const p of ports) expect(p).to.be.within(7000, 7109);
      expect(t.orgs.map((o) => o.mspId)).to.deep.equal(['OrdererMSP', 'Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP', 'Hospital3MSP', 'Clinic4MSP']);
      expect(t.peers.map((p) => p.name)).to.deep.equal(['peer0.hospital1', 'peer0.hospital2', 'peer0.regulator', 'peer0.hospital3', 'peer0.clinic4']);
      // The founding members keep the ports they had: a running network's nodes do not move.
      const founders = topology({ ...base, consensus, orderers });
      expect(t.peers.slice(0, 3)).to.deep.equal(founders.peers);
      expect(t.orgs.slice(0, 4)).to.deep.equal(founders.orgs);
    });
  }

  it('refuses a third joined organization (the block has no ports for it)', () => {
    expect(() => topology({ ...base, consensus: 'raft', orderers: 3, joined: ['a1', 'b2', 'c3'] })).to.throw(/at most 2/);
  });

  it('names what is wrong with a new organization name', () => {
    const t = topology({ ...base, consensus: 'raft', orderers: 3, joined: ['hospital3'] });
    expect(invalidOrgName(t, 'hospital4')).to.equal(undefined);
    expect(invalidOrgName(t, 'hospital3')).to.match(/already in this network/);
    expect(invalidOrgName(t, 'regulator')).to.match(/already in this network/);
    expect(invalidOrgName(t, 'orderer')).to.match(/already in this network/);
    for (const bad of ['Hospital4', 'h', '4hospital', 'hospital-4', '../x', 'a'.repeat(21), '']) expect(invalidOrgName(t, bad), bad).to.match(/not a valid organization name/);
  });

  it('configtx: the genesis block holds the founding members only; a joining org is defined as they are, with its anchor peer', () => {
    const t = topology({ ...base, consensus: 'raft', orderers: 3, joined: ['hospital3'] });
    type OrgDef = { Name: string; ID: string; MSPDir: string; Policies: Record<string, { Type: string; Rule: string }>; AnchorPeers: Array<{ Host: string; Port: number }> };
    type Profile = { Application: { Organizations: OrgDef[] } };
    const p = (configtx(t) as { Profiles: Record<string, Profile> }).Profiles[PROFILE] as Profile;
    expect(p.Application.Organizations.map((o) => o.ID)).to.deep.equal(['Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP']);
    const joining = joiningOrgConfigtx(t, orgOf(t, 'hospital3')) as { Organizations: OrgDef[] };
    expect(joining.Organizations).to.have.length(1);
    const [org] = joining.Organizations;
    expect(org?.Name).to.equal('Hospital3MSP');
    expect(org?.MSPDir).to.equal('/h/orgs/hospital3/msp');
    expect(org?.AnchorPeers).to.deep.equal([{ Host: '127.0.0.1', Port: peerOf(t, 'hospital3').port }]);
    // The same policies as a founding member's, with its own MSP id.
    const founder = p.Application.Organizations[0];
    expect(JSON.stringify(org?.Policies)).to.equal(JSON.stringify(founder?.Policies).replaceAll('Hospital1MSP', 'Hospital3MSP'));
    expect(org?.Policies.Endorsement?.Rule).to.equal("OR('Hospital3MSP.peer')");
  });
});
