import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSecureContext } from 'node:tls';
import Ajv from 'ajv';

/**
 * Gateway configuration: read only from environment variables, validated once at start (main.ts),
 * then passed around frozen. Nothing else in the gateway reads process.env.
 */
export interface Config {
  /**
   * The address the FHIR API listens on: loopback (the default, 127.0.0.1) or, with TLS configured, the
   * organization's own address (a member on its own host). Plain HTTP never leaves the machine.
   */
  readonly host: string;
  /** PEM server certificate (chain) and key files: the API is served over HTTPS when both are set. */
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly port: number;
  /** Public base URL of the FHIR API (used in Location headers and references). */
  readonly baseUrl: string;
  readonly dataDir: string;
  /**
   * Where the resource store, the search index, the per-patient keys, the pending writes and the
   * token-replay record live: undefined → SQLite files in dataDir (the embedded default); a
   * `postgres://…` URL → that PostgreSQL database, which every gateway process of the organization may share.
   */
  readonly storeUrl: string | undefined;
  /**
   * How often the gateway looks for writes left pending (ms): its own whose ledger outcome was unknown,
   * and, with a shared PostgreSQL store, those a dead replica left.
   */
  readonly settleIntervalMs: number;
  /** The PostgreSQL schema of the store's tables (HDX_STORE_SCHEMA; default the connection's search_path, normally public). */
  readonly storeSchema: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly org: string;
  readonly mspId: string;
  readonly peerEndpoint: string;
  readonly peerTlsCaFile: string;
  /** TLS name to expect from the peer instead of the endpoint's host (e.g. localhost for 127.0.0.1). */
  readonly peerHostAlias: string | undefined;
  readonly caUrl: string;
  readonly caName: string;
  readonly caTlsCaFile: string;
  readonly enrollmentId: string;
  readonly enrollmentSecret: string;
  readonly channel: string;
  readonly chaincode: string;
  /** Deadline for ledger queries and endorsements, in milliseconds. */
  readonly ledgerTimeoutMs: number;
  /**
   * The organizations (MSP ids) asked to endorse every submitted transaction, all at once
   * (HDX_ENDORSING_ORGS); empty: the Fabric Gateway plans the endorsement itself, which first runs the
   * proposal on this organization's peer and only then asks the others, one endorsement after the other.
   * They must satisfy the chaincode's endorsement policy (MAJORITY: more than half of the members); an
   * endorsement they cannot give, or a transaction invalidated for its endorsement policy, is retried with
   * the Fabric Gateway's own plan (fabric-ledger.ts).
   */
  readonly endorsingOrgs: readonly string[];
  /** Private JWK of this organization's DID, for member-to-member requests; exchange is off without it. */
  readonly orgKeyFile: string | undefined;
  /** Gateway FHIR base URLs of other members by MSP id, overriding the URLs registered on the ledger. */
  readonly memberGateways: Readonly<Record<string, string>>;
  /** The hospital identity provider whose tokens this gateway accepts (both set, or both unset). */
  readonly idpIssuer: string | undefined;
  readonly idpPublicKeyFile: string | undefined;
  /** `sync`: each access entry is committed on the ledger before data leaves; `async`: committed to the durable outbox, batched to the ledger. */
  readonly auditMode: 'sync' | 'async';
  /** Async mode: pause between outbox deliveries (ms). */
  readonly auditFlushMs: number;
  /** Async mode: entries per ledger transaction (1–200). */
  readonly auditBatch: number;
  /** Async mode: outbox ledger transactions delivered at the same time (1–16). */
  readonly auditInFlight: number;
  /**
   * Sync mode: ledger transactions of single reads in flight at once before concurrent reads are grouped
   * into one (hdx.audit:AuthorizeAndRecordBatch, ledger/group-commit.ts); 0 turns group commit off.
   */
  readonly groupCommitInFlight: number;
  /** Sync mode, under load: ms a free group-commit slot waits for more reads before it sends (0: at once). */
  readonly groupCommitLingerMs: number;
  /** MLLP listener for HL7 v2 (on 127.0.0.1); off when unset. */
  readonly mllpPort: number | undefined;
  /** The DID the MLLP listener's ingested changes are recorded under (MLLP carries no token). */
  readonly mllpActorDid: string | undefined;
  /**
   * The custodian's id secret (HMAC key of every stable id the gateway derives from a natural key: MRNs,
   * order numbers, EHR ids), kept off chain. Default `<dataDir>/id-secret`, created (32 random bytes, mode
   * 0600) on first start; read with loadIdSecret once at start.
   */
  readonly idSecretFile: string;
  /** Requests per minute one authenticated identity may make (HTTP 429 beyond). */
  readonly rateLimitPerIdentity: number;
  /** Requests per minute one client address may make before authentication (HTTP 429 beyond). */
  readonly rateLimitPerIp: number;
  /**
   * The ledger view (`<dataDir>/ledger-view.db`, kept from the peer's blocks while the gateway runs):
   * `auto` (default) keeps it unless HDX_DECISIONS=chaincode (it decides reads in async audit mode, and
   * gives the integrity check its anchors in both modes); `on` always; `off` never (every decision and
   * every anchor is asked of the ledger).
   */
  readonly view: 'auto' | 'on' | 'off';
  /** How recently the view must have been caught up with its peer for a decision to use it (ms). */
  readonly viewMaxLagMs: number;
  /**
   * `local` (default): in async audit mode, a read is decided on the ledger view when it is fresh (else by
   * the chaincode); `chaincode`: every disclosure asks the chaincode. Sync mode always asks the chaincode.
   */
  readonly decisions: 'local' | 'chaincode';
}

