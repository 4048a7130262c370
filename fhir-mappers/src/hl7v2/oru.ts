/**
 * ORU^R01 → Patient, DiagnosticReport (per OBR) and Observation (per OBX); several PID groups are
 * allowed. The visit (PV1-19) is referenced logically: results do not overwrite the ADT Encounter.
 *
 * Observation: code (OBX-3, coding systems from table 0396 kept), value by OBX-2 (NM → Quantity with
 * OBX-6 units, SN → Quantity with comparator / Range / Ratio, ST/TX/FT → string, CE/CWE/CNE →
 * CodeableConcept, DT/DTM/TS → dateTime, TM → time), reference range (OBX-7), interpretation (OBX-8),
 * status (OBX-11, table 0085), effective time (OBX-14, else OBR-7), method (OBX-17), notes (NTE after
 * the OBX); an empty value gets a dataAbsentReason.
 * DiagnosticReport: code (OBR-4), filler / placer order numbers (OBR-3 / OBR-2, else ORC-3 / ORC-2), status (OBR-25, else
 * from the results), effective time (OBR-7), category (OBR-24, table 0074), result references.
 */
import type { Bundle, CodeableConcept, DiagnosticReport, FhirResource, Identifier, Observation, ObservationReferenceRange, Quantity, Reference } from 'fhir/r4';
import { MappingError } from '../errors';
import { checkOutput, ref, transaction } from '../output';
import { SYSTEM } from '../systems';
import { type PatientResource, encounterReference, mapPatient } from './adt';
import { type Hl7MapOptions, codeSystemUri, cweToConcept, eiToIdentifier, fhirCode, tableConcept, v2DateTime, v2Number, v2Time } from './datatypes';
import type { MessageHeader } from './header';
import { type Hl7Segment, comp, location, repetitions, value } from './parse';
import type { Warnings } from './warnings';

type ObservationResource = Observation & { id: string };
type ReportResource = DiagnosticReport & { id: string };

const RESULT_STATUS: Readonly<Record<string, Observation['status']>> = {
  C: 'corrected',
  D: 'entered-in-error',
  F: 'final',
  I: 'registered',
  N: 'cancelled',
  O: 'registered',
  P: 'preliminary',
  R: 'preliminary',
  S: 'preliminary',
  U: 'final',
  W: 'entered-in-error',
  X: 'cancelled',
};

const ORDER_STATUS: Readonly<Record<string, DiagnosticReport['status']>> = {
  O: 'registered',
  I: 'registered',
  S: 'registered',
  A: 'partial',
  P: 'preliminary',
  C: 'corrected',
  R: 'preliminary',
  F: 'final',
  X: 'cancelled',
};

/** Table 0078 flags that have the same code in v3 ObservationInterpretation. */
const V3_INTERPRETATION = new Set(['L', 'H', 'LL', 'HH', '<', '>', 'N', 'A', 'AA', 'U', 'D', 'B', 'W', 'S', 'R', 'I', 'MS', 'VS', 'POS', 'NEG', 'IND', 'DET', 'ND', 'HU', 'LU']);

const COMPARATORS: Readonly<Record<string, Quantity['comparator']>> = { '<': '<', '<=': '<=', '>': '>', '>=': '>=' };

interface Group {
  pid: Hl7Segment;
  pv1?: Hl7Segment;
  /** an order: its OBR, the ORC before it (the common order segment, which may carry the order numbers), its results */
  orders: Array<{ obr: Hl7Segment; orc?: Hl7Segment; results: Array<{ obx: Hl7Segment; notes: Hl7Segment[] }> }>;
}

function groups(segments: readonly Hl7Segment[]): Group[] {
  const out: Group[] = [];
  let orc: Hl7Segment | undefined;
  for (const seg of segments) {
    const group = out.at(-1);
    const order = group?.orders.at(-1);
    switch (seg.name) {
      case 'PID':
        out.push({ pid: seg, orders: [] });
        orc = undefined;
        break;
      case 'ORC':
        orc = seg;
        break;
      case 'PV1':
        if (group === undefined) throw new MappingError('INVALID', location(seg, 1).replace(/-1$/, ''), 'PV1 before any PID', undefined, { hl7Condition: '100' });
        if (group.orders.length === 0) group.pv1 = seg;
        break;
      case 'OBR':
        if (group === undefined) throw new MappingError('INVALID', location(seg, 1).replace(/-1$/, ''), 'OBR before any PID', undefined, { hl7Condition: '100' });
        group.orders.push(orc ? { obr: seg, orc, results: [] } : { obr: seg, results: [] });
        orc = undefined;
        break;
      case 'OBX':
        if (order === undefined) throw new MappingError('INVALID', location(seg, 1).replace(/-1$/, ''), 'OBX before any OBR', undefined, { hl7Condition: '100' });
        order.results.push({ obx: seg, notes: [] });
        break;
      case 'NTE':
        order?.results.at(-1)?.notes.push(seg);
        break;
      default:
    }
  }
  if (out.length === 0) throw new MappingError('INVALID', 'PID', 'ORU message has no PID segment', undefined, { hl7Condition: '100' });
  return out;
}

