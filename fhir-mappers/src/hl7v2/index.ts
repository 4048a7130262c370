/**
 * HL7 v2 → FHIR R4: ADT^A01 / A04 / A08 and ORU^R01 messages become a transaction Bundle (PUT with
 * stable ids, keyed with the custodian's secret: options.ids). Every failure is a MappingError naming the
 * segment and field (e.g. `PID-3`, `OBX[2]-5`).
 */
import type { Bundle } from 'fhir/r4';
import { guard } from '../errors';
import { mapAdt } from './adt';
import type { Hl7MapOptions } from './datatypes';
import { readHeader } from './header';
import { mapOru } from './oru';
import { parseHl7v2 } from './parse';

export function hl7v2ToBundle(message: string | Uint8Array, options: Hl7MapOptions): Bundle {
  return guard(() => {
    const msg = parseHl7v2(message);
    const header = readHeader(msg, options);
    return header.type === 'ORU' ? mapOru(msg.segments, header, options) : mapAdt(msg.segments, header, options);
  });
}

export { type Hl7MapOptions, V2_CODE_SYSTEMS } from './datatypes';
export { SUPPORTED_MESSAGES, type MessageHeader } from './header';
export { HL7_LIMITS, type Hl7Encoding, type Hl7Message, type Hl7Segment, parseHl7v2 } from './parse';
