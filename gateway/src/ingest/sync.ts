/**
 * `hdx sync`: pulls resources from an EHR's FHIR API (fhir-kit-client) into an HDX gateway
 * (`POST /ingest/fhir`), incrementally and resumably.
 *
 * For each resource type (every type the EHR offers with `--types all`; reference data first, then
 * Patients, then the rest, so that what refers to a Patient finds it: syncOrder):
 *
 * 1. search `Type?_lastUpdated=ge<checkpoint>&_sort=_lastUpdated&_count=<page>` (no filter the first
 *    time) and follow the `next` links (same origin as the EHR base only: the EHR token goes nowhere else);
 * 2. push the page to the gateway (`POST /ingest/fhir?source=…&ehr=<EHR base>`) as a transaction Bundle
 *    of the resources under their EHR ids; the gateway gives every resource a stable local id, keyed with
 *    the custodian's id secret from the EHR base URL + `Type/id` (the secret never leaves the gateway, and
 *    nobody can derive a local id from an EHR id without it), rewrites the references between EHR
 *    resources to those ids and drops `meta.versionId` / `meta.lastUpdated` (IngestService.fromEhr);
 * 3. (the gateway answers with a transaction-response);
 * 4. only after the gateway acknowledged the page (200), write the checkpoint to the state file
 *    (written to a temporary file, fsynced, renamed): the next link of the run, the largest
 *    `lastUpdated` seen and the EHR ids seen at exactly that instant.
 *
 * A crash or kill between 3 and 4 re-sends that page on restart: the gateway's ingestion is idempotent
 * (unchanged content is a no-op), so nothing is lost and nothing is duplicated. The checkpoint is
 * `ge` plus the ids already seen at that instant, rather than `gt`: resources sharing one lastUpdated
 * (a bulk load, a transaction) may be split by a page boundary, and `gt` would skip the rest of them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Resource } from '../model/resource';
import { governedByPatientReference, inPatientCompartment, SUPPORTED_TYPES } from '../model/definitions';

export interface SyncOptions {
  /** The EHR's FHIR base URL. */
  readonly ehr: string;
  /** The gateway's FHIR base URL (…/fhir); ingestion is at its origin + /ingest/fhir. */
  readonly gateway: string;
  /**
   * The resource types to pull, or `all`: every type the EHR's CapabilityStatement offers a search of
   * that this gateway holds. Either way pulled in syncOrder (reference data, then Patients, then the rest).
   */
  readonly types: readonly string[] | 'all';
  readonly stateFile: string;
  readonly pageSize: number;
  /** The source name the gateway records (default: the EHR's host). */
  readonly source?: string;
  /** A bearer token for the gateway, made fresh for each page. */
  readonly gatewayToken: () => string;
  /** A bearer token for the EHR, if it needs one. */
  readonly ehrToken?: string;
  readonly progress?: (line: string) => void;
}

export interface TypeState {
  /** Resources with lastUpdated ≥ since are still to be looked at … */
  since?: string;
  /** … except these EHR ids, already pushed, whose lastUpdated is exactly `since`. */
  seenAtSince?: string[];
  /** A run in progress: the next page to fetch, and the largest lastUpdated (and ids at it) pushed so far. */
  run?: { next: string; max?: string; seenAtMax?: string[] };
}

export interface SyncState {
  version: 1;
  ehr: string;
  types: Record<string, TypeState>;
}

export interface SyncSummary {
  pages: number;
  resources: number;
  created: number;
  updated: number;
  unchanged: number;
  seconds: number;
}

type Bundle = { resourceType: string; link?: Array<{ relation: string; url: string }>; entry?: Array<{ resource?: Resource; search?: { mode?: string } }> };

interface FhirClient {
  search(p: { resourceType: string; searchParams: Record<string, string | number> }): Promise<unknown>;
  request(url: string): Promise<unknown>;
  capabilityStatement(): Promise<unknown>;
}

/**
 * The order types are pulled in: reference data first (Organization, Location, Practitioner, ... what
 * clinical records point at), then Patients, then everything in or about a patient's record, so that
 * what refers to a Patient finds it held. Within each group the order given.
 */
