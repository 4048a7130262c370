import { MappingError } from '../errors';
import { type Hl7MapOptions, hdToSystem } from './datatypes';
import { type Hl7Message, location, repetitions, value } from './parse';

/** What the mappers need from MSH. */
export interface MessageHeader {
  type: string;
  trigger: string;
  controlId: string;
  version: string;
  /** sending application + facility, for ids derived from the message */
  senderKey: string;
  /** identifier system of the sending facility (MSH-4), the fallback assigning authority */
  facilitySystem: string | undefined;
}

export const SUPPORTED_MESSAGES = ['ADT^A01', 'ADT^A04', 'ADT^A08', 'ORU^R01'] as const;

export function readHeader(msg: Hl7Message, options: Hl7MapOptions | undefined): MessageHeader {
  const msh = msg.segments[0];
  if (msh === undefined || msh.name !== 'MSH') throw new MappingError('INVALID', 'MSH', 'MSH segment is missing');
  const type = value(msh, 9, 1)?.toUpperCase();
  const trigger = value(msh, 9, 2)?.toUpperCase();
  if (type === undefined || trigger === undefined) throw new MappingError('INVALID', location(msh, 9), 'message type and trigger event are required');
  const controlId = value(msh, 10);
  if (controlId === undefined) throw new MappingError('INVALID', location(msh, 10), 'message control id is required');
  const version = value(msh, 12);
  if (version === undefined) throw new MappingError('INVALID', location(msh, 12), 'version id is required');
  if (!/^2\.[1-9](\.\d+)?$/.test(version)) throw new MappingError('UNMAPPABLE', location(msh, 12), 'only HL7 v2.x messages are supported');
  const kind = `${type}^${trigger}`;
  if (!(SUPPORTED_MESSAGES as readonly string[]).includes(kind)) {
    const shown = /^[A-Z0-9]{3}\^[A-Z0-9]{3}$/.test(kind) ? ` ${kind}` : '';
    throw new MappingError('UNMAPPABLE', location(msh, 9), `message type${shown} is not supported (supported: ${SUPPORTED_MESSAGES.join(', ')})`);
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
