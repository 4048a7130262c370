/**
 * Issue 12, the break-glass review queue, on the real network through the public API: a hospital1
 * practitioner breaks the glass (sync audit mode: on the ledger before the answer); the regulator's
 * auditor finds the entry in the queue (`GET /fhir/AuditEvent?review-state=open`) and records an outcome
 * (`POST /fhir/AuditEvent/<eventId>/$review`, the body made by `signReview`, as `hdx review-sign` makes
 * it), which every member's gateway then shows. Refused: a patient, a practitioner, a hospital admin and
 * the regulator's own admin (an organization identity alone), the actor reviewing their own access, and
 * the auditor through another member's gateway; nothing of theirs reaches the ledger.
 */
import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signDidToken, signReview } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { startTestGateway } from '../support/network';

const EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';
const REVIEW_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/break-glass-review';

type Ext = {
  url: string;
  valueString?: string;
  valueCode?: string;
  valueUnsignedInt?: number;
  valueCoding?: { code?: string };
  valueIdentifier?: { value?: string };
  extension?: Ext[];
};
type Event = { resourceType: string; extension?: Ext[]; agent?: Array<{ who?: { identifier?: { value?: string } } }> };

const eventIdOf = (e: Event): string | undefined => e.extension?.find((x) => x.url === EVENT_ID_EXTENSION)?.valueString;

function reviewOf(e: Event | undefined): { state?: string; reviews?: number; outcome?: string; reviewer?: string } | undefined {
  const parts = e?.extension?.find((x) => x.url === REVIEW_EXTENSION)?.extension;
  if (!parts) return undefined;
  const part = (url: string): Ext | undefined => parts.find((p) => p.url === url);
  return {
    state: part('state')?.valueCode,
    reviews: part('reviews')?.valueUnsignedInt,
    ...(part('outcome') ? { outcome: part('outcome')?.valueCoding?.code, reviewer: part('reviewer')?.valueIdentifier?.value } : {}),
  };
}

