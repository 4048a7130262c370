import { expect } from 'chai';
import pino from 'pino';
import request from 'supertest';
import type { TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { H1_ADMIN, H2_ADMIN, H2_GATEWAY, REG_ADMIN, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import type { AuditSink } from '../audit/sink';
import { AccessControl } from '../fhir/access-control';
import type { AccessEntryInput, AnchorInput, Decision, EvaluateRequest } from '../ledger/ledger-client';
import { newLogger } from '../logger';
import type { StoredVersion } from '../store/store';
import { staffCaller } from '../test-support/callers';
import { FakePeer, buildBlock } from '../test-support/blocks';
import { IdentityContract } from '@hdx/chaincode';
import { identity } from '@hdx/chaincode/dist/test-support/fake-ledger';
import { parseBlock } from './block-parser';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';
import { testStore } from '../test-support/test-store';
import { LedgerView } from './ledger-view';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import type { KeyWrite } from './block-parser';
import { LocalDecisions, ViewFacts, decideOnView, notingDecisionInputs, viewHealth } from './local-decisions';
import { ViewStore } from './view-store';

const H1 = 'Hospital1MSP';
const H2 = 'Hospital2MSP';
const LINKED = `pseudonym:${'1'.repeat(64)}`;
const ERASED = `pseudonym:${'2'.repeat(64)}`;
const UNREGISTERED = `did:hdx:${'U'.repeat(43)}`;
const RESTRICTED = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R';

/** A view holding the chain's whole world state, as if every key had been written in block 0..height-1. */
function viewOf(chain: ChaincodeLedger, height = 1): ViewStore {
  const store = new ViewStore(':memory:', { channel: 'hdx', namespace: 'hdx' });
  for (let n = 0; n < height - 1; n++) store.apply({ blockNumber: BigInt(n), envelopes: 1, invalid: [], writes: [] });
  const blockNumber = BigInt(height - 1);
  const writes: KeyWrite[] = [...chain.state.entries()].map(([key, value]) => ({ key, value, deleted: false, txId: 'tx', blockNumber, txIndex: 0 }));
  store.apply({ blockNumber, envelopes: 1, invalid: [], writes });
  return store;
}

/** A small deterministic generator (mulberry32), so a failing matrix can be re-run as is. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const anchorInput = (resourceType: string, id: string, patient: string, dataMonth: string, securityLabels?: string[]): AnchorInput => ({
  resourceType,
  id,
  versionId: '1',
  patient,
  lastUpdated: '2024-05-01T10:00:00Z',
  dataMonth,
  commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
  ...(securityLabels ? { securityLabels } : {}),
});

interface World {
  chain: ChaincodeLedger;
  h1: ContractLedger;
  patient: TestKey;
  other: TestKey;
  doc1: TestKey;
  doc2: TestKey;
  sys1: TestKey;
  auditor: TestKey;
  org2: TestKey;
  /** A practitioner of Hospital3MSP, a member removed from the consortium (by Hospital2MSP, the only other member with an organization DID). */
  doc3: TestKey;
}

async function world(): Promise<World> {
  const chain = new ChaincodeLedger();
  const h1 = new ContractLedger(H1, { chain });
  const patient = await registerDid(chain, 'patient');
  const other = await registerDid(chain, 'patient');
  const doc1 = await registerDid(chain, 'practitioner');
  const doc2 = await registerDid(chain, 'practitioner', H2_GATEWAY);
  const sys1 = await registerDid(chain, 'system', H1_ADMIN);
  const auditor = await registerDid(chain, 'auditor', REG_ADMIN);
  const org2 = await registerDid(chain, 'organization', H2_ADMIN);
  await registerDid(chain, 'organization', identity('Hospital3MSP', 'admin'));
  const doc3 = await registerDid(chain, 'practitioner', identity('Hospital3MSP', 'gateway'));
  await chain.invoke(H2_ADMIN, (ctx) => new IdentityContract().ProposeMemberRemoval(ctx, JSON.stringify({ mspId: 'Hospital3MSP' })));
  await h1.anchor(anchorInput('Observation', 'a1', patient.did, '2024-04'));
  await h1.anchor(anchorInput('Observation', 'a2', patient.did, '2023-12', [RESTRICTED]));
  await h1.anchor(anchorInput('Condition', 'c1', LINKED, '2023-01'));
  await h1.anchor(anchorInput('Observation', 'e1', ERASED, '2024-02'));
  // In two patients' compartments (the other patient as performer): both patients' consents govern it.
  await h1.anchor({ ...anchorInput('Observation', 's1', patient.did, '2024-04'), coPatients: [other.did] });
  await h1.linkPatient(LINKED, patient.did);
  await h1.erasePatient(ERASED);
  return { chain, h1, patient, other, doc1, doc2, sys1, auditor, org2, doc3 };
}

/** A random provision (with, sometimes, one nested provision of the other type). */
function provision(rand: () => number, w: World, depth = 0): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const p: Record<string, unknown> = { type: rand() < 0.6 ? 'permit' : 'deny' };
  const actor = pick([
    undefined,
    { reference: { reference: w.doc2.did } },
    { reference: { reference: w.doc1.did } },
    { reference: { identifier: { system: 'urn:hdx:msp', value: H2 } } },
    { reference: { reference: w.org2.did } },
  ]);
  if (actor) p.actor = [actor];
  const purpose = pick([undefined, 'TREAT', 'ETREAT', 'HOPERAT']);
  if (purpose) p.purpose = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: purpose }];
  const cls = pick([undefined, 'Observation', 'Condition']);
  if (cls) p.class = [{ system: 'http://hl7.org/fhir/resource-types', code: cls }];
  const action = pick([undefined, 'access', 'disclose', 'use']);
  if (action) p.action = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentaction', code: action }] }];
  if (rand() < 0.25) p.securityLabel = [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }];
  const dataPeriod = pick([undefined, undefined, { start: '2024-01' }, { end: '2023-12-31' }]);
  if (dataPeriod) p.dataPeriod = dataPeriod;
  // The chain's clock starts at 2023-11-14T22:13:20Z and moves 1 s per transaction: this end is crossed mid-matrix.
  if (rand() < 0.2) p.period = { end: '2023-11-14T22:19:00Z' };
  if (depth === 0 && rand() < 0.3) p.provision = [{ ...provision(rand, w, 1), type: p.type === 'permit' ? 'deny' : 'permit' }];
  return p;
}

