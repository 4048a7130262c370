import { expect } from 'chai';
import { MappingError } from './errors';
import { issuesToOperationOutcome, mappingErrorToOperationOutcome, mappingWarningToIssue } from './outcome';
import { validateResource } from './validate';

describe('OperationOutcome helpers', () => {
  it('turns an HL7 v2 mapping warning into a warning issue with its table 0357 condition, valid R4', () => {
    const issue = mappingWarningToIssue({ location: 'OBX[2]-11', condition: '101', rule: 'result-status-missing', message: 'status missing: unknown' });
    expect(issue).to.deep.equal({
      severity: 'warning',
      code: 'incomplete',
      details: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0357', code: '101', display: 'Required field missing' }], text: 'OBX[2]-11' },
      diagnostics: 'OBX[2]-11: status missing: unknown (result-status-missing)',
    });
    expect(mappingWarningToIssue({ location: 'PID-8', condition: '103', rule: 'sex-not-in-table', message: 'x' }).code).to.equal('code-invalid');
    expect(validateResource({ resourceType: 'OperationOutcome', issue: [issue] })).to.deep.equal([]);
  });

  it('turns validation issues into a valid OperationOutcome with expressions', () => {
    const oo = issuesToOperationOutcome(validateResource({ resourceType: 'Patient', gender: 'x' }));
    expect(oo.issue).to.have.length(1);
    expect(oo.issue[0]).to.deep.include({ severity: 'error', code: 'value', expression: ['Patient.gender'] });
    expect(validateResource(oo)).to.deep.equal([]);
    expect(validateResource(issuesToOperationOutcome([]))).to.deep.equal([]);
  });

  it('turns a MappingError into processing / invalid issues; only FHIR paths become expressions', () => {
    const hl7 = mappingErrorToOperationOutcome(new MappingError('INVALID', 'PID-5', 'bad name'));
    expect(hl7.issue[0]).to.deep.equal({ severity: 'error', code: 'invalid', diagnostics: 'PID-5: bad name', details: { text: 'PID-5' } });
    const out = mappingErrorToOperationOutcome(new MappingError('UNMAPPABLE', 'Bundle.entry[0].resource.code', 'x'));
    expect(out.issue[0]).to.deep.include({ code: 'processing', expression: ['Bundle.entry[0].resource.code'] });
    const vr = mappingErrorToOperationOutcome(new MappingError('INVALID', '/biometrics/0', 'x'));
    expect(vr.issue[0]?.expression).to.equal(undefined);
    for (const oo of [hl7, out, vr]) expect(validateResource(oo)).to.deep.equal([]);
  });
});
