/**
 * Consents shaped like FHIR R4 Consent (a subset, with DIDs for people and MSP ids for organizations).
 * Free text (Consent.text, CodeableConcept.text, Coding.display) is refused: no PHI on the ledger.
 */
import type { Context } from 'fabric-contract-api';
import { invalid } from './errors';
import { padVersion } from './identity-model';
import {
  FHIR_DATE_TIME,
  FHIR_ID,
  FHIR_RESOURCE_TYPE,
  HDX_DID,
  JsonObject,
  MSP_ID,
  asObject,
  dateTimeEndMs,
  dateTimeStartMs,
  optionalString,
  rejectUnknownFields,
  requireString,
} from './validate';

export const CONSENT_ACTION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentaction';
export const PURPOSE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const RESOURCE_TYPE_SYSTEM = 'http://hl7.org/fhir/resource-types';
/** Identifier system of an organization actor given by its Fabric MSP id. */
export const MSP_SYSTEM = 'urn:hdx:msp';

export const CONSENT_ACTIONS = ['collect', 'access', 'use', 'disclose', 'correct'] as const;
export type ConsentAction = (typeof CONSENT_ACTIONS)[number];

/** HL7 v3 PurposeOfUse codes (v3-ActReason); a code is matched exactly, without subsumption. */
export const PURPOSE_CODE = /^[A-Z]{2,20}$/;

export const MAX_PROVISION_DEPTH = 5;
export const MAX_PROVISIONS = 100;
const MAX_LIST = 64;

export interface Coding {
  system?: string;
  code: string;
  display?: string;
}

export interface CodeableConcept {
  coding: Coding[];
}

export interface Period {
  start?: string;
  end?: string;
}

/** FHIR Reference: a DID (`reference`) or an organization by MSP id (`identifier`). */
export interface ActorReference {
  reference?: string;
  identifier?: { system: typeof MSP_SYSTEM; value: string };
}

export interface ProvisionActor {
  role?: CodeableConcept;
  reference: ActorReference;
}

export interface Provision {
  type: 'permit' | 'deny';
  period?: Period;
  actor?: ProvisionActor[];
  action?: CodeableConcept[];
  securityLabel?: Coding[];
  purpose?: Coding[];
  class?: Coding[];
  dataPeriod?: Period;
  provision?: Provision[];
}

export interface ConsentResource {
  resourceType: 'Consent';
  id: string;
  status: 'active' | 'inactive';
  scope?: CodeableConcept;
  category?: CodeableConcept[];
  patient: { reference: string };
  dateTime?: string;
  policyRule?: CodeableConcept;
  provision: Provision;
}

export type ConsentChange = 'grant' | 'update' | 'revoke';

export interface ConsentRecord {
  id: string;
  patient: string;
  status: 'active' | 'inactive';
  version: number;
  consent: ConsentResource;
  /** The last change and its proof. */
  action: ConsentChange;
  signer: string;
  kid: string;
  iat: number;
  jws: string;
  created: string;
  updated: string;
  txId: string;
  /** MSP id of the organization that submitted the last change. */
  submittedBy: string;
}

export const CONSENT_KEY = 'hdx.consent';
export const CONSENT_VERSION_KEY = 'hdx.consent~version';
/** [patient DID, consent id] */
export const CONSENT_PATIENT_INDEX = 'hdx.consent~patient';

export function consentKey(ctx: Context, id: string): string {
  return ctx.stub.createCompositeKey(CONSENT_KEY, [id]);
}

export function consentVersionKey(ctx: Context, id: string, version: number): string {
  return ctx.stub.createCompositeKey(CONSENT_VERSION_KEY, [id, padVersion(version)]);
}

export function consentPatientKey(ctx: Context, patient: string, id: string): string {
  return ctx.stub.createCompositeKey(CONSENT_PATIENT_INDEX, [patient, id]);
}

function list(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) {
    throw invalid(`${path} must be an array`);
  }
  if (value.length === 0 || value.length > MAX_LIST) {
    throw invalid(`${path} must have 1 to ${MAX_LIST} items`);
  }
  return value;
}

