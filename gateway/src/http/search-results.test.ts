/**
 * What a search returns (HTTP, fake ledger): `_sort` and stable paging with it, `_total`,
 * `_summary` (count: only the total of what the caller may see, decided and recorded as a search is;
 * true / text / data: SUBSETTED) and `_elements`.
 */
import { expect } from 'chai';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { SUBSETTED } from '../fhir/subsetting';
import { testStore } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { consentLike, poster, registerAll } from '../test-support/http-fixture';

const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const OTHER = did('e');
const ALICE = did('a');
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });

type Entry = { resource: Record<string, unknown> & { id: string; meta?: { tag?: unknown[] } }; search: { mode: string } };
type SearchBundle = { total?: number; entry?: Entry[]; link: Array<{ relation: string; url: string }> };

async function setup() {
  const store = testStore();
  const ledger = new FakeLedger();
  /**
   * Clinical months another member's practitioner may not see, '' for undated data (as a consent whose
   * data period excludes them would): decided on the anchor's facts, never on an id.
   */
  const hidden = new Set<string>();
  ledger.decide = consentLike((req, anchor) => req.actor === OTHER && !hidden.has(anchor?.dataMonth ?? ''), { patientSelf: false });
  await registerAll(ledger, [
    [DR, 'practitioner'],
    [OTHER, 'practitioner'],
    [ALICE, 'patient'],
  ]);
  const { app } = testApp({ store, ledger });
  const post = poster(app, staff);
  const get = async (q: string, as: [string, string] = staff): Promise<SearchBundle> => {
    const res = await request(app)
      .get(`/fhir/${q}`)
      .set(...as);
    expect(res.status, `${q}: ${JSON.stringify(res.body)}`).to.equal(200);
    return res.body as SearchBundle;
  };
  const ids = async (q: string, as?: [string, string]): Promise<string[]> => ((await get(q, as)).entry ?? []).map((e) => e.resource.id);
  const alice = await post({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }], name: [{ family: 'Sorted' }] });
  const obs = (code: string, date: string | undefined, value: number | undefined) =>
    post({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: LOINC, code }] },
      subject: { reference: `Patient/${alice}` },
      ...(date ? { effectiveDateTime: date } : {}),
      ...(value !== undefined ? { valueQuantity: { value, system: UCUM, code: 'mg' } } : {}),
      interpretation: [{ text: 'high' }],
      note: [{ text: 'not in the summary' }],
    });
  // Written in this order (so lastUpdated ascends): dates and values deliberately out of that order.
  const o = {
    b: await obs('2-b', '2024-03-01T00:00:00Z', 7),
    a: await obs('1-a', '2024-01-01T00:00:00Z', 9),
    c: await obs('3-c', '2024-02-01T00:00:00Z', 5),
    none: await obs('1-a', undefined, undefined),
    d: await obs('4-d', '2024-04-01T00:00:00Z', 7),
  };
  /** The clinical month of each Observation (what `hidden` names). */
  const month = { b: '2024-03', a: '2024-01', c: '2024-02', none: '', d: '2024-04' };
  return { app, ledger, hidden, month, alice, o, get, ids };
}

