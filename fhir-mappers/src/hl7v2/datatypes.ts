/** HL7 v2 data types → FHIR data types (v2-to-FHIR style), with the option set the mappers share. */
import type { Address, CodeableConcept, Coding, ContactPoint, HumanName, Identifier, Reference } from 'fhir/r4';
import { MappingError } from '../errors';
import type { StableIds } from '../ids';
import { type OutputOptions } from '../output';
import { SYSTEM } from '../systems';
import { comp, subcomponents } from './parse';

export interface Hl7MapOptions extends OutputOptions {
  /**
   * The custodian's keyed ids (keyedIds(secret, epochOf)): every resource id is keyed, never a hash of a
   * natural key (MRN, visit or order number) alone.
   */
  ids: StableIds;
  /**
   * Time zone of v2 times that carry no offset, e.g. '+01:00' or 'Z'. Without it such values are kept at
   * date precision (FHIR requires a zone on any time of day).
   */
  timeZone?: string;
  /** assigning authority namespace id (HD.1) → identifier system URI */
  authoritySystems?: Readonly<Record<string, string>>;
  /** v2 coding system name (table 0396, or local '99xxx') → code system URI; extends the built-in table */
  codeSystems?: Readonly<Record<string, string>>;
  /** treat OBX-6 units without a coding system as UCUM codes (default false: kept as text only) */
  assumeUcumUnits?: boolean;
}

/** Table 0396 names HDX maps to canonical FHIR code system URIs. */
export const V2_CODE_SYSTEMS: Readonly<Record<string, string>> = {
  LN: SYSTEM.loinc,
  LOINC: SYSTEM.loinc,
  SCT: SYSTEM.snomed,
  SNOMED: SYSTEM.snomed,
  UCUM: SYSTEM.ucum,
  I10: SYSTEM.icd10,
  I10C: SYSTEM.icd10cm,
  ICD10CM: SYSTEM.icd10cm,
  I9C: SYSTEM.icd9cm,
  I9CDX: SYSTEM.icd9cm,
  C4: SYSTEM.cpt,
  CPT4: SYSTEM.cpt,
  RXNORM: SYSTEM.rxnorm,
  NDC: SYSTEM.ndc,
};

/** A FHIR code: trimmed, inner whitespace runs collapsed to one space; undefined when empty. */
export function fhirCode(v: string | undefined): string | undefined {
  const c = v?.trim().replace(/\s+/g, ' ');
  return c === undefined || c === '' ? undefined : c;
}

const URI = /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/;
const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;
const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

/** HD (namespace, universal id, universal id type) → identifier system URI. */
export function hdToSystem(hd: string[][] | undefined, options: Hl7MapOptions | undefined): string | undefined {
  const namespace = comp(hd, 1);
  const universal = comp(hd, 2);
  const type = comp(hd, 3)?.toUpperCase();
  if (universal !== undefined) {
    if ((type === 'ISO' || type === undefined) && OID.test(universal)) return `urn:oid:${universal}`;
    if (type === 'UUID' && UUID.test(universal)) return `urn:uuid:${universal.toLowerCase()}`;
    if (type === 'URI' && URI.test(universal)) return universal;
  }
  if (namespace === undefined) return undefined;
  return options?.authoritySystems?.[namespace] ?? `${SYSTEM.hdxV2Authority}/${encodeURIComponent(namespace)}`;
}

/** v2 coding system name → URI. */
export function codeSystemUri(name: string | undefined, options: Hl7MapOptions | undefined): string | undefined {
  if (name === undefined) return undefined;
  const n = name.trim();
  const configured = options?.codeSystems?.[n];
  if (configured !== undefined) return configured;
  const known = V2_CODE_SYSTEMS[n.toUpperCase()];
  if (known !== undefined) return known;
  const table = /^HL7(\d{4})$/i.exec(n);
  if (table) return `${SYSTEM.v2Table}${table[1]}`;
  return `${SYSTEM.hdxV2LocalCodes}/${encodeURIComponent(n)}`;
}

