/**
 * hdx.record under issue 9: patient links (#8), the locator's prefixes and bookmarks (#13), the clinical
 * month on anchors and the derived consent action (#9), and who may anchor (#17).
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, H2_GATEWAY, REG_AUDITOR, registerDid, signedBy } from './test-support/registry';

const records = new RecordContract();
const consents = new ConsentContract();
const audit = new AuditContract();
const commitment = (n: number) => ({ alg: 'HMAC-SHA-256', value: Buffer.alloc(32, n).toString('base64url') });
const PSEUDO_1 = `pseudonym:${'1'.repeat(64)}`;
const PSEUDO_2 = `pseudonym:${'2'.repeat(64)}`;

describe('hdx.record: links, locator prefixes, clinical month, anchoring roles', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let other: TestKey;
  let h1Doctor: TestKey;
  let h2Doctor: TestKey;
  let n = 0;
  const input = (overrides: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    id: `o${++n}`,
    versionId: '1',
    patient: patient.did,
    lastUpdated: '2026-05-01T10:00:00Z',
    commitment: commitment(1),
    ...overrides,
  });
  const anchor = async (overrides: Record<string, unknown> = {}, who: FakeIdentity = H1_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => records.Anchor(ctx, JSON.stringify(input(overrides)))));
  const link = (pseudonym: string, did: string, who: FakeIdentity = H1_GATEWAY) => ledger.invoke(who, (ctx) => records.LinkPatient(ctx, pseudonym, did));
  const evaluate = async (request: Record<string, unknown>, who: FakeIdentity = H1_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => consents.EvaluateAccess(ctx, JSON.stringify(request))));
  const locate = async (request: Record<string, unknown>, who: FakeIdentity = H2_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => records.LocateRecords(ctx, JSON.stringify(request))));
  const idsOf = (result: { custodians: Array<{ resources: Array<{ id: string }> }> }) => result.custodians.flatMap((c) => c.resources.map((r) => r.id)).sort();
  const grant = (key: TestKey, id: string, provision: Record<string, unknown>) =>
    ledger.invoke(H1_GATEWAY, (ctx) =>
      consents.Grant(ctx, signedBy(ledger, key, { action: 'grant', consent: { resourceType: 'Consent', id, status: 'active', patient: { reference: key.did }, provision } })),
    );
  const h1Treat = () => ({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT' });
  const h2Treat = () => ({ actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'delegated', purpose: 'TREAT' });
  const byMsp = (value: string) => [{ reference: { identifier: { system: 'urn:hdx:msp', value } } }];

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    other = await registerDid(ledger, 'patient');
    h1Doctor = await registerDid(ledger, 'practitioner');
    h2Doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
  });

  describe('LinkPatient', () => {
    it('links a custodian pseudonym to a patient DID; idempotent; never re-pointed (CONFLICT)', async () => {
      const made = JSON.parse(await link(PSEUDO_1, patient.did));
      expect(made).to.deep.include({ pseudonym: PSEUDO_1, did: patient.did, custodian: 'Hospital1MSP' });
      expect(JSON.parse(await link(PSEUDO_1, patient.did))).to.deep.equal(made);
      await rejectsWith(link(PSEUDO_1, other.did), 'CONFLICT');
      // The same pseudonym string of ANOTHER custodian is another subject.
      expect(JSON.parse(await link(PSEUDO_1, other.did, H2_GATEWAY)).did).to.equal(other.did);
      const read = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.GetPatientLink(ctx, 'Hospital1MSP', PSEUDO_1)));
      expect(read.did).to.equal(patient.did);
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => records.GetPatientLink(ctx, 'Hospital1MSP', PSEUDO_2)),
        'NOT_FOUND',
      );
    });

    it('refuses a non-patient DID, an unknown DID, a malformed pseudonym and callers without a gateway/admin role', async () => {
      await rejectsWith(link(PSEUDO_1, h1Doctor.did), 'INVALID');
      await rejectsWith(link(PSEUDO_1, `did:hdx:${'q'.repeat(43)}`), 'NOT_FOUND');
      await rejectsWith(link('pseudonym:XYZ', patient.did), 'INVALID');
      await rejectsWith(link(PSEUDO_1, patient.did, identity('Hospital1MSP')), 'FORBIDDEN');
      await rejectsWith(link(PSEUDO_1, patient.did, REG_AUDITOR), 'FORBIDDEN');
    });

    it("decisions on a pseudonymous anchor follow the link: the patient's deny governs data written before the link (#8)", async () => {
      await anchor({ id: 'pre', patient: PSEUDO_1 });
      await grant(patient, 'deny-all', { type: 'deny' });
      expect((await evaluate({ ...h1Treat(), resource: 'Observation/pre/_history/1' })).reason).to.equal('custodian-treatment');
      await link(PSEUDO_1, patient.did);
      expect(await evaluate({ ...h1Treat(), resource: 'Observation/pre/_history/1' })).to.deep.include({ decision: 'deny', reason: 'consent-deny', consents: ['deny-all'] });
      // The patient reads it as their own, and a stated patient may be the pseudonym or the DID.
      const self = { actor: patient.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT' };
      expect((await evaluate({ ...self, resource: 'Observation/pre/_history/1' })).reason).to.equal('patient-or-guardian');
      expect((await evaluate({ ...self, resource: 'Observation/pre/_history/1', patient: PSEUDO_1 })).reason).to.equal('patient-or-guardian');
      expect((await evaluate({ ...self, resource: 'Observation/pre/_history/1', patient: patient.did })).reason).to.equal('patient-or-guardian');
      await rejectsWith(evaluate({ ...self, resource: 'Observation/pre/_history/1', patient: other.did }), 'INVALID');
    });

    it('AnchorBatch and AnchorAndRecord accept {anchors, links}: the link and the anchors in one transaction', async () => {
      const stored = JSON.parse(
        await ledger.invoke(H1_GATEWAY, (ctx) =>
          records.AnchorBatch(ctx, JSON.stringify({ anchors: [input({ id: 'b1', patient: PSEUDO_1 })], links: [{ pseudonym: PSEUDO_1, did: patient.did }] })),
        ),
      );
      expect(stored[0]).to.deep.include({ id: 'b1', patient: PSEUDO_1 });
      expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.GetPatientLink(ctx, 'Hospital1MSP', PSEUDO_1))).did).to.equal(patient.did);
      // The change entry names the DID; the chaincode stands it behind the fresh anchor and the fresh link.
      const entry = {
        actor: h1Doctor.did,
        actorOrganization: 'Hospital1MSP',
        actorAuth: 'idp',
        patient: other.did,
        resources: ['Observation/b2/_history/1'],
        action: 'C',
        purpose: 'TREAT',
        decision: 'permit',
        breakGlass: false,
        custodian: 'Hospital1MSP',
      };
      const both = JSON.parse(
        await ledger.invoke(H1_GATEWAY, (ctx) =>
          records.AnchorAndRecord(
            ctx,
            JSON.stringify({ anchors: [input({ id: 'b2', patient: PSEUDO_2 })], links: [{ pseudonym: PSEUDO_2, did: other.did }] }),
            JSON.stringify([entry]),
          ),
        ),
      );
      expect(both.entries[0]).to.deep.include({ patient: other.did, actorAuth: 'idp', vouchedBy: 'Hospital1MSP' });
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, JSON.stringify({ anchors: [input()], links: [{ pseudonym: PSEUDO_2, did: patient.did }] }))),
        'CONFLICT',
      );
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, JSON.stringify({ anchors: [input()], extra: 1 }))),
        'INVALID',
      );
    });

    it('ErasePatient by DID also erases the caller pseudonym anchors linked to it', async () => {
      await anchor({ id: 'e1', patient: PSEUDO_1 });
      await anchor({ id: 'e2' });
      await link(PSEUDO_1, patient.did);
      const result = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, patient.did)));
      expect(result.erased.sort()).to.deep.equal(['Observation/e1/_history/1', 'Observation/e2/_history/1']);
    });
  });

  describe('LocateRecords', () => {
    it('lists anchors under linked pseudonyms with the DID, and pages across prefixes without loss or repeats', async () => {
      await grant(patient, 'permit-h2', { type: 'permit', actor: byMsp('Hospital2MSP') });
      for (const id of ['d1', 'd2']) await anchor({ id });
      for (const id of ['p1', 'p2', 'p3']) await anchor({ id, patient: PSEUDO_1 });
      await anchor({ id: 'q1', patient: PSEUDO_2 }, H2_GATEWAY); // Hospital2's pseudonym, linked below
      await anchor({ id: 'unlinked', patient: `pseudonym:${'3'.repeat(64)}` });
      await link(PSEUDO_1, patient.did);
      await link(PSEUDO_2, patient.did, H2_GATEWAY);
      expect(idsOf(await locate({ patient: patient.did, ...h2Treat() }))).to.deep.equal(['d1', 'd2', 'p1', 'p2', 'p3', 'q1']);
      const seen: string[] = [];
      let bookmark = '';
      for (let pages = 0; pages < 20; pages++) {
        const page = await locate({ patient: patient.did, ...h2Treat(), pageSize: 2, ...(bookmark ? { bookmark } : {}) });
        seen.push(...idsOf(page));
        bookmark = page.bookmark;
        if (!bookmark) break;
      }
      expect(seen.sort()).to.deep.equal(['d1', 'd2', 'p1', 'p2', 'p3', 'q1']);
      // A custodian filter keeps only that custodian's prefixes.
      expect(idsOf(await locate({ patient: patient.did, ...h2Treat(), custodian: 'Hospital2MSP' }))).to.deep.equal(['q1']);
    });

    it("decides each row with the row's own patient: the DID's deny hides rows under its linked pseudonym", async () => {
      await anchor({ id: 'p1', patient: PSEUDO_1 });
      await anchor({ id: 'd1' });
      await link(PSEUDO_1, patient.did);
      await grant(patient, 'deny-h1', { type: 'deny', actor: byMsp('Hospital1MSP') });
      const asPseudonym = await locate({ patient: PSEUDO_1, ...h1Treat() }, H1_GATEWAY);
      expect(asPseudonym).to.deep.include({ withheld: 1 });
      expect(idsOf(asPseudonym)).to.deep.equal([]);
      const self = await locate({ patient: PSEUDO_1, actor: patient.did, actorOrganization: 'Hospital1MSP', actorAuth: 'did', purpose: 'PATRQT' }, H1_GATEWAY);
      expect(idsOf(self)).to.deep.equal(['p1']);
    });

    it('refuses a bookmark from outside every prefix of the query, including another patient', async () => {
      await anchor({ id: 'x1', patient: other.did });
      const foreign = `\u0000hdx.anchor~patient\u0000${other.did}\u0000`;
      await rejectsWith(locate({ patient: patient.did, ...h2Treat(), bookmark: foreign }), 'INVALID');
      await rejectsWith(
        locate({ patient: patient.did, ...h2Treat(), custodian: 'Hospital2MSP', bookmark: `\u0000hdx.anchor~patient\u0000${patient.did}\u0000Hospital1MSP\u0000` }),
        'INVALID',
      );
    });

    it("uses the anchor's clinical month for dataPeriod, never lastUpdated", async () => {
      await anchor({ id: 'old', dataMonth: '2018-06', lastUpdated: '2026-05-01T10:00:00Z' });
      await anchor({ id: 'new', dataMonth: '2026-04' });
      await grant(patient, 'permit-h2', { type: 'permit', actor: byMsp('Hospital2MSP'), provision: [{ type: 'deny', dataPeriod: { end: '2019-12-31' } }] });
      expect(idsOf(await locate({ patient: patient.did, ...h2Treat() }))).to.deep.equal(['new']);
    });
  });

  describe('clinical month (dataMonth) and consent action', () => {
    it('validates dataMonth and keeps it on the anchor and the locator entry; a tombstone drops it', async () => {
      for (const bad of ['2024-13', '2024-5', '2024-05-01', '202405']) {
        await rejectsWith(anchor({ dataMonth: bad }), 'INVALID');
      }
      const stored = await anchor({ id: 'm1', dataMonth: '2024-05' });
      expect(stored.dataMonth).to.equal('2024-05');
      // The locator row of m1's anchoring transaction lists its entry.
      const entries = ledger.keys('hdx.anchor~patient').flatMap((key) => ledger.json(key) as Array<{ id: string; dataMonth?: string }>);
      expect(entries.find((entry) => entry.id === 'm1')?.dataMonth).to.equal('2024-05');
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'm1'));
      expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.GetAnchor(ctx, 'Observation', 'm1', '1')))).to.not.have.property('dataMonth');
    });

    it('a deny with dataPeriod covers a month that meets it; a permit only a month wholly inside; no month: deny yes, permit no', async () => {
      await anchor({ id: 'may', dataMonth: '2024-05' });
      await anchor({ id: 'june', dataMonth: '2024-06' });
      await anchor({ id: 'undated' });
      await grant(patient, 'p', { type: 'permit', actor: byMsp('Hospital2MSP'), dataPeriod: { start: '2024-05-15', end: '2024-12' } });
      const h2 = async (id: string) => (await evaluate({ ...h2Treat(), resource: `Observation/${id}/_history/1` })).reason;
      expect(await h2('may')).to.equal('no-permit');
      expect(await h2('june')).to.equal('consent-permit');
      expect(await h2('undated')).to.equal('no-permit');
      await grant(patient, 'd', { type: 'deny', actor: byMsp('Hospital1MSP'), dataPeriod: { start: '2024-05-31', end: '2024-05-31' } });
      const h1 = async (id: string) => (await evaluate({ ...h1Treat(), resource: `Observation/${id}/_history/1` })).reason;
      expect(await h1('may')).to.equal('consent-deny');
      expect(await h1('june')).to.equal('custodian-treatment');
      expect(await h1('undated')).to.equal('consent-deny');
    });

    it('refuses a stated dataDate outside the anchor month (a gateway cannot move the data out of a deny)', async () => {
      await anchor({ id: 'may', dataMonth: '2024-05' });
      await anchor({ id: 'undated' });
      expect((await evaluate({ ...h1Treat(), resource: 'Observation/may/_history/1', dataDate: '2024-05-20' })).reason).to.equal('custodian-treatment');
      await rejectsWith(evaluate({ ...h1Treat(), resource: 'Observation/may/_history/1', dataDate: '2020-01-01' }), 'INVALID');
      await rejectsWith(evaluate({ ...h1Treat(), resource: 'Observation/undated/_history/1', dataDate: '2020-01-01' }), 'INVALID');
    });

    it('a read by another member is disclose: "permit Hospital2, deny disclose of PSY" withholds PSY even when access is stated', async () => {
      await anchor({ id: 'psy', securityLabels: ['PSY'] });
      await anchor({ id: 'lab' });
      await grant(patient, 'c1', {
        type: 'permit',
        actor: byMsp('Hospital2MSP'),
        provision: [{ type: 'deny', action: [{ coding: [{ code: 'disclose' }] }], securityLabel: [{ code: 'PSY' }] }],
      });
      for (const action of [undefined, 'access', 'use']) {
        const stated = action === undefined ? {} : { action };
        expect((await evaluate({ ...h2Treat(), ...stated, resource: 'Observation/psy/_history/1' })).reason, String(action)).to.equal('consent-deny');
        expect((await evaluate({ ...h2Treat(), ...stated, resource: 'Observation/lab/_history/1' })).reason, String(action)).to.equal('consent-permit');
      }
      // The custodian's own staff read (access) is not a disclosure.
      expect((await evaluate({ ...h1Treat(), resource: 'Observation/psy/_history/1' })).reason).to.equal('custodian-treatment');
    });
  });

  describe('who may anchor (#17)', () => {
    it('needs hdx.role gateway or admin for Anchor, AnchorBatch, AnchorAndRecord, erasure and links', async () => {
      for (const who of [identity('Hospital1MSP'), identity('Hospital1MSP', 'nurse'), REG_AUDITOR]) {
        await rejectsWith(
          ledger.invoke(who, (ctx) => records.Anchor(ctx, JSON.stringify(input()))),
          'FORBIDDEN',
        );
        await rejectsWith(
          ledger.invoke(who, (ctx) => records.AnchorBatch(ctx, JSON.stringify([input()]))),
          'FORBIDDEN',
        );
        await rejectsWith(
          ledger.invoke(who, (ctx) => records.ErasePatient(ctx, patient.did)),
          'FORBIDDEN',
        );
        await rejectsWith(
          ledger.invoke(who, (ctx) => records.EraseResource(ctx, 'Observation', 'o1')),
          'FORBIDDEN',
        );
      }
      expect((await anchor({}, identity('Hospital1MSP', 'admin'))).custodian).to.equal('Hospital1MSP');
      expect(audit.getName()).to.equal('hdx.audit');
    });
  });
});
