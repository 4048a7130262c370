import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { ErasureService } from '../fhir/erasure';
import type { Caller } from '../fhir/policy';
import { ResourceService } from '../fhir/resource-service';
import { newLogger } from '../logger';
import { testStore } from '../test-support/test-store';
import type { ResourceStore } from '../store/store';
import { FakeLedger } from '../test-support/fake-ledger';
import { CustodianIds } from '../store/custodian-ids';
import { IngestService } from './ingest-service';
import { type MllpListener, startMllpListener } from './mllp';

const FEED: Caller = { did: `did:hdx:${'m'.repeat(43)}`, organization: 'Hospital1MSP', purpose: 'TREAT', kind: 'system', actorAuth: 'idp', local: true };
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

const testData = (f: string): string => fs.readFileSync(path.join(__dirname, '..', '..', '..', 'fhir-mappers', 'test-data', 'hl7v2', f), 'utf8');
const ADT = testData('adt-a01.hl7');
const ORU = testData('oru-r01.hl7');
const frame = (m: string): Buffer => Buffer.concat([Buffer.from([0x0b]), Buffer.from(m, 'utf8'), Buffer.from([0x1c, 0x0d])]);

/** Sends the bytes (in the chunks given) and collects `n` framed ACKs. */
function exchange(port: number, chunks: Buffer[], n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = Buffer.alloc(0);
    const acks: string[] = [];
    socket.on('data', (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      for (let end = buffer.indexOf(Buffer.from([0x1c, 0x0d])); end >= 0; end = buffer.indexOf(Buffer.from([0x1c, 0x0d]))) {
        expect(buffer[0]).to.equal(0x0b);
        acks.push(buffer.subarray(1, end).toString('utf8'));
        buffer = buffer.subarray(end + 2);
      }
      if (acks.length >= n) {
        socket.end();
        resolve(acks);
      }
    });
    socket.on('error', reject);
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
    });
  });
}

