import type { Caller } from '../fhir/policy';

/** A practitioner of the custodian (IdP-vouched), as bindCaller makes one; override any field. */
export function staffCaller(overrides: Partial<Caller> & { did: string; organization: string }): Caller {
  return { purpose: 'TREAT', kind: 'practitioner', actorAuth: 'idp', local: true, ...overrides };
}
