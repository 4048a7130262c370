/**
 * Ingestion on the real network (issue 6): HL7 v2 ADT^A01 and ORU^R01 through the real gateway
 * (`POST /ingest/hl7v2`), each message anchored in one ledger transaction; re-ingesting the same
 * message creates no new version in the store and no new anchor on the ledger; the same over MLLP
 * (HDX_MLLP_PORT), answered with HL7 ACKs.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { generateDidKey } from '@hdx/gateway';
import { call, type Gw, registerDid, staffToken } from '../support/fhir-client';
import { locatedVersions, OrgClient, evaluateOnceThere } from '../support/ledger';
import { freePort, startTestGateway } from '../support/network';

const HL7 = 'x-application/hl7-v2+er7';
/** Sends one MLLP-framed message and resolves with the framed ACK's text. */
function mllp(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(text, 'utf8'), Buffer.from([0x1c, 0x0d])])));
    let buffer = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      const end = buffer.indexOf(Buffer.from([0x1c, 0x0d]));
      if (end >= 0) {
        socket.end();
        resolve(buffer.subarray(1, end).toString('utf8'));
      }
    });
    socket.on('error', reject);
  });
}

const message = (f: string): string => fs.readFileSync(path.join(__dirname, '..', '..', 'fhir-mappers', 'test-data', 'hl7v2', f), 'utf8');

interface Anchor {
  patient: string;
  txId: string;
}

