/**
 * hdx.audit under issue 9 (#12): entries carry actorAuth and vouchedBy, and a stated entry is refused
 * unless the recording organization can stand behind it (as the custodian of the anchors it names, or
 * as the organization that registered the actor). Paginated queries refuse foreign bookmarks (#13).
 */
import { expect } from 'chai';
import { AuditContract } from './audit-contract';
import { ConsentContract } from './consent-contract';
import { IdentityContract } from './identity-contract';
import { RecordContract } from './record-contract';
import { FakeIdentity, FakeLedger, rejectsWith } from './test-support/fake-ledger';
import { TestKey } from './test-support/keys';
import { H1_ADMIN, H1_GATEWAY, H2_ADMIN, H2_GATEWAY, REG_AUDITOR, registerDid } from './test-support/registry';

const audit = new AuditContract();
const consents = new ConsentContract();
const identities = new IdentityContract();
const records = new RecordContract();
const commitment = { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 5).toString('base64url') };
const PSEUDO = `pseudonym:${'4'.repeat(64)}`;

describe('hdx.audit: entries the recorder can stand behind', () => {
  let ledger: FakeLedger;
  let patient: TestKey;
  let other: TestKey;
  let h1Doctor: TestKey;
  let h2Doctor: TestKey;
  const entry = (overrides: Record<string, unknown> = {}) => ({
    actor: h2Doctor.did,
    actorOrganization: 'Hospital2MSP',
    patient: patient.did,
    resources: ['Observation/o1/_history/1'],
    action: 'R',
    purpose: 'TREAT',
    decision: 'permit',
    consents: [],
    breakGlass: false,
    custodian: 'Hospital1MSP',
    ...overrides,
  });
  const record = async (overrides: Record<string, unknown> = {}, who: FakeIdentity = H1_GATEWAY) =>
    JSON.parse(await ledger.invoke(who, (ctx) => audit.RecordAccessBatch(ctx, JSON.stringify([entry(overrides)]))))[0];
  const anchor = (id: string, patientRef: string, versionId = '1', who: FakeIdentity = H1_GATEWAY) =>
    ledger.invoke(who, (ctx) =>
      records.Anchor(ctx, JSON.stringify({ resourceType: 'Observation', id, versionId, patient: patientRef, lastUpdated: '2024-05-01T10:00:00Z', commitment })),
    );

  beforeEach(async () => {
    ledger = new FakeLedger();
    patient = await registerDid(ledger, 'patient');
    other = await registerDid(ledger, 'patient');
    h1Doctor = await registerDid(ledger, 'practitioner');
    h2Doctor = await registerDid(ledger, 'practitioner', H2_GATEWAY);
    await anchor('o1', patient.did);
    await anchor('o1', patient.did, '2');
  });

  describe('custodian side (custodian === recorder)', () => {
    it('accepts entries whose every resource the recorder anchored for that patient (versioned or all versions)', async () => {
      expect((await record()).patient).to.equal(patient.did);
      expect((await record({ resources: ['Observation/o1'] })).resources).to.deep.equal(['Observation/o1']);
    });

    it('refuses an entry naming another patient than the anchor (a forged "X read P")', async () => {
      expect(await rejectsWith(record({ patient: other.did }), 'FORBIDDEN')).to.match(/stand behind/);
    });

    it('refuses a custodian-side entry naming no resource (nothing to check its patient against)', async () => {
      await rejectsWith(record({ resources: [] }), 'FORBIDDEN');
      expect((await record({ resources: [] }, H2_GATEWAY)).resources).to.deep.equal([]);
    });

    it('refuses an entry naming a resource that is not anchored, or anchored by another custodian', async () => {
      await rejectsWith(record({ resources: ['Observation/none/_history/1'] }), 'FORBIDDEN');
      await anchor('h2obs', patient.did, '1', H2_GATEWAY);
      await rejectsWith(record({ resources: ['Observation/h2obs/_history/1'] }), 'FORBIDDEN');
    });

    it("Hospital2 cannot write 'Dr X of Hospital1 accessed patient P' under its own custodianship (review #12)", async () => {
      await rejectsWith(record({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', custodian: 'Hospital2MSP' }, H2_GATEWAY), 'FORBIDDEN');
    });

    it("accepts the DID for an anchor under the recorder's pseudonym once linked to it", async () => {
      await anchor('ps1', PSEUDO);
      await rejectsWith(record({ resources: ['Observation/ps1/_history/1'] }), 'FORBIDDEN');
      expect((await record({ resources: ['Observation/ps1/_history/1'], patient: PSEUDO })).patient).to.equal(PSEUDO);
      await ledger.invoke(H1_GATEWAY, (ctx) => records.LinkPatient(ctx, PSEUDO, patient.did));
      expect((await record({ resources: ['Observation/ps1/_history/1'] })).patient).to.equal(patient.did);
    });
  });

  describe('requester side (actorOrganization === recorder)', () => {
    it("accepts its own active actor whatever the custodian's resources", async () => {
      expect((await record({ resources: ['Observation/elsewhere/_history/9'] }, H2_GATEWAY)).gateway).to.equal('Hospital2MSP');
    });

    it('refuses an actor registered by another organization, unregistered or deactivated', async () => {
      await rejectsWith(record({ actor: patient.did, resources: ['Observation/elsewhere/_history/9'] }, H2_GATEWAY), 'FORBIDDEN');
      await rejectsWith(record({ actor: `did:hdx:${'n'.repeat(43)}`, resources: ['Observation/elsewhere/_history/9'] }, H2_GATEWAY), 'FORBIDDEN');
      await ledger.invoke(H2_ADMIN, (ctx) => identities.Deactivate(ctx, JSON.stringify({ did: h2Doctor.did })));
      await rejectsWith(record({ resources: ['Observation/elsewhere/_history/9'] }, H2_GATEWAY), 'FORBIDDEN');
    });
  });

  describe('decidedAt (a decision a gateway made on its ledger view)', () => {
    it('carries the view height the gateway decided at, and leaves it absent when not stated', async () => {
      expect((await record({ decidedAt: { height: 42 } })).decidedAt).to.deep.equal({ height: 42 });
      expect(await record()).not.to.have.property('decidedAt');
    });

    it('refuses a decidedAt that is not exactly { height: positive integer }', async () => {
      for (const decidedAt of [{ height: 0 }, { height: 1.5 }, { height: '7' }, {}, { height: 3, block: 2 }, 5]) {
        expect(await rejectsWith(record({ decidedAt }), 'INVALID')).to.match(/decidedAt/);
      }
    });
  });

  describe('actorAuth and vouchedBy', () => {
    it('absent actorAuth is delegated and vouched for by the actor organization; did and idp by the recorder', async () => {
      expect(await record()).to.deep.include({ actorAuth: 'delegated', vouchedBy: 'Hospital2MSP' });
      expect(await record({ actorAuth: 'did' })).to.deep.include({ actorAuth: 'did', vouchedBy: 'Hospital1MSP' });
      expect(await record({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp' })).to.deep.include({ actorAuth: 'idp', vouchedBy: 'Hospital1MSP' });
      await rejectsWith(record({ actorAuth: 'password' }), 'INVALID');
      const event = JSON.parse(Buffer.from(ledger.events.at(-1)?.payload ?? []).toString());
      expect(event.entries[0].actorAuth).to.equal('idp');
    });

    it('AuthorizeAndRecord records the request actorAuth with the decision', async () => {
      const result = JSON.parse(
        await ledger.invoke(H1_GATEWAY, (ctx) =>
          audit.AuthorizeAndRecord(
            ctx,
            JSON.stringify({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', purpose: 'TREAT', resource: 'Observation/o1/_history/1' }),
          ),
        ),
      );
      expect(result.reason).to.equal('custodian-treatment');
      const stored = JSON.parse(await ledger.invoke(H1_ADMIN, (ctx) => audit.GetEntry(ctx, result.eventId, '')));
      expect(stored).to.deep.include({ actorAuth: 'idp', vouchedBy: 'Hospital1MSP', patient: patient.did, custodian: 'Hospital1MSP' });
    });
  });

  describe('AuthorizeAndRecordBatch (group commit)', () => {
    const req = (overrides: Record<string, unknown> = {}) => ({
      actor: h1Doctor.did,
      actorOrganization: 'Hospital1MSP',
      actorAuth: 'idp',
      purpose: 'TREAT',
      resource: 'Observation/o1/_history/1',
      ...overrides,
    });
    const batch = async (requests: unknown[], who: FakeIdentity = H1_GATEWAY) =>
      JSON.parse(await ledger.invoke(who, (ctx) => audit.AuthorizeAndRecordBatch(ctx, JSON.stringify(requests))));

    it('decides and records each request as AuthorizeAndRecord would, in one transaction, permit or deny, in request order', async () => {
      const results = await batch([
        req({ entryId: 'a' }),
        req({ actor: h2Doctor.did, actorOrganization: 'Hospital2MSP', actorAuth: 'delegated', entryId: 'b' }),
        req({ entryId: 'c', purpose: 'HOPERAT' }),
      ]);
      const alone = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => audit.AuthorizeAndRecord(ctx, JSON.stringify(req({ entryId: 'd' })))));
      expect(results.map((r: { decision: string; reason: string }) => `${r.decision}:${r.reason}`)).to.deep.equal([
        `${alone.decision}:${alone.reason}`,
        'deny:no-permit',
        results[2].decision + ':' + results[2].reason,
      ]);
      expect(results[0].decision).to.equal('permit');
      // One transaction: the event ids share its txId, in order.
      const txIds = results.map((r: { eventId: string }) => r.eventId.split('.')[0]);
      expect(new Set(txIds).size).to.equal(1);
      expect(results.map((r: { eventId: string }) => r.eventId.split('.')[1])).to.deep.equal(['0', '1', '2']);
      const stored = JSON.parse(await ledger.invoke(H1_ADMIN, (ctx) => audit.GetEntry(ctx, results[1].eventId, '')));
      expect(stored).to.deep.include({ actor: h2Doctor.did, decision: 'deny', patient: patient.did, custodian: 'Hospital1MSP', entryId: 'b' });
    });

    it('a request already recorded returns its recorded decision and records nothing again; repeated entryIds and bad requests fail the whole batch', async () => {
      const [first] = await batch([req({ entryId: 'x' })]);
      const before = ledger.keys().length;
      const again = await batch([req({ entryId: 'x' })]);
      expect(again[0]).to.deep.equal(first);
      expect(ledger.keys().length).to.equal(before);
      await rejectsWith(batch([req({ entryId: 'y' }), req({ entryId: 'y' })]), 'INVALID');
      await rejectsWith(batch([req({ entryId: 'z' }), req({ purpose: 'nope' })]), 'INVALID');
      await rejectsWith(batch([]), 'INVALID');
      await rejectsWith(batch(['not an object']), 'INVALID');
      expect(ledger.keys().length).to.equal(before);
      // Only gateways and admins record.
      await rejectsWith(batch([req()], REG_AUDITOR), 'FORBIDDEN');
    });
  });

  describe('AnchorAndRecord', () => {
    it('stands entries behind the anchors of the same transaction, and refuses the whole transaction otherwise', async () => {
      const fresh = { resourceType: 'Observation', id: 'new', versionId: '1', patient: patient.did, lastUpdated: '2024-05-01T10:00:00Z', commitment };
      const change = entry({ actor: h1Doctor.did, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', resources: ['Observation/new/_history/1'], action: 'C' });
      const both = JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorAndRecord(ctx, JSON.stringify([fresh]), JSON.stringify([change]))));
      expect(both.entries[0]).to.deep.include({ patient: patient.did, vouchedBy: 'Hospital1MSP' });
      const before = ledger.keys().length;
      const wrong = { ...fresh, id: 'new2' };
      const forged = entry({ actor: h2Doctor.did, patient: other.did, resources: ['Observation/new2/_history/1'], action: 'C' });
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => records.AnchorAndRecord(ctx, JSON.stringify([wrong]), JSON.stringify([forged]))),
        'FORBIDDEN',
      );
      expect(ledger.keys().length).to.equal(before);
    });
  });

  describe('bookmarks (#13)', () => {
    it('QueryAccess refuses a bookmark outside the index range it queries', async () => {
      await record();
      const query = (q: Record<string, unknown>) => ledger.invoke(REG_AUDITOR, (ctx) => audit.QueryAccess(ctx, JSON.stringify(q)));
      await rejectsWith(query({ patient: other.did, bookmark: `hdx.audit~patient~${patient.did}~` }), 'INVALID');
      await rejectsWith(query({ bookmark: 'hdx.audit~actor~' }), 'INVALID');
      const page = JSON.parse(await query({ patient: patient.did, pageSize: 1 }));
      expect(page.entries).to.have.length(1);
    });

    it('ListByPatient refuses a bookmark of another patient', async () => {
      const foreign = `\u0000hdx.consent~patient\u0000${other.did}\u0000`;
      await rejectsWith(
        ledger.invoke(H1_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '10', foreign)),
        'INVALID',
      );
      expect(JSON.parse(await ledger.invoke(H1_GATEWAY, (ctx) => consents.ListByPatient(ctx, patient.did, '10', ''))).consents).to.deep.equal([]);
    });

    it('the test ledger keeps Fabric semantics: a non-empty bookmark replaces the start key, unbounded', async () => {
      await anchor('o9', other.did);
      const [low, high] = [patient.did, other.did].sort() as [string, string];
      const rows = await ledger.invoke(H1_GATEWAY, async (ctx) => {
        const { iterator } = (await ctx.stub.getStateByPartialCompositeKeyWithPagination('hdx.anchor~patient', [high], 100, '\u0000hdx.anchor~patient\u0000')) as unknown as {
          iterator: { next(): Promise<{ value?: { key: string }; done: boolean }> };
        };
        const keys: string[] = [];
        for (let r = await iterator.next(); !r.done && r.value; r = await iterator.next()) keys.push(r.value.key);
        return keys;
      });
      expect(rows.some((key) => key.includes(low))).to.equal(true);
    });
  });
});
