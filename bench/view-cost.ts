/**
 * `npm run bench -- view-cost` (issue 11): what the ledger view costs a gateway. The view
 * (gateway/src/view/view-store.ts, one SQLite file) is fed blocks of the chaincode's own records: a
 * small world made by the real contracts in memory (a patient, a hospital2 practitioner, an anchored
 * Observation, a consent signed by the patient), then 100,000 anchors and 10,000 consents cloned from
 * those records (same fields and sizes, other ids and patients), in blocks as the gateways write them
 * (AnchorBatch of 500; consents 100 a block). Prints the time to apply them, the file's size, the
 * process's memory, and the time of one local decision (decideOnView, the chaincode's evaluator) on the
 * small view and on the full one. No network.
 */
import './quiet-contracts';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { H2_GATEWAY, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import { ChaincodeLedger, ContractLedger } from '../gateway/src/test-support/contract-ledger';
import type { EvaluateRequest } from '../gateway/src/ledger/ledger-client';
import type { KeyWrite } from '../gateway/src/view/block-parser';
import { decideOnView } from '../gateway/src/view/local-decisions';
import { ViewStore } from '../gateway/src/view/view-store';
import { log, percentile, printGrid, printTable } from './support';

const H1 = 'Hospital1MSP';
const ANCHORS = Number(process.env.HDX_BENCH_VIEW_ANCHORS ?? 100_000);
const CONSENTS = Number(process.env.HDX_BENCH_VIEW_CONSENTS ?? 10_000);
const PATIENTS = 1_000;
const DECISIONS = 2_000;

/** Fabric's composite key, as the chaincode makes them. */
const compositeKey = (objectType: string, attributes: readonly string[]): string => `\u0000${objectType}\u0000${attributes.map((a) => `${a}\u0000`).join('')}`;
const bytes = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value), 'utf8');
const did = (): string => `did:hdx:${randomBytes(32).toString('base64url')}`;
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** The view file's size once its WAL is checkpointed into it (from a second connection, as SQLite allows). */
function fileBytes(file: string): number {
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return [file, `${file}-wal`].reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0);
}