function units(obx: Hl7Segment, options: Hl7MapOptions | undefined): Omit<Quantity, 'value'> {
  const rep = repetitions(obx, 6)[0];
  const code = fhirCode(comp(rep, 1));
  const text = comp(rep, 2);
  const system = comp(rep, 3);
  const out: Omit<Quantity, 'value'> = {};
  if (text !== undefined || code !== undefined) out.unit = text ?? code;
  const ucum = system?.toUpperCase() === 'UCUM' || (system === undefined && options?.assumeUcumUnits === true);
  if (code !== undefined && (ucum || system !== undefined)) {
    out.system = ucum ? SYSTEM.ucum : codeSystemUri(system, options);
    out.code = code;
  }
  return out;
}

function structuredNumeric(rep: string[][], loc: string, unit: Omit<Quantity, 'value'>): Partial<Observation> {
  const comparator = comp(rep, 1);
  const n1 = v2Number(comp(rep, 2), `${loc}.2`);
  const separator = comp(rep, 3);
  const n2 = v2Number(comp(rep, 4), `${loc}.4`);
  if (separator === undefined) {
    if (n1 === undefined) throw new MappingError('INVALID', `${loc}.2`, 'structured numeric without a number');
    const q: Quantity = { value: n1, ...unit };
    if (comparator !== undefined && comparator !== '=') {
      const c = COMPARATORS[comparator];
      if (c === undefined) throw new MappingError('UNMAPPABLE', `${loc}.1`, 'comparator has no FHIR equivalent');
      q.comparator = c;
    }
    return { valueQuantity: q };
  }
  if (n1 === undefined || n2 === undefined) throw new MappingError('INVALID', loc, 'structured numeric range or ratio needs two numbers');
  if (comparator !== undefined) throw new MappingError('UNMAPPABLE', `${loc}.1`, 'a comparator on a range or ratio has no FHIR equivalent');
  if (separator === '-') return { valueRange: { low: { value: n1, ...unit }, high: { value: n2, ...unit } } };
  if (separator === ':' || separator === '/') return { valueRatio: { numerator: { value: n1 }, denominator: { value: n2 } } };
  throw new MappingError('UNMAPPABLE', `${loc}.3`, 'structured numeric separator not supported');
}

function observationValue(obx: Hl7Segment, options: Hl7MapOptions | undefined): Partial<Observation> {
  const reps = repetitions(obx, 5);
  const first = reps[0];
  if (first === undefined) return {};
  const type = value(obx, 2)?.toUpperCase();
  const loc = location(obx, 5);
  if (type === undefined) throw new MappingError('INVALID', location(obx, 2), 'value type is required when OBX-5 has a value', undefined, { hl7Condition: '101' });
  const text = (): string => reps.map((r) => r.map((c) => c.join('&')).join('^')).join('\n');
  if (reps.length > 1 && !['TX', 'FT', 'ST'].includes(type)) {
    throw new MappingError('UNMAPPABLE', loc, 'repeating observation values are only supported for text types');
  }
  switch (type) {
    case 'NM': {
      const n = v2Number(comp(first, 1), loc);
      return n === undefined ? {} : { valueQuantity: { value: n, ...units(obx, options) } };
    }
    case 'SN':
      return structuredNumeric(first, loc, units(obx, options));
    case 'ST':
    case 'TX':
    case 'FT':
      return { valueString: text() };
    case 'CE':
    case 'CWE':
    case 'CNE':
    case 'CF': {
      const cc = cweToConcept(first, options);
      return cc ? { valueCodeableConcept: cc } : {};
    }
    case 'DT':
    case 'DTM':
    case 'TS': {
      const dt = v2DateTime(comp(first, 1), loc, options, type === 'DT');
      return dt === undefined ? {} : { valueDateTime: dt };
    }
    case 'TM': {
      const t = v2Time(comp(first, 1), loc);
      return t === undefined ? {} : { valueTime: t };
    }
    default: {
      const shown = /^[A-Z]{2,3}$/.test(type) ? ` ${type}` : '';
      throw new MappingError('UNMAPPABLE', location(obx, 2), `value type${shown} is not supported`);
    }
  }
}