function parseCoding(value: unknown, path: string, system?: string, codePattern?: RegExp, rule?: string): Coding {
  const obj = asObject(value, path);
  if (obj.display !== undefined) {
    // Coding.display is free text: refused, like Consent.text (no PHI on the ledger).
    throw invalid(`${path}.display is not allowed (free text); send system and code only`);
  }
  rejectUnknownFields(obj, ['system', 'code'], path);
  const coding: Coding = { code: requireString(obj, 'code', path, codePattern ?? /^[\x21-\x7e]{1,256}$/, rule ?? 'must be a code (printable ASCII, no spaces)') };
  const codingSystem = optionalString(obj, 'system', path, /^[\x21-\x7e]{1,512}$/, 'must be a URI');
  if (system !== undefined && codingSystem !== undefined && codingSystem !== system) {
    throw invalid(`${path}.system must be ${system}`);
  }
  if (codingSystem !== undefined) {
    coding.system = codingSystem;
  }
  return coding;
}

function parseConcept(value: unknown, path: string, system?: string, codePattern?: RegExp, rule?: string): CodeableConcept {
  const obj = asObject(value, path);
  rejectUnknownFields(obj, ['coding'], path);
  return { coding: list(obj.coding, `${path}.coding`).map((c, i) => parseCoding(c, `${path}.coding[${i}]`, system, codePattern, rule)) };
}

function parsePeriod(value: unknown, path: string): Period {
  const obj = asObject(value, path);
  rejectUnknownFields(obj, ['start', 'end'], path);
  const start = optionalString(obj, 'start', path, FHIR_DATE_TIME, 'must be a FHIR dateTime');
  const end = optionalString(obj, 'end', path, FHIR_DATE_TIME, 'must be a FHIR dateTime');
  if (start === undefined && end === undefined) {
    throw invalid(`${path} must have a start or an end`);
  }
  if (start !== undefined && end !== undefined && dateTimeStartMs(start) >= dateTimeEndMs(end)) {
    throw invalid(`${path}.start must be before its end`);
  }
  const period: Period = {};
  if (start !== undefined) period.start = start;
  if (end !== undefined) period.end = end;
  return period;
}

function parseActor(value: unknown, path: string): ProvisionActor {
  const obj = asObject(value, path);
  rejectUnknownFields(obj, ['role', 'reference'], path);
  const ref = asObject(obj.reference, `${path}.reference`);
  rejectUnknownFields(ref, ['reference', 'identifier'], `${path}.reference`);
  const actor: ProvisionActor = { reference: {} };
  if (ref.reference !== undefined && ref.identifier === undefined) {
    actor.reference.reference = requireString(ref, 'reference', `${path}.reference`, HDX_DID, 'must be a did:hdx DID');
  } else if (ref.identifier !== undefined && ref.reference === undefined) {
    const identifier = asObject(ref.identifier, `${path}.reference.identifier`);
    rejectUnknownFields(identifier, ['system', 'value'], `${path}.reference.identifier`);
    if (identifier.system !== MSP_SYSTEM) {
      throw invalid(`${path}.reference.identifier.system must be ${MSP_SYSTEM}`);
    }
    const mspId = requireString(identifier, 'value', `${path}.reference.identifier`, MSP_ID, 'must be an MSP id');
    actor.reference.identifier = { system: MSP_SYSTEM, value: mspId };
  } else {
    throw invalid(`${path}.reference must have either a DID reference or an MSP identifier`);
  }
  if (obj.role !== undefined) {
    actor.role = parseConcept(obj.role, `${path}.role`);
  }
  return actor;
}

const PROVISION_FIELDS = ['type', 'period', 'actor', 'action', 'securityLabel', 'purpose', 'class', 'dataPeriod', 'provision'];

