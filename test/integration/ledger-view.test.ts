/**
 * Issue 11, first slice, on the real network: hospital1's ledger view, fed from its own peer's
 * committed blocks, sees a consent granted through hospital1's gateway in the block that commits it;
 * a view stopped while blocks keep committing resumes from its checkpoint with no gap and no double;
 * and a view rebuilt from block 0 matches the live one row for row.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import pino from 'pino';
import {
  DEFAULT_MAX_LAG_MS,
  DID_IDENTIFIER_SYSTEM,
  enrollGatewayIdentity,
  FabricLedger,
  generateDidKey,
  LedgerView,
  rebuildAndCompare,
  signConsent,
  signDidToken,
  VIEW_FILE_NAME,
  ViewStore,
} from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { permitOrganizationConsent } from '../support/jose';
import { OrgClient } from '../support/ledger';
import { startTestGateway } from '../support/network';

describe('ledger view (issue 11): fed from committed blocks, checkpointed, rebuilt (real network)', function () {
  const log = pino({ level: 'silent' });
  let h1: Gw;
  let ledger: FabricLedger;
  let reader: OrgClient;
  let dir: string;
  let file: string;
  let store: ViewStore;
  let view: LedgerView;
  const patientKey = generateDidKey();
  const drH1 = generateDidKey();
  const consentId = '9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';
  let patientId: string;

  const open = (): { store: ViewStore; view: LedgerView } => {
    const s = new ViewStore(file, { channel: h1.config.channel, namespace: h1.config.chaincode });
    return { store: s, view: new LedgerView({ store: s, source: ledger, namespace: h1.config.chaincode, log, pollMs: 200 }) };
  };

  const observation = (value: number): Record<string, unknown> => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: '2026-11-20T09:30:00Z',
    valueQuantity: { value, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  });

  before(async () => {
    // A port in this run's own block (past the network's 110, before the consortium tests' offsets at 200
    // and 400), not a random free one another process on the machine could take meanwhile.
    h1 = await startTestGateway('hospital1', { HDX_GATEWAY_PORT: String(Number(process.env.HDX_TEST_PORT_BASE ?? '27000') + 150) });
    ledger = new FabricLedger(h1.config, await enrollGatewayIdentity(h1.config, log));
    reader = await OrgClient.gateway('hospital1');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-view-it-'));
    file = path.join(dir, VIEW_FILE_NAME);
    await registerDid(h1, 'hospital1', 'patient', patientKey);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    const p = await call(h1, 'POST', '/Patient', staffToken(h1, 'hospital1', { did: drH1.did }), {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientKey.did }],
      birthDate: '1990-01-01',
    });
    expect(p.status, p.text).to.equal(201);
    patientId = p.body.id;
    ({ store, view } = open());
    view.start();
    // Catching up from block 0: everything the network's setup and the lines above committed.
    await view.waitForHeight(await ledger.chainHeight(), 120_000);
  });

  after(async () => {
    await view?.stop();
    store?.close();
    reader?.close();
    ledger?.close();
    await h1?.gateway.close();
  });

  it('holds what the chaincode wrote: the patient DID, its organization DIDs, the anchors and the DID link', async () => {
    // Caught up at a poll (the gateway's outbox may still add a block or two after the set-up's writes;
    // the bound is generous: on a loaded machine the poll itself can take longer than the default 1.5 s).
    const end = Date.now() + 30_000;
    for (;;) {
      await view.poll();
      if ((view.lagBlocks() === 0n && view.fresh(60_000)) || Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(view.lagBlocks()).to.equal(0n);
    expect(view.fresh(60_000)).to.equal(true);
    expect(store.identity(patientKey.did)).to.include({ kind: 'patient', status: 'active', organization: 'Hospital1MSP' });
    expect(store.organizationDids('Hospital1MSP')).to.have.length.greaterThan(0);
    const anchor = store.anchor('Patient', patientId, '1');
    expect(anchor?.custodian).to.equal('Hospital1MSP');
    expect(anchor?.patient).to.equal(patientKey.did);
  });

  it('sees a consent granted through the gateway in the block that committed it', async () => {
    const seenAt: Array<{ block: bigint; at: number; hasConsent: boolean }> = [];
    const off = view.onBlock((block) => seenAt.push({ block, at: Date.now(), hasConsent: store.consent(consentId) !== undefined }));
    const consent = permitOrganizationConsent(consentId, patientKey.did, 'Hospital2MSP', 'TREAT');
    const token = signDidToken({ key: patientKey.privateJwk, audience: h1.config.baseUrl, scope: 'patient/Consent.write', ttlSec: 120 });
    const granted = await call(h1, 'POST', '/Consent', token, signConsent(patientKey.privateJwk, consent, 'grant'), 'application/jose');
    const committedAt = Date.now();
    expect(granted.status, granted.text).to.equal(201);
    const peerHeight = await ledger.chainHeight();
    await view.waitForHeight(peerHeight, 10_000);
    off();
    // The ledger's own record of the grant (its transaction id), read through the chaincode.
    const onLedger = await reader.evaluate<{ txId: string; version: number }>('hdx.consent', 'GetConsent', consentId);
    const row = store.snapshot().tables.consents.find((r) => r.id === consentId);
    expect(row, 'the view holds the consent').to.not.equal(undefined);
    expect(row?.tx_id).to.equal(onLedger.txId);
    expect(row?.status).to.equal('active');
    expect(store.consentsOf(patientKey.did).map((c) => c.id)).to.include(consentId);
    // The first block after which the view holds the consent is the block whose write set carried it.
    const first = seenAt.find((s) => s.hasConsent);
    expect(first?.block).to.equal(BigInt(row?.block ?? -1));
    expect(seenAt.filter((s) => !s.hasConsent).every((s) => s.block < (first?.block ?? 0n))).to.equal(true);
    // Seen at most a moment after the gateway acknowledged the commit (the block is delivered, not polled).
    expect((first?.at ?? Infinity) - committedAt).to.be.lessThan(5_000);
  });

  it('sees a revocation submitted through another member in the block that committed it', async () => {
    const consent = permitOrganizationConsent(consentId, patientKey.did, 'Hospital2MSP', 'TREAT');
    const h2 = await OrgClient.gateway('hospital2');
    let submitted: { txId: string; blockNumber: bigint };
    try {
      submitted = await h2.submitTx('hdx.consent', 'Revoke', signConsent(patientKey.privateJwk, consent, 'revoke'));
    } finally {
      h2.close();
    }
    await view.waitForHeight(submitted.blockNumber + 1n, 10_000);
    const row = store.snapshot().tables.consents.find((r) => r.id === consentId);
    expect(row).to.include({ status: 'inactive', version: 2, tx_id: submitted.txId, block: Number(submitted.blockNumber) });
    expect(store.consent(consentId)?.submittedBy).to.equal('Hospital2MSP');
  });

  it('resumes after a restart mid-stream from its checkpoint: no gap, no double', async () => {
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    // Writes keep committing blocks while the view is stopped and restarted.
    const writes = (async (): Promise<string[]> => {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const o = await call(h1, 'POST', '/Observation', staff, observation(60 + i));
        expect(o.status, o.text).to.equal(201);
        ids.push(o.body.id as string);
      }
      return ids;
    })();
    await view.waitForHeight(view.height() + 2n, 30_000);
    await view.stop();
    const stoppedAt = store.height();
    // Stopped, nothing confirms it is caught up: past the bound it is no longer fresh.
    await new Promise((resolve) => setTimeout(resolve, DEFAULT_MAX_LAG_MS + 100));
    expect(view.fresh()).to.equal(false);
    store.close();

    ({ store, view } = open());
    expect(store.height()).to.equal(stoppedAt);
    const seen: Array<[bigint, boolean]> = [];
    view.onBlock((block, applied) => seen.push([block, applied]));
    view.start();
    const ids = await writes;
    await view.waitForHeight(await ledger.chainHeight(), 30_000);
    expect(seen.length).to.be.greaterThan(0);
    // Consecutive from the checkpoint on, each applied exactly once.
    expect(seen).to.deep.equal(seen.map((_, i) => [stoppedAt + BigInt(i), true]));
    for (const id of ids) expect(store.anchor('Observation', id, '1')?.custodian, id).to.equal('Hospital1MSP');
  });

  it('a view rebuilt from block 0 matches the live one row for row', async () => {
    const result = await rebuildAndCompare({ source: ledger, channel: h1.config.channel, namespace: h1.config.chaincode, liveFile: file, workFile: path.join(dir, 'rebuilt.db') });
    expect(result.differences).to.deep.equal([]);
    expect(result.equal).to.equal(true);
    expect(result.rebuiltHeight).to.equal(result.liveHeight);
    expect(fs.existsSync(path.join(dir, 'rebuilt.db'))).to.equal(false);
  });
});
