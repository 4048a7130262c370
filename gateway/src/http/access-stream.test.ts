import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { expect } from 'chai';
import { createParser } from 'eventsource-parser';
import type { RequestHandler } from 'express';
import request from 'supertest';
import { testStore } from '../test-support/test-store';
import { compositeKey, FakePeer, type TestTransaction } from '../test-support/blocks';
import { asCaller, fakeAuthenticate, type TestCaller } from '../test-support/fake-auth';
import { FakeLedger } from '../test-support/fake-ledger';
import { registerAll } from '../test-support/http-fixture';
import { testApp } from '../test-support/test-app';
import { cursorText, entriesOf, parseCursor } from './access-stream';

const ALICE = `did:hdx:${'A'.repeat(43)}`;
const BOB = `did:hdx:${'B'.repeat(43)}`;
const WARD = `did:hdx:${'W'.repeat(43)}`;
const DOCTOR = `did:hdx:${'D'.repeat(43)}`;
const AUDITOR = `did:hdx:${'U'.repeat(43)}`;

const patient = (did: string): TestCaller => ({ did, role: 'patient', tokenKind: 'did', scope: 'patient/*.read', purpose: 'PATRQT' });

/** An access-history entry as the chaincode writes it (audit-model.ts), with its index key beside it. */
function entry(txId: string, n: number, patientDid: string, overrides: Record<string, unknown> = {}): TestTransaction['writes'][string] {
  const eventId = `${txId}.${n}`;
  const value = {
    eventId,
    recordedAt: '2026-12-07T08:00:00.000Z',
    occurredAt: '2026-12-07T08:00:00.000Z',
    actor: DOCTOR,
    actorOrganization: 'Hospital2MSP',
    actorAuth: 'did',
    vouchedBy: 'Hospital2MSP',
    patient: patientDid,
    resources: ['Observation/o1'],
    action: 'R',
    subtype: 'read',
    purpose: 'TREAT',
    decision: 'permit',
    consents: ['c1'],
    reason: 'consent-permit',
    breakGlass: false,
    custodian: 'Hospital1MSP',
    gateway: 'Hospital1MSP',
    txId,
    ...overrides,
  };
  return [
    { key: compositeKey('hdx.audit', [eventId]), value },
    { key: `hdx.audit~patient~${patientDid}~20261207080000~${eventId}`, value: '' },
  ];
}

const tx = (txId: string, ...writes: TestTransaction['writes'][string][]): TestTransaction => ({ txId, writes: { hdx: writes.flat() } });

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** An open stream read with fetch (as the web app does): its events so far, and a way to wait for more. */
class Client {
  readonly events: SseEvent[] = [];
  status = 0;
  #done = false;
  #waiters: Array<() => void> = [];
  readonly #abort = new AbortController();

