import { expect } from 'chai';
import { DID_IDENTIFIER_SYSTEM } from '@hdx/gateway';
import { DID_SYSTEM, groupByType, patientDid, resourcesOf, toRecordRow, toVerification } from './records';

const DID = `did:hdx:${'A'.repeat(43)}`;

describe('records view rows (from $everything and $verify)', () => {
  it('reads what, value, when and from whom of an Observation', () => {
    const row = toRecordRow({
      resourceType: 'Observation',
      id: 'o1',
      meta: { versionId: '2', lastUpdated: '2026-12-01T00:00:00Z' },
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      effectiveDateTime: '2026-11-20T09:30:00Z',
      performer: [{ reference: 'Practitioner/p1', display: 'Dr. Okafor' }],
      valueQuantity: { value: 71, unit: 'beats/minute' },
    });
    expect(row).to.deep.equal({
      ref: 'Observation/o1',
      type: 'Observation',
      id: 'o1',
      version: '2',
      what: 'Heart rate',
      value: '71 beats/minute',
      when: '2026-11-20T09:30:00Z',
      from: 'Dr. Okafor',
    });
  });

  it('falls back to the type, the storage time and no author when the record names none', () => {
    const row = toRecordRow({ resourceType: 'DocumentReference', id: 'd1', meta: { versionId: '1', lastUpdated: '2026-12-01T00:00:00Z' } });
    expect(row).to.include({ what: 'DocumentReference', when: '2026-12-01T00:00:00Z', from: '', value: '' });
    expect(toRecordRow({ resourceType: 'Patient', id: 'p', meta: {} }).what).to.equal('Your registration at this member');
    expect(toRecordRow({ resourceType: 'Encounter', id: 'e', type: [{ text: 'Emergency visit' }], period: { start: '2026-01-02' } })).to.include({
      what: 'Emergency visit',
      when: '2026-01-02',
    });
  });

  it('finds the DID a Patient is linked to by the gateway’s identifier system', () => {
    expect(DID_SYSTEM).to.equal(DID_IDENTIFIER_SYSTEM);
    expect(
      patientDid({
        resourceType: 'Patient',
        identifier: [
          { system: 'urn:mrn', value: '123' },
          { system: DID_IDENTIFIER_SYSTEM, value: DID },
        ],
      }),
    ).to.equal(DID);
    expect(patientDid({ resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: 'did:x' }] })).to.equal('');
  });

  it('reads the Parameters of $verify as the gateway writes them', () => {
    const ok = toVerification({
      resourceType: 'Parameters',
      parameter: [
        { name: 'verified', valueBoolean: true },
        { name: 'reason', valueString: 'the stored content matches the anchored commitment' },
        { name: 'custodian', valueString: 'Hospital1MSP' },
        { name: 'transaction', valueString: 'abc123' },
        { name: 'anchoredAt', valueInstant: '2026-12-07T08:00:00Z' },
      ],
    });
    expect(ok).to.deep.equal({
      verified: true,
      reason: 'the stored content matches the anchored commitment',
      custodian: 'Hospital1MSP',
      transaction: 'abc123',
      anchoredAt: '2026-12-07T08:00:00Z',
    });
    const bad = toVerification({
      resourceType: 'Parameters',
      parameter: [
        { name: 'verified', valueBoolean: false },
        { name: 'reason', valueString: 'no anchor on the ledger' },
      ],
    });
    expect(bad).to.include({ verified: false, reason: 'no anchor on the ledger', transaction: '' });
  });

  it('lists the resources of a searchset without OperationOutcomes, grouped by type with the Patient first', () => {
    const bundle = {
      resourceType: 'Bundle',
      entry: [
        { resource: { resourceType: 'Observation', id: 'o1', effectiveDateTime: '2026-01-01' } },
        { resource: { resourceType: 'OperationOutcome', issue: [] } },
        { resource: { resourceType: 'Patient', id: 'p1' } },
        { resource: { resourceType: 'Observation', id: 'o2', effectiveDateTime: '2026-02-01' } },
        { resource: { resourceType: 'Condition', id: 'c1' } },
      ],
    };
    const groups = groupByType(resourcesOf(bundle).map(toRecordRow));
    expect(groups.map((g) => g.type)).to.deep.equal(['Patient', 'Condition', 'Observation']);
    expect(groups[2]?.rows.map((r) => r.id)).to.deep.equal(['o2', 'o1']);
  });
});
