import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { SqliteStore } from '../src/store/sqlite-store';
import { asCaller } from '../src/test-support/fake-auth';
import { FakeLedger } from '../src/test-support/fake-ledger';
import { testApp } from '../src/test-support/test-app';
import { SUPPORTED_TYPES } from '../src/model/definitions';

const dir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
const staff = asCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
async function main() {
  const store = new SqliteStore(':memory:');
  const ledger = new FakeLedger();
  const { app } = testApp({ store, ledger, rateLimits: { perIdentity: 1_000_000, perIp: 1_000_000 } });
  const p = await request(app).post('/fhir/Patient').set(...staff).set('content-type', 'application/fhir+json').send({ resourceType: 'Patient', name: [{ family: 'X' }] });
  const pid = p.body.id;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && /^[A-Z]/.test(f));
  const tally = new Map<string, number>();
  let ok = 0, total = 0;
  const t0 = Date.now();
  for (const f of files) {
    const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    if (!SUPPORTED_TYPES.has(r.resourceType)) { tally.set(`unsupported ${r.resourceType}`, (tally.get(`unsupported ${r.resourceType}`) ?? 0) + 1); continue; }
    if (process.argv[2] && !f.startsWith(process.argv[2])) continue;
    total++;
    const text = JSON.stringify(r).replace(/"reference":"(?:https?:\/\/[^"]*\/)?Patient\/[^"]*"/g, `"reference":"Patient/${pid}"`);
    const res = await request(app).post(`/fhir/${r.resourceType}`).set(...staff).set('content-type', 'application/fhir+json').send(text);
    if (res.status === 201) { ok++; continue; }
    const d = String(res.body?.issue?.[0]?.diagnostics ?? res.status).replace(/[0-9a-f-]{36}/g, 'ID').slice(0, 140);
    const key = `  '${f}': /${d.replace(/[.*+?^${}()|[\]\\\/]/g, (c) => '\\' + c).slice(0, 60)}/,`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  console.log(`ok ${ok}/${total} in ${(Date.now() - t0) / 1000}s`);
  for (const [k] of [...tally].sort((a, b) => a[0].localeCompare(b[0]))) console.log(k);
}
main().then(() => process.exit(0));