/** File name of the id secret in the data dir, when HDX_ID_SECRET_FILE is not set. */
export const ID_SECRET_FILE_NAME = 'id-secret';
const ID_SECRET_BYTES = 32;
const ID_SECRET_MAX_BYTES = 4096;

/** Environment variable → config field, with defaults; required ones have no default. */
const VARS = {
  HDX_GATEWAY_HOST: { field: 'host', type: 'string', default: '127.0.0.1' },
  HDX_GATEWAY_PORT: { field: 'port', type: 'integer', default: 8080 },
  HDX_GATEWAY_TLS_CERT_FILE: { field: 'tlsCertFile', type: 'string' },
  HDX_GATEWAY_TLS_KEY_FILE: { field: 'tlsKeyFile', type: 'string' },
  HDX_GATEWAY_BASE_URL: { field: 'baseUrl', type: 'string' },
  HDX_DATA_DIR: { field: 'dataDir', type: 'string' },
  HDX_STORE: { field: 'storeUrl', type: 'string' },
  HDX_STORE_SCHEMA: { field: 'storeSchema', type: 'string' },
  HDX_SETTLE_INTERVAL_MS: { field: 'settleIntervalMs', type: 'integer', default: 60000 },
  HDX_LOG_LEVEL: { field: 'logLevel', type: 'string', default: 'info' },
  HDX_ORG: { field: 'org', type: 'string' },
  HDX_MSP_ID: { field: 'mspId', type: 'string' },
  HDX_PEER_ENDPOINT: { field: 'peerEndpoint', type: 'string' },
  HDX_PEER_TLS_CA_FILE: { field: 'peerTlsCaFile', type: 'string' },
  HDX_PEER_HOST_ALIAS: { field: 'peerHostAlias', type: 'string' },
  HDX_CA_URL: { field: 'caUrl', type: 'string' },
  HDX_CA_NAME: { field: 'caName', type: 'string' },
  HDX_CA_TLS_CA_FILE: { field: 'caTlsCaFile', type: 'string' },
  HDX_CA_ENROLLMENT_ID: { field: 'enrollmentId', type: 'string' },
  HDX_CA_ENROLLMENT_SECRET: { field: 'enrollmentSecret', type: 'string' },
  HDX_CHANNEL: { field: 'channel', type: 'string', default: 'hdx' },
  HDX_CHAINCODE: { field: 'chaincode', type: 'string', default: 'hdx' },
  HDX_LEDGER_TIMEOUT_MS: { field: 'ledgerTimeoutMs', type: 'integer', default: 15000 },
  HDX_ENDORSING_ORGS: { field: 'endorsingOrgs', type: 'string' },
  HDX_ORG_KEY_FILE: { field: 'orgKeyFile', type: 'string' },
  HDX_MEMBER_GATEWAYS: { field: 'memberGateways', type: 'string' },
  HDX_IDP_ISSUER: { field: 'idpIssuer', type: 'string' },
  HDX_IDP_PUBLIC_KEY_FILE: { field: 'idpPublicKeyFile', type: 'string' },
  HDX_AUDIT_MODE: { field: 'auditMode', type: 'string', default: 'async' },
  HDX_AUDIT_FLUSH_MS: { field: 'auditFlushMs', type: 'integer', default: 200 },
  HDX_AUDIT_BATCH: { field: 'auditBatch', type: 'integer', default: 100 },
  HDX_AUDIT_IN_FLIGHT: { field: 'auditInFlight', type: 'integer', default: 4 },
  HDX_GROUP_COMMIT_IN_FLIGHT: { field: 'groupCommitInFlight', type: 'integer', default: 4 },
  HDX_GROUP_COMMIT_LINGER_MS: { field: 'groupCommitLingerMs', type: 'integer', default: 5 },
  HDX_MLLP_PORT: { field: 'mllpPort', type: 'integer' },
  HDX_MLLP_ACTOR_DID: { field: 'mllpActorDid', type: 'string' },
  HDX_ID_SECRET_FILE: { field: 'idSecretFile', type: 'string' },
  HDX_RATE_LIMIT_PER_IDENTITY: { field: 'rateLimitPerIdentity', type: 'integer', default: 600 },
  HDX_RATE_LIMIT_PER_IP: { field: 'rateLimitPerIp', type: 'integer', default: 1200 },
  HDX_VIEW: { field: 'view', type: 'string', default: 'auto' },
  HDX_VIEW_MAX_LAG_MS: { field: 'viewMaxLagMs', type: 'integer', default: 1500 },
  HDX_DECISIONS: { field: 'decisions', type: 'string', default: 'local' },
} as const;