function referenceRange(obx: Hl7Segment, unit: Omit<Quantity, 'value'>): ObservationReferenceRange[] | undefined {
  const raw = value(obx, 7);
  if (raw === undefined) return undefined;
  const num = '([+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+))';
  const between = new RegExp(`^${num}\\s*-\\s*${num}$`).exec(raw);
  const q = (v: string): Quantity => ({ value: Number(v), ...unit });
  if (between?.[1] !== undefined && between[2] !== undefined && Number(between[1]) <= Number(between[2])) {
    return [{ low: q(between[1]), high: q(between[2]), text: raw }];
  }
  const above = new RegExp(`^>=?\\s*${num}$`).exec(raw);
  if (above?.[1] !== undefined) return [{ low: q(above[1]), text: raw }];
  const below = new RegExp(`^<=?\\s*${num}$`).exec(raw);
  if (below?.[1] !== undefined) return [{ high: q(below[1]), text: raw }];
  return [{ text: raw }];
}

function interpretation(obx: Hl7Segment): CodeableConcept[] | undefined {
  const out: CodeableConcept[] = [];
  for (const rep of repetitions(obx, 8)) {
    const code = fhirCode(comp(rep, 1));
    if (code === undefined) continue;
    const system = V3_INTERPRETATION.has(code) ? SYSTEM.observationInterpretation : `${SYSTEM.v2Table}0078`;
    out.push({ coding: [{ system, code }] });
  }
  return out.length > 0 ? out : undefined;
}

interface OrderContext {
  header: MessageHeader;
  patient: PatientResource;
  encounter: Reference | undefined;
  reportKey: string[];
  effective: string | undefined;
  options: Hl7MapOptions;
  warnings: Warnings;
}

function mapObservation(obx: Hl7Segment, notes: Hl7Segment[], ctx: OrderContext, seen: Map<string, number>): ObservationResource {
  const code = cweToConcept(repetitions(obx, 3)[0], ctx.options);
  if (code === undefined) throw new MappingError('INVALID', location(obx, 3), 'observation identifier is required', undefined, { hl7Condition: '101' });
  // A missing status is `unknown` (R4 observation-status); a code we cannot read may mean "withdrawn" or
  // "wrong patient" (D, W in table 0085), so it is refused rather than guessed.
  const statusCode = value(obx, 11)?.toUpperCase();
  const status = statusCode === undefined ? 'unknown' : RESULT_STATUS[statusCode];
  if (status === undefined) throw new MappingError('INVALID', location(obx, 11), 'result status is not a code of HL7 table 0085', undefined, { hl7Condition: '103' });
  const first = code.coding?.[0];
  const key = [...ctx.reportKey, first?.system ?? '', first?.code ?? code.text ?? '', value(obx, 4) ?? ''];
  const n = (seen.get(key.join('|')) ?? 0) + 1;
  seen.set(key.join('|'), n);
  const obs: ObservationResource = {
    resourceType: 'Observation',
    id: ctx.options.ids.id('Observation', ctx.patient.id, ...key, String(n)),
    status,
    code,
    subject: ref(ctx.patient.id),
  };
  if (ctx.encounter) obs.encounter = ctx.encounter;
  const effective = v2DateTime(value(obx, 14), location(obx, 14), ctx.options) ?? ctx.effective;
  if (effective !== undefined) obs.effectiveDateTime = effective;
  const v = observationValue(obx, ctx.options);
  Object.assign(obs, v);
  if (Object.keys(v).length === 0) {
    const reason = status === 'cancelled' ? 'not-performed' : 'unknown';
    obs.dataAbsentReason = { coding: [{ system: SYSTEM.dataAbsentReason, code: reason }] };
  }
  if (statusCode === undefined) ctx.warnings.add(location(obx, 11), '101', 'result-status-missing', 'observation result status missing: Observation.status is unknown', obs);
  const interp = interpretation(obx);
  if (interp) obs.interpretation = interp;
  const range = referenceRange(obx, units(obx, ctx.options));
  if (range) obs.referenceRange = range;
  const method = cweToConcept(repetitions(obx, 17)[0], ctx.options);
  if (method) obs.method = method;
  const text = notes.flatMap((nte) => repetitions(nte, 3).map((r) => r.map((c) => c.join('&')).join('^'))).filter((t) => t.trim() !== '');
  if (text.length > 0) obs.note = text.map((t) => ({ text: t }));
  return obs;
}

