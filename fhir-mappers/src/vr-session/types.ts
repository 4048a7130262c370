/** TypeScript view of the VR session record, version 1.0.0 (schema.ts is the authority). */
import type { VR_EVENT_TYPES, VR_MEASURES, VR_SESSION_TYPES, VR_SETTINGS } from './schema';

export type VrSessionType = (typeof VR_SESSION_TYPES)[number];
export type VrSetting = (typeof VR_SETTINGS)[number];
export type VrMeasure = (typeof VR_MEASURES)[number];
export type VrEventType = (typeof VR_EVENT_TYPES)[number];

export interface VrIdentifier {
  system: string;
  value: string;
}

/** A patient or clinician: a DID, local identifiers (e.g. the hospital MRN), or both. */
export interface VrParty {
  did?: string;
  identifiers?: VrIdentifier[];
}

export interface VrDevice {
  did?: string;
  model: string;
  manufacturer?: string;
  serialNumber?: string;
  firmware: string;
}

export interface VrWearable {
  key: string;
  did?: string;
  model: string;
  manufacturer?: string;
  serialNumber?: string;
  firmware?: string;
}

export interface VrSample {
  offsetMs: number;
  value: number;
}

export interface VrBiometricStream {
  measure: VrMeasure;
  periodMs: number;
  sensor?: string;
  samples: VrSample[];
}

export interface VrEvent {
  offsetMs: number;
  type: VrEventType;
  label?: string;
}

export interface VrScore {
  name: string;
  code: { system: string; code: string; display?: string };
  value: number;
  unit?: string;
  offsetMs?: number;
}

export interface VrRecording {
  url: string;
  contentType: string;
  sha256: string;
  sizeBytes?: number;
  title?: string;
}

export interface VrSessionRecord {
  schemaVersion: '1.0.0';
  sessionId: string;
  patient: VrParty;
  clinician?: VrParty;
  platform: { id: string; name: string; vendor?: string; version: string };
  device: VrDevice;
  wearables?: VrWearable[];
  sessionType: VrSessionType;
  setting: VrSetting;
  start: string;
  end?: string;
  biometrics?: VrBiometricStream[];
  events?: VrEvent[];
  scores?: VrScore[];
  recording?: VrRecording;
  clinicianNotes?: string;
}
