/**
 * Shared fixture of the attack suite (test/integration/security/, issue 9): the three member gateways
 * (hospital1, hospital2 configured to fetch from hospital1, the regulator), started once for every
 * security file and closed after the last one, plus the parties the attacks need: patients with their
 * own DID keys, practitioners of each hospital, the regulator's auditor, and the member organizations'
 * own DID keys (the files the launcher wrote for HDX_ORG_KEY_FILE).
 *
 * Everything goes through the public HTTP API as the attacking party would send it; where a finding is
 * about what a member reads on the ledger, through a member's own peer (test/support/ledger.ts).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, newLogger, type P256PrivateJwk, signDidToken, startGateway } from '@hdx/gateway';
import { auditDelivered, call, type Gw, type Reply, registerDid, staffToken } from './fhir-client';
import { gatewayConfig, network, startTestGateway } from './network';

export type DidKey = ReturnType<typeof generateDidKey>;

export interface SecurityEnv {
  h1: Gw;
  h2: Gw;
  reg: Gw;
  /** A practitioner registered by hospital1 (custodian staff). */
  drH1: DidKey;
  /** A practitioner registered by hospital2 (another member's user). */
  drH2: DidKey;
  /** The regulator's auditor (registered by the regulator's admin). */
  auditor: DidKey;
}

let envPromise: Promise<SecurityEnv> | undefined;
const extraGateways: Gw[] = [];

/** The shared gateways and staff, started on first use. */
export function securityEnv(): Promise<SecurityEnv> {
  envPromise ??= (async () => {
    const h1 = await startTestGateway('hospital1');
    const [h2, reg] = await Promise.all([
      startTestGateway('hospital2', { HDX_MEMBER_GATEWAYS: `Hospital1MSP=${h1.config.baseUrl}` }),
      startTestGateway('regulator', { HDX_MEMBER_GATEWAYS: `Hospital1MSP=${h1.config.baseUrl}` }),
    ]);
    const drH1 = generateDidKey();
    const drH2 = generateDidKey();
    const auditor = generateDidKey();
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    return { h1, h2, reg, drH1, drH2, auditor };
  })();
  return envPromise;
}

/** A further gateway for one file (closed with the shared ones). */
export async function extraGateway(org: string, overrides: Record<string, string> = {}, logTo?: { write(line: string): void }): Promise<Gw> {
  let gw: Gw;
  if (logTo) {
    // Its logs (at info) go to `logTo`, so a test can read what the gateway writes there.
    const config = await gatewayConfig(org, { HDX_LOG_LEVEL: 'info', ...overrides });
    gw = { gateway: await startGateway(config, newLogger('info', logTo)), config };
  } else {
    gw = await startTestGateway(org, overrides);
  }
  extraGateways.push(gw);
  return gw;
}

// Root-level hook: runs once, after the last test of the whole run.
after(async () => {
  const gws = [...extraGateways];
  if (envPromise) {
    const env = await envPromise.catch(() => undefined);
    if (env) gws.push(env.h1, env.h2, env.reg);
  }
  await Promise.all(gws.map((g) => g.gateway.close().catch(() => undefined)));
});

/** A fresh DID token (one per request: jti replay is refused). */
export function didToken(key: P256PrivateJwk & { kid?: string }, gw: Gw, scope: string, purpose?: string, extra: { breakGlassReason?: string; onBehalfOf?: string } = {}): string {
  return signDidToken({ key, audience: gw.config.baseUrl, scope, ttlSec: 120, ...(purpose ? { purposeOfUse: purpose } : {}), ...extra });
}

/** Custodian staff (hospital1 practitioner, IdP token naming the practitioner's DID, TREAT). */
export function h1Staff(env: SecurityEnv, scope = 'user/*.*', role = 'practitioner'): string {
  return staffToken(env.h1, 'hospital1', { did: env.drH1.did, scope, role });
}

/** The regulator's auditor reading the access history at the regulator's gateway. */
export function auditorToken(env: SecurityEnv): string {
  return didToken(env.auditor.privateJwk, env.reg, 'user/AuditEvent.read');
}

/** A member organization's own DID key (the HDX_ORG_KEY_FILE the launcher wrote), with its kid. */
export function orgDidKey(org: string): P256PrivateJwk & { kid: string } {
  const file = path.join(network().info.home, 'gateways', `${org}-org-key.json`);
  const jwk = JSON.parse(fs.readFileSync(file, 'utf8')) as P256PrivateJwk & { kid: string };
  expect(jwk.kid, `${file} has no kid`).to.be.a('string');
  return jwk;
}

export interface PatientParty {
  key: DidKey;
  did: string;
  /** The local Patient id at hospital1. */
  patientId: string;
}

/** A patient registered by hospital1 (DID kind patient) with a Patient record linked to the DID. */
export async function newPatient(env: SecurityEnv, family: string): Promise<PatientParty> {
  const key = generateDidKey();
  await registerDid(env.h1, 'hospital1', 'patient', key);
  const p = await call(env.h1, 'POST', '/Patient', h1Staff(env), {
    resourceType: 'Patient',
    identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: key.did }],
    name: [{ family }],
  });
  expect(p.status, p.text).to.equal(201);
  return { key, did: key.did, patientId: p.body.id };
}

/** An Observation of a patient, written by hospital1 staff; returns its id. */
export async function newObservation(env: SecurityEnv, patientId: string, fields: Record<string, unknown> = {}): Promise<string> {
  const o = await call(env.h1, 'POST', '/Observation', h1Staff(env), {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '25836-8' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2026-11-20T09:30:00Z',
    ...fields,
  });
  expect(o.status, o.text).to.equal(201);
  return o.body.id;
}

/** A random id no resource has (for "exactly like a missing id" comparisons). */
export const missingId = (): string => randomUUID();

/** The access history for a patient, as the regulator's auditor sees it (AuditEvent resources). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function auditEventsOf(env: SecurityEnv, patientDid: string): Promise<any[]> {
  // Async audit mode (the default): the gateways' entries reach the ledger within a flush interval.
  await Promise.all([env.h1, env.h2, env.reg].map((g) => auditDelivered(g)));
  const res = await call(env.reg, 'GET', `/AuditEvent?patient=${patientDid}&_count=100`, auditorToken(env));
  expect(res.status, `the regulator's auditor could not read the access history: ${res.text}`).to.equal(200);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (res.body.entry ?? []).map((e: { resource: any }) => e.resource);
}

/** The AuditEvents whose agent is `actor` and that name `Type/id` (any version). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function eventsBy(events: any[], actor: string, ref: string): any[] {
  return events.filter(
    (e) =>
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- AuditEvent JSON as served
      e.agent?.some((a: any) => a.who?.identifier?.value === actor) &&
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- AuditEvent JSON as served
      e.entity?.some((x: any) => typeof x.what?.reference === 'string' && (x.what.reference === ref || x.what.reference.startsWith(`${ref}/`))),
  );
}

/** A short description of a reply for assertion messages. */
export function show(res: Reply): string {
  return `${res.status} ${res.text.slice(0, 400)}`;
}

/** Statuses that mean "refused": not authenticated, forbidden, or not found. */
export const REFUSED = [401, 403, 404];

/** Entries of a Bundle (searchset / collection), as resources. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function resourcesOf(bundle: any): any[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (bundle?.entry ?? []).map((e: { resource: any }) => e.resource).filter(Boolean);
}
