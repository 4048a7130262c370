import * as path from 'node:path';
import { endpoint, isFounder, type Org, type Topology } from './topology';

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
    OrdererEndpoints: t.orderers.map((o) => endpoint(o.host, o.port)),
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
    AnchorPeers: peer ? [{ Host: peer.host, Port: peer.port }] : [],
  };
}

/** Raft: every orderer a consenter (TLS certificates only); a leader is elected among them. */
function raft(t: Topology): object {
  return {
    OrdererType: 'etcdraft',
    EtcdRaft: {
      Consenters: t.orderers.map((o) => ({
        Host: o.host,
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
  };
}

/**
 * SmartBFT (Fabric 3): every orderer a consenter with a numeric ID, its MSP and its signing identity
 * (blocks carry the signatures of a quorum, 2f+1, of these identities; configtxgen writes the matching
 * BlockValidation policy). Timeouts are shortened from the defaults (forward 2 s, complain 20 s, view change
 * 20 s, heartbeat 60 s) to 10 s, so that a leader that fails is replaced in about 10-20 s on a local network.
 */
function bft(t: Topology): object {
  return {
    OrdererType: 'BFT',
    ConsenterMapping: t.orderers.map((o) => ({
      ID: o.consenterId,
      Host: o.host,
      Port: o.port,
      MSPID: orgOfName(t, 'orderer').mspId,
      Identity: path.join(o.dir, 'msp', 'signcerts', 'cert.pem'),
      ClientTLSCert: path.join(o.dir, 'tls', 'server.crt'),
      ServerTLSCert: path.join(o.dir, 'tls', 'server.crt'),
    })),
    // configtxgen fills in defaults only when SmartBFT is absent altogether: every field is given here
    // (a zero value fails the orderer's validation when it joins the channel).
    SmartBFT: {
      RequestBatchMaxCount: t.options.maxMessageCount,
      RequestBatchMaxBytes: 10 * 1024 * 1024,
      RequestBatchMaxInterval: t.options.batchTimeout,
      IncomingMessageBufferSize: 200,
      RequestPoolSize: 100_000,
      RequestForwardTimeout: '2s',
      RequestComplainTimeout: '10s',
      RequestAutoRemoveTimeout: '3m',
      ViewChangeResendInterval: '2s',
      ViewChangeTimeout: '10s',
      LeaderHeartbeatTimeout: '10s',
      LeaderHeartbeatCount: 10,
      CollectTimeout: '1s',
      SyncOnStart: false,
      SpeedUpViewChange: false,
    },
  };
}

function orgOfName(t: Topology, name: string): Org {
  const org = t.orgs.find((o) => o.name === name);
  if (!org) throw new Error(`no organization ${name}`);
  return org;
}

function consensus(t: Topology): object {
  return t.options.consensus === 'bft' ? bft(t) : raft(t);
}

/**
 * The channel configuration, as the JSON form of configtx.yaml (YAML is a superset of JSON). Raft or BFT
 * ordering; application policies MAJORITY of the member organizations (also the chaincode's default
 * endorsement policy); block cutting tuned for latency.
 */
export function configtx(t: Topology): object {
  const ordererOrgs = t.orgs.filter((o) => o.name === 'orderer');
  // The founding members: an organization that joined later is added by a channel config update (add-org).
  const memberOrgs = t.orgs.filter((o) => isFounder(o.name));
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
          ...consensus(t),
          BatchTimeout: t.options.batchTimeout,
          BatchSize: {
            MaxMessageCount: t.options.maxMessageCount,
            AbsoluteMaxBytes: '10 MB',
            PreferredMaxBytes: '2 MB',
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

/**
 * configtx.yaml for `configtxgen -printOrg`: only the joining member organization, defined as the founding
 * ones are (policies, anchor peer), so the channel config update adds it exactly as the genesis block would.
 */
export function joiningOrgConfigtx(t: Topology, org: Org): object {
  return { Organizations: [peerOrg(t, org)] };
}
