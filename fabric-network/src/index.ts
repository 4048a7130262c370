export { defaultOptions, down, logFiles, readNetworkInfo, status, up } from './network';
export type { GatewayConnection, NetworkInfo, NodeStatus, Progress } from './network';
export { NetworkError } from './proc';
export type { NetworkOptions } from './topology';
export { CHAINCODE_NAME, CHANNEL, PEER_ORGS } from './topology';
