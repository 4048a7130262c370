import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import type { Bundle, DiagnosticReport, Encounter, Observation, Patient } from 'fhir/r4';
import { hl7v2ToBundle } from './hl7v2';
import { MIN_ID_SECRET_BYTES, canonicalJson, keyedIds, epochKey } from './ids';
import { readTestData } from './test-support/golden';
import { TEST_IDS, TEST_ID_SECRET, unkeyedStableUuid } from './test-support/ids';

/** The id scheme before keyed ids (SHA-256 of the public namespace + parts), as security-poc/mrn-bruteforce.js replicates it. */

/** The golden ADT^A01: patient MRN-000042 of assigning authority 1.2.840.114350.1.13.1.2. */
const MRN_SYSTEM = 'urn:oid:1.2.840.114350.1.13.1.2';
const ADT = readTestData('hl7v2', 'adt-a01.hl7');
const ORU = readTestData('hl7v2', 'oru-r01.hl7');

function only<T>(bundle: Bundle, type: string): T[] {
  return (bundle.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === type) as T[];
}

function patientId(bundle: Bundle): string {
  const p = only<Patient>(bundle, 'Patient')[0];
  if (p?.id === undefined) throw new Error('no Patient');
  return p.id;
}

/** The brute force of the review's PoC: MRN-000000 … MRN-000999 against a Patient id, with a given id function. */
function bruteForce(target: string, idOf: (mrn: string) => string): string | undefined {
  for (let i = 0; i < 1000; i++) {
    const mrn = `MRN-${String(i).padStart(6, '0')}`;
    if (idOf(mrn) === target) return mrn;
  }
  return undefined;
}