function coding(code: string | undefined, display: string | undefined, system: string | undefined, options: Hl7MapOptions | undefined): Coding | undefined {
  const c = fhirCode(code);
  if (c === undefined) return undefined;
  const out: Coding = { system: codeSystemUri(system ?? 'L', options), code: c };
  if (display !== undefined) out.display = display;
  return out;
}

/** CE / CWE / CNE: primary and alternate triplets, original text (CWE.9). */
export function cweToConcept(rep: string[][] | undefined, options: Hl7MapOptions | undefined): CodeableConcept | undefined {
  const codings = [coding(comp(rep, 1), comp(rep, 2), comp(rep, 3), options), coding(comp(rep, 4), comp(rep, 5), comp(rep, 6), options)].filter(
    (c): c is Coding => c !== undefined,
  );
  const text = comp(rep, 9) ?? (codings.length === 0 ? comp(rep, 2) : undefined);
  if (codings.length === 0 && text === undefined) return undefined;
  const cc: CodeableConcept = {};
  if (codings.length > 0) cc.coding = codings;
  if (text !== undefined) cc.text = text;
  return cc;
}

/** A code of an HL7 table as a CodeableConcept (system http://terminology.hl7.org/CodeSystem/v2-nnnn). */
export function tableConcept(table: string, code: string | undefined): CodeableConcept | undefined {
  const c = fhirCode(code);
  return c === undefined ? undefined : { coding: [{ system: `${SYSTEM.v2Table}${table}`, code: c }] };
}

/**
 * CX → Identifier. The assigning authority (CX.4) gives the system, else `fallbackAuthority` (MSH-4); with
 * neither, a MappingError (101), or undefined when `required` is false.
 */
export function cxToIdentifier(rep: string[][], loc: string, fallbackAuthority: string | undefined, options: Hl7MapOptions | undefined, required = true): Identifier | undefined {
  const value = comp(rep, 1);
  if (value === undefined) return undefined;
  const system = hdToSystem(subcomponents(rep, 4), options) ?? fallbackAuthority;
  if (system === undefined) {
    if (!required) return undefined;
    throw new MappingError('INVALID', `${loc}.4`, 'identifier has no assigning authority (and MSH-4 is empty)', undefined, { hl7Condition: '101' });
  }
  const id: Identifier = { system, value };
  const type = tableConcept('0203', comp(rep, 5));
  if (type) id.type = type;
  return id;
}

/** EI (entity id, namespace, universal id, type) → Identifier, with a v2-0203 type code. */
export function eiToIdentifier(rep: string[][] | undefined, typeCode: string, fallbackAuthority: string | undefined, options: Hl7MapOptions | undefined): Identifier | undefined {
  const value = comp(rep, 1);
  if (value === undefined) return undefined;
  const system = hdToSystem([[comp(rep, 2) ?? ''], [comp(rep, 3) ?? ''], [comp(rep, 4) ?? '']], options) ?? fallbackAuthority;
  const id: Identifier = { value, type: { coding: [{ system: `${SYSTEM.v2Table}0203`, code: typeCode }] } };
  if (system !== undefined) id.system = system;
  return id;
}

const NAME_USE: Readonly<Record<string, HumanName['use']>> = {
  L: 'official',
  D: 'usual',
  A: 'usual',
  M: 'maiden',
  N: 'nickname',
  S: 'anonymous',
};