describe('view/local-decisions', () => {
  it('decides as the chaincode contract does, on a generated matrix of consents and requests', async function () {
    this.timeout(120_000);
    const reasons = new Map<string, number>();
    let compared = 0;
    for (const seed of [11, 12, 13]) {
      const rand = prng(seed);
      const w = await world();
      for (let i = 0; i < 5; i++) {
        const consent = { resourceType: 'Consent', id: `s${seed}-c${i}`, status: 'active', patient: { reference: w.patient.did }, provision: provision(rand, w) };
        await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent }));
        if (i === 4) {
          const revoke = { resourceType: 'Consent', id: consent.id, patient: { reference: w.patient.did } };
          await w.h1.changeConsent('revoke', signedBy(w.chain, w.patient, { action: 'revoke', consent: revoke }));
        }
      }
      const store = viewOf(w.chain, 3);
      const actors: Array<[string, string]> = [
        [w.doc1.did, H1],
        [w.doc2.did, H2],
        [w.doc2.did, H1],
        [w.sys1.did, H1],
        [w.patient.did, H1],
        [w.other.did, H1],
        [w.auditor.did, 'RegulatorMSP'],
        [w.doc3.did, 'Hospital3MSP'],
        [UNREGISTERED, H1],
      ];
      const resources = ['Observation/a1/_history/1', 'Observation/a2/_history/1', 'Condition/c1/_history/1', 'Observation/e1/_history/1', 'Observation/s1/_history/1'];
      for (const [actor, actorOrganization] of actors) {
        for (const actorAuth of ['did', 'idp', 'delegated'] as const) {
          for (const purpose of ['TREAT', 'ETREAT', 'PATRQT', 'HOPERAT']) {
            for (const resource of resources) {
              const request: EvaluateRequest = { actor, actorOrganization, actorAuth, purpose, resource };
              // The evaluate transaction runs at the chain's clock, then moves it on.
              const now = w.chain.clock * 1000;
              const byContract = await w.h1.evaluateAccess(request);
              const local = decideOnView(store, request, { now, submitter: H1 });
              expect({ ...local, height: undefined }, JSON.stringify({ seed, request })).to.deep.equal({ ...byContract, height: undefined });
              expect(local.height).to.equal(3);
              reasons.set(`${local.decision}:${local.reason}`, (reasons.get(`${local.decision}:${local.reason}`) ?? 0) + 1);
              compared += 1;
            }
          }
        }
      }
      store.close();
    }
    expect(compared).to.equal(3 * 9 * 3 * 4 * 5);
    // The matrix reaches every branch of the evaluator that decides a read.
    for (const seen of [
      'permit:consent-permit',
      'deny:consent-deny',
      'permit:custodian-treatment',
      'permit:break-glass',
      'permit:patient-or-guardian',
      'deny:no-permit',
      'deny:resource-erased',
      'deny:actor-unregistered',
      'deny:actor-organization-mismatch',
      'deny:actor-organization-removed',
      'deny:delegation-not-allowed',
      'deny:purpose-not-allowed',
    ]) {
      expect(reasons.get(seen) ?? 0, seen).to.be.greaterThan(0);
    }
  });

  it('decides a class (patient, custodian, type, labels, month) exactly as the version anchored with those facts, on the contract and on the view', async function () {
    // What lets a search decide each patient's class once (model/access-class.ts): on a generated matrix,
    // the class request and the version request agree, whether the class names the patient by DID or by
    // the custodian's pseudonym linked to it.
    this.timeout(120_000);
    let compared = 0;
    const decisions = new Set<string>();
    for (const seed of [21, 22]) {
      const rand = prng(seed);
      const w = await world();
      for (let i = 0; i < 4; i++) {
        const consent = { resourceType: 'Consent', id: `k${seed}-c${i}`, status: 'active', patient: { reference: w.patient.did }, provision: provision(rand, w) };
        await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent }));
      }
      const store = viewOf(w.chain, 3);
      // The anchors of world(): a1, a2 (restricted) of the patient's DID, c1 under the pseudonym linked to it.
      const classes: Array<{ resource: string; patients: string[]; resourceType: string; securityLabels: string[]; dataDate: string }> = [
        { resource: 'Observation/a1/_history/1', patients: [w.patient.did], resourceType: 'Observation', securityLabels: [], dataDate: '2024-04' },
        { resource: 'Observation/a2/_history/1', patients: [w.patient.did], resourceType: 'Observation', securityLabels: [RESTRICTED], dataDate: '2023-12' },
        { resource: 'Condition/c1/_history/1', patients: [w.patient.did, LINKED], resourceType: 'Condition', securityLabels: [], dataDate: '2023-01' },
      ];
      for (const [actor, actorOrganization] of [
        [w.doc1.did, H1],
        [w.doc2.did, H2],
        [w.sys1.did, H1],
        [w.patient.did, H1],
        [w.other.did, H1],
      ] as Array<[string, string]>) {
        for (const actorAuth of ['did', 'delegated'] as const) {
          for (const purpose of ['TREAT', 'ETREAT', 'HOPERAT']) {
            for (const c of classes) {
              const base = { actor, actorOrganization, actorAuth, purpose };
              const now = w.chain.clock * 1000;
              const ofVersion = await w.h1.evaluateAccess({ ...base, resource: c.resource });
              for (const patient of c.patients) {
                const asClass: EvaluateRequest = { ...base, patient, custodian: H1, resourceType: c.resourceType, securityLabels: c.securityLabels, dataDate: c.dataDate };
                const why = JSON.stringify({ seed, asClass });
                expect(await w.h1.evaluateAccess(asClass), why).to.deep.equal(ofVersion);
                expect({ ...decideOnView(store, asClass, { now, submitter: H1 }), height: undefined }, why).to.deep.equal({ ...ofVersion, height: undefined });
                decisions.add(`${ofVersion.decision}:${ofVersion.reason}`);
                compared += 1;
              }
            }
          }
        }
      }
      store.close();
    }
    expect(compared).to.equal(2 * 5 * 2 * 3 * 4);
    expect([...decisions]).to.include.members(['permit:consent-permit', 'deny:consent-deny', 'permit:custodian-treatment', 'permit:break-glass', 'deny:no-permit']);
  });

  it("a member's removal, seen in the blocks: the view decides as the contract before the proposal, after it, and once the removal is in force", async function () {
    this.timeout(60_000);
    // world() removed Hospital3MSP already; this test removes Hospital4MSP, step by step.
    const H4 = 'Hospital4MSP';
    const identities = new IdentityContract();
    const w = await world();
    const store = new ViewStore(':memory:', { channel: 'hdx', namespace: 'hdx' });
    // Each stage's changes to the world state, committed as one Fabric block the view parses and applies.
    let seen = new Map<string, Uint8Array>();
    const commitChanges = (): void => {
      const writes = [...w.chain.state.entries()].filter(([key, value]) => seen.get(key) !== value).map(([key, value]) => ({ key, value }));
      const deletes = [...seen.keys()].filter((key) => !w.chain.state.has(key)).map((key) => ({ key, delete: true }));
      store.apply(parseBlock(buildBlock(Number(store.height()), [{ txId: `stage-${store.height()}`, writes: { hdx: [...writes, ...deletes] } }]), 'hdx'));
      seen = new Map(w.chain.state);
    };
    // Four members with organization DIDs; Hospital4's practitioner, permitted by a consent naming Hospital3MSP.
    await registerDid(w.chain, 'organization', H1_ADMIN);
    await registerDid(w.chain, 'organization', REG_ADMIN);
    await registerDid(w.chain, 'organization', identity(H4, 'admin'));
    const doc4 = await registerDid(w.chain, 'practitioner', identity(H4, 'gateway'));
    const consent = {
      resourceType: 'Consent',
      id: 'permit-h4',
      status: 'active',
      patient: { reference: w.patient.did },
      provision: { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: H4 } } }] },
    };
    await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent }));
    commitChanges();
    const outcomes: string[] = [];
    const compare = async (): Promise<void> => {
      for (const actorAuth of ['did', 'delegated'] as const) {
        for (const resource of ['Observation/a1/_history/1', 'Condition/c1/_history/1']) {
          const request: EvaluateRequest = { actor: doc4.did, actorOrganization: H4, actorAuth, purpose: 'TREAT', resource };
          const now = w.chain.clock * 1000;
          const byContract = await w.h1.evaluateAccess(request);
          expect({ ...decideOnView(store, request, { now, submitter: H1 }), height: undefined }, JSON.stringify(request)).to.deep.equal({ ...byContract, height: undefined });
          outcomes.push(`${byContract.decision}:${byContract.reason}`);
        }
      }
    };
    await compare();
    await w.chain.invoke(H1_ADMIN, (ctx) => identities.ProposeMemberRemoval(ctx, JSON.stringify({ mspId: H4 })));
    commitChanges();
    await compare();
    await w.chain.invoke(H2_ADMIN, (ctx) => identities.ApproveMemberRemoval(ctx, JSON.stringify({ mspId: H4 })));
    commitChanges();
    expect(store.organizationRemoved(H4)).to.equal(true);
    await compare();
    expect(outcomes).to.deep.equal([...Array<string>(8).fill('permit:consent-permit'), ...Array<string>(4).fill('deny:actor-organization-removed')]);
    // The consent itself is still in the view, active: it only permits nothing any more.
    expect(store.consent('permit-h4')?.status).to.equal('active');
    store.close();
  });

  describe('through AccessControl (the enforcement point)', () => {
    let w: World;
    let store: ViewStore;
    let fresh: boolean;
    /** When the view was last found caught up (ms, on the world's clock). */
    let caughtUp: number;
    let asked: EvaluateRequest[];
    let outbox: AccessEntryInput[];
    let local: LocalDecisions;
    const version = (id: string, resourceType = 'Observation'): StoredVersion => ({
      resourceType,
      id,
      versionId: 1,
      lastUpdated: '2024-05-01T10:00:00.000Z',
      patientId: 'p1',
      deleted: false,
      content: '{}',
      state: 'anchored',
    });

    /** AccessControl in async mode over the real contracts, counting what it asks the chaincode. */
    function accessControl(sinkKind: 'outbox' | 'ledger' = 'outbox'): AccessControl {
      const ledger = new ContractLedger(H1, { chain: w.chain });
      const evaluate = ledger.evaluateAccess.bind(ledger);
      ledger.evaluateAccess = (request: EvaluateRequest): Promise<Decision> => {
        asked.push(request);
        return evaluate(request);
      };
      const sink: AuditSink = {
        kind: sinkKind,
        record: async (entries) => {
          outbox.push(...entries);
          return entries.map((e) => ({ entryId: e.entryId ?? '', breakGlass: e.breakGlass }));
        },
      };
      local = new LocalDecisions({ store, freshness: { fresh: () => fresh, caughtUpAt: () => caughtUp }, mspId: H1, now: () => w.chain.clock * 1000 });
      return new AccessControl(ledger, newLogger('silent'), H1, { sink, patientRefOf: async () => w.patient.did, local });
    }

    beforeEach(async () => {
      w = await world();
      const consent = {
        resourceType: 'Consent',
        id: 'permit-h2',
        status: 'active',
        patient: { reference: w.patient.did },
        provision: { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: H2 } } }] },
      };
      await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent }));
      store = viewOf(w.chain, 5);
      fresh = true;
      caughtUp = w.chain.clock * 1000;
      asked = [];
      outbox = [];
    });
    afterEach(() => store?.close());

    const doc2 = (): ReturnType<typeof staffCaller> => staffCaller({ did: w.doc2.did, organization: H2, actorAuth: 'delegated' });

    it('a fresh view decides locally: no chaincode call, and the entry says the height it was decided at', async () => {
      const access = accessControl();
      const result = await access.authorize(doc2(), version('a1'), 'read');
      expect(result).to.deep.include({ decision: 'permit', consents: ['permit-h2'], reason: 'consent-permit' });
      expect(result).not.to.have.property('height');
      expect(asked).to.deep.equal([]);
      expect(outbox).to.have.length(1);
      expect(outbox[0]).to.deep.include({ decision: 'permit', consents: ['permit-h2'], decidedAt: { height: 5 } });
    });

    it('a stale view (fresh() false) sends the decision to the chaincode, which sees the revocation the view missed', async () => {
      const access = accessControl();
      await w.h1.changeConsent(
        'revoke',
        signedBy(w.chain, w.patient, { action: 'revoke', consent: { resourceType: 'Consent', id: 'permit-h2', patient: { reference: w.patient.did } } }),
      );
      // The view still holds the consent as active; it is not fresh, so it must not decide.
      expect(store.consent('permit-h2')?.status).to.equal('active');
      fresh = false;
      let status: number | undefined;
      await access.authorize(doc2(), version('a1'), 'read').catch((err: { status?: number }) => (status = err.status));
      expect(status).to.equal(404);
      expect(asked.map((r) => r.resource)).to.deep.equal(['Observation/a1/_history/1']);
      expect(outbox[0]).to.deep.include({ decision: 'deny', reason: 'no-permit' });
      expect(outbox[0]).not.to.have.property('decidedAt');
      // Searches too: every candidate goes to the chaincode.
      const decisions = await access.evaluate(doc2(), [version('a1'), version('c1', 'Condition')]);
      expect(decisions.map((d) => d.decision)).to.deep.equal(['deny', 'deny']);
      expect(asked).to.have.length(3);
      expect(local.stats).to.deep.equal({ local: 0, stale: 3, undecidable: 0 });
    });

    it("read your own writes: after a revoke through this gateway's ledger client, the view decides again only once caught up after it", async () => {
      const access = accessControl();
      // The services' ledger client tells LocalDecisions of every change decisions read.
      const noting = notingDecisionInputs(w.h1, local);
      w.chain.clock += 1;
      await noting.changeConsent(
        'revoke',
        signedBy(w.chain, w.patient, { action: 'revoke', consent: { resourceType: 'Consent', id: 'permit-h2', patient: { reference: w.patient.did } } }),
      );
      // Fresh by the lag bound, but not caught up since the revoke: the chaincode decides (and denies).
      expect(local.fresh()).to.equal(false);
      await access.authorize(doc2(), version('a1'), 'read').catch(() => undefined);
      expect(asked).to.have.length(1);
      expect(outbox[0]).to.deep.include({ decision: 'deny' });
      // Caught up after it (the view now holds the revoke): local again.
      store.close();
      store = viewOf(w.chain, 6);
      caughtUp = w.chain.clock * 1000 + 1;
      expect(local.fresh()).to.equal(true);
      // Reads and other calls pass through without marking anything.
      await noting.getConsent('permit-h2');
      expect(local.fresh()).to.equal(true);
    });

    it('a version whose anchor the view does not hold yet goes to the chaincode, even when fresh', async () => {
      await w.h1.anchor(anchorInput('Observation', 'late', w.patient.did, '2024-04'));
      const access = accessControl();
      const [late, known] = await access.evaluate(doc2(), [version('late'), version('a1')]);
      expect([late?.decision, known?.decision]).to.deep.equal(['permit', 'permit']);
      expect(asked.map((r) => r.resource)).to.deep.equal(['Observation/late/_history/1']);
      expect([late?.height, known?.height]).to.deep.equal([undefined, 5]);
      expect(local.stats).to.deep.equal({ local: 1, stale: 0, undecidable: 1 });
      await access.recordDisclosures(
        doc2(),
        [
          { version: version('late'), decision: late as Decision },
          { version: version('a1'), decision: known as Decision },
        ],
        'search-type',
        async () => w.patient.did,
      );
      // One entry per decision height: the chaincode's decision carries none.
      expect(outbox.map((e) => [e.resources, e.decidedAt])).to.deep.equal([
        [['Observation/late/_history/1'], undefined],
        [['Observation/a1/_history/1'], { height: 5 }],
      ]);
    });

    it('sync audit mode always asks the chaincode, even with a fresh view', async () => {
      const access = accessControl('ledger');
      expect(access.auditMode).to.equal('sync');
      const decisions = await access.evaluate(doc2(), [version('a1')]);
      expect(decisions[0]?.decision).to.equal('permit');
      expect(asked).to.have.length(1);
    });
  });

  it('/healthz reports the view: height, lag, freshness and who decides; a stale view leaves the gateway healthy', async () => {
    const peer = new FakePeer();
    peer.commit([{ txId: '', writes: {}, config: true }]);
    let clock = 1_000_000;
    const viewStore = new ViewStore(':memory:', { channel: 'hdx', namespace: 'hdx' });
    const view = new LedgerView({ store: viewStore, source: peer, namespace: 'hdx', log: pino({ level: 'silent' }), pollMs: 1e9, retryMs: 5, now: () => clock });
    const store = testStore();
    try {
      const { app } = testApp({
        store,
        ledger: new FakeLedger(),
        ledgerView: { health: () => viewHealth(view, 1500, 'local') },
      });
      view.start();
      await view.waitForHeight(1n, 2000);
      await view.poll();
      let health = await request(app).get('/healthz');
      expect(health.status).to.equal(200);
      expect(health.body.checks.view).to.deep.equal({ ok: true, height: '1', lagBlocks: '0', fresh: true, streaming: true, decisions: 'local' });
      await view.stop();
      clock += 1501;
      health = await request(app).get('/healthz');
      expect(health.status).to.equal(200);
      expect(health.body.checks.view).to.deep.include({ fresh: false, streaming: false });
    } finally {
      await view.stop();
      viewStore.close();
      await store.close();
    }
  });
});

