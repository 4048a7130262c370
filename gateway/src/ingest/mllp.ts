/**
 * MLLP listener (HL7 v2 over TCP, `HDX_MLLP_PORT`, bound to 127.0.0.1 only): each framed message
 * (0x0B … 0x1C 0x0D) is mapped with hl7v2ToBundleWithWarnings and ingested exactly as `POST /ingest/hl7v2`
 * does, then answered with an HL7 ACK: `MSA|AA` once stored and anchored, with one ERR segment of severity
 * W per field the mapper read leniently (a required field left blank: `ERR||OBX^2^11|101^Required field
 * missing^HL70357|W|result-status-missing^^99HDX|||...`); `MSA|AE` with an ERR of severity E naming the
 * location (MSH-9, OBX[3]-5) and its table 0357 condition when it cannot be stored. Messages of one
 * connection are handled in order.
 *
 * MLLP carries no bearer token: the changes are recorded under the DID configured for the listener
 * (`HDX_MLLP_ACTOR_DID`), as this organization, purpose TREAT. Only processes on this host can connect.
 *
 * Ids: mapped with the custodian's keyed ids (IngestService.custodianIds). Neither the ACK nor the log
 * names a resource id or DID (redactIds): ids of ingested patients derive from their MRNs.
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import { HL7_CONDITION_TEXT, type Hl7Condition, type MappingWarning, hl7ConditionOf, hl7v2ToBundleWithWarnings, isMappingError } from '@hdx/fhir-mappers';
import type { Logger } from 'pino';
import type { Caller } from '../fhir/access-control';
import { OperationOutcomeError } from '../errors';
import { type IngestService, redactIds } from './ingest-service';

const START = 0x0b;
const END = Buffer.from([0x1c, 0x0d]);
/** A message (4 MiB, the mapper's limit) plus framing; a peer sending more without an end block is cut off. */
const MAX_FRAME = 4 * 1024 * 1024 + 16;

export interface MllpListenerOptions {
  readonly port: number;
  readonly ingest: IngestService;
  readonly caller: Caller;
  readonly log: Logger;
}

export interface MllpListener {
  readonly port: number;
  close(): Promise<void>;
}

/** HL7 v2 text without delimiters (a value inside one field). */
function plain(text: string): string {
  return text.replace(/[|^~\\&\r\n]/g, ' ').slice(0, 200);
}

/** `OBX[3]-5`, `PID-3(2).4`, `MSH-9`, `PV1` → an ERL (segment^sequence[^field^repetition^component]). */
function erl(location: string): string {
  const segment = /^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?$/.exec(location);
  if (segment) return `${segment[1] ?? ''}^${segment[2] ?? '1'}`;
  const m = /^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?-(\d+)(?:\((\d+)\))?(?:\.(\d+))?/.exec(location);
  if (!m) return '';
  return [m[1], m[2] ?? '1', m[3], m[4] ?? (m[5] ? '1' : ''), m[5] ?? ''].join('^').replace(/\^+$/, '');
}

function timestamp(): string {
  return new Date()
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, '+0000');
}

/** Why a message was not stored: an HDX error code, the location, the text (no value) and its table 0357 condition. */
export interface AckError {
  readonly code: string;
  readonly location: string;
  readonly text: string;
  readonly condition?: Hl7Condition;
}

/** An ERR segment: ERR-2 location, ERR-3 table 0357 condition, ERR-4 severity, ERR-5 HDX rule, ERR-8 user message. */
function errSegment(location: string, condition: Hl7Condition, severity: 'E' | 'W', text: string, rule = ''): string {
  return ['ERR', '', erl(location), `${condition}^${HL7_CONDITION_TEXT[condition]}^HL70357`, severity, rule === '' ? '' : `${plain(rule)}^^99HDX`, '', '', plain(text)].join('|');
}

/**
 * The ACK for a message (its MSH read leniently: the message itself may be what is wrong): AA, with an ERR
 * of severity W per warning, or AE with an ERR of severity E.
 */
