/**
 * Issue 10: the FHIR-engine benchmark. One run, one machine, tables side by side:
 *
 *  1. Search over indexed resources with consent enforced: HDX_BENCH_RESOURCES (10,000) resources of ONE
 *     patient, and as many again spread over HDX_BENCH_PATIENTS (100) patients, loaded through
 *     transaction Bundles (POST /fhir, at most 500 entries each). p50 and p99 latency of a token search,
 *     a date range, two _include searches and a chained parameter (printed "not supported" when the
 *     gateway answers 400, detected at run time), each by hospital2's practitioner (another member,
 *     under the patients' consents, a fresh DID token per search) and by the custodian's (hospital1's)
 *     own practitioner; with how many resources each search released. A search whose candidates exceed
 *     the gateway's limit (1,000) is reported as refused, with the gateway's diagnostics.
 *  2. Index cost per write: ms per resource of indexEntriesOf (gateway/src/store/search-index.ts) over the
 *     loaded mix (and the Synthea population), entries per resource; the SQLite store's size per 1,000
 *     resources.
 *  3. A Synthea 3.3.0 population (HDX_BENCH_SYNTHEA_PATIENTS, 5; seed HDX_BENCH_SYNTHEA_SEED, 42) loaded
 *     through POST /fhir into the fresh store: hospitalInformation, practitionerInformation, then each
 *     patient Bundle; resources and Bundles accepted, every failure with its status and diagnostics, the
 *     rate; beside the same files POSTed in the same order to a HAPI FHIR JPA 8.8.0 server (bench/hapi.ts:
 *     built from Maven Central, H2 file database, fresh) started on this machine after HDX's load and
 *     stopped before the searches (HDX_BENCH_HAPI=0 skips it; if it cannot be built or started, its row
 *     says why and the run goes on). Generated once with Maven + Java (bench/synthea/pom.xml) into
 *     ~/.cache/hdx/synthea-<seed>-<n>/.
 *
 * It starts its own network (.hdx/bench-fhir-engine, ports from HDX_BENCH_PORT_BASE, default 37000) and
 * always stops and wipes it. Progress goes to stderr, the tables to stdout.
 *
 *   npm run bench -- fhir-engine
 *   HDX_BENCH_RESOURCES=500 HDX_BENCH_PATIENTS=10 HDX_BENCH_SEARCHES=3 npm run bench -- fhir-engine   (small)
 *   HDX_BENCH_SEARCHES (20) timed searches per row, HDX_BENCH_ROW_SECONDS (45) time budget per row;
 *   HDX_BENCH_SYNTHEA_PATIENTS=0 skips the Synthea part.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { defaultOptions, down, up } from '@hdx/fabric-network';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signConsent, signDidToken, SqliteStore } from '@hdx/gateway';
import { searchCriteria } from '@hdx/gateway/dist/fhir/search-params';
import { indexEntriesOf } from '@hdx/gateway/dist/store/search-index';
import { httpCall as call, type Reply } from '../test/support/fhir-client';
import { HAPI_VERSION, postBundle, tryStartHapi } from './hapi';
import { expectStatus, freePort, type Gw, log, orgIdentities, percentile, printGrid, printTable, startOrgGateway } from './support';

const RESOURCES = Number(process.env.HDX_BENCH_RESOURCES ?? '10000');
const PATIENTS = Number(process.env.HDX_BENCH_PATIENTS ?? '100');
/** Timed searches per row (after one warm-up), unless the row's time budget runs out first (at least 3). */
const SEARCHES = Number(process.env.HDX_BENCH_SEARCHES ?? '20');
const ROW_SECONDS = Number(process.env.HDX_BENCH_ROW_SECONDS ?? '45');
const SYNTHEA_PATIENTS = Number(process.env.HDX_BENCH_SYNTHEA_PATIENTS ?? '5');
const SYNTHEA_SEED = Number(process.env.HDX_BENCH_SYNTHEA_SEED ?? '42');
/** Entries per transaction Bundle the gateway accepts (one AnchorBatch per transaction). */
const MAX_BUNDLE = 500;
/** The store-only lookup counts candidates up to this (the gateway's MAX_SEARCH_CANDIDATES, which caps chains and includes, not searches). */
const CANDIDATE_LIMIT = 1000;
const MEDICATIONS = 50;