async function main(): Promise<void> {
  const started = Date.now();
  log('a small world through the real contracts: a patient, a hospital2 practitioner, an anchored Observation, a consent');
  const chain = new ChaincodeLedger();
  const h1 = new ContractLedger(H1, { chain });
  const patient = await registerDid(chain, 'patient');
  const doctor = await registerDid(chain, 'practitioner', H2_GATEWAY);
  await h1.anchor({
    resourceType: 'Observation',
    id: 'real-1',
    versionId: '1',
    patient: patient.did,
    lastUpdated: '2026-11-20T09:30:00Z',
    dataMonth: '2026-11',
    commitment: { alg: 'HMAC-SHA-256', value: randomBytes(32).toString('base64url') },
  });
  const consent = {
    resourceType: 'Consent',
    id: 'real-consent',
    status: 'active',
    patient: { reference: patient.did },
    provision: {
      type: 'permit',
      actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
      purpose: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }],
    },
  };
  await h1.changeConsent('grant', signedBy(chain, patient, { action: 'grant', consent }));

  const state = [...chain.state.entries()];
  const valueOf = (prefix: string): Record<string, unknown> => {
    const found = state.find(([key]) => key.startsWith(`\u0000${prefix}\u0000`));
    if (!found) throw new Error(`no ${prefix} record in the contracts' state`);
    return JSON.parse(Buffer.from(found[1]).toString('utf8')) as Record<string, unknown>;
  };
  const anchorTemplate = valueOf('hdx.anchor');
  const consentTemplate = valueOf('hdx.consent');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-view-cost-'));
  const file = path.join(dir, 'ledger-view.db');
  const store = new ViewStore(file, { channel: 'hdx', namespace: 'hdx' });
  let block = 0n;
  const apply = (writes: KeyWrite[]): void => {
    store.apply({ blockNumber: block, envelopes: 1, invalid: [], writes });
    block += 1n;
  };
  const write = (key: string, value: unknown): KeyWrite => ({ key, value: bytes(value), deleted: false, txId: `tx${block}`, blockNumber: block, txIndex: 0 });
  apply(state.map(([key, value]) => ({ key, value, deleted: false, txId: 'tx0', blockNumber: 0n, txIndex: 0 })));

  const request: EvaluateRequest = { actor: doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'TREAT', resource: 'Observation/real-1/_history/1' };
  const decisionTimes = (): number[] => {
    const times: number[] = [];
    for (let i = 0; i < DECISIONS; i++) {
      const t = process.hrtime.bigint();
      const d = decideOnView(store, request, { now: Date.now(), submitter: H1 });
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (d.decision !== 'permit') throw new Error(`the consent should permit the read: ${JSON.stringify(d)}`);
    }
    return times.sort((a, b) => a - b);
  };
  const smallDecisions = decisionTimes();
  const base = { bytes: fileBytes(file), rss: process.memoryUsage().rss };

  const patients = Array.from({ length: PATIENTS }, did);
  log(`${ANCHORS.toLocaleString('en-US')} anchors in blocks of 500 (one AnchorBatch each)`);
  let t = Date.now();
  for (let i = 0; i < ANCHORS; i += 500) {
    const writes: KeyWrite[] = [];
    for (let j = i; j < Math.min(ANCHORS, i + 500); j++) {
      const id = `syn-${j}`;
      writes.push(
        write(compositeKey('hdx.anchor', ['Observation', id, '1']), {
          ...anchorTemplate,
          id,
          patient: patients[j % PATIENTS],
          commitment: { alg: 'HMAC-SHA-256', value: randomBytes(32).toString('base64url') },
          txId: randomBytes(32).toString('hex'),
        }),
      );
    }
    apply(writes);
  }
  const anchorsMs = Date.now() - t;
  const afterAnchors = { bytes: fileBytes(file), rss: process.memoryUsage().rss };

  log(`${CONSENTS.toLocaleString('en-US')} consents in blocks of 100`);
  t = Date.now();
  for (let i = 0; i < CONSENTS; i += 100) {
    const writes: KeyWrite[] = [];
    for (let j = i; j < Math.min(CONSENTS, i + 100); j++) {
      const id = `syn-consent-${j}`;
      const who = patients[j % PATIENTS] as string;
      const resource = { ...(consentTemplate.consent as Record<string, unknown>), id, patient: { reference: who } };
      writes.push(write(compositeKey('hdx.consent', [id]), { ...consentTemplate, id, patient: who, consent: resource, txId: randomBytes(32).toString('hex') }));
    }
    apply(writes);
  }
  const consentsMs = Date.now() - t;
  const afterConsents = { bytes: fileBytes(file), rss: process.memoryUsage().rss };
  const largeDecisions = decisionTimes();
  const counts = store.counts();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });

  const anchorBytes = afterAnchors.bytes - base.bytes;
  const consentBytes = afterConsents.bytes - afterAnchors.bytes;
  printGrid(
    `HDX ledger view cost (issue 11), ${new Date().toISOString().slice(0, 16)}Z`,
    ['what', 'applied in', 'rate', 'view file', 'process RSS growth'],
    [
      [
        `${ANCHORS.toLocaleString('en-US')} anchors (${ANCHORS / 500} blocks)`,
        `${(anchorsMs / 1000).toFixed(1)} s`,
        `${Math.round(ANCHORS / (anchorsMs / 1000)).toLocaleString('en-US')} anchors/s`,
        `+${mb(anchorBytes)} (${Math.round(anchorBytes / ANCHORS)} B each)`,
        `+${mb(afterAnchors.rss - base.rss)}`,
      ],
      [
        `${CONSENTS.toLocaleString('en-US')} consents (${CONSENTS / 100} blocks)`,
        `${(consentsMs / 1000).toFixed(1)} s`,
        `${Math.round(CONSENTS / (consentsMs / 1000)).toLocaleString('en-US')} consents/s`,
        `+${mb(consentBytes)} (${Math.round(consentBytes / CONSENTS)} B each)`,
        `+${mb(afterConsents.rss - afterAnchors.rss)}`,
      ],
    ],
  );
  printGrid(
    'one local decision (decideOnView: a hospital2 practitioner reads an Observation under the patient’s consent)',
    ['view', 'p50', 'p99', 'decisions'],
    [
      ['the small world (1 anchor, 1 consent)', `${percentile(smallDecisions, 50).toFixed(3)} ms`, `${percentile(smallDecisions, 99).toFixed(3)} ms`, String(DECISIONS)],
      [
        `+${ANCHORS.toLocaleString('en-US')} anchors, +${CONSENTS.toLocaleString('en-US')} consents of ${PATIENTS.toLocaleString('en-US')} other patients`,
        `${percentile(largeDecisions, 50).toFixed(3)} ms`,
        `${percentile(largeDecisions, 99).toFixed(3)} ms`,
        String(DECISIONS),
      ],
    ],
  );
  printTable('settings', [
    ['records', 'the chaincode contracts’ own anchor and consent records (run in memory), cloned with other ids, patients, commitments and txIds'],
    ['view', 'gateway/src/view/view-store.ts: one SQLite file (WAL, synchronous=FULL), each block one transaction with its checkpoint'],
    [
      'view rows',
      Object.entries(counts)
        .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`)
        .join(', '),
    ],
    [
      'file size',
      'the database after a WAL checkpoint; RSS growth is the whole process (Node heap, garbage of the generated records included, and SQLite’s page cache, 2 MB by default)',
    ],
    ['catch-up from block 0', 'measured on the real network by `npm run bench -- exchange` (note 1 of its settings)'],
    ['machine', `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB, Node ${process.versions.node}`],
    [
      'load average (1/5/15 min)',
      os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
    ],
    ['whole run', `${((Date.now() - started) / 1000).toFixed(0)} s`],
  ]);
}

main().catch((err: unknown) => {
  process.stderr.write(`view-cost: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
