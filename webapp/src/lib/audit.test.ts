import { expect } from 'chai';
import { toAuditEvent } from '@hdx/gateway/dist/fhir/audit-events';
import { accessRows, nextLink, toAccessRow } from './audit';

const PATIENT = 'did:hdx:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const DOCTOR = 'did:hdx:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';

type Entry = Parameters<typeof toAuditEvent>[0];

function entry(patch: Partial<Entry>): Entry {
  return {
    eventId: 'tx1-0',
    action: 'R',
    occurredAt: '2026-12-07T09:00:00.000Z',
    recordedAt: '2026-12-07T09:00:01.000Z',
    decision: 'permit',
    reason: 'consent-permit',
    purpose: 'TREAT',
    actor: DOCTOR,
    actorOrganization: 'Hospital2MSP',
    gateway: 'Hospital1MSP',
    patient: PATIENT,
    resources: ['Observation/o1/_history/1'],
    consents: ['c-1'],
    breakGlass: false,
    ...patch,
  } as Entry;
}

describe('access history rows (from the gateway’s AuditEvents)', () => {
  it('reads who, from where, through which gateway, when, why, what and the decision', () => {
    const row = toAccessRow(toAuditEvent(entry({})));
    expect(row).to.include({
      who: DOCTOR,
      organization: 'Hospital2MSP',
      where: 'Hospital1MSP',
      why: 'TREAT',
      when: '2026-12-07T09:00:00.000Z',
      permitted: true,
      breakGlass: false,
      patient: PATIENT,
    });
    expect(row.what).to.deep.equal(['Observation/o1/_history/1']);
    expect(row.consents).to.deep.equal(['Consent/c-1']);
    expect(row.outcome).to.equal('permit (consent-permit)');
  });

  it('marks denials and break-glass accesses', () => {
    const denied = toAccessRow(toAuditEvent(entry({ decision: 'deny', reason: 'no-permit', consents: [] })));
    expect(denied.permitted).to.equal(false);
    expect(denied.outcome).to.equal('denied (no-permit)');
    const glass = toAccessRow(toAuditEvent(entry({ purpose: 'ETREAT', reason: 'break-glass', breakGlass: true, consents: [] })));
    expect(glass).to.include({ breakGlass: true, permitted: true, why: 'ETREAT' });
  });

  it('lists a searchset newest first, and finds its next page', () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      link: [{ relation: 'next', url: 'http://gw/fhir/AuditEvent?patient=x&_bookmark=b' }],
      entry: [
        { resource: toAuditEvent(entry({ eventId: 'old', occurredAt: '2026-12-01T00:00:00.000Z' })) },
        { resource: toAuditEvent(entry({ eventId: 'new', occurredAt: '2026-12-05T00:00:00.000Z' })) },
        { resource: { resourceType: 'OperationOutcome' } },
      ],
    };
    expect(accessRows(bundle).map((r) => r.id)).to.deep.equal(['new', 'old']);
    expect(nextLink(bundle)).to.equal('http://gw/fhir/AuditEvent?patient=x&_bookmark=b');
    expect(accessRows({})).to.deep.equal([]);
    expect(nextLink({ link: [{ relation: 'self', url: 'x' }] })).to.equal(undefined);
  });
});
