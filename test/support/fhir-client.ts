import { createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { type Config, type generateDidKey, registrationRequest, type RunningGateway, signIdpToken } from '@hdx/gateway';
import { network } from './network';

export const FHIR = 'application/fhir+json';
export type Gw = { gateway: RunningGateway; config: Config };

function idpKey(org: string) {
  return createPrivateKey(fs.readFileSync(path.join(network().info.home, 'gateways', `${org}-idp-private.pem`)));
}

/** A token from the org's (development) identity provider, as `hdx idp-token` makes them. */
export function staffToken(gw: Gw, org: string, opts: { did?: string; role?: string; scope?: string; purpose?: string; subject?: string } = {}): string {
  return signIdpToken({
    key: idpKey(org),
    issuer: `https://idp.${org}.hdx.test`,
    audience: gw.config.baseUrl,
    subject: opts.subject ?? `staff-${org}`,
    role: opts.role ?? 'practitioner',
    scope: opts.scope ?? 'user/*.*',
    purposeOfUse: opts.purpose ?? 'TREAT',
    ...(opts.did ? { did: opts.did } : {}),
  });
}

export interface Reply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
  headers: Headers;
}

/** One HTTP call: JSON (or text) body, bearer token, the reply parsed when it is JSON. */
export async function httpCall(url: string, method: string, token: string | undefined, body?: unknown, contentType = FHIR, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, {
    method,
    headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/** One HTTP call to a gateway: `url` is relative to its FHIR base unless absolute. */
export function call(gw: Gw, method: string, url: string, token: string | undefined, body?: unknown, contentType = FHIR, headers: Record<string, string> = {}): Promise<Reply> {
  return httpCall(url.startsWith('http') ? url : `${gw.config.baseUrl}${url}`, method, token, body, contentType, headers);
}

/** Registers a DID on the ledger through the org's gateway (POST /did, by an admin of the org). */
export async function registerDid(gw: Gw, org: string, kind: string, key: ReturnType<typeof generateDidKey>): Promise<void> {
  const res = await call(
    gw,
    'POST',
    `${gw.config.baseUrl.replace(/\/fhir$/, '')}/did`,
    staffToken(gw, org, { role: 'admin' }),
    registrationRequest(key.privateJwk, kind),
    'application/json',
  );
  expect(res.status, res.text).to.equal(201);
}

/**
 * Waits until the gateway has delivered every access entry to the ledger: in async audit mode (the
 * default) an entry is on the ledger within a flush interval of the access, not before the answer. Sync
 * mode (no outbox) has nothing to wait for. Checked twice, a flush interval apart, so entries the outbox
 * pulls from the store meanwhile are counted too.
 */
export async function auditDelivered(gw: Gw, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  const url = `${gw.config.baseUrl.replace(/\/fhir$/, '')}/healthz`;
  const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(50, gw.config.auditFlushMs) + 50));
  let empty = 0;
  while (empty < 2) {
    const health = (await httpCall(url, 'GET', undefined)).body as { checks?: { outbox?: { pending: number } } } | undefined;
    const pending = health?.checks?.outbox?.pending;
    if (pending === undefined) return;
    empty = pending === 0 ? empty + 1 : 0;
    if (Date.now() > end) throw new Error(`the gateway still holds ${pending} access entries after ${timeoutMs} ms`);
    if (empty < 2) await pause();
  }
}

/**
 * Waits until the gateway's ledger view has applied block `blockNumber` (its height is past it): a
 * decision made on the view from then on sees what that block wrote. Local decisions accept a view up
 * to HDX_VIEW_MAX_LAG_MS behind its peer (SECURITY.md, "Never on stale consent"); a test of a change
 * made on the ledger by someone else waits for this before asserting its effect. No view: nothing to wait for.
 */
export async function viewHolds(gw: Gw, blockNumber: bigint, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  const url = `${gw.config.baseUrl.replace(/\/fhir$/, '')}/healthz`;
  for (;;) {
    const view = ((await httpCall(url, 'GET', undefined)).body as { checks?: { view?: { height: string } } } | undefined)?.checks?.view;
    if (view === undefined || BigInt(view.height) > blockNumber) return;
    if (Date.now() > end) throw new Error(`the gateway's view is at height ${view.height} after ${timeoutMs} ms, not past block ${blockNumber}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
