/**
 * Issue 6: the exchange benchmark. One run, one machine, one table:
 *
 *  - consent-checked reads (GET /fhir/Observation/:id through the hospital1 gateway's HTTP API, by a
 *    hospital1 practitioner with an identity-provider token): reads per second, p50 and p99, in `sync`
 *    and `async` audit mode, against a baseline serving the same read from the gateway's SQLite store
 *    with no ledger (a plain Express route: no token check, no consent, no audit, no integrity check);
 *  - anchored ingest through FHIR transaction Bundles (`POST /fhir`, one hdx.record:AnchorBatch per
 *    Bundle), resources per second for batch sizes 1, 10, 100 and 1000 (1000 = two Bundles of 500, the
 *    per-transaction limit, sent one after the other), in both audit modes;
 *  - HL7 v2 messages mapped per second (@hdx/fhir-mappers hl7v2ToBundle, ADT^A01 and ORU^R01);
 *  - the time from a consent revocation (the PUT /fhir/Consent/:id response) to the first denied read by
 *    the hospital2 practitioner, median of 20 rounds, in both audit modes;
 *  - the same reads (the same Observations, PUT with the same ids) from a HAPI FHIR JPA 8.8.0 server on
 *    this machine (bench/hapi.ts; no consent, no token), with the same load(), and the ratio HDX/HAPI at
 *    8 clients. HDX_BENCH_HAPI=0 skips it; if HAPI cannot be built or started its row says why.
 *
 * It starts its own network (.hdx/bench-exchange, ports from HDX_BENCH_PORT_BASE, default 37000) and
 * always stops and wipes it. Progress goes to stderr, the table to stdout.
 *
 *   npm run bench -- exchange
 *   HDX_BENCH_SECONDS=5 HDX_BENCH_ROUNDS=10 npm run bench -- exchange     (a shorter run)
 *   also HDX_BENCH_RESOURCES (read set, 100) and HDX_BENCH_INGEST_<size> (batches per size: 20, 10, 5, 2)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Server } from 'node:http';
import express from 'express';
import { defaultOptions, down, up } from '@hdx/fabric-network';
import { httpCall, type Reply } from '../test/support/fhir-client';
import { hl7v2ToBundle, keyedIds } from '@hdx/fhir-mappers';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken, SqliteStore } from '@hdx/gateway';
import { type Hapi, HAPI_VERSION, tryStartHapi } from './hapi';
import { expectStatus, freePort, type Gw, load, log, observation, orgIdentities, percentile, printGrid, printTable, startOrgGateway } from './support';

const SECONDS = Number(process.env.HDX_BENCH_SECONDS ?? '15');
const ROUNDS = Number(process.env.HDX_BENCH_ROUNDS ?? '20');
const READ_SET = Number(process.env.HDX_BENCH_RESOURCES ?? '100');
const CONCURRENCY = [1, 8];
/** Batch size → how many batches are sent (sequentially). */
const INGEST: ReadonlyArray<readonly [number, number]> = [
  [1, Number(process.env.HDX_BENCH_INGEST_1 ?? '20')],
  [10, Number(process.env.HDX_BENCH_INGEST_10 ?? '10')],
  [100, Number(process.env.HDX_BENCH_INGEST_100 ?? '5')],
  [1000, Number(process.env.HDX_BENCH_INGEST_1000 ?? '2')],
];
/** Entries per Bundle the gateway accepts (one AnchorBatch per transaction). */
const MAX_BUNDLE = 500;
const SEARCH_SET = 1000;
/** Pipelined ingest: senders at once, and Bundles of MAX_BUNDLE each sends. */
const PIPELINE_CLIENTS = Number(process.env.HDX_BENCH_PIPELINE_CLIENTS ?? '4');
const PIPELINE_BUNDLES = Number(process.env.HDX_BENCH_PIPELINE_BUNDLES ?? '2');
const SEARCH_MONTHS = 20;
const SEARCH_CONCURRENCY = [1, 8];
const SEARCH_SECONDS = Math.max(3, Math.round(SECONDS / 2));
const FHIR = 'application/fhir+json';
/** Seconds of warm-up load on HAPI before its timed rows (a JVM needs more than the gateway's 1 s). */
const HAPI_WARMUP_SECONDS = Number(process.env.HDX_BENCH_HAPI_WARMUP_SECONDS ?? '10');

