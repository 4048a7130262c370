/**
 * PID → Patient and PV1 → Encounter (shared by ADT^A01/A04/A08 and ORU^R01), and the ADT mapper.
 *
 * Patient: identifiers (PID-3, CX with assigning authority → system, type from table 0203), names
 * (PID-5), birth date (PID-7), gender (PID-8, table 0001), addresses (PID-11), phones (PID-13 home,
 * PID-14 work), marital status (PID-16, table 0002 kept), multiple birth (PID-24/25), death (PID-29/30).
 * The Patient id is keyed (options.ids) from the first PID-3 identifier and its erasure epoch, so every
 * message about the same patient maps to the same resource, until the custodian erases that patient.
 * Encounter: class from PV1-2 (table 0004 → v3 ActCode), admission type (PV1-4, table 0007), location
 * (PV1-3, display only), attending / referring / consulting / admitting doctors (PV1-7/8/9/17),
 * hospital service (PV1-10, table 0069), admit source (PV1-14, table 0023), visit number (PV1-19),
 * discharge disposition (PV1-36, table 0112), period (PV1-44/45). Its id is keyed from the visit number and
 * the Patient id (so a patient admitted again after erasure gets new Encounter ids too).
 */
import type { Bundle, Encounter, EncounterParticipant, Identifier, Patient, Reference } from 'fhir/r4';
import { MappingError } from '../errors';
import { checkOutput, ref, transaction } from '../output';
import { SYSTEM } from '../systems';
import { type Hl7MapOptions, cxToIdentifier, tableConcept, v2DateTime, xadToAddress, xcnToReference, xpnToName, xtnToContact } from './datatypes';
import { type Hl7Segment, comp, location, repetitions, value } from './parse';
import type { MessageHeader } from './header';
import type { Warnings } from './warnings';

export type PatientResource = Patient & { id: string };
export type EncounterResource = Encounter & { id: string };

const GENDER: Readonly<Record<string, Patient['gender']>> = { M: 'male', F: 'female', O: 'other', A: 'other', U: 'unknown', N: 'unknown' };

export function mapPatient(pid: Hl7Segment, header: MessageHeader, options: Hl7MapOptions, warnings: Warnings): PatientResource {
  const identifiers: Identifier[] = [];
  const dropped: string[] = [];
  repetitions(pid, 3).forEach((rep, i) => {
    const loc = location(pid, 3, i + 1);
    // The first identifier is the patient's identity (and keys the Patient id): it must have a system.
    // A further one without an assigning authority cannot be told apart from another facility's: left out.
    if (identifiers.length > 0 && comp(rep, 1) !== undefined && cxToIdentifier(rep, loc, header.facilitySystem, options, false) === undefined) {
      dropped.push(`${loc}.4`);
      return;
    }
    const id = cxToIdentifier(rep, loc, header.facilitySystem, options);
    if (id) identifiers.push(id);
  });
  const first = identifiers[0];
  if (first === undefined) throw new MappingError('INVALID', location(pid, 3), 'patient identifier list is required', undefined, { hl7Condition: '101' });
  const patient: PatientResource = {
    resourceType: 'Patient',
    id: options.ids.id('Patient', first.system ?? '', first.value ?? ''),
    identifier: identifiers,
  };
  for (const loc of dropped) {
    warnings.add(loc, '101', 'patient-identifier-without-authority', 'identifier has no assigning authority (and MSH-4 is empty): this identifier is left out', patient);
  }
  const names = repetitions(pid, 5)
    .map(xpnToName)
    .filter((n) => n !== undefined);
  if (names.length > 0) patient.name = names;
  else warnings.add(location(pid, 5), '101', 'patient-name-missing', 'patient name missing: Patient.name left out', patient);
  const telecom = [...repetitions(pid, 13).map((r) => xtnToContact(r, 'home')), ...repetitions(pid, 14).map((r) => xtnToContact(r, 'work'))].filter((t) => t !== undefined);
  if (telecom.length > 0) patient.telecom = telecom;
  const sex = value(pid, 8);
  if (sex !== undefined) {
    const gender = GENDER[sex.toUpperCase()];
    if (gender !== undefined) patient.gender = gender;
    else warnings.add(location(pid, 8), '103', 'sex-not-in-table', 'administrative sex is not a code of HL7 table 0001: Patient.gender left out', patient);
  }
  const birthDate = v2DateTime(value(pid, 7), location(pid, 7), options, true);
  if (birthDate !== undefined) patient.birthDate = birthDate;
  const deathTime = v2DateTime(value(pid, 29), location(pid, 29), options);
  const deathIndicator = value(pid, 30)?.toUpperCase();
  if (deathTime !== undefined) patient.deceasedDateTime = deathTime;
  else if (deathIndicator === 'Y' || deathIndicator === 'N') patient.deceasedBoolean = deathIndicator === 'Y';
  const addresses = repetitions(pid, 11)
    .map(xadToAddress)
    .filter((a) => a !== undefined);
  if (addresses.length > 0) patient.address = addresses;
  const marital = tableConcept('0002', value(pid, 16));
  if (marital) patient.maritalStatus = marital;
  const multiple = value(pid, 24)?.toUpperCase();
  const order = value(pid, 25);
  if (order !== undefined && /^[1-9]\d{0,2}$/.test(order)) patient.multipleBirthInteger = Number(order);
  else if (multiple === 'Y' || multiple === 'N') patient.multipleBirthBoolean = multiple === 'Y';
  return patient;
}

