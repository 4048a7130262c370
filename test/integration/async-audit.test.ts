/**
 * Issue 5, async audit mode, on the real network: a hospital1 gateway run as its own process
 * (`node gateway/dist/main.js`) with HDX_AUDIT_MODE=async and a flush interval long enough that the
 * access entries of reads, a search and a denied read all wait in its outbox (its creates' went to the
 * ledger with their anchors); it is killed with
 * SIGKILL, restarted, and every queued entry reaches the ledger exactly once (by entryId), the outbox
 * ending empty. Then a graceful stop (SIGTERM) drains the outbox before the process exits.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { generateDidKey, loadConfig } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { OrgClient } from '../support/ledger';
import { GatewayProcesses, type GatewayChild } from '../support/gateway-process';
import { freePort, gatewayEnv } from '../support/network';

const FAMILY = 'Vandermeulen-Ashby';

/** An access entry as the outbox holds it (hdx.audit entry input). */
interface QueuedEntry {
  entryId?: string;
  actor: string;
  action: string;
  subtype?: string;
  decision: string;
  resources?: string[];
  occurredAt?: string;
}

/** An access entry as the ledger returns it. */
interface LedgerEntry {
  entryId?: string;
  decision: string;
  action: string;
  subtype?: string;
  resources: string[];
  gateway: string;
  occurredAt: string;
  recordedAt: string;
}

