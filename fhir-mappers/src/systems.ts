/** Code systems, identifier systems and codes used by the mappers (one place, so they stay consistent). */

export const SYSTEM = {
  loinc: 'http://loinc.org',
  ucum: 'http://unitsofmeasure.org',
  snomed: 'http://snomed.info/sct',
  /** identifiers that are URIs themselves (DIDs) */
  uri: 'urn:ietf:rfc:3986',
  actCode: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
  participationType: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  observationInterpretation: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
  dataAbsentReason: 'http://terminology.hl7.org/CodeSystem/data-absent-reason',
  provenanceParticipantType: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  deviceNameType: 'http://hl7.org/fhir/device-nametype',
  maritalStatus: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus',
  /** HL7 v2 tables: `${v2Table}0203` etc. */
  v2Table: 'http://terminology.hl7.org/CodeSystem/v2-',
  icd10: 'http://hl7.org/fhir/sid/icd-10',
  icd10cm: 'http://hl7.org/fhir/sid/icd-10-cm',
  icd9cm: 'http://hl7.org/fhir/sid/icd-9-cm',
  cpt: 'http://www.ama-assn.org/go/cpt',
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  ndc: 'http://hl7.org/fhir/sid/ndc',
  // HDX's own code systems and extensions (no standard code exists for these concepts)
  hdxVrSessionType: 'https://hdx.example/fhir/CodeSystem/vr-session-type',
  hdxVrMeasure: 'https://hdx.example/fhir/CodeSystem/vr-measure',
  hdxVrStatistic: 'https://hdx.example/fhir/CodeSystem/vr-statistic',
  hdxVrEvent: 'https://hdx.example/fhir/CodeSystem/vr-event',
  hdxVrDocument: 'https://hdx.example/fhir/CodeSystem/vr-document',
  hdxDeviceType: 'https://hdx.example/fhir/CodeSystem/device-type',
  hdxRecordSha256: 'https://hdx.example/fhir/sid/record-sha256',
  hdxV2LocalCodes: 'https://hdx.example/fhir/CodeSystem/hl7v2-local',
  hdxV2Authority: 'https://hdx.example/fhir/sid/hl7v2-authority',
} as const;

export const EXTENSION = {
  attachmentSha256: 'https://hdx.example/fhir/StructureDefinition/attachment-sha256',
} as const;

/** Observation categories (observation-category code system). */
export type ObservationCategory = 'vital-signs' | 'survey' | 'exam' | 'therapy' | 'laboratory';

export interface Concept {
  system: string;
  code: string;
  display: string;
}