const PATIENT_CLASS: Readonly<Record<string, { code: string; display: string; system?: string }>> = {
  E: { code: 'EMER', display: 'emergency' },
  I: { code: 'IMP', display: 'inpatient encounter' },
  O: { code: 'AMB', display: 'ambulatory' },
  P: { code: 'PRENC', display: 'pre-admission' },
  R: { code: 'AMB', display: 'ambulatory' },
  B: { code: 'IMP', display: 'inpatient encounter' },
  U: { code: 'UNK', display: 'unknown', system: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor' },
};
const UNKNOWN_CLASS = PATIENT_CLASS['U'] as { code: string; display: string; system: string };

const PARTICIPANTS: ReadonlyArray<{ field: number; code: string; display: string }> = [
  { field: 7, code: 'ATND', display: 'attender' },
  { field: 8, code: 'REF', display: 'referrer' },
  { field: 9, code: 'CON', display: 'consultant' },
  { field: 17, code: 'ADM', display: 'admitter' },
];

/**
 * The visit (PV1-19) as an identifier, used for the Encounter id and for logical references. Without an
 * assigning authority (nor MSH-4): a MappingError, or undefined when not `required`.
 */
export function visitIdentifier(pv1: Hl7Segment, header: MessageHeader, options: Hl7MapOptions | undefined, required = true): Identifier | undefined {
  const rep = repetitions(pv1, 19)[0];
  if (rep === undefined) return undefined;
  const id = cxToIdentifier(rep, location(pv1, 19), header.facilitySystem, options, required);
  if (id) id.type = { coding: [{ system: `${SYSTEM.v2Table}0203`, code: 'VN', display: 'Visit number' }] };
  return id;
}

/**
 * PV1 → Encounter, or undefined when PV1-2 is N (not applicable). A patient class that is missing or not
 * in table 0004 becomes class UNK (v3 NullFlavor: unknown), with a warning.
 */
export function mapEncounter(
  pv1: Hl7Segment,
  header: MessageHeader,
  patient: PatientResource,
  status: Encounter['status'],
  options: Hl7MapOptions,
  warnings: Warnings,
): EncounterResource | undefined {
  const klass = value(pv1, 2)?.toUpperCase();
  if (klass === 'N') return undefined;
  const c = PATIENT_CLASS[klass ?? 'U'] ?? UNKNOWN_CLASS;
  const visit = visitIdentifier(pv1, header, options);
  const start = v2DateTime(value(pv1, 44), location(pv1, 44), options);
  const end = v2DateTime(value(pv1, 45), location(pv1, 45), options);
  const idKey = visit ? ['visit', visit.system ?? '', visit.value ?? ''] : start !== undefined ? ['admission', patient.id, start] : ['message', header.senderKey, header.controlId];
  const encounter: EncounterResource = {
    resourceType: 'Encounter',
    id: options.ids.id('Encounter', patient.id, ...idKey),
    status: end !== undefined ? 'finished' : status,
    class: { system: c.system ?? SYSTEM.actCode, code: c.code, display: c.display },
    subject: ref(patient.id),
  };
  if (klass === undefined) warnings.add(location(pv1, 2), '101', 'patient-class-missing', 'patient class missing: Encounter.class is UNK (unknown)', encounter);
  else if (PATIENT_CLASS[klass] === undefined) {
    warnings.add(location(pv1, 2), '103', 'patient-class-not-in-table', 'patient class is not a code of HL7 table 0004: Encounter.class is UNK (unknown)', encounter);
  }
  if (visit) encounter.identifier = [visit];
  const admissionType = tableConcept('0007', value(pv1, 4));
  if (admissionType) encounter.type = [admissionType];
  const service = tableConcept('0069', value(pv1, 10));
  if (service) encounter.serviceType = service;
  const participants: EncounterParticipant[] = [];
  for (const p of PARTICIPANTS) {
    for (const rep of repetitions(pv1, p.field)) {
      const individual = xcnToReference(rep, header.facilitySystem, options);
      if (individual) participants.push({ type: [{ coding: [{ system: SYSTEM.participationType, code: p.code, display: p.display }] }], individual });
    }
  }
  if (participants.length > 0) encounter.participant = participants;
  if (start !== undefined || end !== undefined) {
    encounter.period = {};
    if (start !== undefined) encounter.period.start = start;
    if (end !== undefined) encounter.period.end = end;
  }
  const place = repetitions(pv1, 3)[0];
  const display = [comp(place, 1), comp(place, 2), comp(place, 3)].filter((p) => p !== undefined).join(' / ') || comp(place, 9);
  if (display) encounter.location = [{ location: { display }, status: end !== undefined ? 'completed' : 'active' }];
  const admitSource = tableConcept('0023', value(pv1, 14));
  const disposition = tableConcept('0112', value(pv1, 36));
  if (admitSource || disposition) {
    encounter.hospitalization = {};
    if (admitSource) encounter.hospitalization.admitSource = admitSource;
    if (disposition) encounter.hospitalization.dischargeDisposition = disposition;
  }
  return encounter;
}

/**
 * A logical reference to the visit (for results that arrive outside ADT). A visit number without an
 * assigning authority (nor MSH-4) cannot be told from another facility's: no reference, with a warning.
 */
export function encounterReference(
  pv1: Hl7Segment | undefined,
  header: MessageHeader,
  options: Hl7MapOptions | undefined,
  warnings: Warnings,
  patient: PatientResource,
): Reference | undefined {
  if (pv1 === undefined) return undefined;
  const visit = visitIdentifier(pv1, header, options, false);
  if (visit === undefined && comp(repetitions(pv1, 19)[0], 1) !== undefined) {
    warnings.add(
      `${location(pv1, 19)}.4`,
      '101',
      'visit-number-without-authority',
      'visit number has no assigning authority (and MSH-4 is empty): the results are not linked to the visit',
      patient,
    );
  }
  return visit ? { type: 'Encounter', identifier: visit } : undefined;
}

const ADT_STATUS: Readonly<Record<string, Encounter['status']>> = { A01: 'in-progress', A04: 'arrived', A08: 'unknown' };

/** ADT^A01 (admit), A04 (register), A08 (update) → Patient [+ Encounter]. */
export function mapAdt(segments: readonly Hl7Segment[], header: MessageHeader, options: Hl7MapOptions, warnings: Warnings): Bundle {
  const pid = segments.find((s) => s.name === 'PID');
  if (pid === undefined) throw new MappingError('INVALID', 'PID', 'ADT message has no PID segment', undefined, { hl7Condition: '100' });
  const patient = mapPatient(pid, header, options, warnings);
  const pv1 = segments.find((s) => s.name === 'PV1');
  if (pv1 === undefined && header.trigger !== 'A08') {
    warnings.add('PV1', '100', 'visit-segment-missing', `ADT^${header.trigger} message has no PV1 segment: the Patient is mapped, no Encounter`, patient);
  }
  const encounter = pv1 ? mapEncounter(pv1, header, patient, ADT_STATUS[header.trigger] ?? 'unknown', options, warnings) : undefined;
  return checkOutput(transaction(encounter ? [patient, encounter] : [patient]), options);
}