const call = httpCall;

/** Waits (at most 120 s) until the gateway's ledger view is fresh, so its reads are decided locally; returns false on time-out. */
async function viewFresh(gw: Gw): Promise<boolean> {
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    if (gw.gateway.view?.status().fresh === true) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

/** Messages per second of a synchronous function, for `seconds` after a warm-up. */
function perSecond(seconds: number, fn: () => unknown): number {
  for (let i = 0; i < 100; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < until) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const rate = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));

/** The i-th Observation of the search set: 50 a month over 20 months from 2024-08. */
function monthlyObservation(subject: string, i: number): Record<string, unknown> {
  const month = Math.floor(i / (SEARCH_SET / SEARCH_MONTHS));
  return { ...observation(subject, i), effectiveDateTime: new Date(Date.UTC(2024, 7 + month, 1 + (i % 28), 9, 30)).toISOString() };
}

function transaction(resources: ReadonlyArray<Record<string, unknown>>): Record<string, unknown> {
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map((resource) => ({ resource, request: { method: 'POST', url: resource.resourceType } })) };
}

async function main(): Promise<void> {
  const runStart = Date.now();
  const home = path.resolve('.hdx', 'bench-exchange');
  const portBase = process.env.HDX_BENCH_PORT_BASE ?? '37000';
  const options = defaultOptions({ ...process.env, HDX_NETWORK_HOME: home, HDX_PORT_BASE: portBase });
  const loadBefore = os.loadavg();
  const rows: string[][] = [];
  const notes: string[] = [];
  let h1: Gw | undefined;
  let h2: Gw | undefined;
  let baseline: { server: Server; store: SqliteStore } | undefined;
  let hapi: Hapi | undefined;
  let hapiSettings = 'not run';
  /** reads/s of each consent-checked read row, by `${mode} c=${c}`. */
  const readRates = new Map<string, number>();
  let upMs = 0;

  log(`network: ${home}, ports ${portBase}..${Number(portBase) + 109}`);
  await down(options, { wipe: true });
  try {
    const upStart = Date.now();
    const info = await up(options, (m) => log(m));
    upMs = Date.now() - upStart;
    const { staff, registerDid } = orgIdentities(info);

    // --- Set-up: DIDs, the patient, the read set ---
    const patientKey = generateDidKey();
    const drH1 = generateDidKey();
    const drH2 = generateDidKey();
    log('starting the hospital1 (sync) and hospital2 gateways, registering DIDs');
    h1 = await startOrgGateway(info, 'hospital1', { HDX_AUDIT_MODE: 'sync' });
    h2 = await startOrgGateway(info, 'hospital2');
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await h2.gateway.close();
    h2 = undefined;

    let h1Token = staff(h1, 'hospital1', { did: drH1.did });
    const patient = {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      name: [{ family: 'Benchmark', given: ['Patience'] }],
      birthDate: '1980-01-01',
    };
    const p = await call(`${h1.config.baseUrl}/Patient`, 'POST', h1Token, patient);
    expectStatus(p, 201, 'create Patient');
    const patientRef = `Patient/${String(p.body.id)}`;
    log(`creating the read set: ${READ_SET} Observations in one transaction Bundle`);
    const readSet: string[] = [];
    for (let done = 0; done < READ_SET; done += MAX_BUNDLE) {
      const n = Math.min(MAX_BUNDLE, READ_SET - done);
      const r = await call(h1.config.baseUrl, 'POST', h1Token, transaction(Array.from({ length: n }, (_, i) => observation(patientRef, done + i))));
      expectStatus(r, 200, 'read-set transaction');
      for (const e of r.body.entry as Array<{ resource: { id: string } }>) readSet.push(e.resource.id);
    }

    // --- The search set: 1,000 Observations of a second patient over 20 months, 50 a month; a consent
    // lets hospital2's practitioner see one month of them (50 of 1,000) ---
    const searchPatientKey = generateDidKey();
    await registerDid(h1, 'hospital1', 'patient', searchPatientKey);
    const sp = await call(`${h1.config.baseUrl}/Patient`, 'POST', h1Token, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: searchPatientKey.did }],
      name: [{ family: 'Searched', given: ['Sam'] }],
    });
    expectStatus(sp, 201, 'create the searched Patient');
    log(`creating the search set: ${SEARCH_SET} Observations over ${SEARCH_MONTHS} months`);
    for (let done = 0; done < SEARCH_SET; done += MAX_BUNDLE) {
      const n = Math.min(MAX_BUNDLE, SEARCH_SET - done);
      const r = await call(h1.config.baseUrl, 'POST', h1Token, transaction(Array.from({ length: n }, (_, i) => monthlyObservation(`Patient/${String(sp.body.id)}`, done + i))));
      expectStatus(r, 200, 'search-set transaction');
    }
    const searchConsent = {
      resourceType: 'Consent',
      id: randomUUID(),
      status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: searchPatientKey.did },
      provision: {
        type: 'permit',
        actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
        purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
        // One month of the twenty.
        dataPeriod: { start: '2025-03-01', end: '2025-03-31' },
      },
    };
    expectStatus(
      await call(
        `${h1.config.baseUrl}/Consent`,
        'POST',
        signDidToken({ key: searchPatientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 }),
        signConsent(searchPatientKey.privateJwk, searchConsent, 'grant'),
        'application/jose',
      ),
      201,
      'grant the search consent',
    );

    /** A consent-checked search over the 1,000: hospital2's practitioner (50 visible) and hospital1's own (a page of 50). */
    const searchesFor = async (gw: Gw, mode: string): Promise<void> => {
      const url = `${gw.config.baseUrl}/Observation?patient=${searchPatientKey.did}&_count=50`;
      const variants: Array<[string, () => string]> = [
        [
          'hospital2 practitioner, consent for 1 month: 50 of 1,000 released',
          () => signDidToken({ key: drH2.privateJwk, audience: gw.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
        ],
        ['hospital1 practitioner (treatment): page of 50 of 1,000', () => staff(gw, 'hospital1', { did: drH1.did })],
      ];
      for (const [who, token] of variants) {
        const first = await call(url, 'GET', token());
        expectStatus(first, 200, `search (${who})`);
        const released = (first.body.entry as unknown[] | undefined)?.length ?? 0;
        for (const c of SEARCH_CONCURRENCY) {
          log(`searches, ${mode} audit mode, ${who}, concurrency ${c}, ${SEARCH_SECONDS} s`);
          // DID tokens are single use: one per search, signed before the clock starts (yielding now and
          // then, so the in-process gateway's keep-alive sockets are not left unserved).
          const tokens: string[] = [];
          while (tokens.length < 2500) {
            for (let k = 0; k < 50; k++) tokens.push(token());
            await new Promise((resolve) => setImmediate(resolve));
          }
          let next = 0;
          const r = await load(
            c,
            SEARCH_SECONDS,
            () => url,
            () => tokens[next++ % tokens.length],
          );
          if (r.errors) notes.push(`${mode} searches (${who}) c=${c}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
          rows.push([
            'consent-checked search',
            `${mode} audit, c=${c}: ${who}`,
            `${rate(r.ok / r.seconds)} searches/s`,
            `${f1(percentile(r.sorted, 50))} ms`,
            `${f1(percentile(r.sorted, 99))} ms`,
            `${r.ok} searches in ${r.seconds.toFixed(1)} s; total ${String(first.body.total)}, ${released} entries a page${r.errors ? `, ${r.errors} errors` : ''}`,
          ]);
        }
      }
    };

    // --- Consent-checked reads and revocation, per audit mode ---
    const readsFor = async (gw: Gw, mode: string, concurrency: readonly number[] = CONCURRENCY): Promise<void> => {
      h1Token = staff(gw, 'hospital1', { did: drH1.did });
      const token = h1Token;
      const url = (i: number): string => `${gw.config.baseUrl}/Observation/${readSet[i % readSet.length]}`;
      await load(2, 1, url, () => token); // warm-up
      for (const c of concurrency) {
        log(`reads, ${mode} audit mode, concurrency ${c}, ${SECONDS} s`);
        const r = await load(c, SECONDS, url, () => token);
        if (r.errors) notes.push(`${mode} reads c=${c}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
        readRates.set(`${mode} c=${c}`, r.ok / r.seconds);
        rows.push([
          'consent-checked read',
          `${mode} audit, c=${c}`,
          `${rate(r.ok / r.seconds)} reads/s`,
          `${f1(percentile(r.sorted, 50))} ms`,
          `${f1(percentile(r.sorted, 99))} ms`,
          `${r.ok} reads in ${r.seconds.toFixed(1)} s${r.errors ? `, ${r.errors} errors` : ''}`,
        ]);
      }
    };

    const revocation = async (gw: Gw, mode: string): Promise<void> => {
      log(`revocation → first denied read, ${mode} audit mode, ${ROUNDS} rounds`);
      const h2Read = (id: string): Promise<Reply> =>
        call(
          `${gw.config.baseUrl}/Observation/${id}`,
          'GET',
          signDidToken({ key: drH2.privateJwk, audience: gw.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
        );
      const patientToken = (): string => signDidToken({ key: patientKey.privateJwk, audience: gw.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });
      const times: number[] = [];
      const polls: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const id = readSet[round % readSet.length] as string;
        const consent = {
          resourceType: 'Consent',
          id: randomUUID(),
          status: 'active',
          scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
          category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
          patient: { reference: patientKey.did },
          provision: {
            type: 'permit',
            actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
            purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
          },
        };
        expectStatus(
          await call(`${gw.config.baseUrl}/Consent`, 'POST', patientToken(), signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose'),
          201,
          'grant consent',
        );
        // The grant is in effect: a read is permitted (retried briefly in case it is not yet).
        for (let tries = 0; ; tries++) {
          const r = await h2Read(id);
          if (r.status === 200) break;
          if (tries >= 50) throw new Error(`hospital2 read still ${r.status} after the grant: ${r.text.slice(0, 300)}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        const revoked = await call(`${gw.config.baseUrl}/Consent/${consent.id}`, 'PUT', patientToken(), signConsent(patientKey.privateJwk, consent, 'revoke'), 'application/jose');
        const t0 = process.hrtime.bigint();
        expectStatus(revoked, 200, 'revoke consent');
        for (let n = 1; ; n++) {
          const r = await h2Read(id);
          // A denied read is answered as a missing record (no existence oracle).
          if (r.status === 404) {
            times.push(ms(t0));
            polls.push(n);
            break;
          }
          if (r.status !== 200) throw new Error(`hospital2 read after revocation: ${r.status} ${r.text.slice(0, 300)}`);
          if (n >= 1000) throw new Error('no denied read after 1000 reads following the revocation');
        }
      }
      times.sort((a, b) => a - b);
      polls.sort((a, b) => a - b);
      rows.push([
        'revocation → first denied read',
        `${mode} audit`,
        '-',
        `${f1(percentile(times, 50))} ms (median)`,
        `${f1(times[times.length - 1] ?? NaN)} ms (max)`,
        `${times.length} rounds; reads until denied: median ${percentile(polls, 50)}, max ${polls[polls.length - 1]}`,
      ]);
    };

    // --- Pipelined ingest: several Bundles in flight at once (as a feed with several senders would) ---
    const pipelinedIngest = async (gw: Gw, mode: string): Promise<void> => {
      const token = staff(gw, 'hospital1', { did: drH1.did });
      log(`pipelined ingest, ${mode} audit mode: ${PIPELINE_CLIENTS} senders × ${PIPELINE_BUNDLES} Bundles of ${MAX_BUNDLE} Observations`);
      const perBundle: number[] = [];
      const start = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: PIPELINE_CLIENTS }, async (_, c) => {
          for (let b = 0; b < PIPELINE_BUNDLES; b++) {
            const t0 = process.hrtime.bigint();
            const base = 1_000_000 + (c * PIPELINE_BUNDLES + b) * MAX_BUNDLE;
            const r = await call(gw.config.baseUrl, 'POST', token, transaction(Array.from({ length: MAX_BUNDLE }, (_, i) => observation(patientRef, base + i))));
            expectStatus(r, 200, `pipelined transaction of ${MAX_BUNDLE}`);
            perBundle.push(ms(t0));
          }
        }),
      );
      const seconds = ms(start) / 1000;
      const total = PIPELINE_CLIENTS * PIPELINE_BUNDLES * MAX_BUNDLE;
      perBundle.sort((a, b) => a - b);
      rows.push([
        'anchored ingest',
        `pipelined, ${PIPELINE_CLIENTS} senders, ${mode} audit`,
        `${rate(total / seconds)} resources/s`,
        `${f1(percentile(perBundle, 50))} ms/Bundle`,
        `${f1(perBundle[perBundle.length - 1] ?? NaN)} ms/Bundle (max)`,
        `${total} resources in ${PIPELINE_CLIENTS * PIPELINE_BUNDLES} Bundles of ${MAX_BUNDLE}, ${PIPELINE_CLIENTS} in flight at once`,
      ]);
    };

    // --- Anchored ingest through transaction Bundles ---
    const ingest = async (gw: Gw, mode: string): Promise<void> => {
      const token = staff(gw, 'hospital1', { did: drH1.did });
      for (const [size, batches] of INGEST) {
        log(`ingest, ${mode} audit mode: ${batches} batch(es) of ${size} Observations`);
        const perBatch: number[] = [];
        let bundles = 0;
        const start = process.hrtime.bigint();
        for (let b = 0; b < batches; b++) {
          const t0 = process.hrtime.bigint();
          for (let done = 0; done < size; done += MAX_BUNDLE) {
            const n = Math.min(MAX_BUNDLE, size - done);
            const r = await call(gw.config.baseUrl, 'POST', token, transaction(Array.from({ length: n }, (_, i) => observation(patientRef, b * size + done + i))));
            expectStatus(r, 200, `transaction of ${n}`);
            bundles++;
          }
          perBatch.push(ms(t0));
        }
        const seconds = ms(start) / 1000;
        perBatch.sort((a, b) => a - b);
        const split = size > MAX_BUNDLE ? ` (each split into ${Math.ceil(size / MAX_BUNDLE)} Bundles of ${MAX_BUNDLE}, sent one after the other)` : '';
        rows.push([
          'anchored ingest',
          `batch ${size}, ${mode} audit`,
          `${rate((size * batches) / seconds)} resources/s`,
          `${f1(percentile(perBatch, 50))} ms/batch`,
          `${f1(perBatch[perBatch.length - 1] ?? NaN)} ms/batch (max)`,
          `${size * batches} resources, ${batches} batch(es), ${bundles} Bundle(s)${split}`,
        ]);
      }
    };

    // Sync mode at 32 clients too: group commit (HDX_GROUP_COMMIT_IN_FLIGHT) is what lets it scale.
    await readsFor(h1, 'sync', [...CONCURRENCY, 32]);
    await searchesFor(h1, 'sync');
    await ingest(h1, 'sync');
    await pipelinedIngest(h1, 'sync');

    await revocation(h1, 'sync');
    await h1.gateway.close();
    h1 = undefined;

    // --- The same gateway (same store) in async audit mode ---
    log('restarting the hospital1 gateway with HDX_AUDIT_MODE=async');
    h1 = await startOrgGateway(info, 'hospital1', { HDX_AUDIT_MODE: 'async' });
    // Local decisions (the default in async mode) need the ledger view caught up from block 0 first.
    const catchUp = process.hrtime.bigint();
    if (!(await viewFresh(h1))) notes.push('async mode: the ledger view was not fresh within 120 s; its reads went to the chaincode');
    else notes.push(`async mode: the ledger view caught up from block 0 (height ${h1.gateway.view?.height() ?? '?'}) in ${(ms(catchUp) / 1000).toFixed(1)} s`);
    await readsFor(h1, 'async');
    await searchesFor(h1, 'async');
    const st = h1.gateway.view?.status();
    notes.push(`async mode after its reads: view height ${st?.height ?? '?'}, lag ${st?.lagBlocks ?? '?'} block(s), fresh ${String(st?.fresh)}`);
    await ingest(h1, 'async');
    await pipelinedIngest(h1, 'async');
    await revocation(h1, 'async');
    log('stopping the async gateway (it drains its outbox first)');
    const drainStart = process.hrtime.bigint();
    await h1.gateway.close();
    notes.push(`async mode: the graceful stop drained the outbox to the ledger in ${(ms(drainStart) / 1000).toFixed(1)} s`);
    const dataDir = h1.config.dataDir;
    h1 = undefined;

    // --- The same reads in async mode with every decision asked of the chaincode (issue 11's comparison) ---
    log('restarting the hospital1 gateway with HDX_AUDIT_MODE=async HDX_DECISIONS=chaincode');
    h1 = await startOrgGateway(info, 'hospital1', { HDX_AUDIT_MODE: 'async', HDX_DECISIONS: 'chaincode' });
    await readsFor(h1, 'async (HDX_DECISIONS=chaincode)');
    await h1.gateway.close();
    h1 = undefined;

    // --- Baseline: the same read straight from the store, no ledger ---
    const store = new SqliteStore(path.join(dataDir, 'hdx.db'));
    const app = express();
    app.get('/fhir/:type/:id', async (req, res) => {
      const v = await store.readCurrent(String(req.params.type), String(req.params.id));
      if (!v || v.deleted || v.state !== 'anchored') res.status(404).end();
      else res.type(FHIR).send(v.content);
    });
    const port = await freePort();
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s));
    });
    baseline = { server, store };
    const burl = (i: number): string => `http://127.0.0.1:${port}/fhir/Observation/${readSet[i % readSet.length]}`;
    await load(2, 1, burl, () => undefined);
    for (const c of CONCURRENCY) {
      log(`reads, baseline (store only), concurrency ${c}, ${SECONDS} s`);
      const r = await load(c, SECONDS, burl, () => undefined);
      if (r.errors) notes.push(`baseline reads c=${c}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
      rows.push([
        'read, no ledger (baseline)',
        `store only, c=${c}`,
        `${rate(r.ok / r.seconds)} reads/s`,
        `${f1(percentile(r.sorted, 50))} ms`,
        `${f1(percentile(r.sorted, 99))} ms`,
        `${r.ok} reads in ${r.seconds.toFixed(1)} s${r.errors ? `, ${r.errors} errors` : ''}`,
      ]);
    }

    // --- HL7 v2 mapping (no network involved) ---
    const hl7Dir = path.join(__dirname, '..', 'fhir-mappers', 'test-data', 'hl7v2');
    const hl7Seconds = Math.max(1, Math.min(3, SECONDS / 3));
    for (const [label, file] of [
      ['ADT^A01 (Patient + Encounter)', 'adt-a01.hl7'],
      ['ORU^R01 (Patient + 5 Obs + report)', 'oru-r01.hl7'],
    ] as const) {
      const msg = fs.readFileSync(path.join(hl7Dir, file), 'utf8');
      log(`HL7 v2 ${label}`);
      // A custodian's keyed ids (a fresh secret: the ids themselves are not measured).
      const ids = keyedIds(randomBytes(32));
      const validated = perSecond(hl7Seconds, () => hl7v2ToBundle(msg, { ids }));
      const mapOnly = perSecond(hl7Seconds, () => hl7v2ToBundle(msg, { ids, validate: false }));
      rows.push(['HL7 v2 mapped', label, `${rate(validated)} msg/s`, '-', '-', `validated Bundle (default); map only: ${rate(mapOnly)} msg/s; 1 thread, ${hl7Seconds} s each`]);
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
    store.close();
    baseline = undefined;

    // --- The same reads from a HAPI FHIR JPA server on this machine (issue 11's peer), the network up and
    // idle as for the baseline: the Patient and the read set PUT with HDX's ids, then the same load() ---
    const hapiRow = 'read, HAPI FHIR JPA (peer)';
    const started = await tryStartHapi({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bench-hapi-')), port: await freePort() });
    if (!started.hapi) {
      hapiSettings = `not run (${started.reason})`;
      rows.push([hapiRow, `HAPI: not run (${started.reason})`, '-', '-', '-', '-']);
    } else {
      hapi = started.hapi;
      try {
        const server = hapi;
        const patientId = String(p.body.id);
        const tx = {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: { ...patient, id: patientId }, request: { method: 'PUT', url: `Patient/${patientId}` } },
            ...readSet.map((id, i) => ({ resource: { ...observation(patientRef, i), id }, request: { method: 'PUT', url: `Observation/${id}` } })),
          ],
        };
        expectStatus(await call(server.baseUrl, 'POST', undefined, tx), 200, 'HAPI: the read set (transaction of PUTs)');
        const hurl = (i: number): string => `${server.baseUrl}/Observation/${readSet[i % readSet.length]}`;
        log(`reads, HAPI FHIR JPA, warm-up ${HAPI_WARMUP_SECONDS} s`);
        await load(2, HAPI_WARMUP_SECONDS, hurl, () => undefined);
        for (const c of CONCURRENCY) {
          log(`reads, HAPI FHIR JPA, concurrency ${c}, ${SECONDS} s`);
          const r = await load(c, SECONDS, hurl, () => undefined);
          if (r.errors) notes.push(`HAPI reads c=${c}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
          const hdx = readRates.get(`async c=${c}`);
          const ratio = hdx !== undefined && r.ok > 0 ? `; HDX async c=${c} / HAPI = ${(hdx / (r.ok / r.seconds)).toFixed(2)}×` : '';
          rows.push([
            hapiRow,
            `HAPI FHIR JPA ${HAPI_VERSION}, c=${c}`,
            `${rate(r.ok / r.seconds)} reads/s`,
            `${f1(percentile(r.sorted, 50))} ms`,
            `${f1(percentile(r.sorted, 99))} ms`,
            `${r.ok} reads in ${r.seconds.toFixed(1)} s${r.errors ? `, ${r.errors} errors` : ''}${ratio}`,
          ]);
        }
        hapiSettings = `${HAPI_VERSION} (bench/hapi: hapi-fhir-jpaserver-base, H2 file database, no validation, no subscriptions, no interceptors, default search parameters), java -Xmx${server.heap}, ready in ${server.startSeconds.toFixed(0)} s; the Patient and the ${readSet.length} Observations PUT with HDX's ids in one transaction; GET /fhir/Observation/:id with no token, the same load() and HTTP client, after ${HAPI_WARMUP_SECONDS} s of warm-up at c=2; started after the gateway and the baseline stopped, the network up and idle`;
      } catch (err) {
        const reason = err instanceof Error ? err.message.replace(/\s+/g, ' ').slice(0, 400) : String(err);
        hapiSettings = `not run (${reason})`;
        rows.push([hapiRow, `HAPI: not run (${reason})`, '-', '-', '-', '-']);
      } finally {
        log('HAPI: stopping it and deleting its database');
        await hapi.stop();
        hapi = undefined;
      }
    }

    // --- The table ---
    const order = [
      'consent-checked read',
      'read, no ledger (baseline)',
      'read, HAPI FHIR JPA (peer)',
      'consent-checked search',
      'anchored ingest',
      'HL7 v2 mapped',
      'revocation → first denied read',
    ];
    rows.sort((a, b) => order.indexOf(a[0] ?? '') - order.indexOf(b[0] ?? ''));
    const cpu = os.cpus();
    printGrid(`HDX exchange benchmark (issue 6), ${new Date().toISOString().slice(0, 16)}Z`, ['measure', 'variant', 'throughput', 'p50 / median', 'p99 / max', 'detail'], rows);
    printTable('settings', [
      [
        'network',
        `${options.orderers} Raft orderer(s), BatchTimeout ${options.batchTimeout}, MaxMessageCount ${options.maxMessageCount}, endorsement MAJORITY of 3 orgs (hospital1, hospital2, regulator), TLS, native processes`,
      ],
      ['gateway', 'hospital1, in this Node process (the load generator shares its event loop), SQLite store, log level warn'],
      ['reads', `GET /fhir/Observation/:id over ${readSet.length} Observations of one patient, ${SECONDS} s per row, c = concurrent clients, keep-alive HTTP on 127.0.0.1`],
      [
        'read caller',
        'hospital1 practitioner with one identity-provider token (ES256, reused): DID tokens are single-use (jti) and signing one per read would dominate the client cost',
      ],
      [
        'sync audit',
        'hdx.audit:AuthorizeAndRecord per read, concurrent reads grouped (group commit: up to HDX_GROUP_COMMIT_IN_FLIGHT=4 transactions in flight, the reads waiting meanwhile share the next AuthorizeAndRecordBatch): endorsed, ordered and committed before the data leaves, then checked against its anchor',
      ],
      [
        'search',
        `GET /fhir/Observation?patient=<DID>&_count=50 over ${SEARCH_SET} Observations of one patient (${SEARCH_SET / SEARCH_MONTHS} a month over ${SEARCH_MONTHS} months): consent decided once per (patient, access class), the store pages the permitted classes; a fresh DID token per search for hospital2 (signed before the clock starts), an IdP token for hospital1; ${SEARCH_SECONDS} s per row`,
      ],
      [
        'async audit',
        'decided locally on the ledger view (the chaincode decision run in the gateway, view fresh within HDX_VIEW_MAX_LAG_MS 1500 ms, else hdx.consent:EvaluateAccess) + access entry in the local SQLite outbox; flushed with RecordAccessBatch in the background (flush 200 ms, batches of 100, up to 4 transactions in flight)',
      ],
      ['async (HDX_DECISIONS=chaincode)', 'as async audit, but every read asks hdx.consent:EvaluateAccess (the behaviour before issue 11)'],
      ['baseline', 'plain Express route: SqliteStore.readCurrent + the stored JSON, same HTTP client; no token check, no consent, no audit, no anchor check'],
      ['HAPI FHIR JPA (peer)', hapiSettings],
      [
        'ingest',
        `FHIR transaction Bundles of Observations of one patient (POST /fhir), sent one after the other (1 client); each Bundle validated, stored pending, anchored in ONE ledger transaction (at most ${MAX_BUNDLE} entries); batch 1000 = 2 Bundles of ${MAX_BUNDLE}`,
      ],
      [
        'ingest, audit of the change',
        'both modes: the anchors and the change entries are the same ledger transaction (hdx.record:AnchorAndRecord), committed before the Bundle response (async mode did AnchorBatch, then the change entries through the outbox, before stop 21)',
      ],
      [
        'revocation',
        'per round: new consent id, grant (POST /fhir/Consent), a permitted hospital2 read, revoke (PUT, signed JWS); timed from the PUT response to the first denied read (404) of back-to-back hospital2 reads (fresh DID token each)',
      ],
      [
        'machine',
        `${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.versions.node}, ${os.platform()}/${os.arch()}`,
      ],
      [
        'load average (1/5/15 min)',
        `before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${os
          .loadavg()
          .map((x) => x.toFixed(2))
          .join(' ')}`,
      ],
      [
        'caveat',
        'the whole network (4 CAs, orderer, 3 peers, 3 chaincode servers), the gateway and the client share this machine; other load on it (e.g. other test networks) changes the figures',
      ],
      ['network up (binaries cached, fresh state)', `${(upMs / 1000).toFixed(1)} s`],
      ['whole run', `${((Date.now() - runStart) / 1000).toFixed(0)} s (including network up and down)`],
      ...notes.map((n, i): [string, string] => [`note ${i + 1}`, n]),
    ]);
  } finally {
    await hapi?.stop().catch(() => {});
    if (baseline) {
      baseline.server.close();
      baseline.store.close();
    }
    await h1?.gateway.close().catch(() => {});
    await h2?.gateway.close().catch(() => {});
    log('stopping and wiping the network');
    await down(options, { wipe: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
