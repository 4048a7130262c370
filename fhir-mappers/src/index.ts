/**
 * @hdx/fhir-mappers: the FHIR R4 validator every HDX component uses, and pure, deterministic mappers
 * from VR session records and HL7 v2 messages to FHIR R4 transaction Bundles.
 */
export { type FhirIssue, validateResource, prepareValidator, fhirResourceTypes, MAX_ISSUES } from './validate';
export { MappingError, type MappingErrorCode, type MappingProblem, isMappingError, type Hl7Condition, HL7_CONDITION_TEXT, hl7ConditionOf } from './errors';
export { type OutputOptions } from './output';
export { type StableIds, type EpochLookup, keyedIds, epochKey, canonicalJson, HDX_ID_NAMESPACE, MIN_ID_SECRET_BYTES } from './ids';
export { SYSTEM, EXTENSION } from './systems';
export { vrSessionToBundle, parseVrSessionRecord, type VrMapOptions, MEASURES as VR_MEASURE_CODES } from './vr-session/to-bundle';
export { vrSessionSchema, VR_SESSION_SCHEMA_ID, VR_SESSION_SCHEMA_VERSION, VR_SESSION_TYPES, VR_SETTINGS, VR_MEASURES, VR_EVENT_TYPES, VR_LIMITS } from './vr-session/schema';
export type * from './vr-session/types';
export {
  hl7v2ToBundle,
  hl7v2ToBundleWithWarnings,
  type Hl7MappingResult,
  type MappingWarning,
  type Hl7LenientRule,
  parseHl7v2,
  type Hl7MapOptions,
  type Hl7Message,
  type Hl7Segment,
  type Hl7Encoding,
  HL7_LIMITS,
  SUPPORTED_MESSAGES,
  V2_CODE_SYSTEMS,
} from './hl7v2';
export { issuesToOperationOutcome, mappingErrorToOperationOutcome, mappingWarningToIssue } from './outcome';
