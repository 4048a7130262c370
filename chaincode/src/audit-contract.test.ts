import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_ADMIN, REG_AUDITOR, registerDid, signedBy, anchorObservation } from './test-support/registry';

const audit = new AuditContract();
const consents = new ConsentContract();
const records = new RecordContract();
const identities = new IdentityContract();

describe('hdx.audit', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let doctor: TestKey;
  const entry = (overrides: Record<string, unknown> = {}) => ({
    actor: doctor.did,
    actorOrganization: 'Hospital2MSP',
    patient: patient.did,
    resources: ['Observation/o1/_history/1'],
    action: 'R',
    purpose: 'TREAT',
    decision: 'permit',
    consents: ['c1'],
    breakGlass: false,
    custodian: 'Hospital1MSP',
    ...overrides,
  });
  const record = async (overrides: Record<string, unknown> = {}, who: FakeIdentity = H1_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => audit.RecordAccess(ctx, JSON.stringify(entry(overrides)))));
  const query = async (q: Record<string, unknown>, who: FakeIdentity = REG_AUDITOR) => JSON.parse(await ledger.invoke(who, (ctx) => audit.QueryAccess(ctx, JSON.stringify(q))));
  const ids = (result: { entries: Array<{ eventId: string }> }) => result.entries.map((e) => e.eventId);

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    // Hospital1 is the custodian of the resource its entries name (it must stand behind them).
    await anchorObservation(ledger, patient.did);
  });

  it('is the contract hdx.audit', () => {
    expect(audit.getName()).to.equal('hdx.audit');
  });

  describe('RecordAccess', () => {
    it('stores an entry under a key holding the txId, with the transaction time and an event', async () => {
      const stored = await record();
      const txId = ledger.lastTx?.txId;
      expect(stored).to.deep.include({ eventId: `${txId}.0`, txId, gateway: 'Hospital1MSP', patient: patient.did, decision: 'permit' });
      expect(stored.recordedAt).to.equal(stored.occurredAt);
      const event = ledger.events.at(-1);
      expect(event?.name).to.equal('hdx.audit');
      expect(JSON.parse(Buffer.from(event?.payload ?? []).toString()).entries[0]).to.deep.include({ eventId: `${txId}.0`, patient: patient.did });
    });

    it('never writes the same key twice: two identical entries give two entries', async () => {
      const before = new Set(ledger.state.keys());
      const a = await record();
      const written = [...ledger.state.keys()].filter((key) => !before.has(key));
      const b = await record();
      expect(a.eventId).to.not.equal(b.eventId);
      const second = [...ledger.state.keys()].filter((key) => !before.has(key) && !written.includes(key));
      expect(second.length).to.equal(written.length);
    });

    it('is idempotent per gateway entryId (outbox retries)', async () => {
      const first = await record({ entryId: 'outbox-1' });
      const again = await record({ entryId: 'outbox-1' });
      expect(again).to.deep.equal(first);
      expect((await query({ patient: patient.did })).entries).to.have.length(1);
    });

    it('keeps the occurredAt stated by the gateway', async () => {
      expect((await record({ occurredAt: '2024-01-01T00:00:00Z' })).occurredAt).to.equal('2024-01-01T00:00:00Z');
    });

    it('refuses auditors and organizations that took no part (FORBIDDEN)', async () => {
      await rejectsWith(record({}, REG_AUDITOR), 'FORBIDDEN');
      await rejectsWith(record({}, identity('Hospital1MSP')), 'FORBIDDEN');
      await rejectsWith(record({}, identity('Hospital3MSP', 'gateway')), 'FORBIDDEN');
    });

    const bad: Array<[string, Record<string, unknown>]> = [
      ['a local patient id', { patient: 'MRN-1' }],
      ['an actor that is not a DID', { actor: 'dr-house' }],
      ['an unknown action', { action: 'X' }],
      ['an unknown decision', { decision: 'maybe' }],
      ['breakGlass as a string', { breakGlass: 'no' }],
      ['a malformed resource', { resources: ['Observation'] }],
      ['a free-text note', { note: 'patient was upset' }],
      ['an occurredAt without zone', { occurredAt: '2024-01-01T00:00:00' }],
    ];
    for (const [what, overrides] of bad) {
      it(`refuses ${what} with INVALID`, async () => {
        await rejectsWith(record(overrides), 'INVALID');
      });
    }
  });

  describe('RecordAccessBatch', () => {
    it('records many entries in one transaction with distinct event ids and one event', async () => {
      const before = ledger.events.length;
      const stored = JSON.parse(await ledger.invoke(H2_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, JSON.stringify([entry(), entry({ purpose: 'HRESCH' })]))));
      expect(stored.map((e: { eventId: string }) => e.eventId)).to.deep.equal([`${ledger.lastTx?.txId}.0`, `${ledger.lastTx?.txId}.1`]);
      expect(ledger.events.length - before).to.equal(1);
    });

    it('is all or nothing and refuses repeated entry ids', async () => {
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, JSON.stringify([entry(), entry({ patient: 'x' })]))),
        'INVALID',
      );
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, JSON.stringify([entry({ entryId: 'a' }), entry({ entryId: 'a' })]))),
        'INVALID',
      );
      await rejectsWith(
        ledger.invoke(H2_GATEWAY, (ctx) => audit.RecordAccessBatch(ctx, '[]')),
        'INVALID',
      );
      expect((await query({})).entries).to.deep.equal([]);
    });
  });

  describe('AuthorizeAndRecord (sync audit mode)', () => {
    const request = (overrides: Record<string, unknown> = {}) => ({
      actor: doctor.did,
      actorOrganization: 'Hospital2MSP',
      purpose: 'TREAT',
      resource: 'Observation/o1/_history/1',
      ...overrides,
    });
    const authorize = async (overrides: Record<string, unknown> = {}, who: FakeIdentity = H1_GATEWAY) =>
      JSON.parse(await ledger.invoke(who, (ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify(request(overrides)))));

    beforeEach(async () => {
      await ledger.invoke(H1_GATEWAY, (ctx) =>
        records.Anchor(
          ctx,
          JSON.stringify({
            resourceType: 'Observation',
            id: 'o1',
            versionId: '1',
            patient: patient.did,
            lastUpdated: '2024-01-01T00:00:00Z',
            commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
          }),
        ),
      );
    });

    it('records a deny with its decision when there is no consent', async () => {
      const result = await authorize();
      expect(result).to.deep.equal({ decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false, eventId: `${ledger.lastTx?.txId}.0` });
      const stored = (await query({ patient: patient.did })).entries[0];
      expect(stored).to.deep.include({ decision: 'deny', reason: 'no-permit', custodian: 'Hospital1MSP', gateway: 'Hospital1MSP', resources: ['Observation/o1/_history/1'] });
    });

    it('permits and records after a signed consent, naming it', async () => {
      const consent = {
        resourceType: 'Consent',
        id: 'c1',
        status: 'active',
        patient: { reference: patient.did },
        provision: { type: 'permit', actor: [{ reference: { reference: doctor.did } }] },
      };
      await ledger.invoke(H1_GATEWAY, (ctx) => consents.Grant(ctx, signedBy(ledger, patient, { action: 'grant', consent })));
      const result = await authorize({ resources: ['Observation/o1/_history/1', 'Observation/o2'], entryId: 'req-1', subtype: 'read' });
      expect(result).to.deep.include({ decision: 'permit', consents: ['c1'], reason: 'consent-permit' });
      const stored = (await query({ resource: 'Observation/o2' })).entries[0];
      expect(stored).to.deep.include({ subtype: 'read', entryId: 'req-1', resources: ['Observation/o1/_history/1', 'Observation/o2'] });
      expect(await authorize({ entryId: 'req-1' })).to.deep.equal(result);
    });

    it('flags and records break-glass', async () => {
      expect(await authorize({ purpose: 'ETREAT' })).to.deep.include({ decision: 'permit', reason: 'break-glass', breakGlass: true });
      expect((await query({ actor: doctor.did })).entries[0].breakGlass).to.equal(true);
    });

    it('the requesting organization may record it too; an uninvolved one may not', async () => {
      expect((await authorize({}, H2_GATEWAY)).eventId).to.be.a('string');
      await rejectsWith(authorize({}, identity('Hospital3MSP', 'gateway')), 'FORBIDDEN');
      await rejectsWith(authorize({}, REG_AUDITOR), 'FORBIDDEN');
    });

    it('records nothing for an invalid or unknown request', async () => {
      await rejectsWith(authorize({ resource: 'Observation/none/_history/1' }), 'NOT_FOUND');
      await rejectsWith(authorize({ auditAction: 'Z' }), 'INVALID');
      await rejectsWith(authorize({ purpose: 'treat' }), 'INVALID');
      expect((await query({})).entries).to.deep.equal([]);
    });

    it('denies access to an erased resource and still records the attempt', async () => {
      await ledger.invoke(H1_GATEWAY, (ctx) => records.EraseResource(ctx, 'Observation', 'o1'));
      expect(await authorize()).to.deep.include({ decision: 'deny', reason: 'resource-erased' });
      expect((await query({ resource: 'Observation/o1' })).entries).to.have.length(1);
    });
  });

  describe('QueryAccess', () => {
    let times: string[];
    beforeEach(async () => {
      const other = await registerDid(ledger, 'patient');
      times = [];
      for (const [p, a, res] of [
        [patient.did, doctor.did, 'Observation/o1'],
        [other.did, doctor.did, 'Observation/o2'],
        [patient.did, doctor.did, 'Condition/c1/_history/3'],
        [patient.did, doctor.did, 'Observation/o1/_history/2'],
      ] as const) {
        // Recorded by the doctor's own organization (requester side: it registered the actor).
        times.push((await record({ patient: p, actor: a, resources: [res] }, H2_GATEWAY)).recordedAt);
      }
    });

    it('queries by patient, actor and resource (all versions), oldest first', async () => {
      expect((await query({ patient: patient.did })).entries).to.have.length(3);
      expect((await query({ actor: doctor.did })).entries).to.have.length(4);
      const byResource = await query({ resource: 'Observation/o1' });
      expect(byResource.entries.map((e: { resources: string[] }) => e.resources[0])).to.deep.equal(['Observation/o1', 'Observation/o1/_history/2']);
      expect((await query({ resource: 'Observation/o1/_history/2' })).entries).to.have.length(2);
    });

    it('limits to a time window [from, to)', async () => {
      const window = await query({ from: times[1], to: times[3] });
      expect(window.entries.map((e: { recordedAt: string }) => e.recordedAt)).to.deep.equal([times[1], times[2]]);
      const patientWindow = await query({ patient: patient.did, from: times[1] });
      expect(patientWindow.entries).to.have.length(2);
      await rejectsWith(query({ from: times[3], to: times[0] }), 'INVALID');
      await rejectsWith(query({ from: '2024-01-01' }), 'INVALID');
    });

    it('pages with a bookmark', async () => {
      const first = await query({ pageSize: 3 });
      expect(first.entries).to.have.length(3);
      const second = await query({ pageSize: 3, bookmark: first.bookmark });
      expect(second.entries).to.have.length(1);
      expect(second.bookmark).to.equal('');
      expect(new Set([...ids(first), ...ids(second)]).size).to.equal(4);
    });

    it('lets a patient read only their own entries, through a gateway or their own identity', async () => {
      expect((await query({ patient: patient.did, requester: patient.did }, H1_GATEWAY)).entries).to.have.length(3);
      expect((await query({ patient: patient.did }, identity('Hospital1MSP', undefined, { 'hdx.did': patient.did }))).entries).to.have.length(3);
      const other = await registerDid(ledger, 'patient');
      await rejectsWith(query({ patient: patient.did, requester: other.did }, H1_GATEWAY), 'FORBIDDEN');
      await rejectsWith(query({ requester: patient.did }, H1_GATEWAY), 'FORBIDDEN');
      await rejectsWith(query({ actor: doctor.did, requester: patient.did }, H1_GATEWAY), 'FORBIDDEN');
      await rejectsWith(query({ patient: patient.did, requester: other.did }, identity('Hospital1MSP', undefined, { 'hdx.did': patient.did })), 'FORBIDDEN');
    });

    it("lets a guardian read the patient's entries", async () => {
      const guardian = await registerDid(ledger, 'patient');
      const proof = signedBy(ledger, patient, { action: 'add-guardian', patient: patient.did, guardian: guardian.did });
      await ledger.invoke(H1_ADMIN, (ctx) => identities.AddGuardian(ctx, JSON.stringify({ patient: patient.did, guardian: guardian.did, proof })));
      expect((await query({ patient: patient.did, requester: guardian.did }, H2_GATEWAY)).entries).to.have.length(3);
    });

    it('lets an actor read their own actions only', async () => {
      expect((await query({ actor: doctor.did, requester: doctor.did }, H2_GATEWAY)).entries).to.have.length(4);
      await rejectsWith(query({ patient: patient.did, requester: doctor.did }, H2_GATEWAY), 'FORBIDDEN');
    });

    it('lets the regulator and auditor DIDs read everything, an auditor DID only through its own organization', async () => {
      expect((await query({}, REG_ADMIN)).entries).to.have.length(4);
      const auditorDid = await registerDid(ledger, 'auditor');
      expect((await query({ requester: auditorDid.did }, identity('RegulatorMSP', 'gateway'))).entries).to.have.length(4);
      // A requester DID is public: another member's gateway naming the regulator's auditor reads nothing.
      await rejectsWith(query({ requester: auditorDid.did }, H1_GATEWAY), 'FORBIDDEN');
    });

    it('limits a hospital admin or auditor to entries involving its organization', async () => {
      await record({ actorOrganization: 'Hospital2MSP', custodian: 'Hospital2MSP' }, H2_GATEWAY);
      expect((await query({}, H1_ADMIN)).entries).to.have.length(4);
      expect((await query({}, identity('Hospital1MSP', 'auditor'))).entries).to.have.length(4);
      expect((await query({}, H2_ADMIN)).entries).to.have.length(5);
    });

    it('refuses a gateway without requester and identities without a role', async () => {
      await rejectsWith(query({}, H1_GATEWAY), 'FORBIDDEN');
      await rejectsWith(query({ requester: patient.did }, identity('Hospital1MSP')), 'FORBIDDEN');
    });

    it('refuses malformed queries', async () => {
      await rejectsWith(query({ patient: patient.did, actor: doctor.did }), 'INVALID');
      await rejectsWith(query({ resource: 'Observation' }), 'INVALID');
      await rejectsWith(query({ requester: 'me' }, H1_GATEWAY), 'INVALID');
      await rejectsWith(query({ pageSize: 1000 }), 'INVALID');
    });

    it('GetEntry applies the same read rights', async () => {
      const [first] = ids(await query({ patient: patient.did }));
      const eventId = first as string;
      expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.GetEntry(ctx, eventId, patient.did))).eventId).to.equal(eventId);
      const other = await registerDid(ledger, 'patient');
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => audit.GetEntry(ctx, eventId, other.did)),
        'FORBIDDEN',
      );
      await rejectsWith(
        ledger.invoke(REG_AUDITOR, (ctx) => audit.GetEntry(ctx, `${'f'.repeat(64)}.0`, '')),
        'NOT_FOUND',
      );
      await rejectsWith(
        ledger.invoke(REG_AUDITOR, (ctx) => audit.GetEntry(ctx, 'bad id', '')),
        'INVALID',
      );
    });
  });
});