const LOINC = 'http://loinc.org';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SNOMED = 'http://snomed.info/sct';
const OBS_CODES = [
  ['8867-4', 'Heart rate'],
  ['8480-6', 'Systolic blood pressure'],
  ['8462-4', 'Diastolic blood pressure'],
  ['8310-5', 'Body temperature'],
  ['9279-1', 'Respiratory rate'],
  ['2708-6', 'Oxygen saturation in Arterial blood'],
  ['29463-7', 'Body weight'],
  ['8302-2', 'Body height'],
  ['39156-5', 'Body mass index'],
  ['2339-0', 'Glucose [Mass/volume] in Blood'],
  ['2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma'],
  ['2571-8', 'Triglyceride [Mass/volume] in Serum or Plasma'],
  ['2085-9', 'HDL Cholesterol'],
  ['18262-6', 'LDL Cholesterol'],
  ['4548-4', 'Hemoglobin A1c'],
  ['2160-0', 'Creatinine [Mass/volume] in Serum or Plasma'],
  ['3094-0', 'Urea nitrogen [Mass/volume] in Serum or Plasma'],
  ['2951-2', 'Sodium [Moles/volume] in Serum or Plasma'],
  ['2823-3', 'Potassium [Moles/volume] in Serum or Plasma'],
  ['718-7', 'Hemoglobin [Mass/volume] in Blood'],
] as const;
const CONDITION_CODES = ['44054006', '38341003', '55822004', '195967001', '13645005', '40055000', '73211009', '230690007', '22298006', '414545008'];
/** Data spans these two years; the date-range query asks for one month of it. */
const SPAN_START = Date.UTC(2024, 0, 1);
const SPAN_MS = 731 * 86_400_000;
const RANGE = { ge: '2025-03-01', lt: '2025-04-01' };

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : '-');
const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The first OperationOutcome diagnostics of a reply (or the start of its text). */
function diagnostics(r: Reply): string {
  const issues = (r.body as { issue?: Array<{ diagnostics?: string; code?: string }> } | undefined)?.issue;
  const first = issues?.[0];
  return (first?.diagnostics ?? first?.code ?? r.text).replace(/\s+/g, ' ').slice(0, 240);
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T, i);
    }),
  );
  return out;
}

function transaction(resources: ReadonlyArray<Record<string, unknown>>): Record<string, unknown> {
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map((resource) => ({ resource, request: { method: 'POST', url: resource.resourceType } })) };
}

// ---------------------------------------------------------------------------------------------------
// The synthetic mix: per patient 80 % Observations (20 LOINC codes), 15 % MedicationRequests (20 %
// active, each of one of 50 Medications), 5 % Conditions, dated evenly over two years. Codes, statuses
// and medications cycle over the whole set, so the one-patient and the spread set match alike.
// ---------------------------------------------------------------------------------------------------

/** What a generated resource is, for the expected count of each query. */
interface Facts {
  type: 'Observation' | 'MedicationRequest' | 'Condition';
  patient: number;
  code: string;
  date: string;
  active: boolean;
  medication: number;
}

interface Generated {
  resources: Array<Record<string, unknown>>;
  facts: Facts[];
}

function dateAt(j: number, n: number, patient: number): string {
  return new Date(SPAN_START + Math.floor((j * SPAN_MS) / Math.max(1, n)) + (patient % 24) * 3_600_000 + 9 * 3_600_000).toISOString();
}

/** `total` resources over the given patients (`Patient/<id>` references), `medications` their ids. */
function generate(patientRefs: readonly string[], total: number, medications: readonly string[], rxCodes: readonly string[], patientBase: number): Generated {
  const resources: Array<Record<string, unknown>> = [];
  const facts: Facts[] = [];
  const perPatient = Math.floor(total / patientRefs.length);
  let obsIndex = 0;
  let mrIndex = 0;
  let condIndex = 0;
  patientRefs.forEach((subject, p) => {
    const n = p === patientRefs.length - 1 ? total - perPatient * (patientRefs.length - 1) : perPatient;
    const nObs = Math.round(n * 0.8);
    const nMr = Math.round(n * 0.15);
    const nCond = n - nObs - nMr;
    for (let j = 0; j < nObs; j++) {
      const [code, display] = OBS_CODES[obsIndex++ % OBS_CODES.length] ?? OBS_CODES[0];
      const date = dateAt(j, nObs, p);
      resources.push({
        resourceType: 'Observation',
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
        code: { coding: [{ system: LOINC, code, display }] },
        subject: { reference: subject },
        effectiveDateTime: date,
        valueQuantity: { value: 40 + (j % 90), unit: '1', system: 'http://unitsofmeasure.org', code: '1' },
      });
      facts.push({ type: 'Observation', patient: patientBase + p, code, date, active: false, medication: -1 });
    }
    for (let j = 0; j < nMr; j++) {
      const k = mrIndex++;
      const medication = k % medications.length;
      const active = k % 5 === 0;
      const date = dateAt(j, nMr, p);
      resources.push({
        resourceType: 'MedicationRequest',
        status: active ? 'active' : 'completed',
        intent: 'order',
        medicationReference: { reference: medications[medication] },
        subject: { reference: subject },
        authoredOn: date,
        dosageInstruction: [{ text: 'as directed' }],
      });
      facts.push({ type: 'MedicationRequest', patient: patientBase + p, code: rxCodes[medication] ?? '', date, active, medication });
    }
    for (let j = 0; j < nCond; j++) {
      const code = CONDITION_CODES[condIndex++ % CONDITION_CODES.length] ?? '';
      const date = dateAt(j, nCond, p);
      resources.push({
        resourceType: 'Condition',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        code: { coding: [{ system: SNOMED, code }] },
        subject: { reference: subject },
        onsetDateTime: date,
      });
      facts.push({ type: 'Condition', patient: patientBase + p, code, date, active: true, medication: -1 });
    }
  });
  return { resources, facts };
}

