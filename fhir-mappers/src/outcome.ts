import type { OperationOutcome, OperationOutcomeIssue } from 'fhir/r4';
import { HL7_CONDITION_TEXT, MappingError } from './errors';
import type { MappingWarning } from './hl7v2/warnings';
import type { FhirIssue } from './validate';

/** Validation issues → an OperationOutcome (for a 400 response). */
export function issuesToOperationOutcome(issues: readonly FhirIssue[]): OperationOutcome {
  const issue: OperationOutcomeIssue[] =
    issues.length === 0
      ? [{ severity: 'information', code: 'informational', diagnostics: 'no issues' }]
      : issues.map((i) => ({ severity: i.severity, code: i.code, expression: [i.expression], diagnostics: i.diagnostics }));
  return { resourceType: 'OperationOutcome', issue };
}

/**
 * A MappingError → an OperationOutcome: INVALID → issue code 'invalid' (HTTP 400), UNMAPPABLE →
 * 'processing' (HTTP 422). Input locations (PID-5, /biometrics/0) are not FHIRPath, so they go into
 * diagnostics and details.text; FHIR locations of mapped output go into expression.
 */
export function mappingErrorToOperationOutcome(err: MappingError): OperationOutcome {
  const code = err.code === 'INVALID' ? 'invalid' : 'processing';
  return {
    resourceType: 'OperationOutcome',
    issue: err.problems.map((p) => {
      const issue: OperationOutcomeIssue = { severity: 'error', code, diagnostics: `${p.location}: ${p.message}`, details: { text: p.location } };
      if (/^[A-Z][A-Za-z]+(\.|$)/.test(p.location) && !/^[A-Z0-9]{3}(\[\d+\])?-\d/.test(p.location)) issue.expression = [p.location];
      return issue;
    }),
  };
}

const WARNING_ISSUE_CODE: Readonly<Record<MappingWarning['condition'], OperationOutcomeIssue['code']>> = {
  '100': 'structure',
  '101': 'incomplete',
  '103': 'code-invalid',
};

/**
 * An HL7 v2 mapping warning → an OperationOutcome issue of severity warning: the table 0357 condition in
 * details (system v2-0357), the input location in details.text and diagnostics (not FHIRPath, so no
 * expression), the rule name in diagnostics.
 */
export function mappingWarningToIssue(w: MappingWarning): OperationOutcomeIssue {
  return {
    severity: 'warning',
    code: WARNING_ISSUE_CODE[w.condition],
    details: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0357', code: w.condition, display: HL7_CONDITION_TEXT[w.condition] }], text: w.location },
    diagnostics: `${w.location}: ${w.message} (${w.rule})`,
  };
}
