import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import express, { type RequestHandler } from 'express';
import { ResourceService } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import type { ResourceStore } from '../store/store';
import { asCaller, fakeAuthenticate } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { type MiniFhirServer, startMiniFhirServer } from '../test-support/mini-fhir-server';
import { CustodianIds } from '../store/custodian-ids';
import { rewriteEhrReferences } from './ingest-service';
import { readState, sync, syncOrder, typesOffered } from './sync';
import { testApp } from '../test-support/test-app';

const DR = `did:hdx:${'a'.repeat(43)}`;
/** The unit tests' fake auth reads the caller from the bearer token here. */
const TOKEN = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' })[1];
const bearerAsTestAuth: RequestHandler = (req, res, next) => {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) req.headers['x-test-auth'] = auth.slice(7);
  fakeAuthenticate(req, res, next);
};

interface Env {
  ehr: MiniFhirServer;
  gatewayBase: string;
  store: ResourceStore;
  ledger: FakeLedger;
  /** The gateway's keyed ids (its custodian secret): the local id of an EHR resource. */
  ids: CustodianIds;
  stateFile: string;
  /** Fails the next `n` ingestion requests with 503 (the gateway or ledger down). */
  failNext(n: number): void;
  close(): Promise<void>;
}

async function setup(): Promise<Env> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-sync-'));
  const store = testStore(path.join(dir, 'hdx.db'));
  const ledger = new FakeLedger();
  const log = newLogger('silent');
  const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
  const ids = new CustodianIds(Buffer.alloc(32, 9), ':memory:');
  let failures = 0;
  const outer = express();
  outer.use('/ingest', (_req, res, next) => {
    if (failures > 0) {
      failures--;
      res.status(503).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'down for the test' }] });
      return;
    }
    next();
  });
  const server: Server = createServer(outer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const gatewayBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  outer.use(testApp({ store, ledger, log, resources, baseUrl: gatewayBase, ids, authenticate: bearerAsTestAuth }).app);
  const ehr = await startMiniFhirServer();
  return {
    ehr,
    gatewayBase,
    store,
    ledger,
    ids,
    stateFile: path.join(dir, 'state.json'),
    failNext: (n) => {
      failures = n;
    },
    close: async () => {
      await ehr.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
      ids.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const T1 = '2026-01-01T10:00:00.000Z';
function seed(env: Env): void {
  for (const p of ['p1', 'p2']) env.ehr.put({ resourceType: 'Patient', id: p, name: [{ family: `Family-${p}` }] }, T1);
  // Five Observations sharing one lastUpdated (a bulk load): page boundaries split them.
  for (let i = 0; i < 5; i++) {
    env.ehr.put(
      { resourceType: 'Observation', id: `o${i}`, status: 'final', code: { text: 'pulse' }, subject: { reference: `Patient/p${(i % 2) + 1}` }, valueInteger: 60 + i },
      T1,
    );
  }
}

describe('hdx sync (mini FHIR server → gateway with a fake ledger)', () => {
  let env: Env;
  beforeEach(async () => {
    env = await setup();
    seed(env);
  });
  afterEach(async () => env.close());

  const run = () => sync({ ehr: env.ehr.baseUrl, gateway: env.gatewayBase, types: ['Observation', 'Patient'], stateFile: env.stateFile, pageSize: 2, gatewayToken: () => TOKEN });
  const versions = (type: string): Promise<number[]> =>
    Promise.all(
      ['p1', 'p2', 'o0', 'o1', 'o2', 'o3', 'o4']
        .filter((id) => (type === 'Patient' ? id.startsWith('p') : id.startsWith('o')))
        .map(async (id) => (await env.store.history(type, env.ids.ehrLocalId(env.ehr.baseUrl, type, id))).length),
    );

  it('pulls everything (Patients first), with stable local ids and rewritten references; a second run changes nothing', async () => {
    const first = await run();
    expect(first.resources).to.equal(7);
    expect(first.created).to.equal(7);
    expect(await versions('Patient')).to.deep.equal([1, 1]);
    expect(await versions('Observation')).to.deep.equal([1, 1, 1, 1, 1]);
    const o0 = JSON.parse((await env.store.readCurrent('Observation', env.ids.ehrLocalId(env.ehr.baseUrl, 'Observation', 'o0')))?.content ?? '{}') as {
      subject: { reference: string };
      meta: { source: string };
    };
    expect(o0.subject.reference).to.equal(`Patient/${env.ids.ehrLocalId(env.ehr.baseUrl, 'Patient', 'p1')}`);
    expect(o0.meta.source).to.equal(`${env.ehr.baseUrl}/Observation/o0`);
    expect(env.ehr.searches[0]).to.match(/^\/fhir\/Patient\?/);
    const anchors = env.ledger.anchors.size;

    const second = await run();
    expect(second.resources).to.equal(0);
    expect(env.ledger.anchors.size).to.equal(anchors);
    expect(env.ehr.searches.at(-1)).to.contain(`_lastUpdated=ge${encodeURIComponent(T1)}`);
  });

  it('incremental: only what changed is pushed, and gets a new version', async () => {
    await run();
    env.ehr.put(
      { resourceType: 'Observation', id: 'o3', status: 'final', code: { text: 'pulse' }, subject: { reference: 'Patient/p2' }, valueInteger: 99 },
      '2026-01-02T00:00:00.000Z',
    );
    env.ehr.put(
      { resourceType: 'Observation', id: 'o9', status: 'final', code: { text: 'pulse' }, subject: { reference: 'Patient/p1' }, valueInteger: 70 },
      '2026-01-02T00:00:00.000Z',
    );
    const next = await run();
    expect(next).to.include({ resources: 2, created: 1, updated: 1, unchanged: 0 });
    expect(await versions('Observation')).to.deep.equal([1, 1, 1, 2, 1]);
  });

  it('a failure midway leaves a checkpoint after the last acknowledged page; the rerun resumes and ends with every resource once', async () => {
    env.failNext(0);
    // Patients (1 page of 2) go through, then the first Observation page fails.
    let pushes = 0;
    const failing = sync({
      ehr: env.ehr.baseUrl,
      gateway: env.gatewayBase,
      types: ['Patient', 'Observation'],
      stateFile: env.stateFile,
      pageSize: 2,
      gatewayToken: () => {
        pushes++;
        if (pushes === 3) env.failNext(1);
        return TOKEN;
      },
    });
    await failing.then(
      () => expect.fail('the sync should have failed'),
      (err: Error) => expect(err.message).to.match(/HTTP 503/),
    );
    const state = readState(env.stateFile, env.ehr.baseUrl);
    expect(state.types.Patient?.since).to.equal(T1);
    expect(state.types.Observation?.run?.next).to.match(/_offset=2/);
    const resumed = await run();
    expect(resumed.resources).to.equal(3);
    expect(await versions('Patient')).to.deep.equal([1, 1]);
    expect(await versions('Observation')).to.deep.equal([1, 1, 1, 1, 1]);
    expect(env.ledger.anchors.size).to.equal(7);
  });

  it('the local ids are keyed by the gateway (the sync client sends EHR ids and never holds the secret)', async () => {
    await run();
    const other = new CustodianIds(Buffer.alloc(32, 10), ':memory:');
    const id = env.ids.ehrLocalId(env.ehr.baseUrl, 'Patient', 'p1');
    expect(await env.store.readCurrent('Patient', id)).to.not.equal(undefined);
    expect(other.ehrLocalId(env.ehr.baseUrl, 'Patient', 'p1')).to.not.equal(id);
    other.close();
  });

  it('--types all: every type the EHR offers that the gateway holds (not Consent), reference data first, then Patients, then the rest', async () => {
    env.ehr.put({ resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Adeyemi' }] }, T1);
    env.ehr.put({ resourceType: 'Organization', id: 'org1', name: 'General' }, T1);
    env.ehr.put(
      {
        resourceType: 'Encounter',
        id: 'e1',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject: { reference: 'Patient/p1' },
        participant: [{ individual: { reference: 'Practitioner/dr1' } }],
        serviceProvider: { reference: 'Organization/org1' },
      },
      T1,
    );
    const lines: string[] = [];
    const summary = await sync({
      ehr: env.ehr.baseUrl,
      gateway: env.gatewayBase,
      types: 'all',
      stateFile: env.stateFile,
      pageSize: 50,
      gatewayToken: () => TOKEN,
      progress: (l) => lines.push(l),
    });
    expect(summary.resources).to.equal(10);
    expect(summary.created).to.equal(10);
    expect(lines[0]).to.equal('the EHR offers 5 types held here: Organization, Practitioner, Patient, Encounter, Observation');
    expect(env.ehr.searches.map((u) => /^\/fhir\/([A-Za-z]+)\?/.exec(u)?.[1])).to.deep.equal(['Organization', 'Practitioner', 'Patient', 'Encounter', 'Observation']);
    const encounter = JSON.parse((await env.store.readCurrent('Encounter', env.ids.ehrLocalId(env.ehr.baseUrl, 'Encounter', 'e1')))?.content ?? '{}') as {
      participant: Array<{ individual: { reference: string } }>;
    };
    expect(encounter.participant[0]?.individual.reference).to.equal(`Practitioner/${env.ids.ehrLocalId(env.ehr.baseUrl, 'Practitioner', 'dr1')}`);
    expect(await env.store.readCurrent('Practitioner', env.ids.ehrLocalId(env.ehr.baseUrl, 'Practitioner', 'dr1'))).to.not.equal(undefined);
  });

  it('syncOrder and typesOffered: reference data, Patients, the rest; a server without a CapabilityStatement is a clear error', () => {
    expect(syncOrder(['Observation', 'Patient', 'Medication', 'Claim', 'Location'])).to.deep.equal(['Medication', 'Location', 'Patient', 'Observation', 'Claim']);
    expect(() => typesOffered({ resourceType: 'OperationOutcome' })).to.throw(/name the types with --types/);
    expect(() => typesOffered({ resourceType: 'CapabilityStatement', rest: [{ mode: 'server', resource: [{ type: 'Consent' }] }] })).to.throw(
      /no resource type this gateway holds/,
    );
  });

  it("rewrites only references to the EHR's own resources", () => {
    const base = 'https://ehr.example/fhir';
    const localIdOf = (b: string, type: string, id: string): string => env.ids.ehrLocalId(b, type, id);
    const r = {
      a: { reference: 'Patient/1' },
      b: { reference: `${base}/Encounter/2/_history/3` },
      c: { reference: '#c1' },
      d: { reference: 'https://other.example/fhir/Patient/1' },
      e: [{ reference: 'urn:uuid:x' }],
    };
    rewriteEhrReferences(r, base, (type, id) => localIdOf(base, type, id));
    expect(r.a.reference).to.equal(`Patient/${localIdOf(base, 'Patient', '1')}`);
    expect(r.b.reference).to.equal(`Encounter/${localIdOf(base, 'Encounter', '2')}`);
    expect(r.c.reference).to.equal('#c1');
    expect(r.d.reference).to.equal('https://other.example/fhir/Patient/1');
    expect(r.e[0]?.reference).to.equal('urn:uuid:x');
  });
});
