import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config';
import { ResourceService } from './fhir/resource-service';
import { createApp } from './http/app';
import { enrollGatewayIdentity } from './ledger/enroll';
import { FabricLedger } from './ledger/fabric-ledger';
import { SqliteStore } from './store/sqlite-store';

export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts a gateway: enrolls (or reuses) its Fabric identity, opens the store, settles versions a crash
 * left pending, connects to the org's peer and serves HTTP on the configured host and port.
 */
export async function startGateway(config: Config, log: Logger): Promise<RunningGateway> {
  const identity = await enrollGatewayIdentity(config, log);
  const store = new SqliteStore(path.join(config.dataDir, 'hdx.db'));
  const ledger = new FabricLedger(config, identity);
  try {
    const resources = new ResourceService({ store, ledger, log });
    const settled = await resources.settlePending();
    if (settled.kept + settled.removed > 0) log.info(settled, 'settled versions left pending by an earlier stop');
    const app = createApp({ config, log, resources, ledger, store });
    const server = createServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    return {
      url: config.baseUrl,
      port,
      close: async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        ledger.close();
        store.close();
      },
    };
  } catch (err) {
    ledger.close();
    store.close();
    throw err;
  }
}