/** Optional variables: everything else without a default is required. */
const OPTIONAL = new Set([
  'HDX_GATEWAY_BASE_URL',
  'HDX_GATEWAY_TLS_CERT_FILE',
  'HDX_GATEWAY_TLS_KEY_FILE',
  'HDX_DATA_DIR',
  'HDX_STORE',
  'HDX_STORE_SCHEMA',
  'HDX_IDP_ISSUER',
  'HDX_IDP_PUBLIC_KEY_FILE',
  'HDX_ORG_KEY_FILE',
  'HDX_MEMBER_GATEWAYS',
  'HDX_MLLP_PORT',
  'HDX_MLLP_ACTOR_DID',
  'HDX_PEER_HOST_ALIAS',
  'HDX_ID_SECRET_FILE',
  'HDX_ENDORSING_ORGS',
]);

const schema = {
  type: 'object',
  additionalProperties: false,
  required: Object.entries(VARS)
    .filter(([name, v]) => !('default' in v) && !OPTIONAL.has(name))
    .map(([name]) => name),
  properties: {
    ...Object.fromEntries(
      Object.entries(VARS).map(([name, v]) => [name, { type: v.type, minLength: v.type === 'string' ? 1 : undefined, ...('default' in v ? { default: v.default } : {}) }]),
    ),
    // An IP address (v4 or v6) or localhost; a name other than localhost is not resolved at start.
    HDX_GATEWAY_HOST: { type: 'string', pattern: '^(localhost|[0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)$', default: '127.0.0.1' },
    HDX_GATEWAY_PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    HDX_GATEWAY_BASE_URL: { type: 'string', pattern: '^https?://[^/]+(/.*)?[^/]$' },
    HDX_LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    HDX_PEER_ENDPOINT: { type: 'string', pattern: '^[^:/]+:\\d+$' },
    HDX_CA_URL: { type: 'string', pattern: '^https://' },
    HDX_STORE: { type: 'string', pattern: '^postgres(ql)?://[^\\s]+$' },
    HDX_STORE_SCHEMA: { type: 'string', pattern: '^[a-z_][a-z0-9_]{0,62}$' },
    HDX_SETTLE_INTERVAL_MS: { type: 'integer', minimum: 500, maximum: 86400000, default: 60000 },
    HDX_MEMBER_GATEWAYS: { type: 'string', pattern: '^[A-Za-z0-9.-]+=https?://[^,=\\s]+(,[A-Za-z0-9.-]+=https?://[^,=\\s]+)*$' },
    HDX_LEDGER_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 600000, default: 15000 },
    HDX_ENDORSING_ORGS: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9.\\-_]{0,63}(,[A-Za-z0-9][A-Za-z0-9.\\-_]{0,63})*$' },
    HDX_AUDIT_MODE: { type: 'string', enum: ['sync', 'async'], default: 'async' },
    HDX_AUDIT_FLUSH_MS: { type: 'integer', minimum: 10, maximum: 86400000, default: 200 },
    HDX_AUDIT_BATCH: { type: 'integer', minimum: 1, maximum: 200, default: 100 },
    HDX_AUDIT_IN_FLIGHT: { type: 'integer', minimum: 1, maximum: 16, default: 4 },
    HDX_GROUP_COMMIT_IN_FLIGHT: { type: 'integer', minimum: 0, maximum: 64, default: 4 },
    HDX_GROUP_COMMIT_LINGER_MS: { type: 'integer', minimum: 0, maximum: 1000, default: 5 },
    HDX_MLLP_PORT: { type: 'integer', minimum: 0, maximum: 65535 },
    HDX_MLLP_ACTOR_DID: { type: 'string', pattern: '^did:hdx:[A-Za-z0-9_-]{43}$' },
    HDX_RATE_LIMIT_PER_IDENTITY: { type: 'integer', minimum: 1, maximum: 1000000, default: 600 },
    HDX_RATE_LIMIT_PER_IP: { type: 'integer', minimum: 1, maximum: 1000000, default: 1200 },
    HDX_VIEW: { type: 'string', enum: ['auto', 'on', 'off'], default: 'auto' },
    HDX_VIEW_MAX_LAG_MS: { type: 'integer', minimum: 100, maximum: 60000, default: 1500 },
    HDX_DECISIONS: { type: 'string', enum: ['local', 'chaincode'], default: 'local' },
  },
  // draft-07's `dependencies` (Ajv's default draft; `dependentRequired` would be ignored there)
  dependencies: {
    HDX_GATEWAY_TLS_CERT_FILE: ['HDX_GATEWAY_TLS_KEY_FILE'],
    HDX_GATEWAY_TLS_KEY_FILE: ['HDX_GATEWAY_TLS_CERT_FILE'],
    HDX_IDP_ISSUER: ['HDX_IDP_PUBLIC_KEY_FILE'],
    HDX_IDP_PUBLIC_KEY_FILE: ['HDX_IDP_ISSUER'],
    HDX_MLLP_PORT: ['HDX_MLLP_ACTOR_DID'],
  },
};

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid gateway configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = ConfigError.name;
  }
}

