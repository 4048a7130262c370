import { expect } from 'chai';
import type { AuditEntry } from '@hdx/chaincode';
import { coPatientEntryId } from '@hdx/chaincode/dist/protocol';
import type { TestKey } from '@hdx/chaincode/dist/test-support/keys';
import { H2_GATEWAY, registerDid, signedBy } from '@hdx/chaincode/dist/test-support/registry';
import type { AccessEntryInput, AnchorInput, EvaluateRequest } from '../ledger/ledger-client';
import { ChaincodeLedger, ContractLedger } from '../test-support/contract-ledger';
import { FakePeer, compositeKey } from '../test-support/blocks';
import { parseBlock } from './block-parser';
import { decideOnView } from './local-decisions';
import { AUTHORIZE_AND_RECORD, AUTHORIZE_AND_RECORD_BATCH, type EntryReplay, type ReplayProgress, replayAccessHistory, replayPatient } from './replay';
import { ViewStore } from './view-store';

const H1 = 'Hospital1MSP';
const H2 = 'Hospital2MSP';
const RECORD_BATCH = 'hdx.audit:RecordAccessBatch';

/**
 * The chaincode's in-memory ledger (the REAL contracts run on it) that also commits each successful
 * transaction as one block of a FakePeer, with its write set and the invocation its proposal named.
 */
class BlockLedger extends ChaincodeLedger {
  readonly peer = new FakePeer();
  #call: { fn: string; args: string[] } | undefined;

  constructor() {
    super();
    this.peer.commit([{ txId: '', writes: {}, config: true }]);
  }

  /** The invocation the next transaction's block shows (by default an unnamed one). */
  naming(fn: string, ...args: string[]): this {
    this.#call = { fn, args };
    return this;
  }

  override async transact<T>(fn: Parameters<ChaincodeLedger['transact']>[0], committed: (result: T) => boolean): Promise<T> {
    const call = this.#call ?? { fn: 'other', args: [] };
    this.#call = undefined;
    let commit = false;
    const result = await super.transact<T>(fn as (tx: unknown) => Promise<T>, (r) => (commit = committed(r)));
    const tx = this.lastTx;
    if (commit && tx) {
      const writes = [...tx.writes].map(([key, value]) => (value === null ? { key, delete: true } : { key, value }));
      this.peer.commit([{ txId: tx.txId, writes: { hdx: writes }, call }]);
    }
    return result;
  }

  height(): number {
    return this.peer.blocks.length;
  }
}

interface World {
  chain: BlockLedger;
  h1: ContractLedger;
  patient: TestKey;
  doc2: TestKey;
}

const anchorInput = (id: string, patient: string): AnchorInput => ({
  resourceType: 'Observation',
  id,
  versionId: '1',
  patient,
  lastUpdated: '2024-05-01T10:00:00Z',
  dataMonth: '2024-04',
  commitment: { alg: 'HMAC-SHA-256', value: Buffer.alloc(32, 1).toString('base64url') },
});

const CONSENT_ID = 'permit-h2';

async function world(): Promise<World> {
  const chain = new BlockLedger();
  const h1 = new ContractLedger(H1, { chain });
  const patient = await registerDid(chain, 'patient');
  const doc2 = await registerDid(chain, 'practitioner', H2_GATEWAY);
  await h1.anchor(anchorInput('a1', patient.did));
  await h1.anchor(anchorInput('a2', patient.did));
  return { chain, h1, patient, doc2 };
}

async function grant(w: World): Promise<void> {
  const consent = {
    resourceType: 'Consent',
    id: CONSENT_ID,
    status: 'active',
    patient: { reference: w.patient.did },
    provision: { type: 'permit', actor: [{ reference: { identifier: { system: 'urn:hdx:msp', value: H2 } } }] },
  };
  await w.h1.changeConsent('grant', signedBy(w.chain, w.patient, { action: 'grant', consent }));
}

/** Revokes the consent; returns the number of its block (height r lacks the revoke, r + 1 holds it). */
async function revoke(w: World): Promise<number> {
  const consent = { resourceType: 'Consent', id: CONSENT_ID, patient: { reference: w.patient.did } };
  await w.h1.changeConsent('revoke', signedBy(w.chain, w.patient, { action: 'revoke', consent }));
  return w.chain.height() - 1;
}

const readRequest = (w: World, id: string): EvaluateRequest => ({
  actor: w.doc2.did,
  actorOrganization: H2,
  actorAuth: 'delegated',
  purpose: 'TREAT',
  resource: `Observation/${id}/_history/1`,
});