/** OBR-25 (table 0123), else derived from the results (undefined code: the caller warns). */
function reportStatus(obr: Hl7Segment, results: readonly ObservationResource[]): DiagnosticReport['status'] {
  const code = value(obr, 25)?.toUpperCase();
  if (code !== undefined) {
    const s = ORDER_STATUS[code];
    if (s === undefined) throw new MappingError('INVALID', location(obr, 25), 'result status is not a code of HL7 table 0123', undefined, { hl7Condition: '103' });
    return s;
  }
  if (results.length === 0) return 'registered';
  if (results.every((r) => r.status === 'final' || r.status === 'corrected')) return 'final';
  return results.some((r) => r.status === 'unknown') ? 'unknown' : 'partial';
}

/** data-absent-reason on a required element the message does not give (R4: any element may carry it). */
const ABSENT_UNKNOWN = { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] };

function mapOrder(
  order: Group['orders'][number],
  header: MessageHeader,
  patient: PatientResource,
  encounter: Reference | undefined,
  options: Hl7MapOptions,
  warnings: Warnings,
): FhirResource[] & Array<{ id: string } & FhirResource> {
  const { obr } = order;
  const code = cweToConcept(repetitions(obr, 4)[0], options);
  // OBR-2/3 are the ORC-2/3 of the order: a sender may give them in the ORC only; OBR-2/3 are conditional on them.
  const { orc } = order;
  const filler = eiToIdentifier(repetitions(obr, 3)[0] ?? (orc && repetitions(orc, 3)[0]), 'FILL', header.facilitySystem, options);
  const placer = eiToIdentifier(repetitions(obr, 2)[0] ?? (orc && repetitions(orc, 2)[0]), 'PLAC', header.facilitySystem, options);
  const orderId = filler ?? placer;
  const reportKey = orderId ? ['order', orderId.system ?? '', orderId.value ?? ''] : ['message', header.senderKey, header.controlId, String(obr.occurrence)];
  const effective = v2DateTime(value(obr, 7), location(obr, 7), options);
  const ctx: OrderContext = { header, patient, encounter, reportKey, effective, options, warnings };
  const seen = new Map<string, number>();
  const observations = order.results.map((r) => mapObservation(r.obx, r.notes, ctx, seen));
  const report: ReportResource = {
    resourceType: 'DiagnosticReport',
    id: options.ids.id('DiagnosticReport', patient.id, ...reportKey),
    status: reportStatus(obr, observations),
    code: code ?? structuredClone(ABSENT_UNKNOWN),
    subject: ref(patient.id),
  };
  if (code === undefined) {
    warnings.add(location(obr, 4), '101', 'service-identifier-missing', 'universal service identifier missing: DiagnosticReport.code carries data-absent-reason unknown', report);
  }
  if (orderId === undefined) {
    warnings.add(
      location(obr, 3),
      '101',
      'order-number-missing',
      'neither filler (OBR-3, ORC-3) nor placer (OBR-2, ORC-2) order number: the report is keyed by this message, so a later correction of it cannot replace it',
      report,
    );
  }
  if (effective === undefined) {
    warnings.add(location(obr, 7), '101', 'observation-time-missing', 'observation date/time missing: effective time left out (kept per result where OBX-14 gives one)', report);
  }
  if (value(obr, 25) === undefined) {
    warnings.add(location(obr, 25), '101', 'order-status-missing', `result status missing: DiagnosticReport.status derived from the results (${report.status})`, report);
  }
  const identifiers = [filler, placer].filter((i): i is Identifier => i !== undefined);
  if (identifiers.length > 0) report.identifier = identifiers;
  const category = tableConcept('0074', value(obr, 24));
  if (category) report.category = [category];
  if (encounter) report.encounter = encounter;
  if (effective !== undefined) report.effectiveDateTime = effective;
  if (observations.length > 0) report.result = observations.map((o) => ref(o.id));
  return [...observations, report];
}

/**
 * ORU^R01 → Patient(s), Observations and DiagnosticReports. A result message's PID identifies the patient
 * but carries less than the ADT feed (often no address or contacts), so its Patient is a create-only
 * entry: it creates a patient the receiver does not know yet and never replaces a richer one.
 */
export function mapOru(segments: readonly Hl7Segment[], header: MessageHeader, options: Hl7MapOptions, warnings: Warnings): Bundle {
  const resources: Array<FhirResource & { id: string }> = [];
  const patients = new Set<string>();
  for (const group of groups(segments)) {
    const patient = mapPatient(group.pid, header, options, warnings);
    if (!patients.has(patient.id)) {
      patients.add(patient.id);
      resources.push(patient);
    }
    const encounter = encounterReference(group.pv1, header, options, warnings, patient);
    for (const order of group.orders) resources.push(...mapOrder(order, header, patient, encounter, options, warnings));
  }
  return checkOutput(transaction(resources, new Set([...patients].map((id) => `Patient/${id}`))), options);
}