describe('HL7 v2 ingestion (real network, hospital1 gateway)', function () {
  let h1: Gw;
  let hospital2: OrgClient;
  const practitioner = generateDidKey();
  let token: string;
  let pseudonym: string;
  let mllpPort: number;

  const versions = (): Array<{ ref: string; n: number }> => {
    const db = new Database(path.join(h1.config.dataDir, 'hdx.db'), { readonly: true });
    try {
      return (
        db.prepare("SELECT resource_type || '/' || id AS ref, COUNT(*) AS n FROM resource_version GROUP BY resource_type, id ORDER BY ref").all() as Array<{
          ref: string;
          n: number;
        }>
      ).map((r) => ({ ...r }));
    } finally {
      db.close();
    }
  };

  /** Every anchored version of the patient held by hospital1, as the ledger's record locator lists them. */
  const located = (): Promise<string[]> => locatedVersions(hospital2, { patient: pseudonym, actor: practitioner.did, custodian: 'Hospital1MSP' });

  const ingest = (file: string) => call(h1, 'POST', `${h1.config.baseUrl.replace(/\/fhir$/, '')}/ingest/hl7v2`, token, message(file), HL7);

  before(async () => {
    mllpPort = await freePort();
    h1 = await startTestGateway('hospital1', { HDX_MLLP_PORT: String(mllpPort), HDX_MLLP_ACTOR_DID: practitioner.did });
    hospital2 = OrgClient.admin('hospital2');
    await registerDid(h1, 'hospital1', 'practitioner', practitioner);
    token = staffToken(h1, 'hospital1', { did: practitioner.did, scope: 'user/*.*' });
  });

  after(async () => {
    hospital2?.close();
    await h1?.gateway.close();
  });

  it('ADT^A01: Patient and Encounter created under the mapper ids, anchored in one transaction; the same message again changes nothing', async () => {
    const res = await ingest('adt-a01.hl7');
    expect(res.status, res.text).to.equal(200);
    expect(res.body.type).to.equal('transaction-response');
    const entries = res.body.entry as Array<{ response: { status: string; location: string } }>;
    expect(entries.map((e) => e.response.status)).to.deep.equal(['201 Created', '201 Created']);
    const refs = entries.map((e) => e.response.location);
    const anchors = await Promise.all(
      refs.map((r) => evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', ...(r.split('/').filter((_, i) => i !== 2) as [string, string, string]))),
    );
    expect(new Set(anchors.map((a) => a.txId)).size).to.equal(1);
    pseudonym = anchors[0]?.patient as string;
    expect(pseudonym).to.match(/^pseudonym:/);
    expect(await located()).to.deep.equal([...refs].sort());
    const rows = versions();

    const again = await ingest('adt-a01.hl7');
    expect(again.status, again.text).to.equal(200);
    expect(again.body.entry.map((e: { response: { status: string; location: string } }) => [e.response.status, e.response.location])).to.deep.equal(refs.map((r) => ['200 OK', r]));
    expect(versions()).to.deep.equal(rows);
    expect(await located()).to.deep.equal([...refs].sort());
  });

  it('ORU^R01: the results and report in one transaction; the same message again adds no version and no anchor', async () => {
    const res = await ingest('oru-r01.hl7');
    expect(res.status, res.text).to.equal(200);
    const entries = res.body.entry as Array<{ response: { status: string; location: string } }>;
    expect(entries.length).to.be.greaterThan(3);
    // The same patient (PID-3), kept as the ADT wrote it: the result message's Patient is create-only.
    expect(entries[0]?.response.location).to.match(/^Patient\/.+\/_history\/1$/);
    expect(entries.slice(1).every((e) => e.response.status === '201 Created')).to.equal(true);
    const txIds = await Promise.all(
      entries
        .slice(1)
        .map((e) => evaluateOnceThere<Anchor>(hospital2, 'hdx.record', 'GetAnchor', ...(e.response.location.split('/').filter((_, i) => i !== 2) as [string, string, string]))),
    );
    expect(new Set(txIds.map((a) => a.txId)).size).to.equal(1);
    const rows = versions();
    const anchored = await located();
    expect(anchored).to.include.members(entries.map((e) => e.response.location));

    const again = await ingest('oru-r01.hl7');
    expect(again.status, again.text).to.equal(200);
    expect(again.body.entry.every((e: { response: { status: string } }) => e.response.status === '200 OK')).to.equal(true);
    expect(versions()).to.deep.equal(rows);
    expect(await located()).to.deep.equal(anchored);
    for (const e of entries) {
      const [type, id, , v] = e.response.location.split('/');
      const next = await hospital2.evaluate('hdx.record', 'GetAnchor', type as string, id as string, String(Number(v) + 1)).catch((err: { code?: string }) => err.code);
      expect(next).to.equal('NOT_FOUND');
    }
    // What was ingested is served like anything else, checked against its anchor.
    const [type, id] = (entries[1]?.response.location ?? '').split('/');
    const verify = await call(h1, 'GET', `/${type}/${id}/$verify`, token);
    expect(verify.body.parameter).to.deep.include({ name: 'verified', valueBoolean: true });
  });

  it('a message the mapper refuses: 422 naming the field, nothing stored', async () => {
    const rows = versions();
    const res = await call(
      h1,
      'POST',
      `${h1.config.baseUrl.replace(/\/fhir$/, '')}/ingest/hl7v2`,
      token,
      message('adt-a01.hl7').replace('ADT^A01^ADT_A01', 'ADT^A99^ADT_A01'),
      HL7,
    );
    expect(res.status, res.text).to.equal(422);
    expect(res.text).to.contain('MSH-9');
    expect(res.text).to.not.contain('Brien');
    expect(versions()).to.deep.equal(rows);
  });

  it('over MLLP: ADT^A04 answered MSA|AA once anchored; the same message again adds nothing; a bad one gets MSA|AE naming MSH-9', async () => {
    const a04 = message('adt-a04.hl7');
    const ack = await mllp(mllpPort, a04);
    expect(ack.split('\r')[1], ack).to.match(/^MSA\|AA\|/);
    const rows = versions();
    const again = await mllp(mllpPort, a04);
    expect(again.split('\r')[1]).to.match(/^MSA\|AA\|/);
    expect(versions()).to.deep.equal(rows);
    const bad = await mllp(mllpPort, a04.replace(/ADT\^A04/, 'ADT^A99'));
    expect(bad.split('\r')[1]).to.match(/^MSA\|AE\|.*MSH-9/);
    expect(bad).to.match(/\rERR\|\|MSH\^1\^9\|201\^/);
    expect(versions()).to.deep.equal(rows);
  });
});