// ---------------------------------------------------------------------------------------------------
// Synthea: generated once (Maven Central jars, Java 17), cached under ~/.cache/hdx/synthea-<seed>-<n>/.
// ---------------------------------------------------------------------------------------------------

function syntheaFiles(seed: number, n: number): string[] {
  const cache = path.join(os.homedir(), '.cache', 'hdx', `synthea-${seed}-${n}`);
  const fhirDir = path.join(cache, 'fhir');
  if (!fs.existsSync(fhirDir)) {
    const pomDir = path.join(__dirname, 'synthea');
    const cpFile = path.join(os.homedir(), '.cache', 'hdx', 'synthea-3.3.0-classpath.txt');
    fs.mkdirSync(path.dirname(cpFile), { recursive: true });
    if (!fs.existsSync(cpFile)) {
      log('Synthea: resolving org.mitre.synthea:synthea:3.3.0 and its dependencies with Maven (once)');
      execFileSync('mvn', ['-q', '-B', '-f', path.join(pomDir, 'pom.xml'), 'dependency:build-classpath', `-Dmdep.outputFile=${cpFile}`], {
        stdio: ['ignore', 'ignore', 'inherit'],
        timeout: 900_000,
      });
    }
    const tmp = `${cache}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    log(`Synthea: generating ${n} patient(s), seed ${seed} (once; about 40 s for 5)`);
    execFileSync(
      'java',
      [
        '-cp',
        fs.readFileSync(cpFile, 'utf8').trim(),
        'App',
        '-s',
        String(seed),
        '-cs',
        String(seed),
        '-r',
        '20240101',
        '-p',
        String(n),
        `--exporter.baseDirectory=${tmp}`,
        '--exporter.fhir.export=true',
        '--exporter.hospital.fhir.export=true',
        '--exporter.practitioner.fhir.export=true',
        '--exporter.csv.export=false',
        '--generate.only_alive_patients=true',
        'Massachusetts',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], timeout: 900_000 },
    );
    fs.rmSync(cache, { recursive: true, force: true });
    fs.renameSync(tmp, cache);
  }
  const files = fs.readdirSync(fhirDir).filter((f) => f.endsWith('.json'));
  const first = (prefix: string): string[] => files.filter((f) => f.startsWith(prefix)).sort();
  const patients = files.filter((f) => !f.startsWith('hospitalInformation') && !f.startsWith('practitionerInformation')).sort();
  return [...first('hospitalInformation'), ...first('practitionerInformation'), ...patients].map((f) => path.join(fhirDir, f));
}

interface SyntheaResult {
  files: Array<{ name: string; type: string; entries: number; status: number; loaded: number; seconds: number; problem: string }>;
  seconds: number;
  resources: Array<Record<string, unknown>>;
}

async function loadSynthea(gw: Gw, token: () => string, files: readonly string[]): Promise<SyntheaResult> {
  const out: SyntheaResult = { files: [], seconds: 0, resources: [] };
  const start = process.hrtime.bigint();
  let patient = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const bundle = JSON.parse(text) as { type?: string; entry?: Array<{ resource?: Record<string, unknown> }> };
    const entries = bundle.entry?.length ?? 0;
    for (const e of bundle.entry ?? []) if (e.resource) out.resources.push(e.resource);
    // The patient's name is PHI (synthetic here, but the report keeps to the rule): index and size only.
    const name = path.basename(file).startsWith('hospitalInformation')
      ? 'hospitalInformation'
      : path.basename(file).startsWith('practitionerInformation')
        ? 'practitionerInformation'
        : `patient bundle ${++patient}`;
    log(`Synthea: POST /fhir ${name} (${bundle.type ?? '?'}, ${entries} entries, ${(text.length / 1e6).toFixed(1)} MB)`);
    const t0 = process.hrtime.bigint();
    const r = await call(gw.config.baseUrl, 'POST', token(), text);
    const seconds = ms(t0) / 1000;
    let loaded = 0;
    let problem = '';
    if (r.status === 200) {
      const responses = (r.body as { entry?: Array<{ response?: { status?: string; outcome?: Reply['body'] } }> }).entry ?? [];
      const failed = responses.filter((e) => !/^2/.test(e.response?.status ?? ''));
      loaded = responses.length - failed.length;
      if (failed.length > 0) {
        const f = failed[0]?.response;
        problem = `${failed.length} entries failed, first: ${f?.status ?? '?'} ${diagnostics({ status: 0, body: f?.outcome, text: '', headers: new Headers() })}`;
      }
    } else {
      problem = `${r.status}: ${diagnostics(r)}`;
    }
    out.files.push({ name, type: bundle.type ?? '?', entries, status: r.status, loaded, seconds, problem });
    log(`  → ${r.status}, ${loaded}/${entries} loaded in ${seconds.toFixed(1)} s${problem ? ` (${problem})` : ''}`);
  }
  out.seconds = ms(start) / 1000;
  return out;
}

interface HapiLoad {
  loaded: number;
  total: number;
  accepted: number;
  bundles: number;
  seconds: number;
  startSeconds: number;
  heap: string;
  problems: string[];
}

/**
 * The same Synthea files, in the same order, POSTed to a fresh HAPI FHIR JPA server on this machine (one
 * client, one Bundle after the other, as HDX's load); the server is stopped and its folder deleted after.
 * Returns why it was not run instead when HAPI cannot be built or started.
 */
async function loadSyntheaIntoHapi(files: readonly string[]): Promise<HapiLoad | string> {
  const started = await tryStartHapi({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-bench-hapi-')), port: await freePort() });
  if (!started.hapi) return started.reason;
  const hapi = started.hapi;
  try {
    const out: HapiLoad = { loaded: 0, total: 0, accepted: 0, bundles: files.length, seconds: 0, startSeconds: hapi.startSeconds, heap: hapi.heap, problems: [] };
    const start = process.hrtime.bigint();
    let patient = 0;
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      const entries = ((JSON.parse(text) as { entry?: unknown[] }).entry ?? []).length;
      out.total += entries;
      const base = path.basename(file);
      const name = base.startsWith('hospitalInformation')
        ? 'hospitalInformation'
        : base.startsWith('practitionerInformation')
          ? 'practitionerInformation'
          : `patient bundle ${++patient}`;
      const t0 = process.hrtime.bigint();
      const r = await postBundle(hapi.baseUrl, text);
      out.loaded += r.ok;
      if (r.status === 200 && r.problem === '') out.accepted++;
      else out.problems.push(`${name}: ${r.problem}`);
      log(`HAPI: POST /fhir ${name} (${entries} entries) → ${r.status}, ${r.ok} loaded in ${(ms(t0) / 1000).toFixed(1)} s`);
    }
    out.seconds = ms(start) / 1000;
    return out;
  } finally {
    log('HAPI: stopping it and deleting its database');
    await hapi.stop();
  }
}

/** Size of the SQLite store (main file; the WAL checkpointed into it first). */
function storeBytes(dataDir: string): number {
  const file = path.join(dataDir, 'hdx.db');
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  const size = (f: string): number => (fs.existsSync(f) ? fs.statSync(f).size : 0);
  return size(file) + size(`${file}-wal`);
}

// ---------------------------------------------------------------------------------------------------

interface Query {
  name: string;
  /** The query string after `Type?`, given the patient parameter value. */
  type: string;
  query: (patients: string) => string;
  /** Matches among the generated resources of the given patients (undefined: not counted). */
  expected: (f: Facts) => boolean;
  /** Is a 400 the gateway saying it does not support the query (a chain), rather than a refusal? */
  feature?: string;
  /** Included resources are counted apart. */
  includes?: boolean;
}

const enc = encodeURIComponent;

function queries(rxCode0: string): Query[] {
  const code = OBS_CODES[0][0];
  const code1 = OBS_CODES[1][0];
  return [
    {
      name: 'token',
      type: 'Observation',
      query: (p) => `patient=${p}&code=${enc(`${LOINC}|${code}`)}`,
      expected: (f) => f.type === 'Observation' && f.code === code,
    },
    {
      name: 'date range (one month)',
      type: 'Observation',
      query: (p) => `patient=${p}&date=ge${RANGE.ge}&date=lt${RANGE.lt}`,
      expected: (f) => f.type === 'Observation' && f.date >= RANGE.ge && f.date < RANGE.lt,
    },
    {
      name: '_include MedicationRequest:medication',
      type: 'MedicationRequest',
      query: (p) => `patient=${p}&status=active&_include=MedicationRequest:medication`,
      expected: (f) => f.type === 'MedicationRequest' && f.active,
      includes: true,
    },
    {
      name: '_include Observation:patient',
      type: 'Observation',
      query: (p) => `patient=${p}&code=${enc(`${LOINC}|${code1}`)}&_include=Observation:patient`,
      expected: (f) => f.type === 'Observation' && f.code === code1,
      includes: true,
    },
    {
      name: 'chain medication.code',
      type: 'MedicationRequest',
      query: (p) => `patient=${p}&medication.code=${enc(`${RXNORM}|${rxCode0}`)}`,
      expected: (f) => f.type === 'MedicationRequest' && f.code === rxCode0,
      feature: 'chained parameters',
    },
    {
      name: 'all Observations of the patient(s)',
      type: 'Observation',
      query: (p) => `patient=${p}`,
      expected: (f) => f.type === 'Observation',
    },
  ];
}

interface SearchRow {
  scenario: string;
  query: string;
  caller: string;
  expected: number;
  n: number;
  sorted: number[];
  total?: number;
  page?: number;
  included?: number;
  outcome: string;
}

async function main(): Promise<void> {
  const runStart = Date.now();
  const home = path.resolve('.hdx', 'bench-fhir-engine');
  const portBase = process.env.HDX_BENCH_PORT_BASE ?? '37000';
  const options = defaultOptions({ ...process.env, HDX_NETWORK_HOME: home, HDX_PORT_BASE: portBase });
  const loadBefore = os.loadavg();
  const notes: string[] = [];
  const findings: string[] = [];
  let h1: Gw | undefined;
  let h2: Gw | undefined;
  let upMs = 0;

  // Synthea first (before the network): generation is CPU-bound and the machine is small.
  let synthea: string[] | undefined;
  let syntheaBlocked: string | undefined;
  if (SYNTHEA_PATIENTS > 0) {
    try {
      synthea = syntheaFiles(SYNTHEA_SEED, SYNTHEA_PATIENTS);
    } catch (err) {
      syntheaBlocked = `Synthea generation failed: ${err instanceof Error ? err.message.slice(0, 300) : String(err)}`;
      log(syntheaBlocked);
    }
  } else syntheaBlocked = 'skipped (HDX_BENCH_SYNTHEA_PATIENTS=0)';

  log(`network: ${home}, ports ${portBase}..${Number(portBase) + 109}`);
  await down(options, { wipe: true });
  try {
    const upStart = Date.now();
    const info = await up(options, (m) => log(m));
    upMs = Date.now() - upStart;
    const { staff, registerDid } = orgIdentities(info);

    const drH1 = generateDidKey();
    const drH2 = generateDidKey();
    log('starting the hospital1 and hospital2 gateways, registering the practitioners’ DIDs');
    h1 = await startOrgGateway(info, 'hospital1');
    h2 = await startOrgGateway(info, 'hospital2');
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await h2.gateway.close();
    h2 = undefined;
    const base = h1.config.baseUrl;
    // One reused IdP token (they may be), signed again after half of its hour (at most 3600 s).
    let h1Signed = { token: staff(h1, 'hospital1', { did: drH1.did }), at: Date.now() };
    const h1Tok = (): string => {
      if (Date.now() - h1Signed.at > 1_800_000 && h1) h1Signed = { token: staff(h1, 'hospital1', { did: drH1.did }), at: Date.now() };
      return h1Signed.token;
    };
    const dataDir = h1.config.dataDir;
    const auditMode = h1.config.auditMode;
    const freshBytes = storeBytes(dataDir);

    // --- 3. Synthea population into the fresh store ---
    let syntheaResult: SyntheaResult | undefined;
    if (synthea) syntheaResult = await loadSynthea(h1, h1Tok, synthea);
    const afterSyntheaBytes = storeBytes(dataDir);
    // The same population into HAPI FHIR JPA, on the same machine, the network up and idle meanwhile.
    // HAPI must never make the HDX figures fail: any error becomes its row's reason.
    const hapiLoad = synthea
      ? await loadSyntheaIntoHapi(synthea).catch((err: unknown) => (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').slice(0, 400))
      : undefined;

    // --- Patients, their DIDs and their consents to hospital2 ---
    const nPatients = 1 + PATIENTS;
    log(`registering ${nPatients} patient DIDs, creating their Patients, granting ${nPatients} consents to Hospital2MSP`);
    const patientKeys = Array.from({ length: nPatients }, () => generateDidKey());
    await mapLimit(patientKeys, 8, (k) => registerDid(h1 as Gw, 'hospital1', 'patient', k));
    const patientIds: string[] = [];
    for (let done = 0; done < nPatients; done += MAX_BUNDLE) {
      const slice = patientKeys.slice(done, done + MAX_BUNDLE);
      const r = await call(
        base,
        'POST',
        h1Tok(),
        transaction(
          slice.map((k, i) => ({
            resourceType: 'Patient',
            identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: k.did }],
            name: [{ family: `Bench${done + i}`, given: ['Synthetic'] }],
            birthDate: '1970-01-01',
          })),
        ),
      );
      expectStatus(r, 200, 'Patients transaction');
      for (const e of (r.body as { entry: Array<{ resource: { id: string } }> }).entry) patientIds.push(e.resource.id);
    }
    await mapLimit(patientKeys, 8, async (k) => {
      const patientToken = signDidToken({ key: k.privateJwk, audience: base, scope: 'patient/Consent.write', ttlSec: 120 });
      const consent = {
        resourceType: 'Consent',
        id: randomUUID(),
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
        category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
        patient: { reference: k.did },
        provision: {
          type: 'permit',
          actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
          purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
        },
      };
      expectStatus(await call(`${base}/Consent`, 'POST', patientToken, signConsent(k.privateJwk, consent, 'grant'), 'application/jose'), 201, 'grant consent');
    });

    // --- Medications (reference data), then the two sets ---
    const rxCodes = Array.from({ length: MEDICATIONS }, (_, i) => String(197300 + i * 7));
    const medResp = await call(
      base,
      'POST',
      h1Tok(),
      transaction(rxCodes.map((code) => ({ resourceType: 'Medication', code: { coding: [{ system: RXNORM, code, display: `bench medication ${code}` }] } }))),
    );
    expectStatus(medResp, 200, 'Medications transaction');
    const medications = (medResp.body as { entry: Array<{ resource: { id: string } }> }).entry.map((e) => `Medication/${e.resource.id}`);
    const one = generate([`Patient/${patientIds[0] ?? ''}`], RESOURCES, medications, rxCodes, 0);
    const spread = generate(
      patientIds.slice(1).map((id) => `Patient/${id}`),
      RESOURCES,
      medications,
      rxCodes,
      1,
    );
    const all = [...one.resources, ...spread.resources];
    const beforeLoadBytes = storeBytes(dataDir);
    log(`loading ${all.length} resources (${RESOURCES} of one patient, ${RESOURCES} over ${PATIENTS}) in transaction Bundles of ≤ ${MAX_BUNDLE}`);
    const loadStart = process.hrtime.bigint();
    for (let done = 0; done < all.length; done += MAX_BUNDLE) {
      const r = await call(base, 'POST', h1Tok(), transaction(all.slice(done, done + MAX_BUNDLE)));
      expectStatus(r, 200, `load transaction at ${done}`);
      const loaded = Math.min(all.length, done + MAX_BUNDLE);
      log(`  ${loaded}/${all.length} loaded, ${int(loaded / (ms(loadStart) / 1000))} resources/s`);
    }
    const loadSeconds = ms(loadStart) / 1000;
    const afterLoadBytes = storeBytes(dataDir);

    // --- 2. Index cost (in this process, the network idle) ---
    const indexCost = (resources: ReadonlyArray<Record<string, unknown>>): { msPer: number; entriesPer: number; byType: Map<string, { n: number; entries: number }> } => {
      for (const r of resources.slice(0, 200)) indexEntriesOf(r); // warm-up (definitions, FHIRPath compile cache)
      const byType = new Map<string, { n: number; entries: number }>();
      let entries = 0;
      const t0 = process.hrtime.bigint();
      for (const r of resources) {
        const e = indexEntriesOf(r).length;
        entries += e;
        const t = byType.get(String(r.resourceType)) ?? { n: 0, entries: 0 };
        t.n++;
        t.entries += e;
        byType.set(String(r.resourceType), t);
      }
      const elapsed = ms(t0);
      return { msPer: elapsed / resources.length, entriesPer: entries / resources.length, byType };
    };
    log('index cost: indexEntriesOf over the loaded mix');
    const mixCost = indexCost(all);
    const syntheaCost = syntheaResult && syntheaResult.resources.length > 0 ? indexCost(syntheaResult.resources) : undefined;
    // That was seconds of synchronous work in the process that also runs the gateway: let the server close
    // the keep-alive sockets that went idle meanwhile, and the client see it, before the next request
    // (else one is written on a socket being closed: ECONNRESET).
    await new Promise((resolve) => setTimeout(resolve, 200));

    // --- 1. Searches ---
    const scenarios = [
      { name: `1 patient (${int(RESOURCES)} resources)`, patients: patientIds.slice(0, 1), facts: one.facts, first: 0, count: 1 },
      { name: `${PATIENTS} patients (${int(RESOURCES)} resources)`, patients: patientIds.slice(1), facts: spread.facts, first: 1, count: PATIENTS },
    ];
    const callers: Array<{ name: string; token: () => string }> = [
      {
        name: 'hospital2 practitioner (consent)',
        token: () => signDidToken({ key: drH2.privateJwk, audience: base, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
      },
      { name: 'hospital1 practitioner (custodian)', token: h1Tok },
    ];
    const rows: SearchRow[] = [];
    for (const s of scenarios) {
      for (const q of queries(rxCodes[0] ?? '')) {
        const expected = s.facts.filter(q.expected).length;
        for (const c of callers) {
          const url = `${base}/${q.type}?${q.query(s.patients.join(','))}`;
          const row: SearchRow = { scenario: s.name, query: q.name, caller: c.name, expected, n: 0, sorted: [], outcome: '' };
          log(`search: ${s.name}, ${q.name}, ${c.name}`);
          const budgetEnd = Date.now() + ROW_SECONDS * 1000;
          for (let i = 0; i <= SEARCHES; i++) {
            const token = c.token();
            const t0 = process.hrtime.bigint();
            const r = await call(url, 'GET', token);
            const elapsed = ms(t0);
            if (r.status !== 200) {
              const d = diagnostics(r);
              if (r.status === 400 && q.feature) row.outcome = `not supported (400: ${d})`;
              else if (r.status === 400) {
                row.outcome = `refused (400: ${d})`;
                findings.push(`${s.name}, ${q.name} (${expected} matching), ${c.name}: refused, 400 "${d}"`);
              } else row.outcome = `failed (${r.status}: ${d})`;
              break;
            }
            const entries = (r.body as { total?: number; entry?: Array<{ search?: { mode?: string } }> }).entry ?? [];
            row.total = (r.body as { total?: number }).total;
            row.page = entries.filter((e) => e.search?.mode !== 'include').length;
            row.included = entries.filter((e) => e.search?.mode === 'include').length;
            if (i > 0) row.sorted.push(elapsed); // i = 0 is the warm-up
            if (i >= 3 && Date.now() > budgetEnd) break;
          }
          row.n = row.sorted.length;
          row.sorted.sort((a, b) => a - b);
          if (row.outcome === '' && row.total !== expected) findings.push(`${s.name}, ${q.name}, ${c.name}: total ${row.total ?? '?'} but ${expected} generated match`);
          rows.push(row);
        }
      }
    }

    await h1.gateway.close();
    h1 = undefined;

    // --- The same queries on the store alone (the gateway stopped): the index lookup, no consent ---
    const storeP50 = new Map<string, string>();
    const store = new SqliteStore(path.join(dataDir, 'hdx.db'));
    try {
      for (const s of scenarios) {
        for (const q of queries(rxCodes[0] ?? '')) {
          const raw: Record<string, string[]> = {};
          for (const [k, v] of new URLSearchParams(q.query('x'))) if (k !== 'patient') (raw[k] ??= []).push(v);
          let criteria: ReturnType<typeof searchCriteria>;
          try {
            criteria = searchCriteria(q.type, raw);
          } catch {
            storeP50.set(`${s.name}\u0000${q.name}`, 'not supported');
            continue;
          }
          const times: number[] = [];
          let found = 0;
          const until = Date.now() + 10_000;
          for (let i = 0; i <= SEARCHES && (i < 3 || Date.now() < until); i++) {
            const t0 = process.hrtime.bigint();
            found = (await store.search({ resourceType: q.type, patientIds: s.patients, criteria, limit: CANDIDATE_LIMIT + 1 })).length;
            if (i > 0) times.push(ms(t0));
          }
          times.sort((a, b) => a - b);
          storeP50.set(`${s.name}\u0000${q.name}`, `${f1(percentile(times, 50))} ms (${found > CANDIDATE_LIMIT ? `> ${CANDIDATE_LIMIT}` : found} rows)`);
        }
      }
    } finally {
      store.close();
    }

    // --- The tables ---
    const stamp = `${new Date().toISOString().slice(0, 16)}Z`;
    const searchTable = rows.map((r) => [
      r.scenario,
      r.query,
      r.caller,
      String(r.expected),
      r.outcome === '' ? `${f1(percentile(r.sorted, 50))} ms` : '-',
      r.outcome === '' ? `${f1(percentile(r.sorted, 99))} ms` : '-',
      r.outcome === '' ? String(r.n) : '-',
      storeP50.get(`${r.scenario}\u0000${r.query}`) ?? '-',
      r.outcome === '' ? `total ${r.total ?? '?'}, page ${r.page ?? '?'}${r.included ? ` + ${r.included} included` : ''}` : r.outcome,
    ]);
    printGrid(
      `HDX FHIR-engine benchmark (issue 10), ${stamp}: 1. search with consent enforced`,
      ['set', 'query', 'caller', 'matches', 'p50', 'p99', 'n', 'store alone p50', 'released / outcome'],
      searchTable,
    );

    const perThousand = (bytes: number, n: number): string => (n > 0 ? `${(bytes / n / 1000).toFixed(1)} MB per 1,000 resources` : '-');
    const indexRows: string[][] = [
      [
        'index entries (indexEntriesOf)',
        `synthetic mix, ${int(all.length)} resources`,
        `${f3(mixCost.msPer)} ms/resource`,
        `${mixCost.entriesPer.toFixed(1)} entries/resource`,
        [...mixCost.byType].map(([t, v]) => `${t} ${(v.entries / v.n).toFixed(1)}`).join(', '),
      ],
    ];
    if (syntheaCost && syntheaResult)
      indexRows.push([
        'index entries (indexEntriesOf)',
        `Synthea population, ${int(syntheaResult.resources.length)} resources`,
        `${f3(syntheaCost.msPer)} ms/resource`,
        `${syntheaCost.entriesPer.toFixed(1)} entries/resource`,
        `${syntheaCost.byType.size} types; most entries: ${[...syntheaCost.byType]
          .sort((a, b) => b[1].entries / b[1].n - a[1].entries / a[1].n)
          .slice(0, 3)
          .map(([t, v]) => `${t} ${(v.entries / v.n).toFixed(1)}`)
          .join(', ')}`,
      ]);
    indexRows.push([
      'store size (SQLite hdx.db)',
      `synthetic load, ${int(all.length)} resources`,
      perThousand(afterLoadBytes - beforeLoadBytes, all.length),
      `${(afterLoadBytes / 1e6).toFixed(1)} MB total at the end`,
      `growth over the load (${((afterLoadBytes - beforeLoadBytes) / 1e6).toFixed(1)} MB), WAL checkpointed first; includes the index rows, anchors' local state and the outbox`,
    ]);
    if (syntheaResult) {
      const loaded = syntheaResult.files.reduce((a, f) => a + f.loaded, 0);
      indexRows.push([
        'store size (SQLite hdx.db)',
        `Synthea load, ${int(loaded)} resources accepted`,
        perThousand(afterSyntheaBytes - freshBytes, loaded),
        `${(afterSyntheaBytes / 1e6).toFixed(1)} MB after it`,
        'growth over the Synthea load into the fresh store',
      ]);
    }
    indexRows.push([
      'synthetic load (POST /fhir)',
      `${Math.ceil(all.length / MAX_BUNDLE)} transaction Bundles of ≤ ${MAX_BUNDLE}`,
      `${int(all.length / loadSeconds)} resources/s`,
      `${loadSeconds.toFixed(1)} s`,
      'one client, one Bundle after the other, each anchored in one ledger transaction',
    ]);
    printGrid('2. index cost per write and store size', ['measure', 'over', 'cost', 'per resource / total', 'detail'], indexRows);

    if (syntheaResult) {
      const res = syntheaResult;
      const total = res.files.reduce((a, f) => a + f.entries, 0);
      const loaded = res.files.reduce((a, f) => a + f.loaded, 0);
      const accepted = res.files.filter((f) => f.status === 200 && f.problem === '').length;
      printGrid(
        `3. Synthea 3.3.0 population (seed ${SYNTHEA_SEED}, ${SYNTHEA_PATIENTS} patient(s)) through POST /fhir, fresh store`,
        ['server', 'resources loaded / total', 'bundles accepted / total', 'rate', 'time'],
        [
          [
            'HDX hospital1 gateway',
            `${int(loaded)} / ${int(total)}`,
            `${accepted} / ${res.files.length}`,
            `${f1(loaded / res.seconds)} resources/s (accepted only)`,
            `${res.seconds.toFixed(1)} s`,
          ],
          typeof hapiLoad === 'object'
            ? [
                `HAPI FHIR JPA ${HAPI_VERSION} (H2, fresh)`,
                `${int(hapiLoad.loaded)} / ${int(hapiLoad.total)}`,
                `${hapiLoad.accepted} / ${hapiLoad.bundles}`,
                `${f1(hapiLoad.loaded / hapiLoad.seconds)} resources/s (accepted only)`,
                `${hapiLoad.seconds.toFixed(1)} s`,
              ]
            : [`HAPI: not run (${hapiLoad ?? 'no Synthea files'})`, '-', '-', '-', '-'],
        ],
      );
      if (typeof hapiLoad === 'object') for (const p of hapiLoad.problems) findings.push(`HAPI Synthea load: ${p}`);
      printGrid(
        'Synthea bundles',
        ['bundle', 'type', 'entries', 'status', 'loaded', 'time', 'problem'],
        res.files.map((f) => [f.name, f.type, String(f.entries), String(f.status), String(f.loaded), `${f.seconds.toFixed(1)} s`, f.problem || '-']),
      );
    } else {
      process.stdout.write(`\n3. Synthea population: not run: ${syntheaBlocked ?? 'unknown'}\n`);
    }

    const cpu = os.cpus();
    printTable('settings', [
      [
        'network',
        `${options.orderers} Raft orderer(s), BatchTimeout ${options.batchTimeout}, MaxMessageCount ${options.maxMessageCount}, endorsement MAJORITY of 3 orgs, TLS, native processes, ports ${portBase}..${Number(portBase) + 109}`,
      ],
      ['gateway', `hospital1, in this Node process (the client shares its event loop), SQLite store, audit mode ${auditMode}, log level warn`],
      [
        'data',
        `${int(RESOURCES)} resources of 1 patient + ${int(RESOURCES)} over ${PATIENTS} patients (80 % Observation of 20 LOINC codes, 15 % MedicationRequest (20 % active) of ${MEDICATIONS} Medications, 5 % Condition; dated over 2024–2025), + ${nPatients} Patients, ${MEDICATIONS} Medications`,
      ],
      [
        'search callers',
        'hospital2: a practitioner DID token (fresh per search, signed before the clock starts) at hospital1’s gateway, under each patient’s consent (permit Hospital2MSP, TREAT); hospital1: a practitioner IdP token with its DID',
      ],
      [
        'search',
        `GET /fhir/<Type>?patient=<id[,id…]>&…, one client, ${SEARCHES} timed searches per row after 1 warm-up (fewer if a row passes ${ROW_SECONDS} s, at least 3); default _count (20): "page" counts the matches returned, "total" what the caller may see; consent is decided once per (patient, access class) and the store pages the permitted classes, so a search may match any number (chains and includes are capped at ${CANDIDATE_LIMIT} candidates per level)`,
      ],
      ['date range', `date=ge${RANGE.ge}&date=lt${RANGE.lt}`],
      [
        'store alone',
        `the same query's index lookup (SqliteStore.search with the gateway's criteria, limit ${CANDIDATE_LIMIT + 1}) after the gateway stopped, same file, no HTTP, no consent, no audit: the part of the search that is not enforcement`,
      ],
      [
        'Synthea',
        `3.3.0 from Maven Central, seed ${SYNTHEA_SEED} (-s, -cs), reference date 2024-01-01, ${SYNTHEA_PATIENTS} alive patients, Massachusetts; cached in ~/.cache/hdx/`,
      ],
      [
        'HAPI FHIR JPA',
        typeof hapiLoad === 'object'
          ? `${HAPI_VERSION} (bench/hapi: hapi-fhir-jpaserver-base, H2 file database, no validation, no subscriptions, default search parameters), java -Xmx${hapiLoad.heap}, 127.0.0.1; started after HDX's Synthea load (ready in ${hapiLoad.startSeconds.toFixed(0)} s), the same files POSTed to /fhir in the same order by one client, stopped before the searches`
          : `not run (${hapiLoad ?? 'no Synthea files'})`,
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
      ['network up (binaries cached, fresh state)', `${(upMs / 1000).toFixed(1)} s`],
      ['whole run', `${((Date.now() - runStart) / 1000).toFixed(0)} s (including network up and down)`],
      ...findings.map((n, i): [string, string] => [`finding ${i + 1}`, n]),
      ...notes.map((n, i): [string, string] => [`note ${i + 1}`, n]),
    ]);
  } finally {
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