/** XPN → HumanName (family, given + middle, suffix and degree, prefix, use from table 0200). */
export function xpnToName(rep: string[][]): HumanName | undefined {
  const name: HumanName = {};
  const family = comp(rep, 1);
  if (family !== undefined) name.family = family;
  const given = [comp(rep, 2), comp(rep, 3)].filter((g): g is string => g !== undefined);
  if (given.length > 0) name.given = given;
  const suffix = [comp(rep, 4), comp(rep, 6)].filter((g): g is string => g !== undefined);
  if (suffix.length > 0) name.suffix = suffix;
  const prefix = comp(rep, 5);
  if (prefix !== undefined) name.prefix = [prefix];
  if (Object.keys(name).length === 0) return undefined;
  const use = NAME_USE[comp(rep, 7) ?? ''];
  if (use !== undefined) name.use = use;
  return name;
}

const ADDRESS_USE: Readonly<Record<string, Address['use']>> = { H: 'home', B: 'work', O: 'work', C: 'temp', BA: 'old' };

/** XAD → Address. */
export function xadToAddress(rep: string[][]): Address | undefined {
  const a: Address = {};
  const line = [comp(rep, 1), comp(rep, 2)].filter((l): l is string => l !== undefined);
  if (line.length > 0) a.line = line;
  const city = comp(rep, 3);
  if (city !== undefined) a.city = city;
  const state = comp(rep, 4);
  if (state !== undefined) a.state = state;
  const postalCode = comp(rep, 5);
  if (postalCode !== undefined) a.postalCode = postalCode;
  const country = comp(rep, 6);
  if (country !== undefined) a.country = country;
  if (Object.keys(a).length === 0) return undefined;
  const type = comp(rep, 7);
  const use = ADDRESS_USE[type ?? ''];
  if (use !== undefined) a.use = use;
  if (type === 'M') a.type = 'postal';
  return a;
}

/** XTN → ContactPoint (always with a system, cpt-2). */
export function xtnToContact(rep: string[][], defaultUse: ContactPoint['use']): ContactPoint | undefined {
  const useCode = comp(rep, 2);
  const equipment = comp(rep, 3)?.toUpperCase();
  let system: ContactPoint['system'] = 'phone';
  if (useCode === 'NET' || equipment === 'INTERNET' || equipment === 'X.400') system = 'email';
  else if (equipment === 'FX') system = 'fax';
  else if (equipment === 'BP' || useCode === 'BPN') system = 'pager';
  let value: string | undefined;
  if (system === 'email') {
    value = comp(rep, 4) ?? comp(rep, 1);
  } else {
    const parts = [comp(rep, 5) && `+${comp(rep, 5) ?? ''}`, comp(rep, 6), comp(rep, 7)].filter((p): p is string => p !== undefined && p !== '');
    value = comp(rep, 12) ?? comp(rep, 1) ?? (comp(rep, 7) !== undefined ? parts.join(' ') : undefined);
    const ext = comp(rep, 8);
    if (value !== undefined && ext !== undefined && comp(rep, 1) === undefined) value = `${value} ext. ${ext}`;
  }
  if (value === undefined) return undefined;
  const cp: ContactPoint = { system, value };
  if (equipment === 'CP') cp.use = 'mobile';
  else if (useCode === 'PRN' || useCode === 'ORN' || useCode === 'VHN') cp.use = 'home';
  else if (useCode === 'WPN') cp.use = 'work';
  else if (defaultUse !== undefined) cp.use = defaultUse;
  return cp;
}

/** XCN → a logical Practitioner reference (identifier + display name). */
export function xcnToReference(rep: string[][], fallbackAuthority: string | undefined, options: Hl7MapOptions | undefined): Reference | undefined {
  const ref: Reference = { type: 'Practitioner' };
  const id = comp(rep, 1);
  const system = hdToSystem(subcomponents(rep, 9), options) ?? fallbackAuthority;
  if (id !== undefined && system !== undefined) ref.identifier = { system, value: id };
  const display = [comp(rep, 6), comp(rep, 3), comp(rep, 4), comp(rep, 2), comp(rep, 5)].filter((p): p is string => p !== undefined).join(' ');
  if (display !== '') ref.display = display;
  return ref.identifier === undefined && ref.display === undefined ? undefined : ref;
}

