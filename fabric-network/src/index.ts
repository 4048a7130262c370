export { defaultOptions, down, logFiles, orderingLeader, readNetworkInfo, status, up } from './network';
export type { GatewayConnection, NetworkInfo, NodeStatus, Progress } from './network';
export { NetworkError } from './proc';
export type { Consensus, NetworkOptions, OrdererNode, Topology } from './topology';
export { CHAINCODE_NAME, CHANNEL, PEER_ORGS, topology } from './topology';
