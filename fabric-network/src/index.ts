export { addOrg, channelMembers, committedDefinition, majorityOf } from './add-org';
export type { CommittedDefinition } from './add-org';
export { defaultOptions, down, logFiles, nodeNames, readNetworkInfo, startNode, stopNode, up } from './network';
export type { GatewayConnection, NetworkInfo, Progress } from './network';
export { formatStatus, orderingLeader, status } from './status';
export type { GatewayEndpoint, NodeStatus } from './status';
export { NetworkError } from './proc';
export type { Consensus, NetworkOptions, OrdererNode, Topology } from './topology';
export { CHAINCODE_NAME, CHANNEL, PEER_ORGS, topology } from './topology';