describe('break-glass review (issue 12): the queue and the rules through the public API (real network)', function () {
  this.timeout(300_000);
  let h1: Gw;
  let h2: Gw;
  let reg: Gw;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const drH2 = generateDidKey();
  const auditor = generateDidKey();
  let observationId: string;
  let eventId: string;

  const didToken = (key: ReturnType<typeof generateDidKey>, gw: Gw, scope: string): string =>
    signDidToken({ key: key.privateJwk, audience: gw.config.baseUrl, scope, ttlSec: 120 });
  const review = (gw: Gw, token: string, key: ReturnType<typeof generateDidKey>, outcome: string, id = eventId) =>
    call(gw, 'POST', `/AuditEvent/${id}/$review`, token, {
      resourceType: 'Parameters',
      parameter: [
        { name: 'outcome', valueCode: outcome },
        { name: 'proof', valueString: signReview(key.privateJwk, id, outcome) },
      ],
    });
  /** The queue in that state, every page (other test files' break-glass entries share the ledger). */
  const queue = async (state: string): Promise<Event[]> => {
    const out: Event[] = [];
    let url: string | undefined = `/AuditEvent?review-state=${state}&_count=100`;
    for (let page = 0; url !== undefined && page < 50; page += 1) {
      const res = await call(reg, 'GET', url, didToken(auditor, reg, 'user/AuditEvent.read'));
      expect(res.status, res.text).to.equal(200);
      out.push(...((res.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource));
      url = (res.body.link as Array<{ relation: string; url: string }> | undefined)?.find((l) => l.relation === 'next')?.url;
    }
    return out;
  };
  const inQueue = async (state: string): Promise<Event | undefined> => (await queue(state)).find((e) => eventIdOf(e) === eventId);

  before(async () => {
    [h1, h2, reg] = await Promise.all([startTestGateway('hospital1', { HDX_AUDIT_MODE: 'sync' }), startTestGateway('hospital2'), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1981-07-02',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${String(p.body.id)}` },
      valueQuantity: { value: 112, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = String(o.body.id);
  });

  after(async () => {
    await Promise.all([h1, h2, reg].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('a break-glass read is in the open queue of the regulator’s auditor', async () => {
    const read = await call(
      h1,
      'GET',
      `/Observation/${observationId}`,
      signDidToken({ key: drH1.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'ETREAT', breakGlassReason: 'unconscious in the ER', ttlSec: 120 }),
    );
    expect(read.status, read.text).to.equal(200);
    const open = (await queue('open')).filter((e) => e.agent?.[0]?.who?.identifier?.value === drH1.did);
    expect(open, JSON.stringify(open)).to.have.length(1);
    eventId = eventIdOf(open[0] as Event) ?? '';
    expect(eventId).to.match(/^[0-9a-f]{64}\.[0-9]+$/);
    expect(reviewOf(open[0])).to.deep.equal({ state: 'open', reviews: 0 });
  });

  it('refuses a patient, a practitioner and a hospital admin token (403), and nothing is recorded', async () => {
    const refusals: Array<[string, Gw, string, ReturnType<typeof generateDidKey>]> = [
      ['the patient', reg, didToken(patientKey, reg, 'patient/AuditEvent.rus'), patientKey],
      ['another practitioner', reg, didToken(drH2, reg, 'user/AuditEvent.rus'), drH2],
      ['a hospital admin (IdP)', h1, staffToken(h1, 'hospital1', { role: 'admin', scope: 'user/AuditEvent.rus' }), auditor],
      ['the regulator’s admin (IdP)', reg, staffToken(reg, 'regulator', { role: 'admin', scope: 'user/AuditEvent.rus' }), auditor],
    ];
    for (const [who, gw, token, key] of refusals) {
      const res = await review(gw, token, key, 'justified');
      expect(res.status, `${who}: ${res.text}`).to.equal(403);
      expect(res.body.resourceType, who).to.equal('OperationOutcome');
    }
    expect(reviewOf(await inQueue('open'))).to.deep.equal({ state: 'open', reviews: 0 });
  });

  it('the actor cannot review their own break-glass access, at any gateway (403)', async () => {
    for (const gw of [h1, reg]) {
      const res = await review(gw, didToken(drH1, gw, 'user/AuditEvent.rus'), drH1, 'justified');
      expect(res.status, res.text).to.equal(403);
    }
    expect(await inQueue('open')).to.not.equal(undefined);
  });

  it('the auditor reviews only through the regulator’s gateway: another member’s gateway is refused by the chaincode (403)', async () => {
    const res = await review(h2, didToken(auditor, h2, 'user/AuditEvent.rus'), auditor, 'justified');
    expect(res.status, res.text).to.equal(403);
    expect(await inQueue('open')).to.not.equal(undefined);
  });

  it('bad requests: an outcome outside the codes (400), a non-break-glass entry (409), an unknown entry (404)', async () => {
    const token = (): string => didToken(auditor, reg, 'user/AuditEvent.rus');
    expect((await review(reg, token(), auditor, 'fine')).status).to.equal(400);
    const unknown = `${'e'.repeat(64)}.0`;
    expect((await review(reg, token(), auditor, 'justified', unknown)).status).to.equal(404);
    // A plain treatment read of the same record is not break-glass.
    await call(
      h1,
      'GET',
      `/Observation/${observationId}`,
      signDidToken({ key: drH1.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
    );
    const history = await call(reg, 'GET', `/AuditEvent?agent=${drH1.did}&_count=100`, didToken(auditor, reg, 'user/AuditEvent.read'));
    const plain = ((history.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource).find((e) => eventIdOf(e) !== eventId && reviewOf(e) === undefined);
    expect(plain, history.text).to.not.equal(undefined);
    const res = await review(reg, token(), auditor, 'justified', eventIdOf(plain as Event));
    expect(res.status, res.text).to.equal(409);
  });

  it('the auditor records an outcome: answered with the updated AuditEvent; the entry leaves the open queue', async () => {
    const res = await review(reg, didToken(auditor, reg, 'user/AuditEvent.rus'), auditor, 'needs-follow-up');
    expect(res.status, res.text).to.equal(200);
    expect(res.body.resourceType).to.equal('AuditEvent');
    expect(eventIdOf(res.body as Event)).to.equal(eventId);
    expect(reviewOf(res.body as Event)).to.deep.equal({ state: 'reviewed', reviews: 1, outcome: 'needs-follow-up', reviewer: auditor.did });
    expect(await inQueue('open')).to.equal(undefined);
    expect(reviewOf(await inQueue('reviewed'))).to.deep.include({ state: 'reviewed', outcome: 'needs-follow-up' });
  });

  it('a later review adds (append-only): the latest is the current outcome, and every member’s gateway shows it', async () => {
    const res = await review(reg, didToken(auditor, reg, 'user/AuditEvent.rus'), auditor, 'justified');
    expect(res.status, res.text).to.equal(200);
    expect(reviewOf(res.body as Event)).to.deep.equal({ state: 'reviewed', reviews: 2, outcome: 'justified', reviewer: auditor.did });
    // Hospital1 shows the actor their own access with its review; hospital2 shows the patient too.
    const asActor = await call(h1, 'GET', `/AuditEvent?agent=${drH1.did}&_count=100`, didToken(drH1, h1, 'user/AuditEvent.read'));
    expect(asActor.status, asActor.text).to.equal(200);
    const mine = ((asActor.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource).find((e) => eventIdOf(e) === eventId);
    expect(reviewOf(mine)).to.deep.equal({ state: 'reviewed', reviews: 2, outcome: 'justified', reviewer: auditor.did });
    const asPatient = await call(h2, 'GET', `/AuditEvent?patient=${patientKey.did}&_count=100`, didToken(patientKey, h2, 'patient/AuditEvent.read'));
    expect(asPatient.status, asPatient.text).to.equal(200);
    const theirs = ((asPatient.body.entry ?? []) as Array<{ resource: Event }>).map((e) => e.resource).find((e) => eventIdOf(e) === eventId);
    expect(reviewOf(theirs)).to.deep.include({ state: 'reviewed', outcome: 'justified' });
  });

  it('the queue is the auditors’: a practitioner asking for it is refused (403)', async () => {
    const res = await call(h1, 'GET', '/AuditEvent?review-state=open', didToken(drH1, h1, 'user/AuditEvent.read'));
    expect(res.status, res.text).to.equal(403);
  });
});