  static async open(base: string, as: TestCaller, lastEventId?: string): Promise<Client> {
    const c = new Client();
    const [name, value] = asCaller(as);
    const res = await fetch(`${base}/fhir/AuditEvent/$stream`, {
      headers: { [name]: value, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
      signal: c.#abort.signal,
    });
    c.status = res.status;
    if (!res.body) return c;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = createParser({
      onEvent: (m) => {
        c.events.push({ ...(m.id !== undefined ? { id: m.id } : {}), event: m.event ?? 'message', data: m.data });
        c.#wake();
      },
    });
    void (async () => {
      try {
        for (;;) {
          const { value: chunk, done } = await reader.read();
          if (done) break;
          parser.feed(chunk);
        }
      } catch {
        // aborted
      }
      c.#done = true;
      c.#wake();
    })();
    return c;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  get ended(): boolean {
    return this.#done;
  }

  access(): Array<Record<string, unknown>> {
    return this.events.filter((e) => e.event === 'access').map((e) => JSON.parse(e.data) as Record<string, unknown>);
  }

  async until(what: string, test: () => boolean, ms = 3_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!test()) {
      if (this.#done) throw new Error(`the stream ended before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.#abort.abort();
  }
}

/** The patient reference of an AuditEvent (its Person entity). */
const patientOf = (e: Record<string, unknown>): string =>
  String((e.entity as Array<{ what: { identifier?: { value: string } } }>).find((x) => x.what.identifier)?.what.identifier?.value ?? '');

describe('GET /fhir/AuditEvent/$stream: live access notifications from committed blocks', () => {
  let peer: FakePeer;
  let ledger: FakeLedger;
  let server: Server;
  let base: string;
  const clients: Client[] = [];

  async function start(authenticate: RequestHandler = fakeAuthenticate, mspId = 'Hospital1MSP'): Promise<void> {
    const { app } = testApp({ store: testStore(), ledger, mspId, authenticate, blocks: { source: peer, namespace: 'hdx', heartbeatMs: 50 } });
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async function open(as: TestCaller, lastEventId?: string): Promise<Client> {
    const c = await Client.open(base, as, lastEventId);
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    peer = new FakePeer();
    peer.commit([{ txId: 'genesis', config: true, writes: {} }]);
    ledger = new FakeLedger();
    await registerAll(ledger, [
      [ALICE, 'patient'],
      [BOB, 'patient'],
      [WARD, 'patient'],
      [DOCTOR, 'practitioner'],
      [AUDITOR, 'auditor'],
    ]);
    await ledger.changeGuardian('add', { patient: WARD, guardian: BOB, proof: 'signed by the ward' });
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("streams each entry about the patient as its block commits, and another patient's stream gets nothing of it", async () => {
    await start();
    const alice = await open(patient(ALICE));
    const bob = await open(patient(BOB));
    expect(alice.status).to.equal(200);
    await alice.until('ready', () => alice.events.some((e) => e.event === 'ready'));
    await bob.until('ready', () => bob.events.some((e) => e.event === 'ready'));
    // The ready event names the start position: the peer's height when the stream opened.
    expect(alice.events.find((e) => e.event === 'ready')?.id).to.equal('1');

    peer.commit([tx('t1', entry('t1', 0, ALICE, { purpose: 'ETREAT', breakGlass: true }))]);
    peer.commit([tx('t2', entry('t2', 0, BOB))]);
    await alice.until('Alice’s entry', () => alice.access().length === 1);
    await bob.until('Bob’s own entry', () => bob.access().length === 1);
    // Bob's stream was live when Alice's entry committed (his own later one arrived), and never had Alice's.
    expect(bob.access().map(patientOf)).to.deep.equal([BOB]);
    expect(bob.events.map((e) => e.data).join('')).to.not.include(ALICE);
    const [event] = alice.access();
    expect(event?.resourceType).to.equal('AuditEvent');
    expect(patientOf(event ?? {})).to.equal(ALICE);
    expect((event?.meta as { security: Array<{ code: string }> }).security[0]?.code).to.equal('ETREAT');
    expect(alice.events.find((e) => e.event === 'access')?.id).to.equal('1.0.0');
    // Heartbeats never carry data.
    expect(alice.events.every((e) => e.event === 'ready' || e.event === 'access')).to.equal(true);
  });

  it("streams a ward's entries to their registered guardian, and not to anyone else", async () => {
    await start();
    const bob = await open(patient(BOB));
    const alice = await open(patient(ALICE));
    await bob.until('ready', () => bob.events.some((e) => e.event === 'ready'));
    await alice.until('ready', () => alice.events.some((e) => e.event === 'ready'));
    peer.commit([tx('t1', entry('t1', 0, WARD)), tx('t2', entry('t2', 0, ALICE))]);
    await bob.until("the ward's entry", () => bob.access().length === 1);
    await alice.until('her own entry', () => alice.access().length === 1);
    expect(bob.access().map(patientOf)).to.deep.equal([WARD]);
    expect(alice.access().map(patientOf)).to.deep.equal([ALICE]);
  });

  it('streams every break-glass access, whoever the patient, to an auditor, and no other entry', async () => {
    await start();
    const auditor = await open({ did: AUDITOR, role: 'auditor', tokenKind: 'did', scope: 'user/AuditEvent.read' });
    expect(auditor.status).to.equal(200);
    await auditor.until('ready', () => auditor.events.some((e) => e.event === 'ready'));
    peer.commit([tx('t1', entry('t1', 0, ALICE), entry('t1', 1, BOB, { purpose: 'ETREAT', breakGlass: true, reason: 'break-glass', consents: [] }))]);
    peer.commit([tx('t2', entry('t2', 0, WARD, { purpose: 'ETREAT', breakGlass: true, decision: 'deny', reason: 'no-permit', consents: [] }))]);
    peer.commit([tx('t3', entry('t3', 0, ALICE))]);
    await auditor.until('both break-glass entries', () => auditor.access().length === 2);
    peer.commit([tx('t4', entry('t4', 0, BOB, { purpose: 'ETREAT', breakGlass: true, reason: 'break-glass', consents: [] }))]);
    await auditor.until('the next break-glass entry', () => auditor.access().length === 3);
    const ids = auditor.events.filter((e) => e.event === 'access').map((e) => e.id);
    // Block 3's entry (not break-glass) was passed over: the stream went on to block 4's.
    expect(ids).to.deep.equal(['1.0.1', '2.0.0', '4.0.0']);
    expect(auditor.access().map(patientOf)).to.deep.equal([BOB, WARD, BOB]);
    // A practitioner still gets no stream.
    const doctor = await request(server)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller({ did: DOCTOR, role: 'practitioner', tokenKind: 'did', scope: 'user/*.read', purpose: 'TREAT' }));
    expect(doctor.status).to.equal(403);
  });

  it("refuses an auditor at another organization's gateway, and a DID that is not an active auditor's, as the chaincode refuses their reads", async () => {
    // The auditor was registered by Hospital1MSP's ledger client (their organization); this gateway is Hospital2MSP's.
    await start(fakeAuthenticate, 'Hospital2MSP');
    const elsewhere = await request(server)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller({ did: AUDITOR, role: 'auditor', tokenKind: 'did', scope: 'user/AuditEvent.read' }));
    expect(elsewhere.status).to.equal(403);
    expect(elsewhere.body.issue[0].diagnostics).to.include("the auditor's own organization");
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await start();
    // A patient DID presented with the auditor role is not an auditor on the ledger.
    const impostor = await request(server)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller({ did: ALICE, role: 'auditor', tokenKind: 'did', scope: 'user/AuditEvent.read' }));
    expect(impostor.status).to.equal(403);
  });

  it('sends only entries of valid transactions, and never index keys or other namespaces', async () => {
    await start();
    const alice = await open(patient(ALICE));
    await alice.until('ready', () => alice.events.some((e) => e.event === 'ready'));
    peer.commit([
      { ...tx('bad', entry('bad', 0, ALICE)), validationCode: 11 },
      { txId: 'other', writes: { othercc: entry('other', 0, ALICE) } },
      tx('good', entry('good', 0, ALICE), entry('good', 1, ALICE)),
    ]);
    await alice.until('two entries', () => alice.access().length === 2);
    expect(alice.access().map((e) => e.id)).to.deep.equal(['good.0', 'good.1']);
    expect(alice.events.filter((e) => e.event === 'access').map((e) => e.id)).to.deep.equal(['1.2.0', '1.2.1']);
  });

  it('resumes after Last-Event-ID with every entry committed meanwhile, none twice', async () => {
    await start();
    const first = await open(patient(ALICE));
    await first.until('ready', () => first.events.some((e) => e.event === 'ready'));
    peer.commit([tx('t1', entry('t1', 0, ALICE), entry('t1', 1, ALICE))]);
    await first.until('two entries', () => first.access().length === 2);
    // The connection drops after the first entry was handled; more commit while the client is away.
    const lastId = first.events.filter((e) => e.event === 'access')[0]?.id ?? '';
    first.close();
    peer.commit([tx('t2', entry('t2', 0, BOB))]);
    peer.commit([tx('t3', entry('t3', 0, ALICE))]);
    const again = await open(patient(ALICE), lastId);
    await again.until('the rest', () => again.access().length === 2);
    expect(again.access().map((e) => e.id)).to.deep.equal(['t1.1', 't3.0']);
    // A resumed stream says so and keeps the client's position (no id on ready).
    const ready = again.events.find((e) => e.event === 'ready');
    expect(ready?.id).to.equal(undefined);
    expect(JSON.parse(ready?.data ?? '{}')).to.deep.equal({ resumed: true });
    // Live entries follow the replayed ones.
    peer.commit([tx('t4', entry('t4', 0, ALICE))]);
    await again.until('the live entry', () => again.access().length === 3);
    expect(again.access().map((e) => e.id)).to.deep.equal(['t1.1', 't3.0', 't4.0']);
  });

  it('resumes from a ready position: entries committed between ready and the reconnect arrive', async () => {
    await start();
    const first = await open(patient(ALICE));
    await first.until('ready', () => first.events.some((e) => e.event === 'ready'));
    const readyId = first.events.find((e) => e.event === 'ready')?.id ?? '';
    first.close();
    peer.commit([tx('t1', entry('t1', 0, ALICE))]);
    const again = await open(patient(ALICE), readyId);
    await again.until('the entry', () => again.access().length === 1);
    expect(again.access()[0]?.id).to.equal('t1.0');
  });

  it('refuses anyone but a patient, guardian or auditor, a bad Last-Event-ID and a position beyond the ledger, with an OperationOutcome', async () => {
    await start();
    const cases: Array<[TestCaller | undefined, string | undefined, number, string]> = [
      [undefined, undefined, 401, 'Authentication required'],
      [{ did: DOCTOR, role: 'practitioner', tokenKind: 'did', scope: 'user/*.read', purpose: 'TREAT' }, undefined, 403, 'for patients'],
      [{ did: AUDITOR, role: 'auditor', tokenKind: 'did', scope: 'patient/AuditEvent.read' }, undefined, 403, 'an auditor uses user/ scopes'],
      [{ role: 'patient', tokenKind: 'idp', scope: 'patient/*.read' }, undefined, 403, 'registered patient DID'],
      [{ ...patient(ALICE), viaOrganization: DOCTOR }, undefined, 403, 'member organization'],
      [{ ...patient(ALICE), scope: 'patient/Observation.read' }, undefined, 403, 'scope'],
      [patient(ALICE), 'not-an-id', 400, 'Last-Event-ID'],
      [patient(ALICE), '99', 400, 'beyond the ledger'],
    ];
    for (const [as, lastId, status, text] of cases) {
      let req = request(server).get('/fhir/AuditEvent/$stream');
      if (as) req = req.set(...asCaller(as));
      if (lastId) req = req.set('last-event-id', lastId);
      const res = await req;
      expect(res.status, `${JSON.stringify(as)} ${lastId ?? ''}`).to.equal(status);
      expect(res.body.resourceType).to.equal('OperationOutcome');
      expect(res.body.issue[0].diagnostics).to.include(text);
    }
    const params = await request(server)
      .get(`/fhir/AuditEvent/$stream?patient=${BOB}`)
      .set(...asCaller(patient(ALICE)));
    expect(params.status).to.equal(400);
    expect(params.body.issue[0].diagnostics).to.include('takes no parameters');
  });

  it('answers 503 when the peer is down, and limits the streams one caller keeps open', async () => {
    await start();
    peer.down = true;
    const down = await request(server)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller(patient(ALICE)));
    expect(down.status).to.equal(503);
    expect(down.body.issue[0].diagnostics).to.include('not reachable');
    peer.down = false;
    for (let i = 0; i < 4; i += 1) {
      const c = await open(patient(ALICE));
      await c.until('ready', () => c.events.some((e) => e.event === 'ready'));
    }
    const fifth = await request(server)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller(patient(ALICE)));
    expect(fifth.status).to.equal(429);
    // Another patient is not affected; and a closed stream frees its place.
    expect((await open(patient(BOB))).status).to.equal(200);
    clients[0]?.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await open(patient(ALICE))).status).to.equal(200);
  });

  it('ends the stream when the token that opened it expires (event: expired)', async () => {
    const shortLived: RequestHandler = (req, res, next) => {
      fakeAuthenticate(req, res, (err?: unknown) => {
        if (!err && req.auth) req.auth = { ...req.auth, expiresAt: Math.floor(Date.now() / 1000) + 1 };
        next(err);
      });
    };
    await start(shortLived);
    const alice = await open(patient(ALICE));
    await alice.until('expired', () => alice.events.some((e) => e.event === 'expired'), 4_000);
    await alice.until('the end', () => alice.ended, 1_000).catch(() => undefined);
    expect(alice.ended).to.equal(true);
  });

  it('is not offered without a block source', async () => {
    const { app } = testApp({ store: testStore(), ledger });
    server = createServer(app);
    const res = await request(app)
      .get('/fhir/AuditEvent/$stream')
      .set(...asCaller(patient(ALICE)));
    expect(res.status).to.equal(404);
    expect(res.body.issue[0].diagnostics).to.include('not offered');
  });
});