function parseProvision(value: unknown, path: string, depth: number, count: { n: number }): Provision {
  count.n += 1;
  if (count.n > MAX_PROVISIONS) {
    throw invalid(`consent.provision has more than ${MAX_PROVISIONS} provisions`);
  }
  if (depth > MAX_PROVISION_DEPTH) {
    throw invalid(`${path} is nested deeper than ${MAX_PROVISION_DEPTH} levels`);
  }
  const obj = asObject(value, path);
  rejectUnknownFields(obj, PROVISION_FIELDS, path);
  if (obj.type !== 'permit' && obj.type !== 'deny') {
    throw invalid(`${path}.type must be permit or deny`);
  }
  const provision: Provision = { type: obj.type };
  if (obj.period !== undefined) provision.period = parsePeriod(obj.period, `${path}.period`);
  if (obj.actor !== undefined) provision.actor = list(obj.actor, `${path}.actor`).map((a, i) => parseActor(a, `${path}.actor[${i}]`));
  if (obj.action !== undefined) {
    const actionRule = `must be one of ${CONSENT_ACTIONS.join(', ')}`;
    provision.action = list(obj.action, `${path}.action`).map((a, i) =>
      parseConcept(a, `${path}.action[${i}]`, CONSENT_ACTION_SYSTEM, new RegExp(`^(${CONSENT_ACTIONS.join('|')})$`), actionRule),
    );
  }
  if (obj.securityLabel !== undefined) provision.securityLabel = list(obj.securityLabel, `${path}.securityLabel`).map((c, i) => parseCoding(c, `${path}.securityLabel[${i}]`));
  if (obj.purpose !== undefined)
    provision.purpose = list(obj.purpose, `${path}.purpose`).map((c, i) =>
      parseCoding(c, `${path}.purpose[${i}]`, PURPOSE_SYSTEM, PURPOSE_CODE, 'must be an HL7 v3 PurposeOfUse code'),
    );
  if (obj.class !== undefined)
    provision.class = list(obj.class, `${path}.class`).map((c, i) =>
      parseCoding(c, `${path}.class[${i}]`, RESOURCE_TYPE_SYSTEM, FHIR_RESOURCE_TYPE, 'must be a FHIR resource type'),
    );
  if (obj.dataPeriod !== undefined) provision.dataPeriod = parsePeriod(obj.dataPeriod, `${path}.dataPeriod`);
  if (obj.provision !== undefined) {
    provision.provision = list(obj.provision, `${path}.provision`).map((p, i) => parseProvision(p, `${path}.provision[${i}]`, depth + 1, count));
  }
  return provision;
}

/** Validates a FHIR-R4-shaped Consent for grant or update. */
export function parseConsent(value: unknown, path = 'consent'): ConsentResource {
  const obj = asObject(value, path);
  rejectUnknownFields(obj, ['resourceType', 'id', 'status', 'scope', 'category', 'patient', 'dateTime', 'policyRule', 'provision'], path);
  if (obj.resourceType !== 'Consent') {
    throw invalid(`${path}.resourceType must be Consent`);
  }
  const id = requireString(obj, 'id', path, FHIR_ID, 'must be a FHIR id');
  if (obj.status !== 'active') {
    throw invalid(`${path}.status must be active`);
  }
  const patient = parsePatientReference(obj.patient, `${path}.patient`);
  const consent: ConsentResource = { resourceType: 'Consent', id, status: 'active', patient: { reference: patient }, provision: { type: 'deny' } };
  if (obj.scope !== undefined) consent.scope = parseConcept(obj.scope, `${path}.scope`);
  if (obj.category !== undefined) consent.category = list(obj.category, `${path}.category`).map((c, i) => parseConcept(c, `${path}.category[${i}]`));
  const dateTime = optionalString(obj, 'dateTime', path, FHIR_DATE_TIME, 'must be a FHIR dateTime');
  if (dateTime !== undefined) consent.dateTime = dateTime;
  if (obj.policyRule !== undefined) consent.policyRule = parseConcept(obj.policyRule, `${path}.policyRule`);
  if (obj.provision === undefined) {
    throw invalid(`${path}.provision is required`);
  }
  consent.provision = parseProvision(obj.provision, `${path}.provision`, 1, { n: 0 });
  return consent;
}

/** The optional `action` of an access request (default `access`). */
export function parseConsentAction(obj: JsonObject, path: string): ConsentAction {
  const action = optionalString(obj, 'action', path) ?? 'access';
  if (!(CONSENT_ACTIONS as readonly string[]).includes(action)) {
    throw invalid(`${path}.action must be one of ${CONSENT_ACTIONS.join(', ')}`);
  }
  return action as ConsentAction;
}

export function parsePatientReference(value: unknown, path: string): string {
  const ref = asObject(value, path) as JsonObject;
  rejectUnknownFields(ref, ['reference'], path);
  return requireString(ref, 'reference', path, HDX_DID, 'must be a did:hdx DID');
}
