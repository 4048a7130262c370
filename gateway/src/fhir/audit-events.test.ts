import { expect } from 'chai';
import { validateResource } from '@hdx/fhir-mappers';
import type { AuditEntry } from '../ledger/ledger-client';
import { auditEventId, LEDGER_EVENT_ID_EXTENSION, toAuditEvent } from './audit-events';

const TX = 'a3f1'.repeat(16);
const DR = `did:hdx:${'D'.repeat(43)}`;
const PATIENT = `did:hdx:${'P'.repeat(43)}`;

function entry(n: number, decision: 'permit' | 'deny'): AuditEntry {
  return {
    actor: DR,
    actorOrganization: 'Hospital2MSP',
    actorAuth: 'did',
    patient: PATIENT,
    resources: [`Observation/o${n}/_history/1`],
    action: 'R',
    subtype: 'read',
    purpose: 'TREAT',
    decision,
    consents: [],
    breakGlass: false,
    custodian: 'Hospital1MSP',
    eventId: `${TX}.${n}`,
    txId: TX,
    recordedAt: '2026-12-07T12:00:00.000Z',
    occurredAt: '2026-12-07T11:59:59.800Z',
    gateway: 'Hospital1MSP',
    vouchedBy: 'Hospital1MSP',
  } as AuditEntry;
}

describe('fhir/audit-events: ledger access entries as AuditEvents', () => {
  it('gives the entries of one transaction distinct, valid FHIR ids; the full ledger event id stays in the extension', () => {
    // A RecordAccessBatch (async audit mode) holds up to 200 entries in one transaction.
    const events = [0, 1, 9, 10, 199].map((n) => toAuditEvent(entry(n, n === 1 ? 'deny' : 'permit')));
    const ids = events.map((e) => e.id as string);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const id of ids) expect(id).to.match(/^[A-Za-z0-9\-.]{1,64}$/);
    expect(ids[4]).to.equal(`${TX.slice(0, 60)}.199`);
    expect(events.map((e) => (e.extension as Array<{ url: string; valueString: string }>).find((x) => x.url === LEDGER_EVENT_ID_EXTENSION)?.valueString)).to.deep.equal(
      [0, 1, 9, 10, 199].map((n) => `${TX}.${n}`),
    );
    expect(events[1]?.outcome).to.equal('4');
    expect(validateResource(events[1], 'AuditEvent').filter((i) => i.severity === 'error')).to.deep.equal([]);
  });

  it('keeps a short event id as it is, and makes any other character a dash', () => {
    expect(auditEventId('abc.3')).to.equal('abc.3');
    expect(auditEventId('a_b:c.3')).to.equal('a-b-c.3');
  });
});
