import { expect } from 'chai';
import Papa from 'papaparse';
import { validateResource } from '@hdx/fhir-mappers';
import { toAuditEvent } from '@hdx/gateway/dist/fhir/audit-events';
import { toAccessRow } from './audit';
import { auditBundle, CSV_COLUMNS, matches, NO_FILTERS, perDay, searchPath, selectEvents, toCsv } from './auditor';

const PATIENT = `did:hdx:${'A'.repeat(43)}`;
const DOCTOR = `did:hdx:${'B'.repeat(43)}`;
const OTHER = `did:hdx:${'C'.repeat(43)}`;

type Entry = Parameters<typeof toAuditEvent>[0];

function entry(patch: Partial<Entry>): Entry {
  return {
    eventId: 'tx1.0',
    action: 'R',
    subtype: 'read',
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

describe('auditor search and exports', () => {
  it('puts patient or actor, the date range and the decision into the gateway query, which takes one of patient and actor', () => {
    expect(searchPath({ ...NO_FILTERS, patient: PATIENT, actor: DOCTOR, from: '2026-12-01', to: '2026-12-07', decision: 'deny' })).to.equal(
      `/AuditEvent?patient=${encodeURIComponent(PATIENT)}&date=ge2026-12-01T00%3A00%3A00.000Z&date=le2026-12-07T23%3A59%3A59.999Z&outcome=4&_count=100`,
    );
    expect(searchPath({ ...NO_FILTERS, actor: DOCTOR, decision: 'permit' }, 10)).to.equal(`/AuditEvent?agent=${encodeURIComponent(DOCTOR)}&outcome=0&_count=10`);
    expect(searchPath(NO_FILTERS)).to.equal('/AuditEvent?_count=100');
    expect(() => searchPath({ ...NO_FILTERS, from: '2026-12-08', to: '2026-12-07' })).to.throw('after the end date');
    expect(() => searchPath({ ...NO_FILTERS, from: 'yesterday' })).to.throw('YYYY-MM-DD');
  });

  it('filters here what the gateway does not: organization, purpose, break-glass, and the actor beside a patient', () => {
    const glass = toAccessRow(toAuditEvent(entry({ eventId: 'g.0', purpose: 'ETREAT', breakGlass: true, reason: 'break-glass', consents: [] })));
    const treat = toAccessRow(toAuditEvent(entry({ eventId: 't.0' })));
    const other = toAccessRow(toAuditEvent(entry({ eventId: 'o.0', actor: OTHER, actorOrganization: 'Hospital1MSP' })));
    expect(matches(glass, { ...NO_FILTERS, breakGlassOnly: true })).to.equal(true);
    expect(matches(treat, { ...NO_FILTERS, breakGlassOnly: true })).to.equal(false);
    expect(matches(treat, { ...NO_FILTERS, organization: 'hospital2msp' })).to.equal(true);
    expect(matches(other, { ...NO_FILTERS, organization: 'Hospital2MSP' })).to.equal(false);
    expect(matches(glass, { ...NO_FILTERS, purpose: 'ETREAT' })).to.equal(true);
    expect(matches(treat, { ...NO_FILTERS, purpose: 'ETREAT' })).to.equal(false);
    expect(matches(other, { ...NO_FILTERS, patient: PATIENT, actor: DOCTOR })).to.equal(false);
    expect(matches(treat, { ...NO_FILTERS, patient: PATIENT, actor: DOCTOR })).to.equal(true);
  });

  it('exports CSV that reads back cell for cell, with formula-like cells escaped', () => {
    const rows = [
      toAccessRow(toAuditEvent(entry({ eventId: 'a.0', reason: 'consent, "quoted"' }))),
      toAccessRow(toAuditEvent(entry({ eventId: 'b.0', actorOrganization: '=HYPERLINK("x")', decision: 'deny', reason: 'no-permit', consents: [] }))),
    ];
    const csv = toCsv(rows);
    const parsed = Papa.parse<string[]>(csv.trim(), { header: false });
    expect(parsed.errors).to.deep.equal([]);
    expect(parsed.data[0]).to.deep.equal([...CSV_COLUMNS]);
    expect(parsed.data[1]).to.deep.equal([
      '2026-12-07T09:00:00.000Z',
      'permit',
      'no',
      DOCTOR,
      'Hospital2MSP',
      'Hospital1MSP',
      'TREAT',
      PATIENT,
      'read',
      'Observation/o1/_history/1',
      'permit (consent, "quoted")',
      'Consent/c-1',
      'a.0',
      '',
      '',
    ]);
    expect(parsed.data[2]?.[1]).to.equal('deny');
    // A spreadsheet does not run it: the cell starts with a quote character.
    expect(parsed.data[2]?.[4]).to.equal(`'=HYPERLINK("x")`);
  });

  it('exports each break-glass access’s review state and latest outcome, as the gateway’s AuditEvent carries them', () => {
    const glass = { eventId: 'g.0', purpose: 'ETREAT', breakGlass: true, reason: 'break-glass', consents: [] };
    const review = {
      eventId: 'g.1',
      outcome: 'needs-follow-up' as const,
      reviewer: OTHER,
      reviewerOrganization: 'RegulatorMSP',
      reviewedAt: '2026-12-07T11:00:00.000Z',
      txId: 'r1',
    };
    const rows = [
      toAccessRow(toAuditEvent(entry({ ...glass }), { state: 'open', reviews: 0 })),
      toAccessRow(toAuditEvent(entry({ ...glass, eventId: 'g.1' }), { state: 'reviewed', reviews: 2, current: review })),
      toAccessRow(toAuditEvent(entry({ eventId: 't.0' }))),
    ];
    const parsed = Papa.parse<Record<string, string>>(toCsv(rows).trim(), { header: true });
    expect(parsed.errors).to.deep.equal([]);
    expect(parsed.data.map((r) => [r.eventId, r.breakGlass, r.reviewState, r.reviewOutcome])).to.deep.equal([
      ['g.0', 'yes', 'open', ''],
      ['g.1', 'yes', 'reviewed', 'needs-follow-up'],
      ['t.0', 'no', '', ''],
    ]);
  });

  it('exports a FHIR R4 Bundle of the selected AuditEvents, newest first, that validates', () => {
    const events = [
      toAuditEvent(entry({ eventId: 'old.0', occurredAt: '2026-12-01T00:00:00.000Z' })),
      toAuditEvent(entry({ eventId: 'new.0', breakGlass: true, purpose: 'ETREAT' })),
    ];
    const selected = selectEvents(events, NO_FILTERS);
    expect(selected.map((s) => s.row.id)).to.deep.equal(['new.0', 'old.0']);
    const bundle = auditBundle(
      selected.map((s) => s.event),
      '2026-12-07T10:00:00.000Z',
    );
    expect(bundle).to.include({ resourceType: 'Bundle', type: 'collection' });
    expect(validateResource(bundle, 'Bundle')).to.deep.equal([]);
    // The validator does look: a Bundle of an unknown type does not pass.
    expect(validateResource({ ...bundle, type: 'pile' }, 'Bundle')).to.not.deep.equal([]);
  });

  it('counts accesses per day (UTC), with denials and break-glass, oldest day first', () => {
    const rows = [
      entry({ eventId: 'a.0', occurredAt: '2026-12-07T23:59:59.000Z' }),
      entry({ eventId: 'b.0', occurredAt: '2026-12-05T08:00:00.000Z', decision: 'deny', reason: 'no-permit', consents: [] }),
      entry({ eventId: 'c.0', occurredAt: '2026-12-07T00:00:00.000Z', purpose: 'ETREAT', breakGlass: true, reason: 'break-glass', consents: [] }),
      entry({ eventId: 'd.0', occurredAt: '2026-12-07T10:00:00.000Z', decision: 'deny', reason: 'no-permit', consents: [] }),
    ].map((e) => toAccessRow(toAuditEvent(e)));
    expect(perDay(rows)).to.deep.equal([
      { day: '2026-12-05', total: 1, denied: 1, breakGlass: 0 },
      { day: '2026-12-07', total: 3, denied: 1, breakGlass: 1 },
    ]);
    expect(perDay([])).to.deep.equal([]);
  });
});