export function ackFor(message: string, error?: AckError, warnings: readonly MappingWarning[] = []): string {
  const msh = message.split(/\r\n|\r|\n/)[0] ?? '';
  const sep = msh.startsWith('MSH') && msh.length > 3 ? (msh[3] as string) : '|';
  const f = msh.startsWith('MSH') ? msh.split(sep) : [];
  // Header fields keep their components (^, &) when the message uses the standard encoding characters.
  const standard = f[1] === '^~\\&';
  const field = (n: number): string => (standard ? (f[n - 1] ?? '').replace(/[|~\\\r\n]/g, ' ').slice(0, 200) : plain(f[n - 1] ?? ''));
  const trigger = (f[8] ?? '').split('^')[1] ?? '';
  const header = ['MSH', '^~\\&', field(5), field(6), field(3), field(4), timestamp(), '', `ACK^${plain(trigger)}^ACK`, randomUUID().slice(0, 20), 'P', field(12) || '2.5.1'].join(
    '|',
  );
  if (!error) return [`${header}`, `MSA|AA|${field(10)}`, ...warnings.map((w) => errSegment(w.location, w.condition, 'W', `${w.location}: ${w.message}`, w.rule)), ''].join('\r');
  // Table 0357 (the mapper's condition, else): 200 unsupported message type, 102 data type, 207 application error.
  const condition = error.condition ?? (error.location.startsWith('MSH-9') ? '200' : error.code === 'INVALID' ? '102' : '207');
  const why = plain(redactIds(error.text));
  return `${header}\rMSA|AE|${field(10)}|${why}\r${errSegment(error.location, condition, 'E', why)}\r`;
}

export async function startMllpListener(options: MllpListenerOptions): Promise<MllpListener> {
  const { ingest, caller, log } = options;
  const sockets = new Set<net.Socket>();

  const handle = async (raw: Buffer): Promise<string> => {
    const text = raw.toString('utf8');
    try {
      const custodian = ingest.custodianIds();
      const { bundle, warnings } = await custodian.derive(() => hl7v2ToBundleWithWarnings(new Uint8Array(raw), { ids: custodian.ids }));
      const result = await ingest.ingest(() => caller, 'mllp', bundle, warnings);
      return ackFor(text, undefined, result.warnings);
    } catch (err) {
      if (isMappingError(err)) {
        const first = err.problems[0];
        const at = first?.location ?? err.location;
        return ackFor(text, { code: err.code, location: at, text: first ? `${first.location}: ${first.message}` : err.location, condition: hl7ConditionOf(err) });
      }
      if (err instanceof OperationOutcomeError && err.code !== 'INTERNAL') {
        const expression = err.outcome.issue[0]?.expression?.[0] ?? '';
        return ackFor(text, { code: err.code, location: expression, text: err.message });
      }
      const e = err instanceof Error ? err : new Error(String(err));
      log.error({ event: 'mllp-error', err: { type: e.name, message: redactIds(e.message), stack: redactIds(e.stack ?? '') } }, 'MLLP message could not be ingested');
      return ackFor(text, { code: 'INTERNAL', location: '', text: 'internal error; the operator has been alerted' });
    }
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buffer = Buffer.alloc(0);
    let queue: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const start = buffer.indexOf(START);
        if (start < 0) {
          buffer = Buffer.alloc(0);
          break;
        }
        const end = buffer.indexOf(END, start + 1);
        if (end < 0) {
          buffer = buffer.subarray(start);
          if (buffer.length > MAX_FRAME) {
            log.warn({ event: 'mllp-oversized' }, 'MLLP frame too large; connection closed');
            socket.destroy();
          }
          break;
        }
        const message = Buffer.from(buffer.subarray(start + 1, end));
        buffer = buffer.subarray(end + END.length);
        queue = queue.then(async () => {
          const ack = await handle(message);
          if (!socket.destroyed) socket.write(Buffer.concat([Buffer.from([START]), Buffer.from(ack, 'utf8'), END]));
        });
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  log.info({ port }, 'MLLP listener on 127.0.0.1');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
