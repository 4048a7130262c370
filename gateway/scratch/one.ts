import request from 'supertest';
import { SqliteStore } from '../src/store/sqlite-store';
import { asCaller } from '../src/test-support/fake-auth';
import { FakeLedger } from '../src/test-support/fake-ledger';
import { testApp } from '../src/test-support/test-app';
import { newLogger } from '../src/logger';
import { indexEntriesOf } from '../src/store/search-index';
const staff = asCaller({ did: `did:hdx:${'a'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
async function main() {
  const r = require('hl7.fhir.r4.examples/' + process.argv[2] + '.json');
  try { indexEntriesOf(r); console.log('index ok'); } catch (e) { console.log('index error', e); }
  const { app } = testApp({ store: new SqliteStore(':memory:'), ledger: new FakeLedger(), log: newLogger('debug') });
  const p = await request(app).post('/fhir/Patient').set(...staff).set('content-type', 'application/fhir+json').send({ resourceType: 'Patient' });
  const text = JSON.stringify(r).replace(/"reference":"(?:https?:\/\/[^"]*\/)?Patient\/[^"]*"/g, `"reference":"Patient/${p.body.id}"`);
  const res = await request(app).post(`/fhir/${r.resourceType}`).set(...staff).set('content-type', 'application/fhir+json').send(text);
  console.log(res.status, JSON.stringify(res.body).slice(0, 300));
}
main().then(() => process.exit(0));
