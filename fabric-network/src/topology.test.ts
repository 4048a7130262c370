import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { configtx, PROFILE } from './configtx';
import { defaultOptions } from './network';
import { importantLogLines } from './proc';
import { topology } from './topology';

describe('topology', () => {
  for (const orderers of [1, 3] as const) {
    it(`gives every node of a ${orderers}-orderer network distinct ports inside its block`, () => {
      const t = topology({ home: '/h', portBase: 7000, orderers, batchTimeout: '200ms', maxMessageCount: 100 });
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
    const t = topology({ home: '/h', portBase: 7000, orderers: 3, batchTimeout: '250ms', maxMessageCount: 10 });
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
});

describe('defaultOptions', () => {
  it('refuses values that cannot work, naming the variable', () => {
    expect(() => defaultOptions({ HDX_ORDERERS: '2' })).to.throw(/HDX_ORDERERS must be 1 or 3/);
    expect(() => defaultOptions({ HDX_PORT_BASE: '80' })).to.throw(/HDX_PORT_BASE/);
    expect(() => defaultOptions({ HDX_BATCH_TIMEOUT: 'soon' })).to.throw(/HDX_BATCH_TIMEOUT/);
    expect(defaultOptions({ HDX_ORDERERS: '3', HDX_NETWORK_HOME: '/n' })).to.include({ orderers: 3, home: '/n', portBase: 7000 });
  });
});

describe('importantLogLines', () => {
  it('prefers error lines, without colour codes', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'log-')), 'x.log');
    fs.writeFileSync(file, ['\u001b[34m2026 INFO\u001b[0m [peer] all good', '2026 ERRO [comm] TLS handshake failed', '2026 INFO [peer] more'].join('\n'));
    expect(importantLogLines(file)).to.deep.equal(['2026 ERRO [comm] TLS handshake failed']);
  });
});
