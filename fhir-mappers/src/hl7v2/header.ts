import { MappingError } from '../errors';
import { type Hl7MapOptions, hdToSystem } from './datatypes';
import { type Hl7Message, location, repetitions, value } from './parse';
import type { Warnings } from './warnings';

/** What the mappers need from MSH. */
export interface MessageHeader {
  type: string;
  trigger: string;
  controlId: string;
  /** MSH-12; undefined when the sender left it blank (read as v2, with a warning) */
  version: string | undefined;
  /** sending application + facility, for ids derived from the message */
  senderKey: string;
  /** identifier system of the sending facility (MSH-4), the fallback assigning authority */
  facilitySystem: string | undefined;
}

export const SUPPORTED_MESSAGES = ['ADT^A01', 'ADT^A04', 'ADT^A08', 'ORU^R01'] as const;

export function readHeader(msg: Hl7Message, options: Hl7MapOptions | undefined, warnings: Warnings): MessageHeader {
  const msh = msg.segments[0];
  if (msh === undefined || msh.name !== 'MSH') throw new MappingError('INVALID', 'MSH', 'MSH segment is missing', undefined, { hl7Condition: '100' });
  const type = value(msh, 9, 1)?.toUpperCase();
  const trigger = value(msh, 9, 2)?.toUpperCase();
  if (type === undefined || trigger === undefined) {
    throw new MappingError('INVALID', location(msh, 9), 'message type and trigger event are required', undefined, { hl7Condition: '101' });
  }
  // The ACK echoes it (MSA-2) and ids of results without an order number derive from it: not defaulted.
  const controlId = value(msh, 10);
  if (controlId === undefined) throw new MappingError('INVALID', location(msh, 10), 'message control id is required', undefined, { hl7Condition: '101' });
  const version = value(msh, 12);
  if (version === undefined) warnings.add(location(msh, 12), '101', 'version-missing', 'version id missing: read as HL7 v2 (the structure of every v2.x message HDX maps)');
  else if (!/^2\.[1-9](\.\d+)?$/.test(version)) {
    throw new MappingError('UNMAPPABLE', location(msh, 12), 'only HL7 v2.x messages are supported', undefined, { hl7Condition: '203' });
  }
  const kind = `${type}^${trigger}`;
  if (!(SUPPORTED_MESSAGES as readonly string[]).includes(kind)) {
    const shown = /^[A-Z0-9]{3}\^[A-Z0-9]{3}$/.test(kind) ? ` ${kind}` : '';
    const typeKnown = SUPPORTED_MESSAGES.some((m) => m.startsWith(`${type}^`));
    throw new MappingError('UNMAPPABLE', location(msh, 9), `message type${shown} is not supported (supported: ${SUPPORTED_MESSAGES.join(', ')})`, undefined, {
      hl7Condition: typeKnown ? '201' : '200',
    });
  }
  const app = repetitions(msh, 3)[0];
  const facility = repetitions(msh, 4)[0];
  return {
    type,
    trigger,
    controlId,
    version,
    senderKey: `${JSON.stringify(app ?? [])}|${JSON.stringify(facility ?? [])}`,
    facilitySystem: hdToSystem(facility, options),
  };
}
