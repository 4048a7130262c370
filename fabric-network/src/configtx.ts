import * as path from 'node:path';
import type { Org, Topology } from './topology';

export const PROFILE = 'HdxChannel';

type Policy = { Type: 'Signature' | 'ImplicitMeta'; Rule: string };
const sig = (rule: string): Policy => ({ Type: 'Signature', Rule: rule });
const meta = (rule: string): Policy => ({ Type: 'ImplicitMeta', Rule: rule });

function ordererOrg(t: Topology, org: Org): object {
  const m = org.mspId;
  return {
    Name: m,
    ID: m,
    MSPDir: path.join(org.dir, 'msp'),
    Policies: {
      Readers: sig(`OR('${m}.member')`),
      Writers: sig(`OR('${m}.member')`),
      Admins: sig(`OR('${m}.admin')`),
    },
    OrdererEndpoints: t.orderers.map((o) => `127.0.0.1:${o.port}`),
  };
}

function peerOrg(t: Topology, org: Org): object {
  const m = org.mspId;
  const peer = t.peers.find((p) => p.org === org.name);
  return {
    Name: m,
    ID: m,
    MSPDir: path.join(org.dir, 'msp'),
    Policies: {
      Readers: sig(`OR('${m}.admin', '${m}.peer', '${m}.client')`),
      Writers: sig(`OR('${m}.admin', '${m}.client')`),
      Admins: sig(`OR('${m}.admin')`),
      Endorsement: sig(`OR('${m}.peer')`),
    },
    AnchorPeers: peer ? [{ Host: '127.0.0.1', Port: peer.port }] : [],
  };
}

/**
 * The channel configuration, as the JSON form of configtx.yaml (YAML is a superset of JSON). Raft
 * ordering; application policies MAJORITY of the member organizations (also the chaincode's default
 * endorsement policy); block cutting tuned for latency.
 */
export function configtx(t: Topology): object {
  const ordererOrgs = t.orgs.filter((o) => o.name === 'orderer');
  const memberOrgs = t.orgs.filter((o) => o.name !== 'orderer');
  return {
    Profiles: {
      [PROFILE]: {
        Policies: {
          Readers: meta('ANY Readers'),
          Writers: meta('ANY Writers'),
          Admins: meta('MAJORITY Admins'),
        },
        Capabilities: { V3_0: true },
        Orderer: {
          OrdererType: 'etcdraft',
          BatchTimeout: t.options.batchTimeout,
          BatchSize: {
            MaxMessageCount: t.options.maxMessageCount,
            AbsoluteMaxBytes: '10 MB',
            PreferredMaxBytes: '2 MB',
          },
          EtcdRaft: {
            Consenters: t.orderers.map((o) => ({
              Host: '127.0.0.1',
              Port: o.port,
              ClientTLSCert: path.join(o.dir, 'tls', 'server.crt'),
              ServerTLSCert: path.join(o.dir, 'tls', 'server.crt'),
            })),
            Options: {
              TickInterval: '200ms',
              ElectionTick: 10,
              HeartbeatTick: 1,
              MaxInflightBlocks: 5,
              SnapshotIntervalSize: '16 MB',
            },
          },
          Organizations: ordererOrgs.map((o) => ordererOrg(t, o)),
          Policies: {
            Readers: meta('ANY Readers'),
            Writers: meta('ANY Writers'),
            Admins: meta('MAJORITY Admins'),
            BlockValidation: meta('ANY Writers'),
          },
          Capabilities: { V2_0: true },
        },
        Application: {
          Organizations: memberOrgs.map((o) => peerOrg(t, o)),
          Policies: {
            Readers: meta('ANY Readers'),
            Writers: meta('ANY Writers'),
            Admins: meta('MAJORITY Admins'),
            LifecycleEndorsement: meta('MAJORITY Endorsement'),
            Endorsement: meta('MAJORITY Endorsement'),
          },
          Capabilities: { V2_5: true },
        },
      },
    },
  };
}
