import * as fs from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { prepareValidator } from '@hdx/fhir-mappers';
import type { Logger } from 'pino';
import { AuditOutbox } from './audit/outbox';
import { PgOutboxQueue } from './audit/outbox-pg';
import { registerOutboxMetrics } from './audit/outbox-metrics';
import { authenticate } from './auth/middleware';
import { PgJtiStore, SqliteJtiStore } from './auth/replay';
import { idpKeysFromText, type IdpOptions } from './auth/token';
import { type Config, loadIdSecret, viewEnabled } from './config';
import { deriveSubjectLinkSecret } from './auth/token';
import { CustodianIds } from './store/custodian-ids';
import { AuditService } from './fhir/audit-events';
import { ConsentService } from './fhir/consent-service';
import { ResourceService } from './fhir/resource-service';
import { createApp } from './http/app';
import { ExportService } from './fhir/operations/export';
import { enrollGatewayIdentity } from './ledger/enroll';
import { ForegroundWrites } from './ledger/foreground';
import { FabricLedger } from './ledger/fabric-ledger';
import { PgStore } from './store/pg-store';
import { SqliteStore } from './store/sqlite-store';
import type { ResourceStore } from './store/store';
import { createMetrics, instrumentLedger } from './metrics';
import { ErasureService } from './fhir/erasure';
import { ExchangeService } from './exchange/exchange-service';
import { toP256PrivateJwk } from './auth/did-key';
import { IngestService } from './ingest/ingest-service';
import { type MllpListener, startMllpListener } from './ingest/mllp';
import { LedgerView } from './view/ledger-view';
import { LocalDecisions, notingDecisionInputs, ViewFacts, viewHealth } from './view/local-decisions';
import { AuthorizeGroupCommit, withGroupCommit } from './ledger/group-commit';
import { VIEW_FILE_NAME, ViewStore } from './view/view-store';

export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  /** The ledger view this gateway keeps (HDX_VIEW), when it keeps one. */
  readonly view?: LedgerView;
  close(): Promise<void>;
}

function idpOptions(config: Config): IdpOptions | undefined {
  if (!config.idpIssuer || !config.idpPublicKeyFile) return undefined;
  return { issuer: config.idpIssuer, audience: config.baseUrl, keys: idpKeysFromText(fs.readFileSync(config.idpPublicKeyFile, 'utf8')) };
}

/** The organization DID key (private JWK with its kid) the network launcher wrote for this gateway. */
function orgKeyOf(file: string): ReturnType<typeof toP256PrivateJwk> & { kid: string } {
  const jwk = JSON.parse(fs.readFileSync(file, 'utf8')) as { kid?: unknown };
  if (typeof jwk.kid !== 'string') throw new Error(`HDX_ORG_KEY_FILE ${file} has no kid (the DID URL of the key)`);
  return { ...toP256PrivateJwk(jwk), kid: jwk.kid };
}

/**
 * Starts a gateway: enrolls (or reuses) its Fabric identity, opens the store, settles versions a crash
 * left pending, connects to the org's peer and serves HTTP on the configured host and port.
 */
