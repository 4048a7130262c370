#!/usr/bin/env node
/**
 * `hdx`: keys, DIDs, signed requests and bearer tokens for trying and testing an HDX gateway.
 * Each command prints JSON or a token on stdout; a usage error exits with 2 and says how to fix it.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { generateDidKey, HDX_DID, HDX_DID_URL, jwkThumbprint, type P256PrivateJwk, toP256PrivateJwk } from './auth/did-key';
import { type ConsentAction, deactivationRequest, registrationRequest, rotationRequest, signConsent, signDidToken, signIdpToken, signReview } from './auth/issue';
import { AUDIT_EVENT_ID, REVIEW_OUTCOMES } from '@hdx/chaincode/dist/protocol';
import { parseScopes, ScopeSyntaxError } from './auth/scopes';
import { algorithmOfKey, MAX_DID_TOKEN_LIFETIME_SEC } from './auth/token';
import { IDP_ROLES } from './auth/types';
import { sync } from './ingest/sync';
import { OutboxAdmin } from './audit/outbox';
import { PgOutboxQueue } from './audit/outbox-pg';
import { PgStore } from './store/pg-store';
import { ConfigError, loadConfig } from './config';
import { enrollGatewayIdentity } from './ledger/enroll';
import { FabricLedger } from './ledger/fabric-ledger';
import { newLogger } from './logger';
import { rebuildAndCompare, VIEW_FILE_NAME } from './view';
import { replayPatient } from './view/replay';
import { ReceiptError, verifyReceipt } from './audit/receipt';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** A mistake in how the command was called: exit status 2, with the fix. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = UsageError.name;
  }
}

const DID_KINDS = ['patient', 'practitioner', 'organization', 'device', 'system', 'auditor'] as const;
const PURPOSE = /^[A-Z]{2,20}$/;

const USAGE: Record<string, string> = {
  keygen: `hdx keygen [--out key.json] [--force]
  A new P-256 key pair (private JWK) and its DID, did:hdx:<RFC 7638 thumbprint>.
  With --out the private key is written to the file (mode 600) and only the public part is printed.`,
  'did-proof': `hdx did-proof --key key.json --kind patient [--action register] [--fhir-base-url URL]
hdx did-proof --key key.json --action deactivate [--kid did:hdx:...#key-n]
hdx did-proof --key key.json --action rotate --new-key new-key.json [--kid did:hdx:...#key-n]
  The hdx.identity input with its proof of possession (a JWS by the key), as one line of JSON:
  register → {did, kind, publicKeyJwk, proof[, fhirBaseUrl]} for Register; deactivate → {did, proof}
  for Deactivate; rotate → {did, publicKeyJwk, proof} for RotateKey. --kind is one of
  ${DID_KINDS.join(', ')}; --fhir-base-url is required for an organization.`,
  token: `hdx token --key key.json --aud <gateway FHIR base URL> --scope "patient/*.read" --purpose TREAT [--ttl 300] [--kid did:hdx:...#key-n] [--break-glass-reason TEXT]
  A bearer token self-signed with a DID key (ES256, kid = DID URL, iss = sub = the DID, a random jti).
  It is valid for --ttl seconds (at most ${MAX_DID_TOKEN_LIFETIME_SEC}) and for one request: make a new one per request.`,
  'idp-keygen': `hdx idp-keygen --out-dir DIR [--force]
  A development identity provider key pair: DIR/idp-private.pem (PKCS#8, mode 600) and DIR/idp-public.pem
  (the public key the gateway is configured with).`,
  'idp-token': `hdx idp-token --idp-key idp-private.pem --iss <issuer> --aud <audience> --sub <user id> --role practitioner --scope "user/*.read" --purpose TREAT [--did did:hdx:...] [--break-glass-reason TEXT] [--ttl 3600] [--kid KID]
  A token as the (development) identity provider would issue it: ES256 for a P-256 key, RS256 for RSA.
  --role is one of ${IDP_ROLES.join(', ')}; --kid defaults to the RFC 7638 thumbprint of the key.`,
  'consent-sign': `hdx consent-sign --key key.json --consent consent.json --action grant|update|revoke [--kid did:hdx:...#key-n]
  The compact JWS that hdx.consent Grant, Update or Revoke takes: the canonical {consent, action, nonce, iat}
  signed by the patient's (or a guardian's) key.`,
  'review-sign': `hdx review-sign --key key.json --event <txId>.<n> --outcome justified|not-justified|needs-follow-up [--kid did:hdx:...#key-n]
  An auditor's break-glass review: prints the Parameters body of POST /fhir/AuditEvent/<event>/$review, with the
  proof (the canonical {action: "review", eventId, outcome, nonce, iat} signed by the auditor's key). The event
  id is the AuditEvent's ledger-event-id extension.`,
  sync: `hdx sync --ehr <EHR FHIR base URL> --gateway <gateway FHIR base URL> [--types all|Patient,Observation,...] --state sync-state.json [--page 50] [--source NAME]
         (--token TOKEN | --idp-key idp-private.pem --iss <issuer> --sub <id> --did did:hdx:... [--role system] [--scope "system/*.write"] [--purpose TREAT])
         [--ehr-token TOKEN]
  Pulls every resource of those types (all, the default: every type the EHR's CapabilityStatement offers a search of
  that the gateway holds; reference data first, then Patients, then the rest) changed since the last sync from the
  EHR (_lastUpdated, paged), gives each a
  stable local id (from the EHR base URL and Type/id), rewrites references, and pushes each page to the gateway
  (POST /ingest/fhir). The checkpoint in --state moves only after the gateway acknowledged a page: a sync that was
  stopped resumes where it was; re-sent pages are no-ops. Prints progress; ends with a JSON summary.`,
  offboard: `hdx offboard --gateway <gateway base URL, e.g. http://127.0.0.1:8080> --token <admin IdP token> --subject <IdP sub>
  Off-boarding: deactivates on the ledger every DID this organization registered for that identity-provider
  subject (its practitioner, device and system DIDs), so the keys stop working when the IdP account ends.
  Prints {deactivated, alreadyInactive} as JSON.`,
  outbox: `hdx outbox dead-letters --data-dir DIR
hdx outbox redeliver --data-dir DIR (--id ENTRY_ID | --all)
  The async audit outbox (DIR/outbox.db, DIR being the gateway's HDX_DATA_DIR; with HDX_STORE=postgres://… set, as
  for the gateway, the outbox tables of that PostgreSQL database and HDX_STORE_SCHEMA, and no --data-dir). dead-letters lists, as JSON, the
  access entries the ledger refused on every attempt (entryId, when, attempts, the ledger's error; never the entry's
  content). redeliver puts the one named (or all) back at the end of the queue with fresh attempts; a running
  gateway delivers them at its next flush. Safe to run beside the gateway.`,
  view: `hdx view rebuild --data-dir DIR
  The ledger view (DIR/${VIEW_FILE_NAME}, DIR being the gateway's HDX_DATA_DIR): rebuilds it from block 0 of the peer into
  a temporary file in DIR, up to the height the live view reflects, compares the two row for row, and prints
  {equal, liveHeight, rebuiltHeight, differences} as JSON (each difference: table, key, kind, changed columns);
  exits 1 when they differ. The peer and the gateway's Fabric identity come from the gateway's environment (HDX_*,
  as for hdx-gateway). Safe to run beside the gateway.`,
  receipt: `hdx receipt verify <receipt.json> [--trust-roots roots.pem]
  Verifies an audit receipt (GET /fhir/AuditEvent/<eventId>/$receipt) offline, with no network: the block's data
  hash, the orderers' signatures on the block, that the transaction is in the block and valid, its submitter's
  signature, each endorsement over the proposal response, every certificate against its organization's MSP
  certificates in the receipt's config block, and that the entry written is exactly the receipt's entry.
  Prints {verified, eventId, blockNumber, endorsedBy, orderedBy, rootCertificates, entry, ...} as JSON; exits 1
  naming the failed check. With --trust-roots (PEM certificates) every MSP root in the receipt must be one of them;
  without it, compare rootCertificates (SHA-256 fingerprints) with the consortium's. A config block after the
  genesis block is checked by its orderers' signatures (configSignedBy); the genesis block, which no orderer
  signs, by its hash: compare configBlockHash with the channel's genesis block hash.`,
};

function usageText(): string {
  return ['Usage:', ...Object.values(USAGE).map((u) => `  ${u.split('\n').join('\n  ')}`), '', 'hdx help <command> shows one command.'].join('\n');
}

type Values = Record<string, string | boolean | undefined>;

function parse(command: string, args: string[], options: Record<string, { type: 'string' | 'boolean' }>): Values {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE[command] ?? ''}`);
  }
}

function required(values: Values, name: string, command: string, example: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`--${name} is required, e.g. --${name} ${example}\n\n${USAGE[command] ?? ''}`);
  return value;
}

function optional(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function readText(file: string, flag: string, hint: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read the ${flag} file ${file}${code === 'ENOENT' ? ': no such file' : ''} (${hint})`);
  }
}

function readJson(file: string, flag: string, hint: string): unknown {
  const text = readText(file, flag, hint);
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`the ${flag} file ${file} is not JSON (${hint})`);
  }
}

function readDidKey(file: string, flag = '--key'): P256PrivateJwk {
  const value = readJson(file, flag, `make one with: hdx keygen --out ${file}`);
  try {
    return toP256PrivateJwk(value);
  } catch (err) {
    throw new UsageError(`the ${flag} file ${file} is not a private P-256 JWK: ${(err as Error).message} (make one with: hdx keygen --out ${file})`);
  }
}

function kidOption(values: Values): string | undefined {
  const kid = optional(values, 'kid');
  if (kid !== undefined && !HDX_DID_URL.test(kid)) throw new UsageError('--kid must be a DID URL, e.g. --kid did:hdx:<thumbprint>#key-2 (the key number after a rotation)');
  return kid;
}

function checkUrl(value: string, flag: string): string {
  if (!/^https?:\/\/[^/\s]+(\/\S*)?$/.test(value)) throw new UsageError(`${flag} must be an http(s) URL, e.g. ${flag} http://127.0.0.1:8080/fhir`);
  return value;
}

function checkScope(value: string): string {
  try {
    const { scopes } = parseScopes(value);
    if (scopes.length === 0) throw new UsageError('--scope holds no SMART resource scope, e.g. --scope "patient/*.read" or "user/Observation.rs"');
  } catch (err) {
    if (err instanceof ScopeSyntaxError) throw new UsageError(`--scope: ${err.message}, e.g. --scope "patient/*.read user/Observation.write"`);
    throw err;
  }
  return value;
}

function checkPurpose(value: string): string {
  if (!PURPOSE.test(value)) throw new UsageError('--purpose must be an HL7 v3 PurposeOfUse code in capitals, e.g. --purpose TREAT (ETREAT for break-glass, HRESCH for research)');
  return value;
}

function checkTtl(value: string | undefined, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const ttl = Number(value);
  if (!/^\d+$/.test(value) || ttl < 1 || ttl > max) throw new UsageError(`--ttl must be whole seconds from 1 to ${max}, e.g. --ttl ${Math.min(max, 300)}`);
  return ttl;
}

function breakGlass(values: Values, purpose: string): string | undefined {
  const reason = optional(values, 'break-glass-reason');
  if (reason !== undefined && purpose !== 'ETREAT') throw new UsageError('--break-glass-reason goes with --purpose ETREAT (emergency access)');
  return reason;
}

function writeNew(file: string, content: string, mode: number, force: boolean): void {
  try {
    fs.writeFileSync(file, content, { mode, flag: force ? 'w' : 'wx' });
    if (force) fs.chmodSync(file, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UsageError(`${file} already exists: choose another path, or add --force to overwrite it`);
    if (code === 'ENOENT') throw new UsageError(`cannot write ${file}: its folder does not exist`);
    throw err;
  }
}

function json(value: unknown, pretty = false): string {
  return `${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`;
}

function keygen(args: string[], io: CliIo): void {
  const values = parse('keygen', args, { out: { type: 'string' }, force: { type: 'boolean' } });
  const key = generateDidKey();
  const out = optional(values, 'out');
  if (out === undefined) {
    io.stdout(json({ did: key.did, kid: key.kid, publicKeyJwk: key.publicJwk, privateKeyJwk: key.privateJwk }, true));
    return;
  }
  writeNew(out, json(key.privateJwk, true), 0o600, values.force === true);
  io.stdout(json({ did: key.did, kid: key.kid, publicKeyJwk: key.publicJwk, keyFile: path.resolve(out) }, true));
}

function didProof(args: string[], io: CliIo): void {
  const values = parse('did-proof', args, {
    key: { type: 'string' },
    kind: { type: 'string' },
    action: { type: 'string' },
    'new-key': { type: 'string' },
    'fhir-base-url': { type: 'string' },
    kid: { type: 'string' },
  });
  const key = readDidKey(required(values, 'key', 'did-proof', 'key.json'));
  const action = optional(values, 'action') ?? 'register';
  if (action === 'register') {
    const kind = required(values, 'kind', 'did-proof', 'patient');
    if (!(DID_KINDS as readonly string[]).includes(kind)) throw new UsageError(`--kind must be one of ${DID_KINDS.join(', ')}`);
    const url = optional(values, 'fhir-base-url');
    if (kind === 'organization' && url === undefined) throw new UsageError('an organization registers its gateway: add --fhir-base-url https://hospital.example/fhir');
    if (kind !== 'organization' && url !== undefined) throw new UsageError('--fhir-base-url is only for --kind organization');
    if (optional(values, 'kid') !== undefined) throw new UsageError('--kid does not apply to register: a DID is registered with its first key, #key-1');
    io.stdout(json(registrationRequest(key, kind, url !== undefined ? { fhirBaseUrl: checkUrl(url, '--fhir-base-url') } : {})));
    return;
  }
  const kid = kidOption(values);
  if (action === 'deactivate') {
    io.stdout(json(deactivationRequest(key, kid !== undefined ? { kid } : {})));
    return;
  }
  if (action === 'rotate') {
    const newKey = readDidKey(required(values, 'new-key', 'did-proof', 'new-key.json'), '--new-key');
    io.stdout(json(rotationRequest(key, newKey, kid !== undefined ? { kid } : {})));
    return;
  }
  throw new UsageError('--action must be register, deactivate or rotate');
}

function token(args: string[], io: CliIo): void {
  const values = parse('token', args, {
    key: { type: 'string' },
    aud: { type: 'string' },
    scope: { type: 'string' },
    purpose: { type: 'string' },
    ttl: { type: 'string' },
    kid: { type: 'string' },
    'break-glass-reason': { type: 'string' },
  });
  const key = readDidKey(required(values, 'key', 'token', 'key.json'));
  const audience = checkUrl(required(values, 'aud', 'token', 'http://127.0.0.1:8080/fhir'), '--aud');
  const scope = checkScope(required(values, 'scope', 'token', '"patient/*.read"'));
  const purposeOfUse = checkPurpose(required(values, 'purpose', 'token', 'TREAT'));
  const breakGlassReason = breakGlass(values, purposeOfUse);
  const kid = kidOption(values);
  const ttlSec = checkTtl(optional(values, 'ttl'), MAX_DID_TOKEN_LIFETIME_SEC, MAX_DID_TOKEN_LIFETIME_SEC);
  io.stdout(
    `${signDidToken({ key, audience, scope, purposeOfUse, ttlSec, ...(kid !== undefined ? { kid } : {}), ...(breakGlassReason !== undefined ? { breakGlassReason } : {}) })}\n`,
  );
}

function idpKeygen(args: string[], io: CliIo): void {
  const values = parse('idp-keygen', args, { 'out-dir': { type: 'string' }, force: { type: 'boolean' } });
  const dir = required(values, 'out-dir', 'idp-keygen', '.hdx/idp');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateFile = path.join(dir, 'idp-private.pem');
  const publicFile = path.join(dir, 'idp-public.pem');
  const force = values.force === true;
  if (!force) for (const f of [privateFile, publicFile]) if (fs.existsSync(f)) throw new UsageError(`${f} already exists: choose another --out-dir, or add --force to overwrite`);
  writeNew(privateFile, String(privateKey.export({ format: 'pem', type: 'pkcs8' })), 0o600, force);
  writeNew(publicFile, String(publicKey.export({ format: 'pem', type: 'spki' })), 0o644, force);
  const publicKeyJwk = publicKey.export({ format: 'jwk' });
  io.stdout(json({ privateKey: path.resolve(privateFile), publicKey: path.resolve(publicFile), kid: jwkThumbprint(publicKeyJwk), publicKeyJwk }, true));
}

function readIdpKey(file: string): KeyObject {
  const text = readText(file, '--idp-key', `make one with: hdx idp-keygen --out-dir ${path.dirname(file)}`);
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    throw new UsageError(`the --idp-key file ${file} is not a PEM private key (make one with: hdx idp-keygen --out-dir DIR)`);
  }
  if (!algorithmOfKey(createPublicKey(key))) {
    throw new UsageError(`the --idp-key file ${file} must hold an EC P-256 or RSA (2048 bits or more) private key`);
  }
  return key;
}

function idpToken(args: string[], io: CliIo): void {
  const values = parse('idp-token', args, {
    'idp-key': { type: 'string' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    sub: { type: 'string' },
    role: { type: 'string' },
    scope: { type: 'string' },
    purpose: { type: 'string' },
    did: { type: 'string' },
    'break-glass-reason': { type: 'string' },
    ttl: { type: 'string' },
    kid: { type: 'string' },
  });
  const key = readIdpKey(required(values, 'idp-key', 'idp-token', 'idp-private.pem'));
  const issuer = required(values, 'iss', 'idp-token', 'https://idp.hospital1.example');
  const audience = required(values, 'aud', 'idp-token', 'http://127.0.0.1:8080/fhir');
  const subject = required(values, 'sub', 'idp-token', 'dr-house');
  const role = required(values, 'role', 'idp-token', 'practitioner');
  if (!(IDP_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${IDP_ROLES.join(', ')}`);
  const scope = checkScope(required(values, 'scope', 'idp-token', '"user/*.read"'));
  const purposeOfUse = checkPurpose(required(values, 'purpose', 'idp-token', 'TREAT'));
  const breakGlassReason = breakGlass(values, purposeOfUse);
  const did = optional(values, 'did');
  if (did !== undefined && !HDX_DID.test(did)) throw new UsageError('--did must be a did:hdx DID, e.g. the "did" printed by hdx keygen');
  const ttlSec = checkTtl(optional(values, 'ttl'), 24 * 3600, 3600);
  const kid = optional(values, 'kid') ?? jwkThumbprint(createPublicKey(key).export({ format: 'jwk' }));
  io.stdout(
    `${signIdpToken({
      key,
      kid,
      issuer,
      audience,
      subject,
      role,
      scope,
      purposeOfUse,
      ttlSec,
      ...(did !== undefined ? { did } : {}),
      ...(breakGlassReason !== undefined ? { breakGlassReason } : {}),
    })}\n`,
  );
}

function consentSign(args: string[], io: CliIo): void {
  const values = parse('consent-sign', args, { key: { type: 'string' }, consent: { type: 'string' }, action: { type: 'string' }, kid: { type: 'string' } });
  const key = readDidKey(required(values, 'key', 'consent-sign', 'key.json'));
  const file = required(values, 'consent', 'consent-sign', 'consent.json');
  const action = required(values, 'action', 'consent-sign', 'grant');
  if (action !== 'grant' && action !== 'update' && action !== 'revoke') throw new UsageError('--action must be grant, update or revoke');
  const consent = readJson(file, '--consent', 'a FHIR Consent as JSON, see chaincode/README.md');
  if (typeof consent !== 'object' || consent === null || Array.isArray(consent) || (consent as Record<string, unknown>).resourceType !== 'Consent') {
    throw new UsageError(`the --consent file ${file} must hold a FHIR Consent ("resourceType": "Consent")`);
  }
  const c = consent as Record<string, unknown>;
  if (typeof c.id !== 'string' || c.id.length === 0) throw new UsageError(`the --consent file ${file} needs an "id" (consent ids are global: use a UUID)`);
  const patient = (c.patient as { reference?: unknown } | undefined)?.reference;
  if (typeof patient !== 'string' || !HDX_DID.test(patient)) throw new UsageError(`the --consent file ${file} needs "patient": {"reference": "did:hdx:..."} (the patient's DID)`);
  const kid = kidOption(values);
  io.stdout(`${signConsent(key, c, action as ConsentAction, kid !== undefined ? { kid } : {})}\n`);
}

function reviewSign(args: string[], io: CliIo): void {
  const values = parse('review-sign', args, { key: { type: 'string' }, event: { type: 'string' }, outcome: { type: 'string' }, kid: { type: 'string' } });
  const key = readDidKey(required(values, 'key', 'review-sign', 'key.json'));
  const eventId = required(values, 'event', 'review-sign', '<txId>.<n>');
  if (!AUDIT_EVENT_ID.test(eventId)) throw new UsageError('--event must be the ledger event id <txId>.<n> (the AuditEvent extension ledger-event-id)');
  const outcome = required(values, 'outcome', 'review-sign', 'justified');
  if (!(REVIEW_OUTCOMES as readonly string[]).includes(outcome)) throw new UsageError(`--outcome must be one of ${REVIEW_OUTCOMES.join(', ')}`);
  const kid = kidOption(values);
  const proof = signReview(key, eventId, outcome, kid !== undefined ? { kid } : {});
  io.stdout(`${JSON.stringify(reviewParametersOf(outcome, proof), null, 2)}\n`);
}

/** The `$review` Parameters body. */
function reviewParametersOf(outcome: string, proof: string): Record<string, unknown> {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'outcome', valueCode: outcome },
      { name: 'proof', valueString: proof },
    ],
  };
}

