import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { keyedIds } from '@hdx/fhir-mappers';
import { CustodianIds } from './custodian-ids';

const SECRET = Buffer.alloc(32, 4);

describe('CustodianIds (keyed ids, off-chain erasure epochs)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-ids-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('derives the keyed ids of fhir-mappers; forget() gives the keys new epochs, which survive a restart', () => {
    const file = path.join(dir, 'id-epochs.db');
    let ids = new CustodianIds(SECRET, file);
    const before = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1');
    const other = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-2');
    expect(before).to.equal(keyedIds(SECRET).id('Patient', 'urn:oid:1.2', 'MRN-1'));
    expect(ids.forget([before, before, 'not-derived-here'])).to.equal(1);
    const after = ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1');
    expect(after).to.not.equal(before);
    expect(ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-2')).to.equal(other);
    ids.close();
    // After a restart: the new id stays (idempotent re-ingest), the old one is never derived again.
    ids = new CustodianIds(SECRET, file);
    expect(ids.ids.id('Patient', 'urn:oid:1.2', 'MRN-1')).to.equal(after);
    expect(ids.forget([before])).to.equal(0);
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

  it('derive(): a mapping that fails remembers none of its ids', () => {
    const ids = new CustodianIds(SECRET, ':memory:');
    let derived = '';
    expect(() =>
      ids.derive(() => {
        derived = ids.ids.id('Patient', 's', 'v');
        throw new Error('mapping failed');
      }),
    ).to.throw('mapping failed');
    expect(ids.forget([derived])).to.equal(0);
    const kept = ids.derive(() => ids.ids.id('Patient', 's', 'v'));
    expect(kept).to.equal(derived);
    expect(ids.forget([kept])).to.equal(1);
    ids.close();
  });
});