export async function startGateway(config: Config, log: Logger): Promise<RunningGateway> {
  prepareValidator();
  const identity = await enrollGatewayIdentity(config, log);
  // The custodian's secret (kept off chain): keyed ids of ingested records, and staff DIDs' IdP-subject links.
  const idSecret = loadIdSecret(config);
  const subjectLinkSecret = deriveSubjectLinkSecret(idSecret);
  // The store: SQLite files in the data folder, or PostgreSQL (HDX_STORE), shared by the organization's gateway processes.
  const pg = config.storeUrl !== undefined ? new PgStore({ url: config.storeUrl, ...(config.storeSchema ? { schema: config.storeSchema } : {}) }) : undefined;
  const store: ResourceStore = pg ?? new SqliteStore(path.join(config.dataDir, 'hdx.db'));
  const jti = pg ? new PgJtiStore(pg.query) : new SqliteJtiStore(path.join(config.dataDir, 'tokens.db'));
  if (pg)
    await store.ping().catch(async (err: unknown) => {
      await store.close();
      throw new Error(`the PostgreSQL store (HDX_STORE) cannot be used: ${err instanceof Error ? err.message : String(err)}`);
    });
  // The custodian's id epochs: beside the store (shared by the replicas on PostgreSQL, which must share the id secret too).
  const custodianIds = new CustodianIds(idSecret, pg ?? path.join(config.dataDir, 'id-epochs.db'));
  await custodianIds.checkSharedSecret().catch(async (err: unknown) => {
    custodianIds.close();
    await store.close();
    throw err;
  });
  const metrics = createMetrics();
  const fabric = new FabricLedger(config, identity);
  // Writes callers wait on are counted, so the audit outbox's background delivery gives way to them.
  const foreground = new ForegroundWrites();
  const ledger = foreground.track(instrumentLedger(fabric, metrics));
  // The ledger view (HDX_VIEW; by default when decisions are local): the chaincode state decisions read, from this org's peer's blocks.
  const viewStore = viewEnabled(config) ? new ViewStore(path.join(config.dataDir, VIEW_FILE_NAME), { channel: config.channel, namespace: config.chaincode }) : undefined;
  const view = viewStore ? new LedgerView({ store: viewStore, source: fabric, namespace: config.chaincode, log }) : undefined;
  // Local decisions: async audit mode only, unless HDX_DECISIONS=chaincode; each falls back to the chaincode when the view is not fresh.
  // The view's facts, remembered for one view height: read by local decisions and by the integrity check's anchors.
  const viewFacts = viewStore ? new ViewFacts(viewStore) : undefined;
  const localDecisions =
    view && viewStore && config.decisions === 'local' && config.auditMode === 'async'
      ? new LocalDecisions({ store: viewStore, freshness: view, mspId: config.mspId, maxLagMs: config.viewMaxLagMs, ...(viewFacts ? { facts: viewFacts } : {}) })
      : undefined;
  // What the services write through it tells the local decisions of changes they read (read your own writes).
  const noted = localDecisions ? notingDecisionInputs(ledger, localDecisions) : ledger;
  // Sync audit mode: concurrent single reads share AuthorizeAndRecord transactions (group commit).
  const groupCommit =
    config.auditMode === 'sync' && config.groupCommitInFlight > 0
      ? new AuthorizeGroupCommit(ledger, { maxInFlight: config.groupCommitInFlight, lingerMs: config.groupCommitLingerMs })
      : undefined;
  const servicesLedger = groupCommit ? withGroupCommit(noted, groupCommit) : noted;
  const closeView = async (): Promise<void> => {
    await view?.stop();
    viewStore?.close();
  };
  // Async audit mode: access entries go to a durable outbox next to the store (an SQLite file of this
  // process, or with HDX_STORE the store's PostgreSQL database, shared by the organization's gateway
  // processes: each entry leased to the one delivering it); delivery starts with the server (first the
  // entries an earlier process left behind).
  const outbox =
    config.auditMode === 'async'
      ? new AuditOutbox({
          // Leases of 30 s, renewed while a ledger call runs: a dead process's entries wait at most that long.
          ...(pg ? { queue: new PgOutboxQueue(pg, { leaseMs: 30_000 }) } : { file: path.join(config.dataDir, 'outbox.db') }),
          ledger,
          log,
          changes: store,
          flushMs: config.auditFlushMs,
          batchSize: config.auditBatch,
          inFlight: config.auditInFlight,
          busy: () => foreground.busy(),
          drainMs: Math.max(10_000, config.ledgerTimeoutMs),
        })
      : undefined;
  let bulkExports: ExportService | undefined;
  try {
    if (outbox) registerOutboxMetrics(metrics.registry, outbox);
    const resources = new ResourceService({
      store,
      ledger: servicesLedger,
      log,
      mspId: config.mspId,
      ...(outbox ? { auditSink: outbox } : {}),
      ...(localDecisions ? { localDecisions } : {}),
      // With local decisions, a read's integrity check takes its anchor from the view too.
      // The integrity check takes anchors from the view (both audit modes): an anchor never changes once committed.
      ...(viewFacts ? { viewAnchors: viewFacts } : {}),
    });
    const settled = await resources.settlePending();
    // Bulk Data $export jobs and their files (mode 600) under the data folder; a job a stop interrupted is reported failed.
    bulkExports = new ExportService({ resources, dir: path.join(config.dataDir, 'exports'), log, baseUrl: config.baseUrl });
    if (settled.kept + settled.removed > 0) log.info(settled, 'settled versions left pending by an earlier stop');
    if (settled.unresolved) log.warn(settled, 'some writes left pending have an unknown ledger outcome: they are settled as soon as the ledger answers');
    // Writes whose ledger outcome was unknown are settled in the background, by asking the ledger.
    resources.startSettling(config.settleIntervalMs);
    const idp = idpOptions(config);
    const authn = authenticate({
      audience: config.baseUrl,
      mspId: config.mspId,
      ...(idp ? { idp } : {}),
      resolveDid: (did) => ledger.resolveDid(did),
      jtiStore: jti,
      subjectLinkSecret,
    });
    const exchange = config.orgKeyFile
      ? new ExchangeService({ ledger, log, mspId: config.mspId, orgKey: orgKeyOf(config.orgKeyFile), memberUrls: config.memberGateways })
      : undefined;
    const app = createApp({
      config,
      log,
      resources,
      consents: new ConsentService(servicesLedger),
      audit: new AuditService(ledger),
      ledger: servicesLedger,
      store,
      authenticate: authn,
      metrics,
      ...(outbox ? { outbox } : {}),
      erasure: new ErasureService(store, servicesLedger, log, config.mspId, custodianIds),
      ...(exchange ? { exchange } : {}),
      ids: custodianIds,
      subjectLinkSecret,
      ...(idp ? { idpIssuer: idp.issuer } : {}),
      rateLimits: { perIdentity: config.rateLimitPerIdentity, perIp: config.rateLimitPerIp },
      exports: bulkExports,
      blocks: { source: fabric, namespace: config.chaincode },
      receipts: { source: fabric, channel: config.channel, chaincode: config.chaincode },
      ...(view
        ? {
            ledgerView: { health: () => viewHealth(view, config.viewMaxLagMs, localDecisions ? 'local' : 'chaincode') },
          }
        : {}),
    });
    // HTTPS when the configuration names a certificate (a member on its own host); else plain HTTP on loopback.
    const server =
      config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
        ? createTlsServer({ cert: fs.readFileSync(config.tlsCertFile), key: fs.readFileSync(config.tlsKeyFile), minVersion: 'TLSv1.2' }, app)
        : createServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    outbox?.start();
    view?.start();
    let mllp: MllpListener | undefined;
    if (config.mllpPort !== undefined && config.mllpActorDid !== undefined) {
      const ingest = new IngestService({ resources, store, log, baseUrl: config.baseUrl, ids: custodianIds });
      mllp = await startMllpListener({
        port: config.mllpPort,
        ingest,
        log,
        caller: { did: config.mllpActorDid, organization: config.mspId, purpose: 'TREAT', kind: 'system', actorAuth: 'idp', local: true },
      }).catch(async (err: unknown) => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        throw err;
      });
    }
    return {
      url: config.baseUrl,
      port,
      ...(view ? { view } : {}),
      close: async () => {
        await mllp?.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        // No request is in flight any more: drain what the ledger will take, keep the rest on disk.
        resources.stopSettling();
        await bulkExports?.close();
        await outbox?.close();
        await closeView();
        ledger.close();
        await store.close();
        if (jti instanceof SqliteJtiStore) jti.close();
        custodianIds.close();
      },
    };
  } catch (err) {
    await bulkExports?.close();
    await outbox?.close(false);
    await closeView();
    ledger.close();
    await store.close();
    if (jti instanceof SqliteJtiStore) jti.close();
    custodianIds.close();
    throw err;
  }
}