function outboxRows(dataDir: string): QueuedEntry[] {
  const db = new Database(path.join(dataDir, 'outbox.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT entry FROM outbox_entry ORDER BY seq').all() as Array<{ entry: string }>).map((r) => JSON.parse(r.entry) as QueuedEntry);
  } finally {
    db.close();
  }
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('async audit mode: a gateway killed with entries in its outbox delivers them all after restart (real network, gateway as a child process)', function () {
  const gateways = new GatewayProcesses();

  let dataDir: string;
  let env: Record<string, string>;
  let gw: Gw;
  let ledger: OrgClient;
  const dr = generateDidKey();

  /** Starts the gateway process and resolves once /healthz answers 200. */
  function startChild(flushMs: number): Promise<GatewayChild> {
    return gateways.start({ ...env, HDX_AUDIT_FLUSH_MS: String(flushMs) }, gw.config.baseUrl);
  }

  async function outboxHealth(): Promise<{ ok: boolean; pending: number }> {
    const res = await call(gw, 'GET', `${gw.config.baseUrl.replace(/\/fhir$/, '')}/healthz`, undefined);
    expect(res.status, res.text).to.equal(200);
    return res.body.checks.outbox;
  }

  /** Every ledger entry with one of these entryIds (hospital1's admin reads what its MSP took part in). */
  /** The actor's entries on the ledger with these entryIds (all of them when undefined). */
  async function onLedger(entryIds: ReadonlySet<string> | undefined): Promise<LedgerEntry[]> {
    const found: LedgerEntry[] = [];
    let bookmark = '';
    do {
      const page = await ledger.evaluate<{ entries: LedgerEntry[]; bookmark: string; fetchedRecordsCount: number }>(
        'hdx.audit',
        'QueryAccess',
        JSON.stringify({ actor: dr.did, pageSize: 100, ...(bookmark ? { bookmark } : {}) }),
      );
      found.push(...page.entries.filter((e) => entryIds === undefined || (e.entryId !== undefined && entryIds.has(e.entryId))));
      bookmark = page.fetchedRecordsCount >= 100 ? page.bookmark : '';
    } while (bookmark);
    return found;
  }

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-async-gw-'));
    const port = await freePort();
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('HDX_') && v !== undefined)) as Record<string, string>;
    env = {
      ...inherited,
      ...gatewayEnv('hospital1'),
      HDX_GATEWAY_PORT: String(port),
      HDX_DATA_DIR: dataDir,
      HDX_LOG_LEVEL: 'info',
      HDX_AUDIT_MODE: 'async',
    };
    gw = { config: loadConfig(env), gateway: { url: '', port, close: async () => {} } };
    ledger = OrgClient.admin('hospital1');
  });

  after(async () => {
    await gateways.stopAll();
    ledger?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  let queued: QueuedEntry[] = [];

  it("reads, a search and a denied read leave their entries in the outbox, none on the ledger yet; the creates' are there with their anchors", async () => {
    const t0 = Date.now();
    const child = await startChild(3_600_000);
    process.stderr.write(`      (async gateway process up in ${Date.now() - t0} ms)\n`);
    await registerDid(gw, 'hospital1', 'practitioner', dr);
    const staff = staffToken(gw, 'hospital1', { did: dr.did });

    const p = await call(gw, 'POST', '/Patient', staff, { resourceType: 'Patient', name: [{ family: FAMILY, given: ['Ines'] }], birthDate: '1971-03-09' });
    expect(p.status, p.text).to.equal(201);
    const obs: string[] = [];
    for (const value of [61, 64]) {
      const o = await call(gw, 'POST', '/Observation', staff, {
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${p.body.id}` },
        effectiveDateTime: '2026-11-20T09:30:00Z',
        valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      });
      expect(o.status, o.text).to.equal(201);
      obs.push(o.body.id);
    }
    for (const url of [`/Patient/${p.body.id}`, ...obs.map((id) => `/Observation/${id}`)]) {
      const r = await call(gw, 'GET', url, staff);
      expect(r.status, r.text).to.equal(200);
    }
    const search = await call(gw, 'GET', `/Observation?patient=Patient/${p.body.id}`, staff);
    expect(search.status, search.text).to.equal(200);
    expect(search.body.total).to.equal(2);
    // The custodian's own practitioner without treatment purpose and without consent: denied, and recorded.
    const denied = await call(gw, 'GET', `/Observation/${obs[0]}`, staffToken(gw, 'hospital1', { did: dr.did, purpose: 'HRESCH' }));
    expect(denied.status, denied.text).to.equal(404);

    queued = outboxRows(dataDir);
    // 3 reads, 1 search (one entry for the patient's 2 hits), 1 denied read. The 3 creates' entries went
    // to the ledger with their anchors (one AnchorAndRecord each: the write waited for it anyway).
    expect(queued.map((e) => `${e.action}:${e.subtype}:${e.decision}`)).to.deep.equal(['R:read:permit', 'R:read:permit', 'R:read:permit', 'R:search-type:permit', 'R:read:deny']);
    expect(queued.every((e) => e.actor === dr.did && typeof e.entryId === 'string' && typeof e.occurredAt === 'string')).to.equal(true);
    expect(await outboxHealth()).to.deep.equal({ ok: true, pending: 5 });
    expect(await onLedger(new Set(queued.map((e) => e.entryId as string)))).to.have.length(0);
    const changes = (await onLedger(undefined)).filter((e) => e.action === 'C');
    expect(changes.map((e) => e.subtype)).to.deep.equal(['create', 'create', 'create']);

    child.proc.kill('SIGKILL');
    expect(await child.exited).to.deep.equal({ code: null, signal: 'SIGKILL' });
    expect(child.output.join('\n')).to.not.include(FAMILY);
  });

  it('restarted, it delivers every queued entry exactly once and its outbox ends empty', async () => {
    expect(outboxRows(dataDir).map((e) => e.entryId)).to.deep.equal(queued.map((e) => e.entryId));
    const t0 = Date.now();
    const child = await startChild(200);
    await until('an empty outbox', 60_000, async () => ((await outboxHealth()).pending === 0 ? true : undefined));
    process.stderr.write(`      (restart and delivery of ${queued.length} entries in ${Date.now() - t0} ms)\n`);
    expect(outboxRows(dataDir)).to.have.length(0);
    expect(await outboxHealth()).to.deep.equal({ ok: true, pending: 0 });

    const ids = new Set(queued.map((e) => e.entryId as string));
    const entries = await onLedger(ids);
    expect(entries.map((e) => e.entryId).sort()).to.deep.equal([...ids].sort());
    for (const q of queued) {
      const e = entries.find((x) => x.entryId === q.entryId);
      expect(e, q.entryId).to.include({ decision: q.decision, action: q.action, subtype: q.subtype, gateway: 'Hospital1MSP', occurredAt: q.occurredAt });
      expect(e?.resources).to.deep.equal(q.resources);
      expect(Date.parse(e?.occurredAt ?? '')).to.be.below(Date.parse(e?.recordedAt ?? ''));
    }

    child.proc.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    expect(child.output.join('\n')).to.not.include(FAMILY);
  });

  it('a graceful stop (SIGTERM) delivers what is queued before the process exits', async () => {
    const child = await startChild(3_600_000);
    const staff = staffToken(gw, 'hospital1', { did: dr.did });
    const search = await call(gw, 'GET', '/Patient?_count=10', staff);
    expect(search.status, search.text).to.equal(200);
    const [pending] = outboxRows(dataDir);
    expect(pending?.subtype).to.equal('search-type');
    expect(await outboxHealth()).to.deep.equal({ ok: true, pending: 1 });

    child.proc.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    expect(outboxRows(dataDir)).to.have.length(0);
    expect((await onLedger(new Set([pending?.entryId as string]))).map((e) => e.entryId)).to.deep.equal([pending?.entryId]);
  });
});