const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false });
const check = ajv.compile(schema);

/** Validates the HDX_* environment variables and returns the frozen config, or throws a ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, repoRoot = path.resolve(__dirname, '..', '..')): Config {
  const input: Record<string, unknown> = {};
  for (const name of Object.keys(VARS)) if (env[name] !== undefined && env[name] !== '') input[name] = env[name];
  if (!check(input)) {
    const problems = (check.errors ?? []).map((e) => {
      if (e.keyword === 'required') return `${String(e.params.missingProperty)} is required (see gateway/.env.sample)`;
      if (e.keyword === 'dependencies') return `${String(e.params.missingProperty)} is required when ${String(e.params.property)} is set`;
      const name = e.instancePath.slice(1);
      return `${name} ${e.message ?? 'is invalid'}`;
    });
    throw new ConfigError(problems);
  }
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(VARS)) out[v.field] = input[name];
  const org = String(out.org);
  const port = Number(out.port);
  out.dataDir = path.resolve(String(out.dataDir ?? path.join(repoRoot, '.hdx', `gateway-${org}`)));
  const tls = out.tlsCertFile !== undefined;
  const host = String(out.host);
  if (!tls && !isLoopback(host)) {
    throw new ConfigError([
      `HDX_GATEWAY_HOST=${host} is not a loopback address: set HDX_GATEWAY_TLS_CERT_FILE and HDX_GATEWAY_TLS_KEY_FILE (tokens and records never cross a network in plain HTTP), or keep 127.0.0.1 behind a TLS proxy`,
    ]);
  }
  if (tls) {
    for (const name of ['tlsCertFile', 'tlsKeyFile'] as const) out[name] = path.resolve(String(out[name]));
    const unreadable = (['tlsCertFile', 'tlsKeyFile'] as const).filter((name) => !readableFile(String(out[name])));
    if (unreadable.length > 0) {
      throw new ConfigError(
        unreadable.map((name) => `${name === 'tlsCertFile' ? 'HDX_GATEWAY_TLS_CERT_FILE' : 'HDX_GATEWAY_TLS_KEY_FILE'}=${String(out[name])} is not a readable file`),
      );
    }
    try {
      createSecureContext({ cert: fs.readFileSync(String(out.tlsCertFile)), key: fs.readFileSync(String(out.tlsKeyFile)) });
    } catch (err) {
      throw new ConfigError([`HDX_GATEWAY_TLS_CERT_FILE and HDX_GATEWAY_TLS_KEY_FILE must be a PEM certificate and its own private key: ${(err as Error).message}`]);
    }
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  out.baseUrl = String(out.baseUrl ?? `${tls ? 'https' : 'http'}://${urlHost}:${port}/fhir`);
  if (tls && String(out.baseUrl).startsWith('http://')) {
    throw new ConfigError([`HDX_GATEWAY_BASE_URL must be https:// when the gateway serves TLS (HDX_GATEWAY_TLS_CERT_FILE is set), not ${String(out.baseUrl)}`]);
  }
  out.idSecretFile = path.resolve(String(out.idSecretFile ?? path.join(String(out.dataDir), ID_SECRET_FILE_NAME)));
  out.memberGateways = Object.fromEntries(
    String(out.memberGateways ?? '')
      .split(',')
      .filter((p) => p !== '')
      .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1).replace(/\/+$/, '')]),
  );
  out.endorsingOrgs = [
    ...new Set(
      String(out.endorsingOrgs ?? '')
        .split(',')
        .filter((o) => o !== ''),
    ),
  ];
  return Object.freeze(out) as unknown as Config;
}

/** Whether an address (or localhost) is the machine's own loopback, where plain HTTP is acceptable. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(host);
}

function readableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Whether the gateway keeps a ledger view: HDX_VIEW=on, or auto unless HDX_DECISIONS=chaincode (every
 * disclosure asks the chaincode). In async audit mode the view decides reads; in either mode the
 * integrity check of a version served takes its anchor from the view.
 */