describe('keyed ids (no natural key can be recovered from an id without the custodian secret)', () => {
  const golden = patientId(hl7v2ToBundle(ADT, { ids: TEST_IDS }));

  it('the golden ADT Patient id is not the unkeyed hash of its MRN, and the MRN brute force recovers nothing', () => {
    expect(golden).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(golden).to.not.equal(unkeyedStableUuid('Patient', MRN_SYSTEM, 'MRN-000042'));
    // The review's attack (the namespace is public): finds nothing now.
    expect(bruteForce(golden, (mrn) => unkeyedStableUuid('Patient', MRN_SYSTEM, mrn))).to.equal(undefined);
    // Nor does guessing the MRN under a secret that is not the custodian's.
    const other = keyedIds(randomBytes(32));
    expect(bruteForce(golden, (mrn) => other.id('Patient', MRN_SYSTEM, mrn))).to.equal(undefined);
    // Only the holder of the secret links the id to the MRN (the test pins what the mapper keys).
    expect(bruteForce(golden, (mrn) => TEST_IDS.id('Patient', MRN_SYSTEM, mrn))).to.equal('MRN-000042');
  });

  it('two custodians (two secrets) give different ids for the same patient, order and visit', () => {
    const a = hl7v2ToBundle(ORU, { ids: keyedIds(randomBytes(32)) });
    const b = hl7v2ToBundle(ORU, { ids: keyedIds(randomBytes(32)) });
    const idsOf = (x: Bundle): string[] => (x.entry ?? []).map((e) => String(e.resource?.id));
    const shared = idsOf(a).filter((id) => idsOf(b).includes(id));
    expect(idsOf(a)).to.have.length.greaterThan(2);
    expect(shared).to.deep.equal([]);
    expect(patientId(hl7v2ToBundle(ADT, { ids: keyedIds(randomBytes(32)) }))).to.not.equal(golden);
  });

  it('same input and same secret give the same ids (re-ingesting a message is idempotent)', () => {
    const again = keyedIds(Buffer.from(TEST_ID_SECRET));
    expect(hl7v2ToBundle(ADT, { ids: again })).to.deep.equal(hl7v2ToBundle(ADT, { ids: TEST_IDS }));
    expect(hl7v2ToBundle(ORU, { ids: again })).to.deep.equal(hl7v2ToBundle(ORU, { ids: TEST_IDS }));
    // ADT and ORU about the same patient agree on the Patient id.
    expect(patientId(hl7v2ToBundle(ORU, { ids: TEST_IDS }))).to.equal(golden);
  });

  it('an erasure epoch gives the same patient new ids for the Patient and everything keyed under it', () => {
    const epochs = new Map<string, number>();
    const ids = keyedIds(TEST_ID_SECRET, (key) => epochs.get(key) ?? 0);
    const before = { adt: hl7v2ToBundle(ADT, { ids }), oru: hl7v2ToBundle(ORU, { ids }) };
    expect(patientId(before.adt)).to.equal(golden);
    epochs.set(epochKey(TEST_ID_SECRET, 'Patient', MRN_SYSTEM, 'MRN-000042'), 1);
    const after = { adt: hl7v2ToBundle(ADT, { ids }), oru: hl7v2ToBundle(ORU, { ids }) };
    expect(patientId(after.adt)).to.not.equal(golden);
    expect(patientId(after.oru)).to.equal(patientId(after.adt));
    const all = (b: Bundle): string[] => (b.entry ?? []).map((e) => String(e.resource?.id));
    const old = [...all(before.adt), ...all(before.oru)];
    expect([...all(after.adt), ...all(after.oru)].filter((id) => old.includes(id))).to.deep.equal([]);
    // The new resources refer to the new Patient.
    const encounter = only<Encounter>(after.adt, 'Encounter')[0];
    expect(encounter?.subject?.reference).to.equal(`urn:uuid:${patientId(after.adt)}`);
    expect(only<Observation>(after.oru, 'Observation').length).to.be.greaterThan(0);
    expect(only<DiagnosticReport>(after.oru, 'DiagnosticReport')[0]?.subject?.reference).to.equal(`urn:uuid:${patientId(after.adt)}`);
    // The epoch table's key is keyed too, and is not an id.
    const key = epochKey(TEST_ID_SECRET, 'Patient', MRN_SYSTEM, 'MRN-000042');
    expect(key).to.match(/^[0-9a-f]{64}$/);
    expect(key).to.not.equal(epochKey(randomBytes(32), 'Patient', MRN_SYSTEM, 'MRN-000042'));
  });

  it('refuses a secret shorter than 32 bytes and a malformed epoch', () => {
    expect(() => keyedIds(Buffer.alloc(MIN_ID_SECRET_BYTES - 1, 1))).to.throw(RangeError, /at least 32 bytes/);
    expect(() => keyedIds(Buffer.alloc(MIN_ID_SECRET_BYTES, 1), () => -1).id('Patient', 'x')).to.throw(RangeError, /epoch/);
    expect(() => keyedIds(Buffer.alloc(MIN_ID_SECRET_BYTES, 1), () => 0.5).id('Patient', 'x')).to.throw(RangeError, /epoch/);
  });

  it('length-prefixes the parts: ["ab","c"] and ["a","bc"] differ; kinds separate ids', () => {
    expect(TEST_IDS.id('X', 'ab', 'c')).to.not.equal(TEST_IDS.id('X', 'a', 'bc'));
    expect(TEST_IDS.id('Patient', 'a', 'b')).to.not.equal(TEST_IDS.id('Encounter', 'a', 'b'));
  });
});

describe('canonicalJson (RFC 8785 through the canonicalize package)', () => {
  it('sorts keys, drops undefined members, writes numbers in ECMAScript form', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x', undefined], c: undefined, d: 1e21, e: 0.000001 })).to.equal('{"a":[true,null,"x",null],"b":1,"d":1e+21,"e":0.000001}');
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '1': 3 })).to.equal('{"\\r":2,"1":3,"€":1}');
  });

  it('refuses what is not JSON', () => {
    expect(() => canonicalJson(undefined)).to.throw(TypeError);
    expect(() => canonicalJson(Number.NaN)).to.throw(Error);
    expect(() => canonicalJson({ x: Infinity })).to.throw(Error);
  });
});