describe('search results: _sort, _total, _summary, _elements (HTTP, fake ledger)', () => {
  it('_sort: by a date, a quantity, a token, _id and _lastUpdated, - for descending, several keys; no value last', async () => {
    const { ids, alice, o } = await setup();
    const q = `Observation?patient=${alice}`;
    expect(await ids(q)).to.deep.equal([o.b, o.a, o.c, o.none, o.d]);
    expect(await ids(`${q}&_sort=date`)).to.deep.equal([o.a, o.c, o.b, o.d, o.none]);
    expect(await ids(`${q}&_sort=-date`)).to.deep.equal([o.d, o.b, o.c, o.a, o.none]);
    expect(await ids(`${q}&_sort=value-quantity`)).to.deep.equal([o.c, o.b, o.d, o.a, o.none]);
    // Ties keep lastUpdated order; a second key breaks them.
    expect(await ids(`${q}&_sort=-value-quantity`)).to.deep.equal([o.a, o.b, o.d, o.c, o.none]);
    expect(await ids(`${q}&_sort=-value-quantity,-date`)).to.deep.equal([o.a, o.d, o.b, o.c, o.none]);
    expect(await ids(`${q}&_sort=code,date`)).to.deep.equal([o.a, o.none, o.b, o.c, o.d]);
    expect(await ids(`${q}&_sort=-_lastUpdated`)).to.deep.equal([o.d, o.none, o.c, o.a, o.b]);
    expect(await ids(`${q}&_sort=_id`)).to.deep.equal(Object.values(o).sort());
  });

  it('pages stably in the sort order; the next link keeps _sort', async () => {
    const { get, alice } = await setup();
    const seen: string[] = [];
    let url: string | undefined = `Observation?patient=${alice}&_sort=-date&_count=2`;
    while (url) {
      const page = await get(url);
      seen.push(...(page.entry ?? []).map((e) => e.resource.id));
      const next = page.link.find((l) => l.relation === 'next')?.url;
      if (next) expect(next).to.contain('_sort=-date');
      url = next?.replace(/^.*\/fhir\//, '');
    }
    const all = (await get(`Observation?patient=${alice}&_sort=-date`)).entry?.map((e) => e.resource.id);
    expect(seen).to.deep.equal(all);
  });

  it('refuses what it cannot sort by or does not know', async () => {
    const { app, alice } = await setup();
    for (const q of [
      '_sort=shoe-size',
      '_sort=code-value-quantity',
      '_sort=',
      '_total=maybe',
      '_summary=short',
      '_elements=shoe',
      '_summary=true&_elements=code',
      '_summary=count&_elements=code',
    ]) {
      const res = await request(app)
        .get(`/fhir/Observation?patient=${alice}&${q}`)
        .set(...staff);
      expect(res.status, q).to.equal(400);
      expect(res.body.resourceType, q).to.equal('OperationOutcome');
    }
  });

  it('_total: none leaves it out, estimate and accurate both count only what the caller may see', async () => {
    const { get, hidden, month, alice } = await setup();
    expect((await get(`Observation?patient=${alice}&_total=none`)).total).to.equal(undefined);
    expect((await get(`Observation?patient=${alice}&_total=accurate`)).total).to.equal(5);
    hidden.add(month.a);
    hidden.add(month.b);
    expect((await get(`Observation?patient=${ALICE}&_total=estimate`, other)).total).to.equal(3);
    expect((await get(`Observation?patient=${ALICE}&_total=accurate&_count=1`, other)).total).to.equal(3);
  });

  it('_summary=count (and _count=0): the total of what the caller may see, no entries; the counted records are decided and recorded', async () => {
    const { get, ledger, hidden, month, o } = await setup();
    hidden.add(month.a);
    hidden.add(month.c);
    for (const q of [`Observation?patient=${ALICE}&_summary=count`, `Observation?patient=${ALICE}&_count=0`]) {
      const before = ledger.audit.length;
      const b = await get(q, other);
      expect(b.total, q).to.equal(3);
      expect(b.entry, q).to.equal(undefined);
      expect(
        b.link.map((l) => l.relation),
        q,
      ).to.deep.equal(['self']);
      // One access entry for the patient, naming what was counted (never what was withheld).
      const recorded = ledger.audit.slice(before);
      expect(recorded.map((e) => e.actor)).to.deep.equal([OTHER]);
      expect(recorded.flatMap((e) => e.resources).sort()).to.deep.equal([o.b, o.none, o.d].map((id) => `Observation/${id}/_history/1`).sort());
    }
    // Nothing the caller may see: 0, and nothing recorded.
    hidden.add(month.b).add(month.none).add(month.d);
    const before = ledger.audit.length;
    expect((await get(`Observation?patient=${ALICE}&_summary=count`, other)).total).to.equal(0);
    expect(ledger.audit.length).to.equal(before);
  });

  it('_summary=true, text, data and false; _elements: the elements asked for plus id, meta and the mandatory and modifier ones, tagged SUBSETTED', async () => {
    const { get, alice, o } = await setup();
    const first = async (q: string): Promise<Entry['resource']> => {
      const r = (await get(`Observation?patient=${alice}&_id=${o.a}&${q}`)).entry?.[0]?.resource;
      expect(r, q).to.not.equal(undefined);
      return r as Entry['resource'];
    };
    const summary = await first('_summary=true');
    expect(Object.keys(summary).sort()).to.deep.equal(['code', 'effectiveDateTime', 'id', 'meta', 'resourceType', 'status', 'subject', 'valueQuantity']);
    expect(summary.meta?.tag).to.deep.include(SUBSETTED);
    // text: the narrative, id, meta and the mandatory elements (there is no narrative here)
    expect(Object.keys(await first('_summary=text')).sort()).to.deep.equal(['code', 'id', 'meta', 'resourceType', 'status']);
    const data = await first('_summary=data');
    expect(Object.keys(data)).to.include.members(['note', 'interpretation', 'subject']);
    expect(data.meta?.tag).to.deep.include(SUBSETTED);
    const whole = await first('_summary=false');
    expect(Object.keys(whole)).to.include('note');
    expect(whole.meta?.tag).to.equal(undefined);
    const elements = await first('_elements=subject,value');
    expect(Object.keys(elements).sort()).to.deep.equal(['code', 'id', 'meta', 'resourceType', 'status', 'subject', 'valueQuantity']);
    expect(elements.meta?.tag).to.deep.include(SUBSETTED);
    // The version id stays: a client can read the whole version.
    expect(elements.meta).to.have.property('versionId', '1');
  });

  it('_summary cuts included resources too; _elements (elements of the searched type) leaves them whole', async () => {
    const { get, alice, o } = await setup();
    const byMode = async (q: string) => {
      const b = await get(`Observation?patient=${alice}&_id=${o.a}&_include=Observation:subject&${q}`);
      return { match: b.entry?.find((e) => e.search.mode === 'match')?.resource, include: b.entry?.find((e) => e.search.mode === 'include')?.resource };
    };
    const summary = await byMode('_summary=true');
    expect(summary.include?.resourceType).to.equal('Patient');
    expect(summary.include?.meta?.tag).to.deep.include(SUBSETTED);
    expect(summary.include).to.have.property('name');
    const elements = await byMode('_elements=code');
    expect(elements.match).to.not.have.property('subject');
    expect(elements.include?.meta?.tag).to.equal(undefined);
    expect(elements.include).to.have.property('name');
  });

  it('the CapabilityStatement says which result parameters every search takes', async () => {
    const { app } = await setup();
    const cs = await request(app).get('/fhir/metadata');
    const doc = String(cs.body.rest[0].documentation);
    for (const p of ['_sort', '_total', '_summary', '_elements', '_has']) expect(doc, p).to.contain(p);
  });

  it('a member organization fetching for its user gets whole resources only (it verifies them against their anchors)', async () => {
    const { app } = await setup();
    const member = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read', viaOrganization: did('f') });
    const res = await request(app)
      .get(`/fhir/Observation?patient=${ALICE}&_summary=true`)
      .set(...member);
    expect(res.status).to.equal(400);
    expect(JSON.stringify(res.body)).to.contain('_summary');
  });
});