/** A read decided and recorded by the chaincode in one transaction (sync audit mode). */
async function syncRead(w: World, id: string): Promise<string> {
  const request = { ...readRequest(w, id), resources: [`Observation/${id}/_history/1`], auditAction: 'R' as const, subtype: 'read' };
  w.chain.naming(AUTHORIZE_AND_RECORD, JSON.stringify(request));
  return (await w.h1.authorizeAndRecord(request)).eventId;
}

/** A view of the ledger as a gateway's view held it at `height` (blocks 0 … height−1). */
function viewAt(w: World, height: number): ViewStore {
  const store = new ViewStore(':memory:', { channel: 'hdx', namespace: 'hdx' });
  for (const block of w.chain.peer.blocks.slice(0, height)) store.apply(parseBlock(block, 'hdx'));
  return store;
}

/** The access entry a gateway records for a read it decided on its view. */
function readEntry(w: World, id: string, decision: Pick<AuditEntry, 'decision' | 'consents' | 'breakGlass'> & { reason?: string }, height: number | undefined): AccessEntryInput {
  const r = readRequest(w, id);
  return {
    actor: r.actor,
    actorOrganization: r.actorOrganization,
    actorAuth: r.actorAuth,
    patient: w.patient.did,
    resources: [r.resource as string],
    action: 'R',
    subtype: 'read',
    purpose: r.purpose,
    decision: decision.decision,
    consents: [...decision.consents],
    ...(decision.reason !== undefined ? { reason: decision.reason } : {}),
    breakGlass: decision.breakGlass,
    custodian: H1,
    occurredAt: new Date(w.chain.clock * 1000).toISOString(),
    ...(height !== undefined ? { decidedAt: { height } } : {}),
  };
}

/** An honest async read: decided on a view at `height` (default: the chain's), recorded through the outbox's RecordAccessBatch. */
async function viewRead(w: World, id: string, height = w.chain.height()): Promise<string> {
  const store = viewAt(w, height);
  try {
    const d = decideOnView(store, readRequest(w, id), { now: w.chain.clock * 1000, submitter: H1 });
    return await record(w, readEntry(w, id, d, d.height));
  } finally {
    store.close();
  }
}

async function record(w: World, ...entries: AccessEntryInput[]): Promise<string> {
  w.chain.naming(RECORD_BATCH, JSON.stringify(entries));
  const [recorded] = await w.h1.recordAccess(entries);
  return (recorded as AuditEntry).eventId;
}

/** The patient's history as `hdx replay` reads it (QueryAccess by patient, as the patient's requester). */
async function history(w: World): Promise<AuditEntry[]> {
  return (await w.h1.queryAccess({ patient: w.patient.did, requester: w.patient.did, pageSize: 200 })).entries;
}

async function replay(w: World, extra: { entries?: AuditEntry[]; onProgress?: (p: ReplayProgress) => void; progressEvery?: number } = {}) {
  return replayAccessHistory({
    patient: w.patient.did,
    entries: extra.entries ?? (await history(w)),
    source: w.chain.peer,
    channel: 'hdx',
    namespace: 'hdx',
    target: BigInt(w.chain.height()),
    ...(extra.onProgress ? { onProgress: extra.onProgress } : {}),
    ...(extra.progressEvery !== undefined ? { progressEvery: extra.progressEvery } : {}),
  });
}

function byId(report: { doesNotFollow: readonly EntryReplay[]; unchecked: readonly EntryReplay[] }, eventId: string): EntryReplay | undefined {
  return [...report.doesNotFollow, ...report.unchecked].find((r) => r.eventId === eventId);
}

