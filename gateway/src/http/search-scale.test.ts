/**
 * Searches of any size (HTTP, fake ledger): consent is applied inside the query. The matches are
 * counted by patient and access class (labels, clinical month), each class decided once, and the store
 * pages through the permitted classes only: no candidate limit, totals that count only what the caller
 * may see, and a class altered in the store never releases what the anchor's own facts would not.
 */
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { DID_IDENTIFIER_SYSTEM } from '../fhir/resource-service';
import { MAX_COUNT } from '../fhir/search-params';
import type { EvaluateRequest } from '../ledger/ledger-client';
import { testStore, testStoreSql } from '../test-support/test-store';
import { asCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { consentLike, poster, registerAll } from '../test-support/http-fixture';

const did = (c: string): string => `did:hdx:${c.repeat(43)}`;
const DR = did('d');
const OTHER = did('e');
const ALICE = did('a');
const RESTRICTED = 'R';
const staff = asCaller({ did: DR, organization: 'Hospital1MSP', purpose: 'TREAT', scope: 'user/*.*' });
const other = asCaller({ did: OTHER, organization: 'Hospital2MSP', purpose: 'TREAT', scope: 'user/*.read' });

const N = 1500;
const MONTHS = Array.from({ length: 12 }, (_, i) => `2024-${String(i + 1).padStart(2, '0')}`);
/** Months another member's practitioner may not see, and the restricted label (as a consent would deny them). */
const DENIED_MONTHS = new Set(['2024-02', '2024-05']);

type SearchBundle = { total?: number; entry?: Array<{ resource: { id: string } }>; link: Array<{ relation: string; url: string }> };

describe('search of any size: consent inside the query (HTTP, fake ledger)', function () {
  this.timeout(120_000);
  let dir: string;
  let file: string;
  let app: ReturnType<typeof testApp>['app'];
  let ledger: FakeLedger;
  let asked: EvaluateRequest[];
  /** id → whether OTHER may see it. */
  const visibleToOther = new Map<string, boolean>();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-search-scale-'));
    file = path.join(dir, 'store.db');
    ledger = new FakeLedger();
    ledger.decide = consentLike((req, anchor) => req.actor === OTHER && !DENIED_MONTHS.has(anchor?.dataMonth ?? '') && !(anchor?.securityLabels ?? []).includes(RESTRICTED), {
      patientSelf: false,
    });
    asked = [];
    const evaluate = ledger.evaluateAccess.bind(ledger);
    ledger.evaluateAccess = async (req) => {
      asked.push(req);
      return evaluate(req);
    };
    await registerAll(ledger, [
      [DR, 'practitioner'],
      [OTHER, 'practitioner'],
      [ALICE, 'patient'],
    ]);
    ({ app } = testApp({ store: testStore(file), ledger }));
    const alice = await poster(app, staff)({ resourceType: 'Patient', identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ALICE }] });
    const entry = Array.from({ length: N }, (_, i) => {
      const month = MONTHS[i % MONTHS.length] as string;
      const restricted = i % 7 === 0;
      return {
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        resource: {
          resourceType: 'Observation',
          status: 'final',
          ...(restricted ? { meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: RESTRICTED }] } } : {}),
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
          subject: { reference: `Patient/${alice}` },
          effectiveDateTime: `${month}-${String((i % 27) + 1).padStart(2, '0')}T08:00:00Z`,
          valueQuantity: { value: i, unit: '/min' },
        },
        request: { method: 'POST', url: 'Observation' },
      };
    });
    const res = await request(app)
      .post('/fhir')
      .set(...staff)
      .set('content-type', 'application/fhir+json')
      .send({ resourceType: 'Bundle', type: 'transaction', entry });
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).to.equal(200);
    (res.body as { entry: Array<{ response: { location: string } }> }).entry.forEach((e, i) => {
      const id = e.response.location.split('/')[1] as string;
      visibleToOther.set(id, !DENIED_MONTHS.has(MONTHS[i % MONTHS.length] as string) && i % 7 !== 0);
    });
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const get = async (url: string, as: [string, string]): Promise<SearchBundle> => {
    const res = await request(app)
      .get(url.replace(/^https?:\/\/[^/]+/, ''))
      .set(...as);
    expect(res.status, `${url}: ${JSON.stringify(res.body).slice(0, 300)}`).to.equal(200);
    return res.body as SearchBundle;
  };

  it('an everyday search over more matches than any candidate limit answers a page (was refused above 1,000)', async () => {
    const b = await get('/fhir/Observation?_count=3', staff);
    expect(b.total).to.equal(N);
    expect(b.entry).to.have.length(3);
  });

  it('pages through every match the caller may see, and nothing else, each class decided once per search', async () => {
    const expected = [...visibleToOther].filter(([, v]) => v).map(([id]) => id);
    asked.length = 0;
    const seen: string[] = [];
    let url: string | undefined = `/fhir/Observation?patient=${ALICE}&_count=${MAX_COUNT}`;
    let pages = 0;
    let decisionsPerPage = 0;
    while (url !== undefined) {
      const b = await get(url, other);
      expect(b.total).to.equal(expected.length);
      seen.push(...(b.entry ?? []).map((e) => e.resource.id));
      url = b.link.find((l) => l.relation === 'next')?.url;
      pages += 1;
      decisionsPerPage = Math.max(decisionsPerPage, asked.length);
      asked.length = 0;
    }
    expect(new Set(seen).size).to.equal(seen.length);
    expect(seen.sort()).to.deep.equal(expected.sort());
    expect(pages).to.equal(Math.ceil(expected.length / MAX_COUNT));
    // 12 months × restricted or not: at most 24 decisions a page, never one per match.
    expect(decisionsPerPage).to.be.at.most(MONTHS.length * 2);
    // Each decision was asked for the class, not a version.
    expect(asked.every((r) => r.resource === undefined)).to.equal(true);
  });

  it('records the page released, never what the caller was refused or did not get', async () => {
    const before = ledger.audit.length;
    const b = await get(`/fhir/Observation?patient=${ALICE}&_count=50&_sort=-date`, other);
    const recorded = ledger.audit.slice(before).flatMap((e) => e.resources);
    expect(recorded).to.have.length(50);
    expect(recorded.map((r) => r.split('/')[1]).sort()).to.deep.equal((b.entry ?? []).map((e) => e.resource.id).sort());
    expect(recorded.every((r) => visibleToOther.get(r.split('/')[1] as string))).to.equal(true);
  });

  it('Patient/$everything of a patient with more than 1,000 records: every record the caller may see, nothing else', async () => {
    const patientId = (await get(`/fhir/Patient?identifier=${encodeURIComponent(`urn:ietf:rfc:3986|${ALICE}`)}`, staff)).entry?.[0]?.resource.id as string;
    const all = await get(`/fhir/Patient/${patientId}/$everything`, staff);
    expect(all.entry).to.have.length(N + 1);
    const before = ledger.audit.length;
    const partial = await get(`/fhir/Patient/${patientId}/$everything`, other);
    const ids = (partial.entry ?? []).map((e) => e.resource.id);
    const expected = [...visibleToOther].filter(([, v]) => v).map(([id]) => id);
    expect(ids.filter((id) => id !== patientId).sort()).to.deep.equal(expected.sort());
    // Recorded before release: every released record is in the access entries, nothing else.
    const recorded = new Set(ledger.audit.slice(before).flatMap((e) => e.resources.map((r) => r.split('/')[1])));
    expect([...recorded].sort()).to.deep.equal([...ids].sort());
  });

  it('a history of more versions than any candidate limit (type and system): the total, every page, each class decided once', async () => {
    asked.length = 0;
    const first = await get('/fhir/Observation/_history?_count=100', staff);
    expect(first.total).to.equal(N);
    expect(first.entry).to.have.length(100);
    // 12 months × restricted or not, each decided for its class: never once per version.
    expect(asked.length).to.be.at.most(MONTHS.length * 2);
    expect(asked.every((r) => r.resource === undefined)).to.equal(true);
    const seen = new Set<string>();
    let url: string | undefined = '/fhir/Observation/_history?_count=500';
    while (url !== undefined) {
      const b = await get(url, staff);
      (b.entry ?? []).forEach((e) => seen.add(e.resource.id));
      url = b.link.find((l) => l.relation === 'next')?.url;
    }
    expect(seen.size).to.equal(N);
    const system = await get('/fhir/_history?_count=10', staff);
    expect(system.total).to.equal(N + 1);
    expect(system.entry).to.have.length(10);
    // Another member's user asks per patient (a search), never for the history of everything.
    const refused = await request(app)
      .get('/fhir/Observation/_history')
      .set(...other);
    expect(refused.status).to.equal(403);
  });

  it('a class altered in the store to a permitted one does not release the version: its anchor says otherwise', async () => {
    const hiddenId = [...visibleToOther].find(([, v]) => !v)?.[0] as string;
    await testStoreSql(file, `UPDATE resource_version SET access_class = ? WHERE resource_type = 'Observation' AND id = ?`, [JSON.stringify(['2024-03', []]), hiddenId]);
    const res = await request(app)
      .get(`/fhir/Observation?patient=${ALICE}&_id=${hiddenId}`)
      .set(...other);
    expect(JSON.stringify(res.body)).to.not.contain('valueQuantity');
    expect(res.status).to.equal(500);
    expect((res.body as { issue: Array<{ details: { coding: Array<{ code: string }> } }> }).issue[0]?.details.coding[0]?.code).to.equal('INTEGRITY');
  });
});