describe('view/local-decisions: ViewFacts, the memo of one view height', () => {
  /** The chain's whole state applied to `store` as its next block (the view after new commits). */
  function applyState(chain: ChaincodeLedger, store: ViewStore): void {
    const blockNumber = store.height();
    const writes: KeyWrite[] = [...chain.state.entries()].map(([key, value]) => ({ key, value, deleted: false, txId: 'tx', blockNumber, txIndex: 0 }));
    store.apply({ blockNumber, envelopes: 1, invalid: [], writes });
  }
  const PERMIT_H2 = (patient: string): Record<string, unknown> => ({
    resourceType: 'Consent',
    id: 'permit-h2',
    status: 'active',
    patient: { reference: patient },
    provision: { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: H2 } } }] },
  });

  it('serves the facts of one height from memory, and a consent revoked in the next block is never answered from it', async () => {
    const w = await world();
    await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent: PERMIT_H2(w.patient.did) }));
    const store = viewOf(w.chain, 5);
    try {
      const local = new LocalDecisions({ store, freshness: { fresh: () => true, caughtUpAt: () => 0 }, mspId: H1, now: () => w.chain.clock * 1000 });
      const request: EvaluateRequest = { actor: w.doc2.did, actorOrganization: H2, actorAuth: 'delegated', purpose: 'TREAT', resource: 'Observation/a1/_history/1' };
      expect(local.decide(request)).to.deep.include({ decision: 'permit', consents: ['permit-h2'], height: 5 });
      const misses = local.facts.stats.misses;
      expect(misses).to.be.greaterThan(0);
      // The same decision again at the same height: every fact from the memo, no SQLite read.
      expect(local.decide(request)).to.deep.include({ decision: 'permit', height: 5 });
      expect(local.facts.stats.misses).to.equal(misses);
      expect(local.facts.stats.hits).to.be.greaterThanOrEqual(misses);

      await w.h1.changeConsent(
        'revoke',
        signedBy(w.chain, w.patient, { action: 'revoke', consent: { resourceType: 'Consent', id: 'permit-h2', patient: { reference: w.patient.did } } }),
      );
      applyState(w.chain, store);
      // Height 6 holds the revoke: the memo of height 5 is dropped, the facts are read again.
      expect(local.decide(request)).to.deep.include({ decision: 'deny', reason: 'no-permit', height: 6 });
      expect(local.facts.stats.misses).to.be.greaterThan(misses);
      expect(await w.h1.evaluateAccess(request)).to.deep.include({ decision: 'deny', reason: 'no-permit' });
    } finally {
      store.close();
    }
  });

  it('decides as decideOnView without the memo, asked twice over, on every actor, purpose and resource of the world', async () => {
    const w = await world();
    await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent: PERMIT_H2(w.patient.did) }));
    const store = viewOf(w.chain, 3);
    try {
      const now = w.chain.clock * 1000;
      const local = new LocalDecisions({ store, freshness: { fresh: () => true, caughtUpAt: () => 0 }, mspId: H1, now: () => now });
      const actors: Array<[string, string]> = [
        [w.doc1.did, H1],
        [w.doc2.did, H2],
        [w.sys1.did, H1],
        [w.patient.did, H1],
        [w.auditor.did, 'RegulatorMSP'],
        [w.doc3.did, 'Hospital3MSP'],
        [UNREGISTERED, H1],
      ];
      const requests: EvaluateRequest[] = [];
      for (const [actor, actorOrganization] of actors)
        for (const actorAuth of ['did', 'idp', 'delegated'] as const)
          for (const purpose of ['TREAT', 'ETREAT', 'HOPERAT'])
            for (const resource of ['Observation/a1/_history/1', 'Observation/a2/_history/1', 'Condition/c1/_history/1', 'Observation/e1/_history/1'])
              requests.push({ actor, actorOrganization, actorAuth, purpose, resource });
      const plain = requests.map((r) => decideOnView(store, r, { now, submitter: H1 }));
      expect(local.decideAll(requests)).to.deep.equal(plain);
      expect(local.decideAll(requests)).to.deep.equal(plain);
      expect(local.stats).to.deep.equal({ local: 2 * requests.length, stale: 0, undecidable: 0 });
    } finally {
      store.close();
    }
  });

  it('answers frozen facts, sees an erasure tombstone in a new block, and drops its memo when full', async () => {
    const w = await world();
    const doomed = `pseudonym:${'3'.repeat(64)}`;
    await w.h1.anchor(anchorInput('Observation', 't1', doomed, '2024-03'));
    const store = viewOf(w.chain, 2);
    try {
      const facts = new ViewFacts(store, 2);
      const identity = facts.at(store.height())({ fact: 'identity', did: w.patient.did }) as { status: string };
      expect(identity.status).to.equal('active');
      expect(Object.isFrozen(identity)).to.equal(true);
      expect(() => {
        identity.status = 'suspended';
      }).to.throw(TypeError);
      expect(facts.anchor('Observation', 't1', '1')).to.not.have.property('tombstone');

      await w.h1.erasePatient(doomed);
      applyState(w.chain, store);
      const erased = facts.anchor('Observation', 't1', '1');
      expect(erased?.tombstone).to.be.an('object');
      expect(erased).to.not.have.property('patient');

      // A memo of at most 2 facts: a third drops it, and the first is read again.
      const at = facts.at(store.height());
      at({ fact: 'identity', did: w.patient.did });
      at({ fact: 'identity', did: w.doc1.did });
      const misses = facts.stats.misses;
      at({ fact: 'identity', did: w.doc2.did });
      at({ fact: 'anchor', resourceType: 'Observation', id: 't1', versionId: '1' });
      expect(facts.stats.misses).to.equal(misses + 2);
    } finally {
      store.close();
    }
  });
});