export function viewEnabled(config: Pick<Config, 'view' | 'auditMode' | 'decisions'>): boolean {
  return config.view === 'on' || (config.view === 'auto' && config.decisions === 'local');
}

/**
 * The custodian's id secret, validated (once, at start): a regular file of this user, readable by nobody
 * else (mode 0600 or stricter), of 32 to 4096 bytes, used as is as the HMAC key. When the file is the
 * default one (`<dataDir>/id-secret`) and does not exist yet, it is created with 32 random bytes, mode 0600.
 * A file named by HDX_ID_SECRET_FILE is never created: a mistyped path must not fork every id.
 * Losing the secret changes every id derived afterwards (re-ingested records would be new resources); back it
 * up with the store, and never share it with another custodian.
 */
export function loadIdSecret(config: Pick<Config, 'idSecretFile' | 'dataDir'>): Buffer {
  const file = config.idSecretFile;
  const isDefault = file === path.resolve(config.dataDir, ID_SECRET_FILE_NAME);
  if (isDefault && !fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      // 'wx': never overwrite a secret another process created meanwhile.
      fs.writeFileSync(file, randomBytes(ID_SECRET_BYTES), { flag: 'wx', mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch {
    throw new ConfigError([`HDX_ID_SECRET_FILE ${file} does not exist (the custodian id secret; unset the variable to have one created in the data dir)`]);
  }
  const problems: string[] = [];
  if (!stat.isFile()) problems.push(`HDX_ID_SECRET_FILE ${file} must be a regular file`);
  else {
    if ((stat.mode & 0o077) !== 0) problems.push(`HDX_ID_SECRET_FILE ${file} must be readable by its owner only (chmod 600)`);
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) problems.push(`HDX_ID_SECRET_FILE ${file} must belong to the user the gateway runs as`);
    if (stat.size < ID_SECRET_BYTES || stat.size > ID_SECRET_MAX_BYTES) problems.push(`HDX_ID_SECRET_FILE ${file} must hold ${ID_SECRET_BYTES} to ${ID_SECRET_MAX_BYTES} bytes`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return fs.readFileSync(file);
}