export function syncOrder(types: readonly string[]): string[] {
  const group = (t: string): number => (t === 'Patient' ? 1 : inPatientCompartment(t) || governedByPatientReference(t) ? 2 : 0);
  return [...new Set(types)]
    .map((t, i) => ({ t, i }))
    .sort((a, b) => group(a.t) - group(b.t) || a.i - b.i)
    .map((x) => x.t);
}

/** The types of the EHR's CapabilityStatement with a search-type interaction that this gateway holds, in syncOrder. */
export function typesOffered(capability: unknown): string[] {
  if (!isObject(capability) || capability.resourceType !== 'CapabilityStatement')
    throw new Error('the EHR did not answer /metadata with a CapabilityStatement: name the types with --types');
  const rest = Array.isArray(capability.rest) ? capability.rest.filter(isObject) : [];
  const server = rest.find((r) => r.mode === 'server') ?? rest[0];
  const offered = (Array.isArray(server?.resource) ? server.resource.filter(isObject) : [])
    .filter((r) => !Array.isArray(r.interaction) || r.interaction.some((i) => isObject(i) && i.code === 'search-type'))
    .map((r) => r.type)
    .filter((t): t is string => typeof t === 'string' && SUPPORTED_TYPES.has(t));
  if (offered.length === 0) throw new Error('the EHR offers a search of no resource type this gateway holds');
  return syncOrder(offered);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function readState(file: string, ehr: string): SyncState {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, ehr, types: {} };
    throw err;
  }
  const state = JSON.parse(text) as SyncState;
  if (state.version !== 1 || !isObject(state.types)) throw new Error(`the state file ${file} is not an hdx sync state`);
  if (state.ehr !== ehr) throw new Error(`the state file ${file} belongs to another EHR (${state.ehr}); use one state file per EHR`);
  return state;
}

/** Atomic and durable: a crash leaves the previous state or the new one, never half of it. */
export function writeState(file: string, state: SyncState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  try {
    const dir = fs.openSync(path.dirname(path.resolve(file)), 'r');
    fs.fsyncSync(dir);
    fs.closeSync(dir);
  } catch {
    // Directory fsync is best effort (not every platform allows it).
  }
}

async function ehrClient(options: SyncOptions): Promise<FhirClient> {
  // fhir-kit-client 2.x is ESM only: loaded with a dynamic import() from this CommonJS module.
  const { Client } = await import('fhir-kit-client');
  return new Client({ baseUrl: options.ehr, ...(options.ehrToken ? { bearerToken: options.ehrToken } : {}) }) as unknown as FhirClient;
}

function ingestUrl(gateway: string, source: string, ehr: string): string {
  const origin = gateway.replace(/\/+$/, '').replace(/\/fhir$/, '');
  return `${origin}/ingest/fhir?source=${encodeURIComponent(source)}&ehr=${encodeURIComponent(ehr)}`;
}

/**
 * The page pushed to the gateway, under the EHR's ids (the gateway keys them); the status of each entry
 * comes back in a transaction-response.
 */
async function push(options: SyncOptions, source: string, ehr: string, resources: Resource[]): Promise<{ created: number; updated: number; unchanged: number }> {
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${String(r.id)}` } })),
  };
  const res = await fetch(ingestUrl(options.gateway, source, ehr), {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${options.gatewayToken()}` },
    body: JSON.stringify(bundle),
  });
  const text = await res.text();
  if (res.status !== 200) {
    let why = text.slice(0, 500);
    try {
      const outcome = JSON.parse(text) as { issue?: Array<{ diagnostics?: string }> };
      why =
        (outcome.issue ?? [])
          .map((i) => i.diagnostics)
          .filter(Boolean)
          .join('; ') || why;
    } catch {
      // not JSON: the text as is
    }
    throw new Error(`the gateway refused a page (HTTP ${res.status}): ${why}`);
  }
  const reply = JSON.parse(text) as { entry?: Array<{ response?: { status?: string; outcome?: { issue?: Array<{ diagnostics?: string }> } } }> };
  const counts = { created: 0, updated: 0, unchanged: 0 };
  for (const e of reply.entry ?? []) {
    if (e.response?.status?.startsWith('201')) counts.created++;
    else if (/^unchanged/.test(e.response?.outcome?.issue?.[0]?.diagnostics ?? '')) counts.unchanged++;
    else counts.updated++;
  }
  return counts;
}