describe('view/replay', () => {
  let w: World;
  beforeEach(async () => {
    w = await world();
  });

  it('sync mode: reads the chaincode decided follow at the height of their own block, and a revoke between two reads flips the decision there', async () => {
    await grant(w);
    const before = await syncRead(w, 'a1');
    const revokedIn = await revoke(w);
    const after = await syncRead(w, 'a1');
    const report = await replay(w);
    expect(report).to.deep.include({ patient: w.patient.did, entries: 2, follows: 2, doesNotFollow: [], unchecked: [] });
    // What each entry recorded is what the replay decided (checked on the entries themselves).
    const entries = await history(w);
    expect(entries.map((e) => [e.eventId, e.decision, e.reason])).to.deep.equal([
      [before, 'permit', 'consent-permit'],
      [after, 'deny', 'no-permit'],
    ]);
    expect(Number(report.blocksRead)).to.be.greaterThan(revokedIn);
  });

  it('sync mode with group commit: each entry of an AuthorizeAndRecordBatch is replayed on the request carrying its entryId', async () => {
    await grant(w);
    const requests = ['a1', 'a2'].map((id, i) => ({
      ...readRequest(w, id),
      resources: [`Observation/${id}/_history/1`],
      auditAction: 'R' as const,
      subtype: 'read',
      entryId: `batch-${i}`,
    }));
    w.chain.naming(AUTHORIZE_AND_RECORD_BATCH, JSON.stringify(requests));
    const results = await w.h1.authorizeAndRecordBatch(requests);
    expect(results.map((r) => r.eventId.split('.')[1])).to.deep.equal(['0', '1']);
    const report = await replay(w);
    expect(report).to.deep.include({ entries: 2, follows: 2, doesNotFollow: [], unchecked: [] });
    // A batch whose requests do not carry the entry's entryId names no request for it: not trusted.
    await revoke(w);
    const forged = [{ ...requests[0], entryId: 'other' }];
    w.chain.naming(AUTHORIZE_AND_RECORD_BATCH, JSON.stringify(forged));
    const [entry] = await w.h1.authorizeAndRecordBatch([
      { ...readRequest(w, 'a1'), resources: ['Observation/a1/_history/1'], auditAction: 'R', subtype: 'read', entryId: 'batch-9' },
    ]);
    const flagged = byId(await replay(w), entry?.eventId ?? '');
    expect(flagged?.verdict).to.equal('does-not-follow');
  });

  it("a version of several patients: the entries in a co-patient's history (its derived entryId in a batch, or stated by the gateway) follow", async () => {
    // s1 is another patient's record that names w.patient too (coPatients): both consents govern it.
    const other = await registerDid(w.chain, 'patient');
    await w.h1.anchor({ ...anchorInput('s1', other.did), coPatients: [w.patient.did] });
    await grant(w);
    const request = { ...readRequest(w, 's1'), resources: ['Observation/s1/_history/1'], auditAction: 'R' as const, subtype: 'read', entryId: 'co-batch-0' };
    w.chain.naming(AUTHORIZE_AND_RECORD_BATCH, JSON.stringify([request]));
    const [decided] = await w.h1.authorizeAndRecordBatch([request]);
    // The other patient has not consented: denied, and the denial is in w.patient's history too.
    expect(decided?.decision).to.equal('deny');
    const mine = (await history(w)).filter((e) => e.resources.includes('Observation/s1/_history/1'));
    expect(mine.map((e) => e.entryId)).to.deep.equal([coPatientEntryId('co-batch-0', 1)]);
    // An async read stated under w.patient (a co-patient) follows too.
    const stated = await viewRead(w, 's1');
    const report = await replay(w);
    expect(report).to.deep.include({ entries: 2, follows: 2, doesNotFollow: [], unchecked: [] });
    expect(byId(report, stated)).to.equal(undefined);
  });

  it('async mode: a permit recorded at a height where the consent did not permit it (a tampered entry) is flagged; honest entries follow', async () => {
    await grant(w);
    const revokedIn = await revoke(w);
    // Honest: decided on a view that had not applied the revoke yet (height revokedIn) → permit; on one that had → deny.
    const honestPermit = await viewRead(w, 'a1', revokedIn);
    const honestDeny = await viewRead(w, 'a1', revokedIn + 1);
    // A dishonest gateway states permit at the height that holds the revoke.
    const tampered = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], reason: 'consent-permit', breakGlass: false }, revokedIn + 1));
    const report = await replay(w);
    expect(report.entries).to.equal(3);
    expect(report.follows).to.equal(2);
    expect(report.unchecked).to.deep.equal([]);
    expect(report.doesNotFollow.map((r) => r.eventId)).to.deep.equal([tampered]);
    expect(report.doesNotFollow[0]).to.deep.include({
      decidedBy: 'gateway-view',
      height: revokedIn + 1,
      verdict: 'does-not-follow',
      recorded: { decision: 'permit', consents: [CONSENT_ID], reason: 'consent-permit', breakGlass: false },
      replayed: { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false },
    });
    expect(report.doesNotFollow[0]?.why).to.match(/replay to deny at height/);
    expect(byId(report, honestPermit)).to.equal(undefined);
    expect(byId(report, honestDeny)).to.equal(undefined);
  });

  it('the revoke flips the replayed decision exactly at its block: the same permit follows at height r and not at r + 1', async () => {
    await grant(w);
    const r = await revoke(w);
    const permit = { decision: 'permit' as const, consents: [CONSENT_ID], reason: 'consent-permit', breakGlass: false };
    const atR = await record(w, readEntry(w, 'a1', permit, r));
    const atR1 = await record(w, readEntry(w, 'a1', permit, r + 1));
    const report = await replay(w);
    expect(report.follows).to.equal(1);
    expect(report.doesNotFollow.map((x) => [x.eventId, x.height])).to.deep.equal([[atR1, r + 1]]);
    expect(byId(report, atR)).to.equal(undefined);
  });

  it('a permit stated before any consent was granted, and one whose consents or break-glass flag are not the decision’s, do not follow', async () => {
    const early = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: [], reason: 'consent-permit', breakGlass: false }, w.chain.height()));
    await grant(w);
    const wrongConsents = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: ['another'], breakGlass: false }, w.chain.height()));
    const wrongGlass = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], breakGlass: true }, w.chain.height()));
    const report = await replay(w);
    expect(report.follows).to.equal(0);
    expect(report.doesNotFollow.map((x) => x.eventId).sort()).to.deep.equal([early, wrongConsents, wrongGlass].sort());
    expect(byId(report, early)?.replayed?.decision).to.equal('deny');
    expect(byId(report, wrongConsents)?.why).to.match(/consents, reason or break-glass/);
  });

  it('an entry for several versions follows when every one replays to it and its consents are their union', async () => {
    await grant(w);
    const h = w.chain.height();
    const entry = {
      ...readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], breakGlass: false }, h),
      resources: ['Observation/a1/_history/1', 'Observation/a2/_history/1'],
      subtype: 'search-type',
    };
    const ok = await record(w, entry);
    // A version anchored only after the claimed height: the gateway's view could not have decided it.
    await w.h1.anchor(anchorInput('late', w.patient.did));
    const late = await record(w, { ...entry, resources: ['Observation/a1/_history/1', 'Observation/late/_history/1'] });
    const report = await replay(w);
    expect(report.follows).to.equal(1);
    expect(byId(report, ok)).to.equal(undefined);
    expect(byId(report, late)).to.deep.include({ verdict: 'does-not-follow', why: `resources[1] was not anchored at height ${h}` });
    // No resource id in the report (PHI): resources are named by index.
    expect(JSON.stringify(report)).not.to.contain('Observation/');
  });

  it('a height past the entry’s own block does not follow; entries stated without a height, changes and unversioned resources are unchecked, with why', async () => {
    await grant(w);
    const future = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], reason: 'consent-permit', breakGlass: false }, w.chain.height() + 5));
    const stated = await record(w, readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], reason: 'consent-permit', breakGlass: false }, undefined));
    const change = await record(w, { ...readEntry(w, 'a2', { decision: 'permit', consents: [], breakGlass: false }, undefined), action: 'C', subtype: 'create' });
    const statedDeny = await record(w, readEntry(w, 'a1', { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false }, undefined));
    const unversioned = await record(w, {
      ...readEntry(w, 'a1', { decision: 'permit', consents: [CONSENT_ID], breakGlass: false }, w.chain.height()),
      resources: ['Observation/a1'],
    });
    const report = await replay(w);
    expect(report.follows).to.equal(0);
    expect(byId(report, unversioned)).to.deep.include({ verdict: 'unchecked', decidedBy: 'gateway-view', why: 'resources[0] names no version' });
    expect(byId(report, future)).to.deep.include({ verdict: 'does-not-follow', decidedBy: 'gateway-view' });
    expect(byId(report, future)?.why).to.match(/past its own block/);
    expect(byId(report, stated)).to.deep.include({ verdict: 'unchecked', decidedBy: 'gateway-stated' });
    expect(byId(report, stated)?.why).to.match(/hdx\.audit:RecordAccessBatch without decidedAt/);
    // A hint for a read stated without a height: its decision would follow when it was recorded.
    expect(byId(report, stated)?.atRecording).to.equal('follows');
    expect(byId(report, change)).not.to.have.property('atRecording');
    expect(byId(report, statedDeny)).to.deep.include({ verdict: 'unchecked', atRecording: 'differs' });
    expect(byId(report, change)?.why).to.match(/change \(action C\)/);
  });

  it('an entry in an AuthorizeAndRecord transaction whose decision is not the chaincode’s (a forged endorsement) does not follow', async () => {
    // No consent: the chaincode would deny. A dishonest peer's write set says permit.
    const request = { ...readRequest(w, 'a1'), resources: ['Observation/a1/_history/1'], auditAction: 'R', subtype: 'read' };
    const txId = 'f'.repeat(64);
    const eventId = `${txId}.0`;
    const forged: AuditEntry = {
      ...(readEntry(w, 'a1', { decision: 'permit', consents: [], reason: 'consent-permit', breakGlass: false }, undefined) as AuditEntry),
      eventId,
      recordedAt: new Date(w.chain.clock * 1000).toISOString(),
      occurredAt: new Date(w.chain.clock * 1000).toISOString(),
      vouchedBy: H2,
      gateway: H1,
      txId,
    };
    w.chain.peer.commit([
      { txId, writes: { hdx: [{ key: compositeKey('hdx.audit', [eventId]), value: forged }] }, call: { fn: AUTHORIZE_AND_RECORD, args: [JSON.stringify(request)] } },
    ]);
    const report = await replay(w, { entries: [forged] });
    expect(report.doesNotFollow).to.have.length(1);
    expect(report.doesNotFollow[0]).to.deep.include({ eventId, decidedBy: 'chaincode', height: w.chain.height() - 1 });
    expect(report.doesNotFollow[0]?.replayed).to.deep.include({ decision: 'deny', reason: 'no-permit' });
  });

  it('an entry its block does not hold as read, or in no block read, is unchecked; a stream that ends early is an error', async () => {
    await grant(w);
    const id = await syncRead(w, 'a1');
    const [entry] = await history(w);
    const altered = { ...(entry as AuditEntry), decision: 'deny' as const };
    let report = await replay(w, { entries: [altered] });
    expect(report.unchecked[0]).to.deep.include({ eventId: id, verdict: 'unchecked' });
    expect(report.unchecked[0]?.why).to.match(/differs from the one its block wrote/);
    const missing = { ...(entry as AuditEntry), eventId: `${'e'.repeat(64)}.0`, txId: 'e'.repeat(64) };
    report = await replay(w, { entries: [missing] });
    expect(report.unchecked[0]?.why).to.match(/in none of blocks 0 to/);
    // The peer has fewer blocks than the target: the stream is closed by the timeout, and replay says so.
    const failure = await replayAccessHistory({
      patient: w.patient.did,
      entries: [missing],
      source: w.chain.peer,
      channel: 'hdx',
      namespace: 'hdx',
      target: BigInt(w.chain.height() + 3),
      timeoutMs: 50,
    }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(String(failure)).to.match(/stopped at height \d+, before \d+: 1 entries not replayed/);
  });

  it('stops once every entry is settled and reports progress', async () => {
    await grant(w);
    await syncRead(w, 'a1');
    const entries = await history(w);
    for (let i = 0; i < 5; i++) await w.h1.anchor(anchorInput(`more${i}`, w.patient.did));
    const progress: ReplayProgress[] = [];
    const report = await replay(w, { entries, onProgress: (p) => progress.push(p), progressEvery: 2 });
    expect(report.follows).to.equal(1);
    expect(Number(report.blocksRead)).to.be.lessThan(w.chain.height());
    expect(progress.length).to.be.greaterThan(1);
    expect(progress.at(-1)).to.deep.include({ settled: 1, entries: 1, target: BigInt(w.chain.height()) });
  });

  it('an empty history reads no block', async () => {
    const report = await replay(w, { entries: [] });
    expect(report).to.deep.equal({ patient: w.patient.did, blocksRead: '0', entries: 0, follows: 0, doesNotFollow: [], unchecked: [] });
  });

  it('replayPatient reads the history page by page as the patient, then the height, and replays up to it', async () => {
    await grant(w);
    await syncRead(w, 'a1');
    const tampered = await record(w, readEntry(w, 'a2', { decision: 'permit', consents: [], breakGlass: false }, 1));
    const queries: unknown[] = [];
    const pages: number[] = [];
    const ledger = {
      queryAccess: async (q: { patient: string; requester: string; pageSize: number; bookmark?: string }) => {
        queries.push(q);
        // Two pages: the first entry, then the rest (as the chaincode pages with a bookmark).
        const all = await history(w);
        return q.bookmark === undefined ? { entries: all.slice(0, 1), bookmark: 'next' } : { entries: all.slice(1), bookmark: '' };
      },
      chainHeight: () => w.chain.peer.chainHeight(),
      blockEvents: (start: bigint) => w.chain.peer.blockEvents(start),
    };
    const report = await replayPatient(ledger, { patient: w.patient.did, channel: 'hdx', namespace: 'hdx', onHistoryPage: (n) => pages.push(n) });
    expect(queries).to.deep.equal([
      { patient: w.patient.did, requester: w.patient.did, pageSize: 200 },
      { patient: w.patient.did, requester: w.patient.did, pageSize: 200, bookmark: 'next' },
    ]);
    expect(pages).to.deep.equal([1, 2]);
    expect(report).to.deep.include({ entries: 2, follows: 1 });
    expect(report.doesNotFollow.map((r) => r.eventId)).to.deep.equal([tampered]);
  });
});