// ---- dates and times -----------------------------------------------------------------------------

const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function zone(offset: string | undefined, options: Hl7MapOptions | undefined, loc: string): string | undefined {
  if (offset !== undefined) {
    const h = Number(offset.slice(1, 3));
    const m = Number(offset.slice(3, 5));
    if (m > 59 || h > 14 || (h === 14 && m > 0)) throw new MappingError('INVALID', loc, 'time zone offset out of range');
    return `${offset.slice(0, 3)}:${offset.slice(3, 5)}`;
  }
  const tz = options?.timeZone;
  if (tz === undefined) return undefined;
  if (tz !== 'Z' && !/^[+-](0\d|1[0-3]):[0-5]\d$|^[+-]14:00$/.test(tz)) throw new MappingError('INVALID', 'options.timeZone', 'must be Z or ±hh:mm');
  return tz;
}

/**
 * DTM / TS / DT → FHIR dateTime (or date with `dateOnly`). Precision kept; a time of day without a zone
 * (and no options.timeZone) is cut to the date.
 */
export function v2DateTime(v: string | undefined, loc: string, options: Hl7MapOptions | undefined, dateOnly = false): string | undefined {
  if (v === undefined) return undefined;
  const m = DTM.exec(v.trim());
  if (!m) throw new MappingError('INVALID', loc, 'not a valid HL7 v2 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])');
  const [, y = '', mo, d, h, mi, s, frac, off] = m;
  if (mo !== undefined && (Number(mo) < 1 || Number(mo) > 12)) throw new MappingError('INVALID', loc, 'month out of range');
  if (d !== undefined && (Number(d) < 1 || Number(d) > daysIn(Number(y), Number(mo)))) throw new MappingError('INVALID', loc, 'day out of range');
  if (h !== undefined && Number(h) > 23) throw new MappingError('INVALID', loc, 'hour out of range');
  if (mi !== undefined && Number(mi) > 59) throw new MappingError('INVALID', loc, 'minute out of range');
  if (s !== undefined && Number(s) > 59) throw new MappingError('INVALID', loc, 'second out of range');
  if (Number(y) < 1) throw new MappingError('INVALID', loc, 'year out of range');
  let date = y;
  if (mo !== undefined) date += `-${mo}`;
  if (d !== undefined) date += `-${d}`;
  if (dateOnly || h === undefined) return date;
  if (d === undefined) throw new MappingError('INVALID', loc, 'a time needs a full date');
  const tz = zone(off, options, loc);
  if (tz === undefined) return date;
  return `${date}T${h}:${mi ?? '00'}:${s ?? '00'}${frac ?? ''}${tz}`;
}

/** TM → FHIR time (hh:mm:ss); a time with a zone offset cannot be a FHIR time. */
export function v2Time(v: string | undefined, loc: string): string | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{2})(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$/.exec(v.trim());
  if (!m) throw new MappingError('INVALID', loc, 'not a valid HL7 v2 time (HH[MM[SS[.S]]])');
  const [, h = '', mi, s, frac, off] = m;
  if (Number(h) > 23 || Number(mi ?? 0) > 59 || Number(s ?? 0) > 59) throw new MappingError('INVALID', loc, 'time out of range');
  if (off !== undefined) throw new MappingError('UNMAPPABLE', loc, 'a time of day with a zone offset has no FHIR time equivalent');
  return `${h}:${mi ?? '00'}:${s ?? '00'}${frac ?? ''}`;
}

/** NM → number: a plain decimal that fits a JSON number. */
export function v2Number(v: string | undefined, loc: string): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(t)) throw new MappingError('INVALID', loc, 'not a valid HL7 v2 numeric (NM) value');
  const n = Number(t);
  if (!Number.isFinite(n) || Math.abs(n) >= 1e21) throw new MappingError('INVALID', loc, 'numeric value out of range');
  return n;
}