describe('MLLP listener (fake ledger)', () => {
  let dir: string;
  let store: ResourceStore;
  let ledger: FakeLedger;
  let listener: MllpListener;
  let ids: CustodianIds;
  let erasure: ErasureService;
  const lines: string[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-mllp-'));
    store = testStore(path.join(dir, 'hdx.db'));
    ledger = new FakeLedger();
    const log = newLogger('silent');
    // What the listener logs, to check it names no id.
    const mllpLog = newLogger('info', { write: (line: string) => lines.push(line) });
    const resources = new ResourceService({ store, ledger, log, mspId: 'Hospital1MSP' });
    ids = new CustodianIds(Buffer.alloc(32, 5), ':memory:');
    erasure = new ErasureService(store, ledger, log, 'Hospital1MSP');
    const ingest = new IngestService({ resources, store, log, baseUrl: 'http://127.0.0.1:8080/fhir', ids });
    listener = await startMllpListener({ port: 0, ingest, log: mllpLog, caller: FEED });
  });

  afterEach(async () => {
    await listener.close();
    await store.close();
    ids.close();
    lines.length = 0;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ingests a framed ADT^A01 and answers MSA|AA with its control id; the same message again adds nothing', async () => {
    const [ack] = await exchange(listener.port, [frame(ADT)], 1);
    const segments = (ack ?? '').split('\r');
    expect(segments[0]).to.match(/^MSH\|\^~\\&\|HDX\|HDX\|EPICADT\|HOSP1\^1\.2\.840\.114350\.1\.13\.1\^ISO\|\d{14}\+0000\|\|ACK\^A01\^ACK\|/);
    expect(segments[1]).to.equal('MSA|AA|MSG00001');
    expect(ledger.anchors.size).to.equal(2);
    const [again] = await exchange(listener.port, [frame(ADT)], 1);
    expect(again?.split('\r')[1]).to.equal('MSA|AA|MSG00001');
    expect(ledger.anchors.size).to.equal(2);
  });

  it('answers MSA|AE with an ERR naming the field (never a value), and handles frames split across and packed into chunks', async () => {
    const bad = ADT.replace('ADT^A01^ADT_A01', 'ADT^A99^ADT_A01');
    const bytes = Buffer.concat([frame(bad), frame(ADT)]);
    const acks = await exchange(listener.port, [bytes.subarray(0, 10), bytes.subarray(10, bytes.length - 3), bytes.subarray(bytes.length - 3)], 2);
    const [first, second] = acks.map((a) => a.split('\r'));
    expect(first?.[1]).to.match(/^MSA\|AE\|MSG00001\|MSH-9: /);
    expect(first?.[2]).to.match(/^ERR\|\|MSH\^1\^9\|201\^Unsupported event code\^HL70357\|E\|/);
    expect(acks[0]).to.not.contain('Brien');
    expect(second?.[1]).to.equal('MSA|AA|MSG00001');
  });

  it('an ACK refusing a message (the ledger names the resource) and the log carry no resource id', async () => {
    await exchange(listener.port, [frame(ADT)], 1);
    const patientId = [...ledger.anchors.keys()].find((k) => k.startsWith('Patient/'))?.split('/')[1] as string;
    // Erased without a new epoch: the same message now maps onto the tombstone and is refused.
    await erasure.erasePatient({ ...FEED, kind: 'admin' }, patientId);
    const [ack] = await exchange(listener.port, [frame(ADT)], 1);
    expect(ack?.split('\r')[1]).to.match(/^MSA\|AE\|MSG00001\|/);
    expect(ack).to.not.match(UUID);
    expect(ack).to.not.contain(patientId);
    expect(lines.join('\n')).to.not.match(UUID);
  });

  it('stores a result message with fields left blank: MSA|AA and one ERR of severity W per lenient field, naming positions, never values', async () => {
    // OBX[2] without result status (OBX-11), the order without its result status (OBR-25)
    const lenient = ORU.replace('|<^150|mg/dL^^UCUM|0-150|N|||F', '|<^150|mg/dL^^UCUM|0-150|N|||').replace('|||||||||CH|F', '|||||||||CH|');
    const [ack] = await exchange(listener.port, [frame(lenient)], 1);
    const segments = (ack ?? '').split('\r').filter((x) => x !== '');
    expect(segments[1]).to.equal('MSA|AA|LAB-0042');
    expect(segments.slice(2)).to.deep.equal([
      'ERR||OBX^2^11|101^Required field missing^HL70357|W|result-status-missing^^99HDX|||OBX[2]-11: observation result status missing: Observation.status is unknown',
      'ERR||OBR^1^25|101^Required field missing^HL70357|W|order-status-missing^^99HDX|||OBR-25: result status missing: DiagnosticReport.status derived from the results (unknown)',
    ]);
    expect(ledger.anchors.size).to.equal(7);
    expect(ack).to.not.contain('Brien').and.not.match(UUID);
    expect(lines.join('\n')).to.not.contain('Brien');
  });

  it('refuses what cannot be mapped safely: MSA|AE with an ERR of severity E and its table 0357 condition; nothing stored', async () => {
    const noPatient = ADT.replace(/\rPID\|1\|\|[^|]*\|/, '\rPID|1|||').replace(/\nPID\|1\|\|[^|]*\|/, '\nPID|1|||');
    const noCode = ORU.replace('|2571-8^Triglyceride [Mass/volume] in Serum or Plasma^LN|', '||');
    const acks = await exchange(listener.port, [frame(noPatient), frame(noCode)], 2);
    const [first, second] = acks.map((a) => a.split('\r'));
    expect(first?.[1]).to.match(/^MSA\|AE\|MSG00001\|PID-3: /);
    expect(first?.[2]).to.match(/^ERR\|\|PID\^1\^3\|101\^Required field missing\^HL70357\|E\|/);
    expect(second?.[1]).to.match(/^MSA\|AE\|LAB-0042\|OBX\[2\]-3: /);
    expect(second?.[2]).to.match(/^ERR\|\|OBX\^2\^3\|101\^Required field missing\^HL70357\|E\|/);
    expect(ledger.anchors.size).to.equal(0);
  });
});
