/**
 * What the HL7 v2 mappers read leniently: a field the standard requires that a real sender left blank,
 * or a code outside its table, where FHIR allows a safe reading (a status `unknown`, an element left out).
 * The message is mapped and each such reading is reported as a MappingWarning: the gateway puts them in
 * the ACK (ERR, severity W) and in the HTTP ingest response. The decision table is in the README.
 */
import type { Hl7Condition } from '../errors';

/** A stable name per lenient reading (for monitoring a feed; never carries a value). */
export type Hl7LenientRule =
  | 'version-missing'
  | 'patient-name-missing'
  | 'patient-identifier-without-authority'
  | 'sex-not-in-table'
  | 'visit-segment-missing'
  | 'patient-class-missing'
  | 'patient-class-not-in-table'
  | 'visit-number-without-authority'
  | 'result-status-missing'
  | 'order-status-missing'
  | 'service-identifier-missing'
  | 'observation-time-missing'
  | 'order-number-missing';

export interface MappingWarning {
  /** where in the message: `OBX[2]-11`, `PID-3(2).4`, `PV1` (a missing segment) */
  readonly location: string;
  /** HL7 table 0357: 100 segment missing, 101 required field missing, 103 code not in its table */
  readonly condition: Extract<Hl7Condition, '100' | '101' | '103'>;
  readonly rule: Hl7LenientRule;
  /** what was done instead, naming the location and the rule, never a value */
  readonly message: string;
  /** `Type/id` of the mapped resource the reading concerns (absent when it concerns the whole message) */
  readonly resource?: string;
}

/** Collects the warnings of one mapping. */
export class Warnings {
  readonly list: MappingWarning[] = [];

  add(location: string, condition: MappingWarning['condition'], rule: Hl7LenientRule, message: string, resource?: { resourceType: string; id: string }): void {
    const w: MappingWarning = resource ? { location, condition, rule, message, resource: `${resource.resourceType}/${resource.id}` } : { location, condition, rule, message };
    this.list.push(w);
  }
}
