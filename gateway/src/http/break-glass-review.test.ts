/**
 * The break-glass review through HTTP, on the REAL hdx contracts (ContractLedger): the regulator's
 * gateway takes an auditor's signed review, the chaincode keeps it, and every gateway's AuditEvents show
 * it. The auditor's proof is signed as the web app and the CLI sign it (canonical JSON, ES256, kid).
 */
import { expect } from 'chai';
import request from 'supertest';
import { H2_GATEWAY, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import type { TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { BREAK_GLASS_REVIEW_EXTENSION, REVIEW_OUTCOME_SYSTEM } from '../fhir/break-glass-review';
import { LEDGER_EVENT_ID_EXTENSION } from '../fhir/audit-events';
import { testStore } from '../test-support/test-store';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import { asCaller, type TestCaller } from '../test-support/fake-auth';
import { testApp } from '../test-support/test-app';

type Resource = Record<string, unknown> & { extension?: Array<{ url: string; valueString?: string; extension?: Array<Record<string, unknown>> }> };

/** The review-state extension of an AuditEvent as {state, reviews, outcome?, reviewer?, reviewed?}. */
function reviewOf(event: Resource): Record<string, unknown> | undefined {
  const ext = event.extension?.find((e) => e.url === BREAK_GLASS_REVIEW_EXTENSION);
  if (!ext) return undefined;
  const out: Record<string, unknown> = {};
  for (const part of ext.extension ?? []) {
    const value =
      part.valueCode ??
      part.valueUnsignedInt ??
      (part.valueCoding as { code?: string } | undefined)?.code ??
      (part.valueIdentifier as { value?: string } | undefined)?.value ??
      part.valueDateTime;
    out[String(part.url)] = value;
  }
  return out;
}

const eventIdOf = (event: Resource): string | undefined => event.extension?.find((e) => e.url === LEDGER_EVENT_ID_EXTENSION)?.valueString;

describe('POST /fhir/AuditEvent/<eventId>/$review and the review queue (real contracts)', () => {
  let chain: ChaincodeLedger;
  let patient: TestKey;
  let doctor: TestKey;
  let auditor: TestKey;
  let breakGlassId: string;
  let treatmentId: string;
  let regulator: ReturnType<typeof testApp>['app'];
  let hospital1: ReturnType<typeof testApp>['app'];

  const AUDITOR_SCOPE = 'user/AuditEvent.rus';
  const asAuditor = (key: TestKey = auditor, extra: Partial<TestCaller> = {}) => asCaller({ did: key.did, role: 'auditor', tokenKind: 'did', scope: AUDITOR_SCOPE, ...extra });
  const proof = (key: TestKey, eventId: string, outcome: string, extra: Record<string, unknown> = {}) => signedBy(chain, key, { action: 'review', eventId, outcome, ...extra });
  const parameters = (outcome: string, jws: string, more: Array<Record<string, unknown>> = []) => ({
    resourceType: 'Parameters',
    parameter: [{ name: 'outcome', valueCode: outcome }, { name: 'proof', valueString: jws }, ...more],
  });
  const post = (app: typeof regulator, eventId: string, body: unknown, as: [string, string] = asAuditor()) =>
    request(app)
      .post(`/fhir/AuditEvent/${eventId}/$review`)
      .set(...as)
      .set('content-type', 'application/fhir+json')
      .send(body as object);
  const queue = async (state: string, as: [string, string] = asAuditor()) => {
    const res = await request(regulator)
      .get(`/fhir/AuditEvent?review-state=${state}`)
      .set(...as);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return ((res.body as { entry?: Array<{ resource: Resource }> }).entry ?? []).map((e) => e.resource);
  };
  const diagnostics = (res: request.Response): string => String((res.body as { issue?: Array<{ diagnostics?: string }> }).issue?.[0]?.diagnostics);

  beforeEach(async () => {
    chain = new ChaincodeLedger();
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    patient = await registerDid(chain, 'patient');
    doctor = await registerDid(chain, 'practitioner', H2_GATEWAY);
    auditor = await registerDid(chain, 'auditor');
    await h1.anchor({
      resourceType: 'Observation',
      id: 'o1',
      versionId: '1',
      patient: patient.did,
      lastUpdated: '2024-05-01T10:00:00Z',
      dataMonth: '2024-04',
      commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
    });
    const resource = 'Observation/o1/_history/1';
    // Hospital2's doctor breaks the glass at Hospital1 (the chaincode's own decision flags it).
    const broke = await h1.authorizeAndRecord({ actor: doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'ETREAT', resource });
    expect(broke.breakGlass).to.equal(true);
    breakGlassId = broke.eventId;
    treatmentId = (await h1.authorizeAndRecord({ actor: doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'did', purpose: 'TREAT', resource })).eventId;
    regulator = testApp({ store: testStore(), ledger: new ContractLedger('RegulatorMSP', { chain }), mspId: 'RegulatorMSP' }).app;
    hospital1 = testApp({ store: testStore(), ledger: h1 }).app;
  });

  it('lists the open entry, records the outcome on the ledger, and the entry leaves the queue showing it', async () => {
    const open = await queue('open');
    expect(open.map(eventIdOf)).to.deep.equal([breakGlassId]);
    expect(reviewOf(open[0] as Resource)).to.deep.equal({ state: 'open', reviews: 0 });

    const res = await post(regulator, breakGlassId, parameters('not-justified', proof(auditor, breakGlassId, 'not-justified')));
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.body).to.include({ resourceType: 'AuditEvent' });
    expect(eventIdOf(res.body as Resource)).to.equal(breakGlassId);
    expect(reviewOf(res.body as Resource)).to.deep.include({ state: 'reviewed', reviews: 1, outcome: 'not-justified', reviewer: auditor.did });
    const coding = (res.body as Resource).extension?.find((e) => e.url === BREAK_GLASS_REVIEW_EXTENSION)?.extension?.find((e) => e.url === 'outcome')?.valueCoding;
    expect(coding).to.deep.equal({ system: REVIEW_OUTCOME_SYSTEM, code: 'not-justified', display: 'Not justified' });

    expect(await queue('open')).to.deep.equal([]);
    const reviewed = await queue('reviewed');
    expect(reviewed.map(eventIdOf)).to.deep.equal([breakGlassId]);
    expect(await queue('open,reviewed')).to.have.length(1);

    // Kept on the ledger: another member's gateway shows the patient the same outcome in their history.
    const history = await request(hospital1)
      .get(`/fhir/AuditEvent?patient=${patient.did}`)
      .set(...asCaller({ did: patient.did, role: 'patient', tokenKind: 'did', scope: 'patient/AuditEvent.rs' }));
    expect(history.status, JSON.stringify(history.body)).to.equal(200);
    const events = (history.body as { entry: Array<{ resource: Resource }> }).entry.map((e) => e.resource);
    expect(reviewOf(events.find((e) => eventIdOf(e) === breakGlassId) as Resource)).to.deep.include({ state: 'reviewed', outcome: 'not-justified' });
    // Only break-glass entries carry a review state.
    expect(reviewOf(events.find((e) => eventIdOf(e) === treatmentId) as Resource)).to.equal(undefined);
  });

  it('adds a later review, never overwriting: the latest is the current outcome', async () => {
    await post(regulator, breakGlassId, parameters('needs-follow-up', proof(auditor, breakGlassId, 'needs-follow-up'))).expect(200);
    const res = await post(regulator, breakGlassId, parameters('justified', proof(auditor, breakGlassId, 'justified')));
    expect(res.status).to.equal(200);
    expect(reviewOf(res.body as Resource)).to.deep.include({ state: 'reviewed', reviews: 2, outcome: 'justified' });
    expect(chain.keys('hdx.review')).to.have.length(2);
  });

  describe('who is refused (403), and nothing is written', () => {
    afterEach(() => expect(chain.keys('hdx.review')).to.deep.equal([]));

    it('the practitioner who broke the glass, a patient, a hospital admin, a delegated request', async () => {
      const body = (key: TestKey) => parameters('justified', proof(key, breakGlassId, 'justified'));
      const refusals: Array<[string, [string, string], unknown]> = [
        ['the actor', asCaller({ did: doctor.did, role: 'practitioner', tokenKind: 'did', scope: AUDITOR_SCOPE }), body(doctor)],
        ['a patient', asCaller({ did: patient.did, role: 'patient', tokenKind: 'did', scope: 'patient/AuditEvent.rus' }), body(patient)],
        ['an admin', asCaller({ role: 'admin', tokenKind: 'idp', scope: AUDITOR_SCOPE }), body(auditor)],
        ['a member acting for the auditor', asAuditor(auditor, { viaOrganization: 'Hospital2MSP' }), body(auditor)],
      ];
      for (const [who, as, b] of refusals) {
        const res = await post(regulator, breakGlassId, b, as);
        expect(res.status, `${who}: ${JSON.stringify(res.body)}`).to.equal(403);
        expect(res.body).to.include({ resourceType: 'OperationOutcome' });
      }
    });

    it("an auditor handing in another auditor's signature, or reviewing through another member's gateway", async () => {
      const other = await registerDid(chain, 'auditor');
      const res = await post(regulator, breakGlassId, parameters('justified', proof(other, breakGlassId, 'justified')));
      expect(res.status).to.equal(403);
      expect(diagnostics(res)).to.match(/own DID key/);
      // The chaincode: an auditor's review is submitted through its own organization's gateway.
      const elsewhere = await post(hospital1, breakGlassId, parameters('justified', proof(auditor, breakGlassId, 'justified')));
      expect(elsewhere.status, JSON.stringify(elsewhere.body)).to.equal(403);
    });

    it('a token without the AuditEvent update scope', async () => {
      const res = await post(regulator, breakGlassId, parameters('justified', proof(auditor, breakGlassId, 'justified')), asAuditor(auditor, { scope: 'user/AuditEvent.rs' }));
      expect(res.status).to.equal(403);
    });

    it('the queue, to anyone but an auditor', async () => {
      const res = await request(regulator)
        .get('/fhir/AuditEvent?review-state=open')
        .set(...asCaller({ did: patient.did, role: 'patient', tokenKind: 'did', scope: 'patient/AuditEvent.rs' }));
      expect(res.status).to.equal(403);
    });
  });

  describe('bad requests are OperationOutcomes naming the problem, never a 500', () => {
    const cases: Array<[string, () => unknown, number, RegExp]> = [
      ['a body that is not Parameters', () => ({ resourceType: 'Basic' }), 400, /Parameters/],
      ['no outcome', () => ({ resourceType: 'Parameters', parameter: [{ name: 'proof', valueString: 'a.b.c' }] }), 400, /outcome parameter is missing/],
      ['an outcome outside the codes', () => parameters('fine', proof(auditor, breakGlassId, 'fine')), 400, /justified, not-justified, needs-follow-up/],
      ['a free-text note', () => parameters('justified', proof(auditor, breakGlassId, 'justified'), [{ name: 'note', valueString: 'x' }]), 400, /no free-text/],
      ['no proof', () => ({ resourceType: 'Parameters', parameter: [{ name: 'outcome', valueCode: 'justified' }] }), 400, /proof parameter is missing/],
      ['a proof that is no JWS', () => parameters('justified', 'not a jws'), 400, /compact JWS/],
      ['a proof for another entry', () => parameters('justified', proof(auditor, treatmentId, 'justified')), 400, /another access entry/],
      ['a proof of another outcome', () => parameters('justified', proof(auditor, breakGlassId, 'not-justified')), 400, /another outcome/],
    ];
    for (const [what, body, status, message] of cases) {
      it(`${what}: ${status}`, async () => {
        const res = await post(regulator, breakGlassId, body());
        expect(res.status, JSON.stringify(res.body)).to.equal(status);
        expect(res.body).to.include({ resourceType: 'OperationOutcome' });
        expect(diagnostics(res)).to.match(message);
      });
    }

    it('an entry that is not break-glass: 409; an unknown one: 404; a malformed id: 400; a replayed proof: 409', async () => {
      const plain = await post(regulator, treatmentId, parameters('justified', proof(auditor, treatmentId, 'justified')));
      expect(plain.status, JSON.stringify(plain.body)).to.equal(409);
      const missing = `${'f'.repeat(64)}.0`;
      expect((await post(regulator, missing, parameters('justified', proof(auditor, missing, 'justified')))).status).to.equal(404);
      expect((await post(regulator, 'Observation-o1', parameters('justified', proof(auditor, 'Observation-o1', 'justified')))).status).to.equal(400);
      const once = proof(auditor, breakGlassId, 'justified');
      await post(regulator, breakGlassId, parameters('justified', once)).expect(200);
      expect((await post(regulator, breakGlassId, parameters('justified', once))).status).to.equal(409);
    });

    it('review-state: an unknown state or with patient is 400', async () => {
      expect(
        (
          await request(regulator)
            .get('/fhir/AuditEvent?review-state=closed')
            .set(...asAuditor())
        ).status,
      ).to.equal(400);
      expect(
        (
          await request(regulator)
            .get(`/fhir/AuditEvent?review-state=open&patient=${patient.did}`)
            .set(...asAuditor())
        ).status,
      ).to.equal(400);
    });
  });
});
