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