function lastUpdatedOf(r: Resource): string | undefined {
  const v = r.meta?.lastUpdated;
  return typeof v === 'string' ? v : undefined;
}

function laterOf(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/** Runs one sync; resolves with the totals once every type is up to date. */
export async function sync(options: SyncOptions): Promise<SyncSummary> {
  const ehr = options.ehr.replace(/\/+$/, '');
  const ehrOrigin = new URL(ehr).origin;
  const source = options.source ?? new URL(ehr).host.replace(/[^A-Za-z0-9._:-]/g, '-');
  const say = options.progress ?? (() => {});
  const client = await ehrClient({ ...options, ehr });
  const state = readState(options.stateFile, ehr);
  const types = options.types === 'all' ? typesOffered(await client.capabilityStatement()) : syncOrder(options.types);
  if (options.types === 'all') say(`the EHR offers ${types.length} types held here: ${types.join(', ')}`);
  const total: SyncSummary = { pages: 0, resources: 0, created: 0, updated: 0, unchanged: 0, seconds: 0 };
  const t0 = Date.now();

  for (const type of types) {
    const ts: TypeState = (state.types[type] ??= {});
    const seen = new Set(ts.seenAtSince ?? []);
    let page: Bundle;
    if (ts.run) {
      say(`${type}: resuming an interrupted run`);
      page = (await client.request(ts.run.next)) as Bundle;
    } else {
      page = (await client.search({
        resourceType: type,
        searchParams: { ...(ts.since ? { _lastUpdated: `ge${ts.since}` } : {}), _sort: '_lastUpdated', _count: options.pageSize },
      })) as Bundle;
    }
    let run = ts.run ?? { next: '' };
    for (;;) {
      if (page.resourceType !== 'Bundle') throw new Error(`${type}: the EHR answered a search with a ${String(page.resourceType)}, not a Bundle`);
      const matches = (page.entry ?? []).map((e) => e.resource).filter((r): r is Resource => isObject(r) && r.resourceType === type && typeof r.id === 'string');
      // Already pushed at the checkpoint's instant (the `ge` boundary): skip.
      const fresh = matches.filter((r) => !(ts.since !== undefined && lastUpdatedOf(r) === ts.since && seen.has(String(r.id))));
      let max = run.max;
      let seenAtMax = new Set(run.seenAtMax ?? []);
      for (const r of fresh) {
        const lu = lastUpdatedOf(r);
        const later = laterOf(max, lu);
        if (later !== max) {
          max = later;
          seenAtMax = new Set();
        }
        if (lu !== undefined && lu === max) seenAtMax.add(String(r.id));
      }
      if (fresh.length > 0) {
        const local = fresh;
        const counts = await push(options, source, ehr, local);
        total.pages++;
        total.resources += local.length;
        total.created += counts.created;
        total.updated += counts.updated;
        total.unchanged += counts.unchanged;
        const secs = (Date.now() - t0) / 1000;
        say(
          `${type}: page ${total.pages}: ${local.length} resources (${counts.created} created, ${counts.updated} updated, ${counts.unchanged} unchanged); total ${total.resources} in ${secs.toFixed(1)} s, ${(total.resources / Math.max(secs, 0.001)).toFixed(1)}/s`,
        );
      }
      const nextLink = page.link?.find((l) => l.relation === 'next')?.url;
      if (nextLink !== undefined && new URL(nextLink, `${ehr}/`).origin !== ehrOrigin) throw new Error(`${type}: the EHR's next link leads to another origin; refused`);
      // Acknowledged by the gateway: now, and only now, the checkpoint moves.
      if (nextLink !== undefined) {
        run = { next: nextLink, ...(max !== undefined ? { max, seenAtMax: [...seenAtMax] } : {}) };
        ts.run = run;
      } else {
        delete ts.run;
        if (max !== undefined) {
          // The new checkpoint; ids at the old instant carry over if it did not move.
          const carried = max === ts.since ? [...seen, ...seenAtMax] : [...seenAtMax];
          ts.since = max;
          ts.seenAtSince = [...new Set(carried)];
        }
      }
      writeState(options.stateFile, state);
      if (nextLink === undefined) break;
      page = (await client.request(nextLink)) as Bundle;
    }
  }
  total.seconds = (Date.now() - t0) / 1000;
  return total;
}
