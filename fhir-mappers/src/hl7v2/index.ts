/**
 * HL7 v2 → FHIR R4: ADT^A01 / A04 / A08 and ORU^R01 messages become a transaction Bundle (PUT with
 * stable ids, keyed with the custodian's secret: options.ids). Every refusal is a MappingError naming the
 * segment and field (e.g. `PID-3`, `OBX[2]-5`); what real senders leave blank where FHIR has a safe
 * reading is mapped, and each such reading is returned as a MappingWarning (see warnings.ts, README).
 */
import type { Bundle } from 'fhir/r4';
import { guard } from '../errors';
import { mapAdt } from './adt';
import type { Hl7MapOptions } from './datatypes';
import { readHeader } from './header';
import { mapOru } from './oru';
import { parseHl7v2 } from './parse';
import { type MappingWarning, Warnings } from './warnings';

export interface Hl7MappingResult {
  readonly bundle: Bundle;
  /** the lenient readings, in message order (empty when the message gave everything HDX maps) */
  readonly warnings: readonly MappingWarning[];
}

/** Maps a message; returns the Bundle and the warnings. Throws only MappingError. */
export function hl7v2ToBundleWithWarnings(message: string | Uint8Array, options: Hl7MapOptions): Hl7MappingResult {
  return guard(() => {
    const msg = parseHl7v2(message);
    const warnings = new Warnings();
    const header = readHeader(msg, options, warnings);
    const bundle = header.type === 'ORU' ? mapOru(msg.segments, header, options, warnings) : mapAdt(msg.segments, header, options, warnings);
    return { bundle, warnings: warnings.list };
  });
}

/** hl7v2ToBundleWithWarnings without the warnings. */
export function hl7v2ToBundle(message: string | Uint8Array, options: Hl7MapOptions): Bundle {
  return hl7v2ToBundleWithWarnings(message, options).bundle;
}

export { type Hl7MapOptions, V2_CODE_SYSTEMS } from './datatypes';
export { SUPPORTED_MESSAGES, type MessageHeader } from './header';
export { HL7_LIMITS, type Hl7Encoding, type Hl7Message, type Hl7Segment, parseHl7v2 } from './parse';
export { type Hl7LenientRule, type MappingWarning } from './warnings';