function positiveInt(value: string | undefined, flag: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
  return n;
}

async function syncCommand(args: string[], io: CliIo): Promise<void> {
  const values = parse('sync', args, {
    ehr: { type: 'string' },
    gateway: { type: 'string' },
    types: { type: 'string' },
    state: { type: 'string' },
    page: { type: 'string' },
    source: { type: 'string' },
    token: { type: 'string' },
    'ehr-token': { type: 'string' },
    'idp-key': { type: 'string' },
    iss: { type: 'string' },
    sub: { type: 'string' },
    did: { type: 'string' },
    role: { type: 'string' },
    scope: { type: 'string' },
    purpose: { type: 'string' },
  });
  const ehr = checkUrl(required(values, 'ehr', 'sync', 'https://ehr.example/fhir'), '--ehr');
  const gateway = checkUrl(required(values, 'gateway', 'sync', 'http://127.0.0.1:8080/fhir'), '--gateway');
  const typesArg = optional(values, 'types') ?? 'all';
  const types =
    typesArg === 'all'
      ? 'all'
      : typesArg
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '');
  if (types !== 'all' && (types.length === 0 || types.some((t) => !/^[A-Z][A-Za-z]{1,63}$/.test(t))))
    throw new UsageError('--types must be all (the default) or FHIR resource types separated by commas, e.g. --types Patient,Observation');
  const stateFile = required(values, 'state', 'sync', 'sync-state.json');
  const pageSize = positiveInt(optional(values, 'page'), '--page', 50, 500);
  const source = optional(values, 'source');
  if (source !== undefined && !/^[A-Za-z0-9._:-]{1,64}$/.test(source)) throw new UsageError('--source must be 1 to 64 letters, digits or ._:-');
  const fixed = optional(values, 'token');
  let gatewayToken: () => string;
  if (fixed !== undefined) {
    if (optional(values, 'idp-key') !== undefined) throw new UsageError('give either --token or --idp-key (with --iss, --sub, --did), not both');
    gatewayToken = () => fixed;
  } else {
    const key = readIdpKey(required(values, 'idp-key', 'sync', 'idp-private.pem'));
    const issuer = required(values, 'iss', 'sync', 'https://idp.hospital1.example');
    const subject = required(values, 'sub', 'sync', 'ehr-sync');
    const did = required(values, 'did', 'sync', 'did:hdx:...');
    if (!HDX_DID.test(did)) throw new UsageError('--did must be a did:hdx DID (the DID the ingested changes are recorded under)');
    const role = optional(values, 'role') ?? 'system';
    if (!(IDP_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${IDP_ROLES.join(', ')}`);
    const scope = checkScope(optional(values, 'scope') ?? 'system/*.write');
    const purposeOfUse = checkPurpose(optional(values, 'purpose') ?? 'TREAT');
    const kid = jwkThumbprint(createPublicKey(key).export({ format: 'jwk' }));
    // A fresh token per page: a long sync outlives any one token.
    gatewayToken = () => signIdpToken({ key, kid, issuer, audience: gateway, subject, role, scope, purposeOfUse, ttlSec: 600, did });
  }
  const ehrToken = optional(values, 'ehr-token');
  const summary = await sync({
    ehr,
    gateway,
    types,
    stateFile,
    pageSize,
    gatewayToken,
    ...(source !== undefined ? { source } : {}),
    ...(ehrToken !== undefined ? { ehrToken } : {}),
    progress: (line) => io.stderr(`${line}\n`),
  });
  io.stdout(json(summary));
}

async function outboxCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'dead-letters' && sub !== 'redeliver') throw new UsageError(`say what to do: hdx outbox dead-letters or hdx outbox redeliver\n\n${USAGE.outbox ?? ''}`);
  const values = parse('outbox', rest, { 'data-dir': { type: 'string' }, id: { type: 'string' }, all: { type: 'boolean' } });
  // With HDX_STORE (PostgreSQL) the queue is in the store's database, shared by the organization's gateway processes.
  const storeUrl = process.env.HDX_STORE;
  const storeSchema = process.env.HDX_STORE_SCHEMA;
  const dataDir = storeUrl ? optional(values, 'data-dir') : required(values, 'data-dir', 'outbox', '/var/lib/hdx');
  const id = optional(values, 'id');
  if (sub === 'dead-letters' && (id !== undefined || values.all !== undefined)) throw new UsageError('--id and --all are for hdx outbox redeliver');
  if (sub === 'redeliver' && (id === undefined) === (values.all !== true))
    throw new UsageError('give --id ENTRY_ID (one dead letter, as listed by hdx outbox dead-letters) or --all');
  let admin: OutboxAdmin;
  let where: string;
  let pg: PgStore | undefined;
  if (storeUrl) {
    if (!/^postgres(ql)?:\/\/\S+$/.test(storeUrl)) throw new UsageError('HDX_STORE must be a postgres:// URL');
    try {
      pg = new PgStore({ url: storeUrl, poolSize: 1, ...(storeSchema ? { schema: storeSchema } : {}) });
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    admin = new OutboxAdmin(new PgOutboxQueue(pg));
    // Never the URL: it may hold a password.
    where = `PostgreSQL (HDX_STORE${storeSchema ? `, schema ${storeSchema}` : ''})`;
  } else {
    where = path.join(dataDir as string, 'outbox.db');
    try {
      admin = new OutboxAdmin(where);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
  }
  try {
    if (sub === 'dead-letters') {
      io.stdout(json({ outbox: where, deadLetters: await admin.deadLetters() }));
      return;
    }
    const moved = await admin.redeliver(id);
    if (id !== undefined && moved.length === 0)
      throw new Error(`no dead letter has entryId ${id} (list them with: hdx outbox dead-letters${storeUrl ? '' : ` --data-dir ${dataDir as string}`})`);
    io.stdout(json({ outbox: where, redelivered: moved }));
  } finally {
    await admin.close();
    await pg?.close();
  }
}

/** Commands that wait on the network: run through runAsync. */
const ASYNC_COMMANDS: Record<string, (args: string[], io: CliIo) => Promise<void>> = {
  sync: syncCommand,
  offboard: offboardCommand,
  view: viewCommand,
  replay: replayCommand,
  outbox: outboxCommand,
};

/** `hdx replay`: re-decide a patient's access history from the ledger and report what does not follow. */
async function replayCommand(args: string[], io: CliIo): Promise<void> {
  const values = parse('replay', args, { patient: { type: 'string' }, 'data-dir': { type: 'string' } });
  const patient = required(values, 'patient', 'replay', 'did:hdx:...');
  if (!HDX_DID.test(patient)) throw new UsageError(`--patient must be the patient's did:hdx DID\n\n${USAGE.replay ?? ''}`);
  const dataDir = optional(values, 'data-dir');
  let config;
  try {
    config = loadConfig({ ...process.env, ...(dataDir !== undefined ? { HDX_DATA_DIR: dataDir } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`the gateway's environment is needed to reach its peer: ${err.message}`);
    throw err;
  }
  const log = newLogger('warn', process.stderr);
  const ledger = new FabricLedger(config, await enrollGatewayIdentity(config, log));
  try {
    const report = await replayPatient(ledger, {
      patient,
      channel: config.channel,
      namespace: config.chaincode,
      onHistoryPage: (n) => io.stderr(`replay: ${n} access entries read\n`),
      onProgress: (p) => io.stderr(`replay: block ${p.height} of at most ${p.target}, ${p.settled} of ${p.entries} entries settled\n`),
    });
    io.stdout(json(report, true));
    if (report.doesNotFollow.length > 0) {
      throw new Error(`${report.doesNotFollow.length} of ${report.entries} access entries do not follow from the ledger (${report.unchecked.length} unchecked)`);
    }
  } finally {
    ledger.close();
  }
}

/** `hdx view rebuild`: rebuild the ledger view from block 0 and compare it with the live one. */
async function viewCommand(args: string[], io: CliIo): Promise<void> {
  const [sub, ...rest] = args;
  if (sub !== 'rebuild') throw new UsageError(`say what to do: hdx view rebuild\n\n${USAGE.view ?? ''}`);
  const values = parse('view', rest, { 'data-dir': { type: 'string' } });
  const dataDir = required(values, 'data-dir', 'view', '/var/lib/hdx');
  const liveFile = path.join(dataDir, VIEW_FILE_NAME);
  if (!fs.existsSync(liveFile)) throw new Error(`there is no ledger view at ${liveFile}`);
  let config;
  try {
    config = loadConfig({ ...process.env, HDX_DATA_DIR: dataDir });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`the gateway's environment is needed to reach its peer: ${err.message}`);
    throw err;
  }
  // Logs go to stderr: stdout is the JSON result.
  const log = newLogger('warn', process.stderr);
  const ledger = new FabricLedger(config, await enrollGatewayIdentity(config, log));
  try {
    const result = await rebuildAndCompare({
      source: ledger,
      channel: config.channel,
      namespace: config.chaincode,
      liveFile,
      workFile: path.join(dataDir, `ledger-view.rebuild-${process.pid}.db`),
    });
    io.stdout(json({ ...result, liveHeight: String(result.liveHeight), rebuiltHeight: String(result.rebuiltHeight) }, true));
    if (!result.equal) throw new Error(`the rebuilt view differs from the live one (${result.differences.length} rows; heights ${result.liveHeight} and ${result.rebuiltHeight})`);
  } finally {
    ledger.close();
  }
}

/** `hdx offboard`: POST <gateway>/did/$offboard as an admin of the organization. */
async function offboardCommand(args: string[], io: CliIo): Promise<void> {
  const values = parse('offboard', args, { gateway: { type: 'string' }, token: { type: 'string' }, subject: { type: 'string' } });
  const gateway = required(values, 'gateway', 'offboard', 'http://127.0.0.1:8080')
    .replace(/\/+$/, '')
    .replace(/\/fhir$/, '');
  const token = required(values, 'token', 'offboard', '"$(hdx idp-token --role admin ...)"');
  const subject = required(values, 'subject', 'offboard', 'dr-house');
  if (!/^https?:\/\/[^/]+/.test(gateway)) throw new UsageError(`--gateway must be the gateway's base URL (http(s)://host:port)\n\n${USAGE.offboard ?? ''}`);
  const res = await fetch(`${gateway}/did/$offboard`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (res.status !== 200) {
    let detail = text;
    try {
      detail = String((JSON.parse(text) as { issue?: Array<{ diagnostics?: string }> }).issue?.[0]?.diagnostics ?? text);
    } catch {
      // not JSON: the text as it is
    }
    throw new Error(`the gateway answered ${res.status}: ${detail}`);
  }
  io.stdout(`${text}\n`);
}

/** `hdx receipt verify <file>`: an audit receipt checked offline. */
function receiptCommand(args: string[], io: CliIo): void {
  const [sub, ...rest] = args;
  if (sub !== 'verify') throw new UsageError(`say what to do: hdx receipt verify <receipt.json>\n\n${USAGE.receipt ?? ''}`);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { 'trust-roots': { type: 'string' } }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE.receipt ?? ''}`);
  }
  const [file, ...extra] = parsed.positionals;
  if (file === undefined || extra.length > 0) throw new UsageError(`give one receipt file: hdx receipt verify <receipt.json>\n\n${USAGE.receipt ?? ''}`);
  const rootsFile = parsed.values['trust-roots'];
  let trustedRoots: X509Certificate[] | undefined;
  if (rootsFile !== undefined) {
    const pems = readText(rootsFile, 'trust-roots', 'PEM certificates').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0) throw new UsageError(`--trust-roots ${rootsFile} holds no PEM certificate`);
    trustedRoots = pems.map((pem) => new X509Certificate(pem));
  }
  const text = readText(file, 'receipt', 'a receipt file');
  let receipt: unknown;
  try {
    receipt = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not JSON: not a receipt`);
  }
  try {
    io.stdout(json(verifyReceipt(receipt, trustedRoots ? { trustedRoots } : {}), true));
  } catch (err) {
    if (err instanceof ReceiptError) throw new Error(`the receipt does NOT verify: ${err.message}`);
    throw err;
  }
}

const COMMANDS: Record<string, (args: string[], io: CliIo) => void> = {
  receipt: receiptCommand,
  keygen,
  'did-proof': didProof,
  token,
  'idp-keygen': idpKeygen,
  'idp-token': idpToken,
  'consent-sign': consentSign,
  'review-sign': reviewSign,
};

/** Runs one hdx command; returns the exit status (0 done, 1 failed, 2 usage error). */
export function run(argv: readonly string[], io: CliIo): number {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const topic = args[0];
    if (command === undefined) {
      io.stderr(`hdx: a command is needed\n\n${usageText()}\n`);
      return 2;
    }
    io.stdout(`${topic !== undefined && USAGE[topic] ? USAGE[topic] : usageText()}\n`);
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.stderr(`hdx: unknown command ${command}\n\n${usageText()}\n`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(`${USAGE[command] ?? ''}\n`);
    return 0;
  }
  try {
    handler(args, io);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`hdx ${command}: ${err.message}\n`);
      return 2;
    }
    io.stderr(`hdx ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Like run, for every command including those that wait on the network (sync). */
export async function runAsync(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...args] = argv;
  const handler = command !== undefined ? ASYNC_COMMANDS[command] : undefined;
  if (!handler) return run(argv, io);
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(`${USAGE[command as string] ?? ''}\n`);
    return 0;
  }
  try {
    await handler(args, io);
    return 0;
  } catch (err) {
    io.stderr(`hdx ${String(command)}: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (require.main === module) {
  // Output cut short by the reader (e.g. `hdx keygen | head -1`) is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  void runAsync(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  }).then((code) => {
    process.exitCode = code;
  });
}
