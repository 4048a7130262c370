/**
 * Issue 9, finding 5: MRNs are recoverable from the ledger. Patient ids of HL7-ingested patients were an
 * unkeyed hash of the MRN (stableUuid over a public namespace, the assigning authority and the MRN);
 * every member reads them in anchors, audit entries and blocks, they survive erasure (a returning
 * patient is then refused forever), and MRN-derived ids were in the gateway logs.
 *
 * Attacker: another member (Hospital2), reading the ledger through its own peer the way every member
 * can, with the project's own public id function and an MRN guess. Secure outcome: the id the ledger
 * holds is not computable from the MRN; after erasure the same patient is admitted again; the
 * gateway's logs carry no Patient id.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';

import { call, type Gw, staffToken } from '../../support/fhir-client';
import { LedgerError, OrgClient } from '../../support/ledger';
import { extraGateway, securityEnv, type SecurityEnv, show } from '../../support/security';
// The attacker's tool: the public, unkeyed id function HDX used before ids were keyed.
import { unkeyedStableUuid } from '../../../fhir-mappers/src/test-support/ids';

const HL7 = 'x-application/hl7-v2+er7';
const hl7 = (f: string): string => fs.readFileSync(path.join(__dirname, '..', '..', '..', 'fhir-mappers', 'test-data', 'hl7v2', f), 'utf8');
const golden = hl7('adt-a01.hl7');

describe('security finding 5: no MRN-derived ids on the ledger or in logs; erasure allows re-admission', function () {
  let env: SecurityEnv;
  let gw: Gw;
  let hospital2: OrgClient;
  const logLines: string[] = [];
  // A unique MRN and visit number, so this file never collides with other ingestion tests on the network.
  const mrn = `MRN-${randomBytes(4).readUInt32BE(0) % 100000000}`;
  const adt = golden
    .replace('MRN-000042', mrn)
    .replace('V-2024-777', `V-${mrn}`)
    .replace('MSG00001', `MSG${mrn.slice(4)}`);
  let patientId: string;
  let mrnIdentifier: { system: string; value: string };
  const admin = (): string => staffToken(gw, 'hospital1', { did: env.drH1.did, role: 'admin', scope: 'user/*.*' });
  const staff = (): string => staffToken(gw, 'hospital1', { did: env.drH1.did, scope: 'user/*.*' });
  const ingest = (message = adt) => call(gw, 'POST', `${gw.config.baseUrl.replace(/\/fhir$/, '')}/ingest/hl7v2`, staff(), message, HL7);
  // The same patient's lab result, with order numbers of its own.
  const filler = `FIL-${mrn.slice(4)}`;
  const oru = hl7('oru-r01.hl7')
    .replace(/MRN-000042/g, mrn)
    .replace(/V-2024-777/g, `V-${mrn}`)
    .replace(/FIL-9/g, filler)
    .replace(/ORD-1/g, `ORD-${mrn.slice(4)}`)
    .replace('LAB-0042', `LAB${mrn.slice(4)}`);

  before(async () => {
    env = await securityEnv();
    gw = await extraGateway('hospital1', {}, { write: (line: string) => void logLines.push(line) });
    hospital2 = OrgClient.admin('hospital2');
    const res = await ingest();
    expect(res.status, show(res)).to.equal(200);
    const loc = (res.body.entry as Array<{ response: { location: string } }>).map((e) => e.response.location).find((l) => l.startsWith('Patient/'));
    patientId = (loc ?? '').split('/')[1] as string;
    const p = await call(gw, 'GET', `/Patient/${patientId}`, staff());
    expect(p.status, show(p)).to.equal(200);
    mrnIdentifier = (p.body.identifier as Array<{ system: string; value: string }>).find((i) => i.value === mrn) as { system: string; value: string };
    expect(mrnIdentifier, `the ingested Patient carries the MRN identifier: ${p.text}`).to.not.equal(undefined);
  });

  after(() => hospital2?.close());

  it('the Patient id is not the unkeyed hash of the MRN', () => {
    const guessed = unkeyedStableUuid('Patient', mrnIdentifier.system, mrnIdentifier.value);
    expect(patientId, `MRN RECOVERABLE: Patient.id = unkeyedStableUuid('Patient', '${mrnIdentifier.system}', '${mrn}')`).to.not.equal(guessed);
  });

  it('another member guessing the MRN finds no anchor under the MRN-derived id on the ledger', async () => {
    const guessed = unkeyedStableUuid('Patient', mrnIdentifier.system, mrnIdentifier.value);
    let found: unknown;
    try {
      found = await hospital2.evaluate('hdx.record', 'GetAnchor', 'Patient', guessed, '1');
    } catch (err) {
      expect(err instanceof LedgerError ? err.code : String(err)).to.equal('NOT_FOUND');
      found = undefined;
    }
    expect(found, `MRN RECOVERABLE BY A MEMBER: Hospital2 found hospital1's anchor for MRN ${mrn}: ${JSON.stringify(found)}`).to.equal(undefined);
  });

  it('the gateway’s logs carry no Patient id (nor the MRN)', async () => {
    const read = await call(gw, 'GET', `/Patient/${patientId}`, staff());
    expect(read.status).to.equal(200);
    await new Promise((r) => setTimeout(r, 200));
    const leaking = logLines.filter((l) => l.includes(patientId) || l.includes(mrn));
    expect(
      leaking.map((l) => l.slice(0, 300)),
      `LOGGED: ${leaking.length} log lines name the MRN-derived Patient id or the MRN`,
    ).to.have.length(0);
  });

  it('order-number-derived ids: another member cannot compute a lab report’s id from its order number', async () => {
    const res = await ingest(oru);
    expect(res.status, show(res)).to.equal(200);
    const loc = (res.body.entry as Array<{ response: { location: string } }>).map((e) => e.response.location).find((l) => l.startsWith('DiagnosticReport/'));
    const reportId = (loc ?? '').split('/')[1] as string;
    const report = await call(gw, 'GET', `/DiagnosticReport/${reportId}`, staff());
    expect(report.status, show(report)).to.equal(200);
    const order = (report.body.identifier as Array<{ system?: string; value: string }>).find((i) => i.value === filler);
    expect(order, `the report carries its filler order number: ${report.text.slice(0, 300)}`).to.not.equal(undefined);
    const guessed = unkeyedStableUuid('DiagnosticReport', 'order', order?.system ?? '', filler);
    expect(reportId, `ORDER NUMBER RECOVERABLE: DiagnosticReport.id = stableUuid('DiagnosticReport', 'order', '${order?.system}', '${filler}')`).to.not.equal(guessed);
    const found = await hospital2.evaluate('hdx.record', 'GetAnchor', 'DiagnosticReport', guessed, '1').then(
      (a) => a,
      () => undefined,
    );
    expect(found, `ORDER NUMBER RECOVERABLE BY A MEMBER: Hospital2 found the anchor of order ${filler}`).to.equal(undefined);
  });

  it('after erasure the same patient (same MRN) can be admitted again', async () => {
    const erased = await call(gw, 'POST', `/Patient/${patientId}/$erase`, admin());
    expect(erased.status, `precondition: the admin erases the patient: ${show(erased)}`).to.equal(200);
    const again = await ingest();
    expect(again.status, `RETURNING PATIENT REFUSED after erasure (same MRN): ${show(again)}`).to.equal(200);
    const statuses = (again.body.entry as Array<{ response: { status: string } }>).map((e) => e.response.status);
    expect(
      statuses.every((s) => s.startsWith('201') || s.startsWith('200')),
      JSON.stringify(statuses),
    ).to.equal(true);
  });
});
