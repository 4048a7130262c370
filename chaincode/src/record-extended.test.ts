import { expect } from 'chai';
import { ConsentContract } from './consent-contract';
import { RecordContract } from './record-contract';
import { FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_AUDITOR, registerDid, signedBy } from './test-support/registry';

const records = new RecordContract();
const consents = new ConsentContract();
const commitment = (n: number) => ({ alg: 'HMAC-SHA-256', value: Buffer.alloc(32, n).toString('base64url') });

describe('hdx.record (batch, verify, history, erasure, locator)', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  const input = (overrides: Record<string, unknown> = {}) => ({
    resourceType: 'Observation',
    id: 'o1',
    versionId: '1',
    patient: patient.did,
    lastUpdated: '2024-05-01T10:00:00Z',
    commitment: commitment(1),
    ...overrides,
  });
  const batch = (items: unknown[], who = H1_GATEWAY) => ledger.invoke(who, (ctx) => records.AnchorBatch(ctx, JSON.stringify(items)));

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
  });

  describe('AnchorBatch', () => {
    it('anchors every entry in one transaction and returns them in order', async () => {
      const result = JSON.parse(await batch([input(), input({ id: 'o2' }), input({ resourceType: 'Patient', id: 'p1' })]));
      expect(result.map((a: { id: string }) => a.id)).to.deep.equal(['o1', 'o2', 'p1']);
      expect(new Set(result.map((a: { txId: string }) => a.txId)).size).to.equal(1);
      expect(ledger.keys('hdx.anchor')).to.have.length(3);
    });

    it('is all or nothing: one invalid or conflicting entry writes nothing', async () => {
      await rejectsWith(batch([input(), input({ id: 'o2', patient: 'MRN-1' })]), 'INVALID');
      await rejectsWith(batch([input(), input({ commitment: commitment(2) })]), 'CONFLICT');
      expect(ledger.keys('hdx.anchor')).to.deep.equal([]);
      await batch([input({ id: 'o9' })]);
      await rejectsWith(batch([input(), input({ id: 'o9', commitment: commitment(3) })]), 'CONFLICT');
      expect(ledger.keys('hdx.anchor')).to.have.length(1);
    });

    it('tolerates identical repeats and already anchored identical versions (retries)', async () => {
      await batch([input()]);
      const result = JSON.parse(await batch([input(), input(), input({ id: 'o2' })]));
      expect(result).to.have.length(3);
      expect(result[0]).to.deep.equal(result[1]);
      expect(ledger.keys('hdx.anchor')).to.have.length(2);
    });

    it('refuses an empty, oversized or non-array batch', async () => {
      await rejectsWith(batch([]), 'INVALID');
      await rejectsWith(batch(Array.from({ length: 501 }, (_, i) => input({ id: `o${i}` }))), 'INVALID');
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, JSON.stringify(input()))),
        'INVALID',
      );
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorBatch(ctx, '[')),
        'INVALID',
      );
    });

    it('refuses auditors', async () => {
      await rejectsWith(batch([input()], REG_AUDITOR), 'FORBIDDEN');
    });
  });

  describe('AnchorAndRecord', () => {
    const entry = (overrides: Record<string, unknown> = {}) => ({
      actor: patient.did,
      actorOrganization: 'Hospital1MSP',
      patient: patient.did,
      resources: ['Observation/o1/_history/1'],
      action: 'C',
      subtype: 'create',
      purpose: 'TREAT',
      decision: 'permit',
      breakGlass: false,
      custodian: 'Hospital1MSP',
      entryId: 'e-1',
      ...overrides,
    });
    const both = (anchors: unknown[], entries: unknown[], who = H1_GATEWAY) =>
      ledger.invoke(who, (ctx) => records.AnchorAndRecord(ctx, JSON.stringify(anchors), JSON.stringify(entries)));

    it('anchors the versions and records the change in the same transaction', async () => {
      const result = JSON.parse(await both([input()], [entry()]));
      expect(result.anchors).to.have.length(1);
      expect(result.entries).to.have.length(1);
      expect(result.entries[0].txId).to.equal(result.anchors[0].txId);
      expect(ledger.keys('hdx.anchor')).to.have.length(1);
      expect(ledger.keys('hdx.audit')).to.have.length(1);
    });

    it('is all or nothing: a bad entry leaves no anchor, a bad anchor leaves no entry', async () => {
      await rejectsWith(both([input()], [entry({ action: 'X' })]), 'INVALID');
      await rejectsWith(both([input({ patient: 'MRN-1' })], [entry()]), 'INVALID');
      await rejectsWith(both([input()], [entry({ actorOrganization: 'Hospital2MSP', custodian: 'Hospital2MSP' })]), 'FORBIDDEN');
      expect(ledger.keys('hdx.anchor')).to.deep.equal([]);
      expect(ledger.keys('hdx.audit')).to.deep.equal([]);
    });

    it('refuses auditors', async () => {
      await rejectsWith(both([input()], [entry()], REG_AUDITOR), 'FORBIDDEN');
    });
  });

  describe('Verify and GetHistory', () => {
    it('verifies a commitment given as base64url or JSON', async () => {
      await batch([input()]);
      const ok = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.Verify(ctx, 'Observation', 'o1', '1', commitment(1).value)));
      expect(ok).to.deep.include({ verified: true, erased: false, resource: 'Observation/o1/_history/1', custodian: 'Hospital1MSP' });
      const json = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.Verify(ctx, 'Observation', 'o1', '1', JSON.stringify(commitment(2)))));
      expect(json.verified).to.equal(false);
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => records.Verify(ctx, 'Observation', 'o1', '1', 'abc')),
        'INVALID',
      );
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => records.Verify(ctx, 'Observation', 'o1', '2', commitment(1).value)),
        'NOT_FOUND',
      );
    });

    it('lists every version of a resource in numeric order', async () => {
      await batch(['1', '2', '10'].map((versionId, i) => input({ versionId, commitment: commitment(i + 1) })));
      await batch([input({ id: 'o10' })]);
      const history = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.GetHistory(ctx, 'Observation', 'o1')));
      expect(history.map((a: { versionId: string }) => a.versionId)).to.deep.equal(['1', '2', '10']);
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => records.GetHistory(ctx, 'Observation', 'nope')),
        'NOT_FOUND',
      );
    });
  });

  describe('erasure', () => {
    it('tombstones every version: commitment kept, patient link gone', async () => {
      await batch([input({ securityLabels: ['PSY'] }), input({ versionId: '2', commitment: commitment(2) })]);
      const result = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'o1')));
      expect(result).to.deep.equal({ erased: ['Observation/o1/_history/1', 'Observation/o1/_history/2'] });
      const stone = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.GetAnchor(ctx, 'Observation', 'o1', '1')));
      expect(stone).to.have.keys(['resourceType', 'id', 'versionId', 'commitment', 'custodian', 'txId', 'anchoredAt', 'tombstone']);
      expect(stone.commitment).to.deep.equal(commitment(1));
      expect(ledger.keys('hdx.anchor~patient')).to.deep.equal([]);
      const verify = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => records.Verify(ctx, 'Observation', 'o1', '1', commitment(1).value)));
      expect(verify).to.deep.include({ verified: true, erased: true });
    });

    it('is idempotent and refuses re-anchoring an erased version', async () => {
      await batch([input()]);
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'o1'));
      expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'o1')))).to.deep.equal({ erased: [] });
      await rejectsWith(batch([input()]), 'CONFLICT');
    });

    it('only the custodian may erase', async () => {
      await batch([input()]);
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'o1')),
        'FORBIDDEN',
      );
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'missing')),
        'NOT_FOUND',
      );
    });

    it("ErasePatient tombstones only the caller's anchors for that patient", async () => {
      await batch([input(), input({ id: 'o2' })]);
      await batch([input({ id: 'x1' })], H2_GATEWAY);
      const result = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, patient.did)));
      expect(result.erased).to.deep.equal(['Observation/o1/_history/1', 'Observation/o2/_history/1']);
      expect(ledger.keys('hdx.anchor~patient')).to.have.length(1);
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.ErasePatient(ctx, 'MRN-1')),
        'INVALID',
      );
    });
  });

  describe('LocateRecords', () => {
    let doctor: TestKey;
    const locate = async (overrides: Record<string, unknown> = {}, who = H2_GATEWAY) =>
      JSON.parse(
        await ledger.invoke(who, (ctx) =>
          records.LocateRecords(ctx, JSON.stringify({ patient: patient.did, actor: doctor.did, actorOrganization: 'Hospital2MSP', purpose: 'TREAT', ...overrides })),
        ),
      );

    beforeEach(async () => {
      doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
      await registerDid(ledger, 'organization', identity('Hospital1MSP', 'admin'), { fhirBaseUrl: 'https://h1.example/fhir' });
      await batch([input(), input({ id: 'o2', securityLabels: ['PSY'] }), input({ resourceType: 'Condition', id: 'c1' })]);
    });

    it('withholds everything without consent', async () => {
      expect(await locate()).to.deep.equal({ custodians: [], withheld: 3, breakGlass: false, bookmark: '', fetchedRecordsCount: 3 });
    });

    it('lists what the consent permits, with the custodian FHIR endpoint', async () => {
      const consent = {
        resourceType: 'Consent',
        id: 'share-h2',
        status: 'active',
        patient: { reference: patient.did },
        provision: {
          type: 'permit',
          actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: 'Hospital2MSP' } } }],
          provision: [{ type: 'deny', securityLabel: [{ code: 'PSY' }] }],
        },
      };
      await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patient, { action: 'grant', consent })));
      const result = await locate();
      expect(result.withheld).to.equal(1);
      expect(result.custodians).to.have.length(1);
      expect(result.custodians[0]).to.deep.include({ custodian: 'Hospital1MSP', fhirBaseUrl: 'https://h1.example/fhir' });
      expect(result.custodians[0].resources.map((r: { resourceType: string; id: string }) => `${r.resourceType}/${r.id}`)).to.deep.equal(['Condition/c1', 'Observation/o1']);
      expect((await locate({ resourceType: 'Observation' })).custodians[0].resources).to.have.length(1);
    });

    it('permits break-glass and flags it', async () => {
      const result = await locate({ purpose: 'ETREAT' });
      expect(result.breakGlass).to.equal(true);
      expect(result.custodians[0].resources).to.have.length(3);
    });

    it('pages with a bookmark and filters by custodian', async () => {
      await batch([input({ id: 'z1' })], H2_ADMIN);
      const first = await locate({ purpose: 'ETREAT', pageSize: 2 });
      expect(first.fetchedRecordsCount).to.equal(2);
      const second = await locate({ purpose: 'ETREAT', pageSize: 2, bookmark: first.bookmark });
      const total = [...first.custodians, ...second.custodians].flatMap((c: { resources: unknown[] }) => c.resources);
      expect(total).to.have.length(4);
      expect(second.bookmark).to.equal('');
      const h2 = await locate({ purpose: 'ETREAT', custodian: 'Hospital2MSP' });
      expect(h2.custodians).to.have.length(1);
      expect(h2.custodians[0]).to.deep.include({ custodian: 'Hospital2MSP', organization: null, fhirBaseUrl: null });
    });

    it('refuses malformed requests', async () => {
      await rejectsWith(locate({ patient: 'MRN-1' }), 'INVALID');
      await rejectsWith(locate({ purpose: 'x' }), 'INVALID');
      await rejectsWith(locate({ pageSize: 0 }), 'INVALID');
      await rejectsWith(locate({ other: 1 }), 'INVALID');
    });
  });
});
