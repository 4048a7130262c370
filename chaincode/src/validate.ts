/**
 * Input validation. Every failure is `INVALID: <field> <why>`; messages name the field and the rule,
 * never echo the offending value (it could be PHI).
 */
import { invalid } from './errors';

export type JsonObject = Record<string, unknown>;

import { FHIR_ID, FHIR_RESOURCE_TYPE, HDX_DID, MSP_ID, PSEUDONYM } from './protocol';

export { FHIR_ID, FHIR_RESOURCE_TYPE, HDX_DID, MSP_ID, PSEUDONYM };

/** Something that checks a string: a RegExp, or a pattern plus a semantic check. */
export interface StringRule {
  test(value: string): boolean;
}

const INSTANT_PATTERN =
  /^([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;
const DATE_TIME_PATTERN =
  /^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;

/** A calendar date that exists (no 2024-02-30) and a time JavaScript can read (no leap second). */
function isRealDateTime(value: string): boolean {
  if (value.length >= 10) {
    const [y, m, d] = [value.slice(0, 4), value.slice(5, 7), value.slice(8, 10)].map(Number) as [number, number, number];
    const date = new Date(Date.UTC(2000, m - 1, d));
    date.setUTCFullYear(y);
    if (date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) {
      return false;
    }
  }
  return value.length <= 10 || Number.isFinite(Date.parse(value));
}

/** FHIR instant: a full date-time with seconds and a time zone, on a real calendar day. */
export const FHIR_INSTANT: StringRule = { test: (value) => INSTANT_PATTERN.test(value) && isRealDateTime(value) };
/** FHIR dateTime: a year, year-month, date or full date-time with time zone. */
export const FHIR_DATE_TIME: StringRule = { test: (value) => DATE_TIME_PATTERN.test(value) && isRealDateTime(value) };
export const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** Security label: a code or `system|code`, printable ASCII without spaces. */
export const SECURITY_LABEL = /^[\x21-\x7e]{1,256}$/;

export function parseJsonObject(text: unknown, name: string): JsonObject {
  if (typeof text !== 'string' || text.length === 0) {
    throw invalid(`${name} must be a JSON object`);
  }
  if (text.length > 1_000_000) {
    throw invalid(`${name} is too large`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`${name} is not valid JSON`);
  }
  return asObject(value, name);
}

/** A JSON array of 1 to `maxItems` items. */
export function parseJsonArray(text: unknown, name: string, maxItems: number): unknown[] {
  let value: unknown;
  try {
    value = typeof text === 'string' && text.length <= 10_000_000 ? JSON.parse(text) : undefined;
  } catch {
    throw invalid(`${name} is not valid JSON`);
  }
  if (!Array.isArray(value) || value.length === 0 || value.length > maxItems) {
    throw invalid(`${name} must be an array of 1 to ${maxItems} items`);
  }
  return value;
}

export function asObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${path} must be an object`);
  }
  return value as JsonObject;
}

export function rejectUnknownFields(obj: JsonObject, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(obj).sort()) {
    if (!allowed.includes(key)) {
      throw invalid(`${path}.${key} is not allowed`);
    }
  }
}

export function requireString(obj: JsonObject, field: string, path: string, pattern?: StringRule, rule?: string): string {
  const value = obj[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(`${path}.${field} is required and must be a non-empty string`);
  }
  if (pattern && !pattern.test(value)) {
    throw invalid(`${path}.${field} ${rule ?? 'has an invalid format'}`);
  }
  return value;
}

export function optionalString(obj: JsonObject, field: string, path: string, pattern?: StringRule, rule?: string): string | undefined {
  return obj[field] === undefined ? undefined : requireString(obj, field, path, pattern, rule);
}

export function checkString(value: string, name: string, pattern: StringRule, rule: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw invalid(`${name} ${rule}`);
  }
  return value;
}

/** An optional array of distinct strings matching `pattern`. */
export function optionalStringArray(obj: JsonObject, field: string, path: string, pattern: RegExp, rule: string, maxItems = 64): string[] | undefined {
  const value = obj[field];
  if (value === undefined) {
    return undefined;
  }
  if (!Array.isArray(value)) {
    throw invalid(`${path}.${field} must be an array`);
  }
  if (value.length > maxItems) {
    throw invalid(`${path}.${field} has more than ${maxItems} items`);
  }
  const seen = new Set<string>();
  value.forEach((item, index) => {
    if (typeof item !== 'string' || !pattern.test(item)) {
      throw invalid(`${path}.${field}[${index}] ${rule}`);
    }
    if (seen.has(item)) {
      throw invalid(`${path}.${field}[${index}] is a duplicate`);
    }
    seen.add(item);
  });
  return value as string[];
}

/** Strict base64url (no padding) that decodes to exactly `length` bytes. */
export function isBase64UrlOfLength(value: string, length: number): boolean {
  if (!BASE64URL.test(value)) {
    return false;
  }
  const bytes = Buffer.from(value, 'base64url');
  return bytes.length === length && bytes.toString('base64url') === value;
}

/** A patient reference on the ledger: a DID or a custodian's pseudonym (isPatientRef as a pattern). */
export const PATIENT_REF = new RegExp(`^(?:${HDX_DID.source.slice(1, -1)}|${PSEUDONYM.source.slice(1, -1)})$`);

export function isPatientRef(value: string): boolean {
  return HDX_DID.test(value) || PSEUDONYM.test(value);
}

export const PATIENT_REF_RULE = 'must be a DID (did:hdx:<43-character thumbprint>) or pseudonym:<64 lowercase hex>';

/** Milliseconds since the epoch of a FHIR instant or dateTime; partial dates give their first instant. */
export function dateTimeStartMs(value: string): number {
  const ms = Date.parse(value.length === 4 ? `${value}-01-01T00:00:00Z` : value.length === 7 ? `${value}-01T00:00:00Z` : value.length === 10 ? `${value}T00:00:00Z` : value);
  if (!Number.isFinite(ms)) {
    throw invalid('date is not a valid date');
  }
  return ms;
}

/** Milliseconds since the epoch just after the end of a FHIR dateTime's precision (exclusive upper bound). */
export function dateTimeEndMs(value: string): number {
  if (value.length === 4) {
    return Date.parse(`${Number(value) + 1}-01-01T00:00:00Z`);
  }
  if (value.length === 7) {
    const [y, m] = value.split('-').map(Number) as [number, number];
    return Date.UTC(y, m, 1);
  }
  if (value.length === 10) {
    return Date.parse(`${value}T00:00:00Z`) + 86_400_000;
  }
  return dateTimeStartMs(value) + 1;
}
