import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { keyedIds } from '@hdx/fhir-mappers';
import { testPgSchema, testPostgresUrl } from '../test-support/postgres';
import { CustodianIds } from './custodian-ids';
import { PgStore } from './pg-store';

const SECRET = Buffer.alloc(32, 4);

describe('CustodianIds (keyed ids, off-chain erasure epochs)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-ids-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('derives the keyed ids of fhir-mappers; forget() gives the keys new epochs, which survive a restart', async () => {
    const file = path.join(dir, 'id-epochs.db');
    let ids = new CustodianIds(SECRET, file);
    const before = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1');
    const other = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-2');
    expect(before).to.equal(keyedIds(SECRET).id('Patient', 'urn:oid:1.2', 'MRN-1'));
    expect(await ids.forget([before, before, 'not-derived-here'])).to.equal(1);
    const after = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1');
    expect(after).to.not.equal(before);
    expect(ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-2')).to.equal(other);
    ids.close();
    // After a restart: the new id stays (idempotent re-ingest), the old one is never derived again.
    ids = new CustodianIds(SECRET, file);
    expect(ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1')).to.equal(after);
    expect(await ids.forget([before])).to.equal(0);
    ids.close();
    // The file holds neither the natural key nor the secret.
    const bytes = fs.readFileSync(file);
    expect(bytes.includes(Buffer.from('MRN-1'))).to.equal(false);
    expect(bytes.includes(SECRET)).to.equal(false);
  });

  it('EHR local ids: keyed by the EHR base (trailing slashes ignored) and Type/id; another secret, other ids', () => {
    const a = new CustodianIds(SECRET, ':memory:');
    const b = new CustodianIds(Buffer.alloc(32, 5), ':memory:');
    expect(a.ehrLocalId('https://ehr.example/fhir/', 'Patient', '1')).to.equal(a.ehrLocalId('https://ehr.example/fhir', 'Patient', '1'));
    expect(a.ehrLocalId('https://ehr.example/fhir', 'Patient', '1')).to.not.equal(a.ehrLocalId('https://ehr.example/fhir', 'Observation', '1'));
    expect(a.ehrLocalId('https://ehr.example/fhir', 'Patient', '1')).to.not.equal(b.ehrLocalId('https://ehr.example/fhir', 'Patient', '1'));
    a.close();
    b.close();
  });

  it('derive(): a mapping that fails remembers none of its ids', async () => {
    const ids = new CustodianIds(SECRET, ':memory:');
    await failedMappingRemembersNothing(ids);
    ids.close();
  });
});

async function failedMappingRemembersNothing(ids: CustodianIds): Promise<void> {
  let derived = '';
  const failed = await ids
    .derive(() => {
      derived = ids.ids.id('Patient', 's', 'v');
      throw new Error('mapping failed');
    })
    .then(
      () => undefined,
      (err: unknown) => err,
    );
  expect(String(failed)).to.include('mapping failed');
  expect(await ids.forget([derived])).to.equal(0);
  const kept = await ids.derive(() => ids.ids.id('Patient', 's', 'v'));
  expect(kept).to.equal(derived);
  expect(await ids.forget([kept])).to.equal(1);
}

describe('CustodianIds on the PostgreSQL store (shared by replicas)', () => {
  let url = '';
  before(async function () {
    this.timeout(120_000);
    url = await testPostgresUrl();
  });

  it('an erasure at one process gives every process sharing the store a new epoch; derived ids are recorded once the mapping ends', async () => {
    const schema = testPgSchema();
    const [storeA, storeB] = [new PgStore({ url, schema }), new PgStore({ url, schema })];
    const [a, b] = [new CustodianIds(SECRET, storeA), new CustodianIds(SECRET, storeB)];
    try {
      const first = await a.derive(() => a.ids.id('Patient', 'urn:oid:1.2', 'MRN-1'));
      expect(first).to.equal(keyedIds(SECRET).id('Patient', 'urn:oid:1.2', 'MRN-1'));
      expect(await b.derive(() => b.ids.id('Patient', 'urn:oid:1.2', 'MRN-1'))).to.equal(first);
      // Erased at B (which knows the id from A's record of it): A's next mapping of the same MRN is a new id.
      expect(await b.forget([first])).to.equal(1);
      const again = await a.derive(() => a.ids.id('Patient', 'urn:oid:1.2', 'MRN-1'));
      expect(again).to.not.equal(first);
      expect(await b.derive(() => b.ids.id('Patient', 'urn:oid:1.2', 'MRN-1'))).to.equal(again);
      // Outside derive, nothing could record the id: refused, not silently forgotten.
      expect(() => a.ids.id('Patient', 'urn:oid:1.2', 'MRN-9')).to.throw(/inside derive/);
      await failedMappingRemembersNothing(a);
      // Both keyed with one secret; a third process with another is refused at start.
      await a.checkSharedSecret();
      await b.checkSharedSecret();
      const stranger = new CustodianIds(Buffer.alloc(32, 99), storeA);
      const refused = await stranger.checkSharedSecret().then(
        () => undefined,
        (err: unknown) => String(err),
      );
      expect(refused).to.include('HDX_ID_SECRET_FILE');
    } finally {
      await Promise.all([storeA.close(), storeB.close()]);
    }
  });
});
