/**
 * The search backfills every ResourceStore migration must do, as mocha tests run by sqlite-store.test.ts
 * and pg-store.test.ts on their own store: a store taken back to the schema before a migration (the
 * store under test says how, in its own SQL) is opened again, and the migration must have filled in what
 * that schema lacked, so existing rows are found as new ones are.
 */
import { expect } from 'chai';
import { criteriaOf, indexEntriesOf } from '../store/search-index';
import type { NewVersion, ResourceStore } from '../store/store';

const UCUM = 'http://unitsofmeasure.org';

/** A store of one kind, on data the test starts fresh each time `fresh` is called. */
export interface BackfillTarget {
  /** Starts over on empty data, and names what the migrations are called in this store (for the test titles). */
  fresh(): Promise<void>;
  /** A store on the current data (a second open while the first is closed is a restart). */
  open(): ResourceStore;
  /** Takes the closed store back to the schema before the UCUM canonical columns. */
  beforeUcum(): Promise<void>;
  /** Takes the closed store back to the schema before the Reference.identifier rows (returns how many rows it removed). */
  beforeIdentifiers(): Promise<number>;
  /** Rows of a query on the store's data (the search_index table). */
  rows(sql: string): Promise<unknown[]>;
  /** The schema version the store records, and the one this gateway writes. */
  schemaVersion(): Promise<{ recorded: number; current: number }>;
}

function observation(id: string, content: Record<string, unknown>): NewVersion {
  const resource = { resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, ...content };
  return {
    resourceType: 'Observation',
    id,
    versionId: 1,
    lastUpdated: '2026-12-01T00:00:00.000Z',
    patientId: 'p1',
    deleted: false,
    content: JSON.stringify(resource),
    date: null,
    codes: [],
    index: indexEntriesOf(resource),
  };
}

async function stored(target: BackfillTarget, versions: readonly NewVersion[]): Promise<void> {
  const store = target.open();
  try {
    await store.insertPendingWrite({ versions, newPatientKeys: [], didLinks: [] });
    await store.markAnchoredAll(versions);
  } finally {
    await store.close();
  }
}

export function backfillContract(name: string, migrations: { ucum: string; identifiers: string }, target: () => BackfillTarget): void {
  describe(`${name}: search backfills of its migrations`, () => {
    let t: BackfillTarget;
    beforeEach(async () => {
      t = target();
      await t.fresh();
    });

    it(`${migrations.ucum} backfills the UCUM canonical values of the quantity rows the store held before, and nothing else`, async () => {
      await stored(t, [
        observation('mg', { valueQuantity: { value: 5000, system: UCUM, code: 'mg' } }),
        observation('mg2', { valueQuantity: { value: 5000, system: UCUM, code: 'mg' } }),
        observation('under', { valueQuantity: { value: 3, comparator: '<', system: UCUM, code: 'g' } }),
        observation('local', { valueQuantity: { value: 5000, unit: 'mg' } }),
        observation('iu', { valueQuantity: { value: 5, system: UCUM, code: '[IU]/L' } }),
      ]);
      await t.beforeUcum();
      const reopened = t.open();
      try {
        const find = async (raw: string): Promise<string[]> =>
          (await reopened.search({ resourceType: 'Observation', criteria: criteriaOf('Observation', 'value-quantity', [raw]) ?? [], limit: 10 })).map((v) => v.id).sort();
        expect(await find(`5|${UCUM}|g`)).to.deep.equal(['mg', 'mg2']);
        expect(await find(`lt1000|${UCUM}|mg`)).to.deep.equal(['under']);
        expect(await find(`5|${UCUM}|[IU]/L`)).to.deep.equal(['iu']);
        expect(await find('5000||mg')).to.deep.equal(['local', 'mg', 'mg2']);
      } finally {
        await reopened.close();
      }
      // Only UCUM rows that convert have a canonical unit.
      expect(await t.rows("SELECT id, cu, cn1, cn2 FROM search_index WHERE param = 'value-quantity' ORDER BY id")).to.deep.equal([
        { id: 'iu', cu: '', cn1: null, cn2: null },
        { id: 'local', cu: '', cn1: null, cn2: null },
        { id: 'mg', cu: 'g', cn1: 5, cn2: 5 },
        { id: 'mg2', cu: 'g', cn1: 5, cn2: 5 },
        { id: 'under', cu: 'g', cn1: -Infinity, cn2: 3 },
      ]);
      const { recorded, current } = await t.schemaVersion();
      expect(recorded).to.equal(current);
    });

    it(`${migrations.identifiers} indexes the logical identifiers of the references the store held before`, async () => {
      await stored(t, [
        observation('o1', { subject: { reference: 'Patient/p1', identifier: { system: 'urn:mrn', value: 'A-1' } } }),
        observation('o2', { subject: { reference: 'Patient/p1' } }),
      ]);
      expect(await t.beforeIdentifiers()).to.equal(2);
      const reopened = t.open();
      try {
        const hits = await reopened.search({ resourceType: 'Observation', criteria: criteriaOf('Observation', 'subject:identifier', ['urn:mrn|A-1']) ?? [], limit: 10 });
        expect(hits.map((v) => v.id)).to.deep.equal(['o1']);
      } finally {
        await reopened.close();
      }
      expect(await t.rows("SELECT id, param FROM search_index WHERE param LIKE '%:identifier' ORDER BY param")).to.deep.equal([
        { id: 'o1', param: 'patient:identifier' },
        { id: 'o1', param: 'subject:identifier' },
      ]);
      const { recorded, current } = await t.schemaVersion();
      expect(recorded).to.equal(current);
    });
  });
}