describe('access stream positions', () => {
  it('reads and writes Last-Event-ID cursors, refusing anything else', () => {
    expect(parseCursor('12')).to.deep.equal({ block: 12n });
    expect(parseCursor('12.3.4')).to.deep.equal({ block: 12n, tx: 3, n: 4 });
    expect(cursorText({ block: 12n, tx: 3, n: 4 })).to.equal('12.3.4');
    for (const bad of ['', 'x', '1.2', '-1', '1.2.3.4', `did:hdx:${'A'.repeat(43)}`]) expect(parseCursor(bad), bad).to.equal(undefined);
  });

  it('numbers entries within each transaction and skips index keys and deletes', () => {
    const w = (txIndex: number, key: string, value?: unknown) => ({
      key,
      value: value === undefined ? undefined : Buffer.from(JSON.stringify(value)),
      deleted: value === undefined,
      txId: `t${txIndex}`,
      blockNumber: 5n,
      txIndex,
    });
    const e = (id: string) => ({ eventId: id, patient: ALICE });
    const out = entriesOf([
      w(0, compositeKey('hdx.audit', ['a.0']), e('a.0')),
      w(0, 'hdx.audit~patient~x', ''),
      w(0, compositeKey('hdx.audit', ['a.1']), e('a.1')),
      w(1, compositeKey('hdx.audit~entry', ['Hospital1MSP', 'x']), 'a.0'),
      w(2, compositeKey('hdx.audit', ['c.0'])),
      w(3, compositeKey('hdx.audit', ['d.0']), e('d.0')),
    ]);
    expect(out.map((o) => `${cursorText(o.cursor)} ${o.entry.eventId}`)).to.deep.equal(['5.0.0 a.0', '5.0.1 a.1', '5.3.0 d.0']);
  });
});
