import { expect } from 'chai';
import { newKey, signJws, type TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { H2_GATEWAY, registerDid } from '@hdx/chaincode/dist/test-support/registry';
import type { AccessEntryInput, AnchorInput, Decision, LedgerClient } from '../ledger/ledger-client';
import { ChaincodeLedger, ContractLedger } from './contract-ledger';
import { FakeLedger } from './fake-ledger';

const DID = `did:hdx:${'a'.repeat(43)}`;
const OTHER = `did:hdx:${'b'.repeat(43)}`;
const PSEUDO = `pseudonym:${'1'.repeat(64)}`;
const input = (id: string, patient: string): AnchorInput => ({
  resourceType: 'Observation',
  id,
  versionId: '1',
  patient,
  lastUpdated: '2024-05-01T10:00:00Z',
  commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
});
const locateAll = { actor: DID, actorOrganization: 'Hospital1MSP', purpose: 'TREAT' };

describe('gateway FakeLedger keeps the chaincode and Fabric semantics the gateway relies on', () => {
  it("locates only the patient's anchors and those under pseudonyms linked to it, deciding each with the row's own patient", async () => {
    const ledger = new FakeLedger();
    const seen: string[] = [];
    ledger.decide = (request): Decision => {
      seen.push(String(request.patient));
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    };
    await ledger.anchorBatch([input('d1', DID), input('o1', OTHER)]);
    await ledger.anchorBatch([input('p1', PSEUDO)], [{ pseudonym: PSEUDO, did: DID }]);
    const result = await ledger.locateRecords({ patient: DID, ...locateAll });
    expect(result.custodians.flatMap((c) => c.resources.map((r) => r.id)).sort()).to.deep.equal(['d1', 'p1']);
    expect(seen).to.deep.equal([DID, DID]);
    await ledger.linkPatient(PSEUDO, DID);
    let message = '';
    await ledger.linkPatient(PSEUDO, OTHER).catch((error: Error) => (message = error.message));
    expect(message).to.match(/already linked/);
  });

  it('pages with a bookmark that must belong to the query (never clamped into range)', async () => {
    const ledger = new FakeLedger();
    ledger.decide = () => ({ decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false });
    await ledger.anchorBatch([input('d1', DID), input('d2', DID), input('d3', DID), input('o1', OTHER)]);
    const ids: string[] = [];
    let bookmark = '';
    for (let i = 0; i < 5; i++) {
      const page = await ledger.locateRecords({ patient: DID, ...locateAll, pageSize: 2, ...(bookmark ? { bookmark } : {}) });
      ids.push(...page.custodians.flatMap((c) => c.resources.map((r) => r.id)));
      bookmark = page.bookmark;
      if (!bookmark) break;
    }
    expect(ids).to.deep.equal(['d1', 'd2', 'd3']);
    let code = '';
    await ledger.locateRecords({ patient: DID, ...locateAll, bookmark: `${OTHER}\u0000` }).catch((error: { code?: string }) => (code = String(error.code)));
    expect(code).to.equal('INVALID');
  });

  it("records actorAuth and vouchedBy as the chaincode does; an admin's patient deactivation suspends", async () => {
    const ledger = new FakeLedger();
    const [delegated, idp] = await ledger.recordAccess([
      { actor: DID, actorOrganization: 'Hospital2MSP', patient: DID, action: 'R', purpose: 'TREAT', decision: 'permit', breakGlass: false },
      { actor: DID, actorOrganization: 'Hospital1MSP', actorAuth: 'idp', patient: DID, action: 'R', purpose: 'TREAT', decision: 'permit', breakGlass: false },
    ]);
    expect(delegated).to.deep.include({ actorAuth: 'delegated', vouchedBy: 'Hospital2MSP' });
    expect(idp).to.deep.include({ actorAuth: 'idp', vouchedBy: 'Hospital1MSP' });
    await ledger.registerDid({ did: DID, kind: 'patient' });
    expect((await ledger.deactivateDid({ did: DID })).hdx.status).to.equal('suspended');
    await ledger.reactivateDid({ did: DID });
    expect((await ledger.approveReactivation({ did: DID })).hdx.status).to.equal('active');
  });
});

describe('gateway FakeLedger break-glass reviews answer as the real contract does (ContractLedger)', () => {
  interface World {
    ledger: LedgerClient;
    keys: Record<'auditor' | 'doctor' | 'patient', TestKey>;
    breakGlass: string;
    plain: string;
    ownAccess: string;
  }
  const entry = (actor: string, actorOrganization: string, patient: string, breakGlass: boolean): AccessEntryInput => ({
    actor,
    actorOrganization,
    actorAuth: 'did',
    patient,
    resources: ['Observation/o1/_history/1'],
    action: 'R',
    purpose: breakGlass ? 'ETREAT' : 'TREAT',
    decision: 'permit',
    breakGlass,
    custodian: 'Hospital1MSP',
  });

  async function fakeWorld(): Promise<World> {
    const ledger = new FakeLedger('RegulatorMSP');
    const keys = { auditor: newKey(), doctor: newKey(), patient: newKey() };
    await ledger.registerDid({ did: keys.auditor.did, kind: 'auditor' });
    await ledger.registerDid({ did: keys.doctor.did, kind: 'practitioner' });
    await ledger.registerDid({ did: keys.patient.did, kind: 'patient' });
    const [breakGlass, plain, ownAccess] = await ledger.recordAccess([
      entry(keys.doctor.did, 'Hospital2MSP', keys.patient.did, true),
      entry(keys.doctor.did, 'Hospital2MSP', keys.patient.did, false),
      entry(keys.auditor.did, 'RegulatorMSP', keys.patient.did, true),
    ]);
    return { ledger, keys, breakGlass: String(breakGlass?.eventId), plain: String(plain?.eventId), ownAccess: String(ownAccess?.eventId) };
  }

  async function contractWorld(): Promise<World> {
    const chain = new ChaincodeLedger();
    chain.clock = Math.floor(Date.now() / 1000);
    const h1 = new ContractLedger('Hospital1MSP', { chain });
    const keys = { auditor: await registerDid(chain, 'auditor'), doctor: await registerDid(chain, 'practitioner', H2_GATEWAY), patient: await registerDid(chain, 'patient') };
    await h1.anchor({
      resourceType: 'Observation',
      id: 'o1',
      versionId: '1',
      patient: keys.patient.did,
      lastUpdated: '2024-05-01T10:00:00Z',
      commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
    });
    const [breakGlass, plain, ownAccess] = await h1.recordAccess([
      entry(keys.doctor.did, 'Hospital2MSP', keys.patient.did, true),
      entry(keys.doctor.did, 'Hospital2MSP', keys.patient.did, false),
      entry(keys.auditor.did, 'RegulatorMSP', keys.patient.did, true),
    ]);
    return {
      ledger: new ContractLedger('RegulatorMSP', { chain }),
      keys,
      breakGlass: String(breakGlass?.eventId),
      plain: String(plain?.eventId),
      ownAccess: String(ownAccess?.eventId),
    };
  }

  const proof = (key: TestKey, eventId: string, outcome = 'justified', extra: Record<string, unknown> = {}): string =>
    signJws(key.privateKey, `${key.did}#key-1`, {
      action: 'review',
      eventId,
      outcome,
      nonce: `nonce-${Math.random().toString(36).slice(2).padEnd(16, 'x')}`,
      iat: Math.floor(Date.now() / 1000),
      ...extra,
    });
  const codeOf = async (promise: Promise<unknown>): Promise<string> => {
    try {
      await promise;
      return 'ok';
    } catch (error) {
      return String((error as { code?: string }).code);
    }
  };

  for (const [name, world] of [
    ['FakeLedger', fakeWorld],
    ['ContractLedger', contractWorld],
  ] as const) {
    it(`${name}: who and what may be reviewed, append-only, the queue by state`, async () => {
      const w = await world();
      const { auditor, doctor, patient } = w.keys;
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(doctor, w.breakGlass)))).to.equal('FORBIDDEN');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(patient, w.breakGlass)))).to.equal('FORBIDDEN');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(auditor, w.ownAccess)))).to.equal('FORBIDDEN');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(auditor, w.plain)))).to.equal('CONFLICT');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(auditor, `${'f'.repeat(64)}.0`)))).to.equal('NOT_FOUND');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(auditor, w.breakGlass, 'fine')))).to.equal('INVALID');
      expect(await codeOf(w.ledger.reviewBreakGlass(proof(auditor, w.breakGlass, 'justified', { note: 'x' })))).to.equal('INVALID');
      expect((await w.ledger.queryBreakGlass({ state: 'open', requester: auditor.did })).entries.map((e) => e.entry.eventId).sort()).to.deep.equal(
        [w.breakGlass, w.ownAccess].sort(),
      );
      const first = await w.ledger.reviewBreakGlass(proof(auditor, w.breakGlass, 'needs-follow-up'));
      expect(first.review).to.deep.include({ state: 'reviewed', reviews: 1 });
      const second = await w.ledger.reviewBreakGlass(proof(auditor, w.breakGlass, 'justified'));
      expect(second.review).to.deep.include({ state: 'reviewed', reviews: 2 });
      expect(second.review.current).to.deep.include({ eventId: w.breakGlass, outcome: 'justified', reviewer: auditor.did, reviewerOrganization: 'RegulatorMSP' });
      expect((await w.ledger.queryBreakGlass({ state: 'open', requester: auditor.did })).entries.map((e) => e.entry.eventId)).to.deep.equal([w.ownAccess]);
      expect((await w.ledger.queryBreakGlass({ state: 'reviewed', requester: auditor.did })).entries.map((e) => e.review.current?.outcome)).to.deep.equal(['justified']);
      const history = await w.ledger.queryAccess({ patient: patient.did, requester: auditor.did });
      expect(history.reviews?.[w.breakGlass]).to.deep.include({ state: 'reviewed', reviews: 2 });
      expect(history.reviews?.[w.plain]).to.equal(undefined);
    });
  }
});
