/**
 * Bulk Data $export over HTTP (fake ledger): kick-off, polling, the manifest, NDJSON files, DELETE, and
 * the rules: every exported resource goes through the enforcement point (consent for each, one access
 * entry per patient), a job is its starter's alone (404 to anyone else), and who may export.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { ExportService } from '../fhir/operations/export';
import { DID_IDENTIFIER_SYSTEM, ResourceService } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { poster, registerAll } from '../test-support/http-fixture';

const FHIR = 'application/fhir+json';
const BASE = 'http://127.0.0.1:8080/fhir';
const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
/** A practitioner of the custodian whom Alice's consent keeps from her Conditions. */
const LIMITED = did('l');
const SYSTEM = did('s');
const ALICE = did('a');
const BOB = did('b');
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const limited = asCaller({ did: LIMITED, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.read' });
const system = asCaller({ did: SYSTEM, role: 'system', organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'system/*.read' });
const alice = asCaller({ did: ALICE, role: 'patient', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
const ASYNC = ['prefer', 'respond-async'] as const;

type Manifest = {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: Array<{ type: string; url: string; count: number }>;
  error: unknown[];
};

async function setup(opts: { pageSize?: number } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-export-'));
  const store = testStore();
  const ledger = new FakeLedger();
  ledger.decide = (req, anchor) => {
    const patient = anchor?.patient ?? req.patient;
    if (req.actor === patient) return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass: false };
    // Alice's consent keeps LIMITED from her Conditions: he sees the rest of her record.
    if (req.actor === LIMITED && anchor?.resourceType === 'Condition' && patient === ALICE)
      return { decision: 'deny', consents: ['c-alice'], reason: 'consent-deny', breakGlass: false };
    if (req.actorOrganization === (anchor?.custodian ?? req.custodian) && req.purpose === 'TREAT')
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
  };
  await registerAll(ledger, [
    [DR, 'practitioner'],
    [LIMITED, 'practitioner'],
    [SYSTEM, 'system'],
    [ALICE, 'patient'],
    [BOB, 'patient'],
  ]);
  const log = newLogger('silent');
  const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
  const exports = new ExportService({ resources, dir, log, baseUrl: BASE, ...(opts.pageSize ? { pageSize: opts.pageSize } : {}) });
  const { app } = testApp({ store, ledger, resources, exports, baseUrl: BASE, idpIssuer: 'https://idp.hospital1.example' });
  const post = poster(app, staff);
  const aliceId = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
  const bobId = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: BOB }] });
  const med = await post({ resourceType: 'Medication', code: { text: 'aspirin' } });
  const enc = (p: string) => ({
    resourceType: 'Encounter',
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${p}` },
  });
  const aliceEnc = await post(enc(aliceId));
  const bobEnc = await post(enc(bobId));
  const aliceCond = await post({ resourceType: 'Condition', code: { text: 'sensitive' }, subject: { reference: `Patient/${aliceId}` } });
  const bobCond = await post({ resourceType: 'Condition', code: { text: 'x' }, subject: { reference: `Patient/${bobId}` } });
  const group = await post({ resourceType: 'Group', type: 'person', actual: true, member: [{ entity: { reference: `Patient/${aliceId}` } }] });

  /** Kicks off, polls to the end, returns the manifest. */
  const run = async (url: string, as: readonly [string, string]): Promise<{ status: string; manifest: Manifest }> => {
    const kick = await request(app)
      .get(url)
      .set(...as)
      .set(...ASYNC);
    expect(kick.status, JSON.stringify(kick.body)).to.equal(202);
    const status = String(kick.headers['content-location']);
    expect(status.startsWith(`${BASE}/$export-status/`)).to.equal(true);
    for (let i = 0; i < 200; i++) {
      const poll = await request(app)
        .get(status.slice(BASE.length - '/fhir'.length))
        .set(...as);
      if (poll.status === 200) return { status, manifest: poll.body as Manifest };
      expect(poll.status, JSON.stringify(poll.body)).to.equal(202);
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('export did not finish');
  };
  /** The resources of one output file, as `Type/id`. */
  const fetchFile = async (url: string, as: readonly [string, string]): Promise<string[]> => {
    const res = await request(app)
      .get(url.slice(BASE.length - '/fhir'.length))
      .set(...as)
      .buffer(true)
      .parse((r, cb) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString('utf8')));
        r.on('end', () => cb(null, text));
      });
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^application\/fhir\+ndjson/);
    return (res.body as string)
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const r = JSON.parse(l) as { resourceType: string; id: string };
        return `${r.resourceType}/${r.id}`;
      });
  };
  /** Every exported resource of a manifest, sorted. */
  const everything = async (m: Manifest, as: readonly [string, string]): Promise<string[]> => (await Promise.all(m.output.map((o) => fetchFile(o.url, as)))).flat().sort();
  return { app, dir, ledger, exports, run, fetchFile, everything, aliceId, bobId, med, aliceEnc, bobEnc, aliceCond, bobCond, group };
}

describe('Bulk Data $export (HTTP)', () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.exports.close();
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  });

  it('exports everything the custodian holds at the system level, one NDJSON file per type, with a manifest', async () => {
    const { manifest } = await ctx.run('/fhir/$export?_type=Patient,Encounter,Condition,Medication', system);
    expect(manifest.requiresAccessToken).to.equal(true);
    expect(manifest.request).to.equal(`${BASE}/$export?_type=Patient,Encounter,Condition,Medication`);
    expect(Number.isNaN(Date.parse(manifest.transactionTime))).to.equal(false);
    expect(manifest.error).to.deep.equal([]);
    expect(manifest.output.map((o) => `${o.type}:${o.count}`).sort()).to.deep.equal(['Condition:2', 'Encounter:2', 'Medication:1', 'Patient:2']);
    for (const o of manifest.output) expect(o.url).to.match(new RegExp(`^${BASE.replace(/[./]/g, '\\$&')}/\\$export-file/[0-9a-f-]{36}/${o.type}\\.ndjson$`));
    expect(await ctx.everything(manifest, system)).to.deep.equal(
      [
        `Patient/${ctx.aliceId}`,
        `Patient/${ctx.bobId}`,
        `Encounter/${ctx.aliceEnc}`,
        `Encounter/${ctx.bobEnc}`,
        `Condition/${ctx.aliceCond}`,
        `Condition/${ctx.bobCond}`,
        `Medication/${ctx.med}`,
      ].sort(),
    );
  });

  it('leaves out what the caller may not see, and records one $export access entry per patient for what it released', async () => {
    const before = ctx.ledger.audit.length;
    const { manifest } = await ctx.run('/fhir/Patient/$export', limited);
    const exported = await ctx.everything(manifest, limited);
    // Alice's consent keeps her Condition from this practitioner: the rest of her record is exported.
    expect(exported).to.include(`Encounter/${ctx.aliceEnc}`);
    expect(exported).to.include(`Patient/${ctx.aliceId}`);
    expect(exported).not.to.include(`Condition/${ctx.aliceCond}`);
    expect(exported).to.include(`Condition/${ctx.bobCond}`);
    // Patient-level: the patients' own data only, no reference data.
    expect(exported).not.to.include(`Medication/${ctx.med}`);
    expect(manifest.output.find((o) => o.type === 'Condition')?.count).to.equal(1);
    const entries = ctx.ledger.audit.slice(before).filter((e) => e.subtype === '$export');
    expect(entries.length).to.be.greaterThan(0);
    expect(entries.every((e) => e.actor === LIMITED && e.decision === 'permit')).to.equal(true);
    const recorded = entries.flatMap((e) => e.resources.map((r) => r.replace(/\/_history\/\d+$/, '')));
    expect(recorded.sort()).to.deep.equal([...exported].sort());
    // One entry per patient (per page, as search records them): each names only that patient's records.
    const ofPatient = (d: string): string[] =>
      entries
        .filter((e) => e.patient === d)
        .flatMap((e) => e.resources.map((r) => r.replace(/\/_history\/\d+$/, '')))
        .sort();
    expect(ofPatient(ALICE)).to.deep.equal([`Encounter/${ctx.aliceEnc}`, `Group/${ctx.group}`, `Patient/${ctx.aliceId}`].sort());
    expect(ofPatient(BOB)).to.deep.equal([`Condition/${ctx.bobCond}`, `Encounter/${ctx.bobEnc}`, `Patient/${ctx.bobId}`].sort());
  });

  it('pages through more candidates than a page holds (keyset paging) without losing or repeating any', async () => {
    await ctx.exports.close();
    fs.rmSync(ctx.dir, { recursive: true, force: true });
    ctx = await setup({ pageSize: 1 });
    const { manifest } = await ctx.run('/fhir/$export?_type=Patient,Condition', system);
    expect(await ctx.everything(manifest, system)).to.deep.equal(
      [`Patient/${ctx.aliceId}`, `Patient/${ctx.bobId}`, `Condition/${ctx.aliceCond}`, `Condition/${ctx.bobCond}`].sort(),
    );
  });

  it('gives a patient its own records only, and refuses it the system level and Group export', async () => {
    const { manifest } = await ctx.run('/fhir/Patient/$export', alice);
    const exported = await ctx.everything(manifest, alice);
    expect(exported).to.deep.equal([`Condition/${ctx.aliceCond}`, `Encounter/${ctx.aliceEnc}`, `Group/${ctx.group}`, `Patient/${ctx.aliceId}`].sort());
    // A patient whose DID another member registered exports its own records here too.
    const elsewhere = asCaller({ did: ALICE, role: 'patient', organization: 'Hospital2MSP', purpose: 'PATRQT', scope: 'patient/*.read', tokenKind: 'did' });
    const other = await ctx.run('/fhir/Patient/$export?_type=Patient,Condition', elsewhere);
    expect(await ctx.everything(other.manifest, elsewhere)).to.deep.equal([`Condition/${ctx.aliceCond}`, `Patient/${ctx.aliceId}`].sort());
    for (const url of ['/fhir/$export', `/fhir/Group/${ctx.group}/$export`]) {
      const res = await request(ctx.app)
        .get(url)
        .set(...alice)
        .set(...ASYNC);
      expect(res.status, url).to.equal(403);
      expect(res.body.resourceType).to.equal('OperationOutcome');
    }
  });

  it("exports a Group's member patients only, and answers 404 for a Group that is not there", async () => {
    const { manifest } = await ctx.run(`/fhir/Group/${ctx.group}/$export?_type=Patient,Condition`, staff);
    expect(await ctx.everything(manifest, staff)).to.deep.equal([`Condition/${ctx.aliceCond}`, `Patient/${ctx.aliceId}`].sort());
    const missing = await request(ctx.app)
      .get('/fhir/Group/no-such-group/$export')
      .set(...staff)
      .set(...ASYNC);
    expect(missing.status).to.equal(404);
  });

  it("exports a Group of several patients (each one's consents govern the Group itself): every member's records", async () => {
    const pair = await poster(
      ctx.app,
      staff,
    )({
      resourceType: 'Group',
      type: 'person',
      actual: true,
      member: [{ entity: { reference: `Patient/${ctx.aliceId}` } }, { entity: { reference: `Patient/${ctx.bobId}` } }],
    });
    const anchor = [...ctx.ledger.anchors.values()].find((a) => a.resourceType === 'Group' && a.id === pair);
    expect(anchor?.patient).to.equal(ALICE);
    expect(anchor?.coPatients).to.deep.equal([BOB]);
    const { manifest } = await ctx.run(`/fhir/Group/${pair}/$export?_type=Patient,Condition,Group`, staff);
    expect(await ctx.everything(manifest, staff)).to.deep.equal(
      [`Condition/${ctx.aliceCond}`, `Condition/${ctx.bobCond}`, `Group/${ctx.group}`, `Group/${pair}`, `Patient/${ctx.aliceId}`, `Patient/${ctx.bobId}`].sort(),
    );
    // Alice alone may export her own compartment: the pair is in it, but Bob's consent is needed too.
    const { manifest: hers } = await ctx.run('/fhir/Patient/$export?_type=Group', alice);
    expect(await ctx.everything(hers, alice)).to.deep.equal([`Group/${ctx.group}`]);
  });

  it("answers 404 to anyone but the job's starter, for its status, its files and its deletion", async () => {
    const { status, manifest } = await ctx.run('/fhir/$export?_type=Patient', staff);
    const statusPath = status.slice(BASE.length - '/fhir'.length);
    const filePath = String(manifest.output[0]?.url).slice(BASE.length - '/fhir'.length);
    for (const other of [limited, alice, system]) {
      expect(
        (
          await request(ctx.app)
            .get(statusPath)
            .set(...other)
        ).status,
      ).to.equal(404);
      expect(
        (
          await request(ctx.app)
            .get(filePath)
            .set(...other)
        ).status,
      ).to.equal(404);
      expect(
        (
          await request(ctx.app)
            .delete(statusPath)
            .set(...other)
        ).status,
      ).to.equal(404);
    }
    expect((await request(ctx.app).get(statusPath)).status).to.equal(401);
    // Still there for its owner.
    expect(
      (
        await request(ctx.app)
          .get(statusPath)
          .set(...staff)
      ).status,
    ).to.equal(200);
  });

  it('DELETE removes the job and its files (202), after which status and files are 404', async () => {
    const { status, manifest } = await ctx.run('/fhir/$export?_type=Patient', staff);
    const statusPath = status.slice(BASE.length - '/fhir'.length);
    const jobId = statusPath.split('/').pop() as string;
    const jobDir = path.join(ctx.dir, jobId);
    expect(fs.statSync(jobDir).mode & 0o777).to.equal(0o700);
    for (const f of fs.readdirSync(jobDir)) expect(fs.statSync(path.join(jobDir, f)).mode & 0o777, f).to.equal(0o600);
    const del = await request(ctx.app)
      .delete(statusPath)
      .set(...staff);
    expect(del.status).to.equal(202);
    expect(fs.existsSync(jobDir)).to.equal(false);
    expect(
      (
        await request(ctx.app)
          .get(statusPath)
          .set(...staff)
      ).status,
    ).to.equal(404);
    expect(
      (
        await request(ctx.app)
          .get(String(manifest.output[0]?.url).slice(BASE.length - '/fhir'.length))
          .set(...staff)
      ).status,
    ).to.equal(404);
  });

  it('answers 202 with X-Progress and Retry-After while the job runs', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const evaluate = ctx.ledger.evaluateAccess.bind(ctx.ledger);
    ctx.ledger.evaluateAccess = async (req) => {
      await gate;
      return evaluate(req);
    };
    const kick = await request(ctx.app)
      .get('/fhir/$export?_type=Patient')
      .set(...staff)
      .set(...ASYNC);
    expect(kick.status).to.equal(202);
    const statusPath = String(kick.headers['content-location']).slice(BASE.length - '/fhir'.length);
    const poll = await request(ctx.app)
      .get(statusPath)
      .set(...staff);
    expect(poll.status).to.equal(202);
    expect(poll.headers['x-progress']).to.be.a('string');
    expect(poll.headers['retry-after']).to.equal('5');
    // One running job per caller.
    const second = await request(ctx.app)
      .get('/fhir/$export?_type=Patient')
      .set(...staff)
      .set(...ASYNC);
    expect(second.status).to.equal(429);
    release();
    for (let i = 0; i < 200; i++) {
      const p = await request(ctx.app)
        .get(statusPath)
        .set(...staff);
      if (p.status === 200) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('export did not finish');
  });

  it('refuses bad kick-offs with a 400 OperationOutcome naming the problem', async () => {
    const cases: Array<[string, boolean, RegExp]> = [
      ['/fhir/$export', false, /Prefer: respond-async/],
      ['/fhir/$export?_outputFormat=text/csv', true, /_outputFormat/],
      ['/fhir/$export?_type=NotAType', true, /_type/],
      ['/fhir/$export?_type=patient', true, /_type/],
      ['/fhir/Patient/$export?_type=Medication', true, /not patient data/],
      ['/fhir/$export?_since=2026-01-01', true, /_since/],
      ['/fhir/$export?_since=yesterday', true, /_since/],
      ['/fhir/$export?_typeFilter=Condition%3Fcode%3Dx', true, /_typeFilter is not supported/],
    ];
    for (const [url, prefer, message] of cases) {
      const req = request(ctx.app)
        .get(url)
        .set(...staff);
      const res = await (prefer ? req.set(...ASYNC) : req);
      expect(res.status, url).to.equal(400);
      expect(res.body.resourceType, url).to.equal('OperationOutcome');
      expect(String(res.body.issue[0].diagnostics), url).to.match(message);
    }
    const post = await request(ctx.app)
      .post('/fhir/$export')
      .set(...staff)
      .set(...ASYNC)
      .set('content-type', FHIR)
      .send({ resourceType: 'Parameters' });
    expect(post.status).to.equal(404);
    expect(String(post.body.issue[0].diagnostics)).to.match(/POST .* is not supported/);
    for (const format of ['application/fhir+ndjson', 'application/ndjson', 'ndjson']) {
      const res = await request(ctx.app)
        .get(`/fhir/$export?_type=Patient&_outputFormat=${encodeURIComponent(format)}`)
        .set(...staff)
        .set(...ASYNC);
      expect(res.status, format).to.equal(202);
      await request(ctx.app)
        .delete(String(res.headers['content-location']).slice(BASE.length - '/fhir'.length))
        .set(...staff);
    }
  });

  it('exports only what changed since _since', async () => {
    const { manifest: all } = await ctx.run('/fhir/$export?_type=Patient,Encounter', staff);
    const since = all.transactionTime;
    await new Promise((r) => setTimeout(r, 5));
    const res = await request(ctx.app)
      .put(`/fhir/Encounter/${ctx.bobEnc}`)
      .set(...staff)
      .set('content-type', FHIR)
      .send({
        resourceType: 'Encounter',
        id: ctx.bobEnc,
        status: 'cancelled',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
        subject: { reference: `Patient/${ctx.bobId}` },
      });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    const { manifest } = await ctx.run(`/fhir/$export?_type=Patient,Encounter&_since=${encodeURIComponent(since)}`, staff);
    expect(await ctx.everything(manifest, staff)).to.deep.equal([`Encounter/${ctx.bobEnc}`]);
  });

  it('refuses who may not export: another member, a delegated request, break-glass, an auditor, a token without read scopes', async () => {
    const refused: Array<[string, [string, string]]> = [
      ['/fhir/$export', asCaller({ did: did('o'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read', tokenKind: 'did' })],
      ['/fhir/Patient/$export', asCaller({ did: did('o'), organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read', viaOrganization: did('g') })],
      ['/fhir/$export', asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'ETREAT', breakGlassReason: 'x', scope: 'user/*.read' })],
      ['/fhir/$export', asCaller({ did: did('u'), role: 'auditor', purpose: 'HCOMPL', scope: 'user/*.read' })],
      ['/fhir/$export', asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.write' })],
    ];
    for (const [url, as] of refused) {
      const res = await request(ctx.app)
        .get(url)
        .set(...as)
        .set(...ASYNC);
      expect(res.status, JSON.stringify(res.body)).to.equal(403);
    }
  });
});

describe('SMART discovery and the CapabilityStatement', () => {
  it('serves /.well-known/smart-configuration without a token, true to what the gateway accepts', async () => {
    const { app } = testApp({ store: testStore(), ledger: new FakeLedger(), baseUrl: BASE, idpIssuer: 'https://idp.hospital1.example' });
    for (const url of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
      const res = await request(app).get(url);
      expect(res.status, url).to.equal(200);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      // No token endpoint, no authorization endpoint: this gateway issues no tokens.
      expect(res.body).not.to.have.property('token_endpoint');
      expect(res.body).not.to.have.property('authorization_endpoint');
      expect(res.body.capabilities).to.have.members(['permission-patient', 'permission-user', 'permission-v1', 'permission-v2']);
      expect(res.body.scopes_supported).to.include.members(['system/*.read', 'user/*.rs', 'patient/*.read']);
      const kinds = (res.body.hdx_accepted_tokens as Array<{ kind: string; issuer: string; audience: string }>).map((t) => t.kind);
      expect(kinds).to.deep.equal(['identity-provider', 'did', 'delegated']);
      expect(res.body.hdx_accepted_tokens[0].issuer).to.equal('https://idp.hospital1.example');
      expect(res.body.hdx_accepted_tokens[1].audience).to.equal(BASE);
    }
    const without = testApp({ store: testStore(), ledger: new FakeLedger(), baseUrl: BASE }).app;
    const res = await request(without).get('/.well-known/smart-configuration');
    expect((res.body.hdx_accepted_tokens as Array<{ kind: string }>).map((t) => t.kind)).to.deep.equal(['did', 'delegated']);
  });

  it('lists the export operations in the CapabilityStatement', async () => {
    const { app } = testApp({ store: testStore(), ledger: new FakeLedger(), baseUrl: BASE });
    const res = await request(app).get('/fhir/metadata');
    const rest = res.body.rest[0] as {
      operation: Array<{ name: string; definition: string }>;
      resource: Array<{ type: string; operation: Array<{ name: string; definition: string }> }>;
    };
    expect(rest.operation.map((o) => o.definition)).to.deep.equal(['http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export']);
    const opsOf = (type: string) => rest.resource.find((r) => r.type === type)?.operation.map((o) => o.definition) ?? [];
    expect(opsOf('Patient')).to.include('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export');
    expect(opsOf('Group')).to.include('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export');
    expect(opsOf('Observation')).not.to.include('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export');
  });

  it('answers the export routes with an OperationOutcome when exports are not configured', async () => {
    const { app } = testApp({ store: testStore(), ledger: new FakeLedger(), baseUrl: BASE });
    const res = await request(app)
      .get('/fhir/$export')
      .set(...staff)
      .set(...ASYNC);
    expect(res.status).to.equal(404);
    expect(res.body.resourceType).to.equal('OperationOutcome');
  });
});
