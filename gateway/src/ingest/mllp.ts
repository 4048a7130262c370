/**
 * MLLP listener (HL7 v2 over TCP, `HDX_MLLP_PORT`, bound to 127.0.0.1 only): each framed message
 * (0x0B … 0x1C 0x0D) is mapped with hl7v2ToBundle and ingested exactly as `POST /ingest/hl7v2` does,
 * then answered with an HL7 ACK: `MSA|AA` once stored and anchored, `MSA|AE` with an ERR segment naming
 * the location (MSH-9, OBX[3]-5) when it cannot be. Messages of one connection are handled in order.
 *
 * MLLP carries no bearer token: the changes are recorded under the DID configured for the listener
 * (`HDX_MLLP_ACTOR_DID`), as this organization, purpose TREAT. Only processes on this host can connect.
 *
 * Ids: mapped with the custodian's keyed ids (IngestService.custodianIds). Neither the ACK nor the log
 * names a resource id or DID (redactIds): ids of ingested patients derive from their MRNs.
 */
import { randomUUID } from 'node:crypto';
import * as net from 'node:net';
import { hl7v2ToBundle, isMappingError } from '@hdx/fhir-mappers';
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

/** `OBX[3]-5`, `PID-3(2).4`, `MSH-9` → an ERL (segment^sequence^field^repetition^component). */
function erl(location: string): string {
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

/** The ACK for a message (its MSH read leniently: the message itself may be what is wrong). */
export function ackFor(message: string, error?: { code: string; location: string; text: string }): string {
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
  if (!error) return `${header}\rMSA|AA|${field(10)}\r`;
  // Table 0357: 100 segment sequence, 101 required field missing, 102 data type, 200 unsupported message type, 207 application error.
  const code = error.location.startsWith('MSH-9') ? '200^Unsupported message type' : error.code === 'INVALID' ? '102^Data type error' : '207^Application internal error';
  const why = plain(redactIds(error.text));
  return `${header}\rMSA|AE|${field(10)}|${why}\rERR||${erl(error.location)}|${code}^HL70357|E||||${why}\r`;
}

export async function startMllpListener(options: MllpListenerOptions): Promise<MllpListener> {
  const { ingest, caller, log } = options;
  const sockets = new Set<net.Socket>();

  const handle = async (raw: Buffer): Promise<string> => {
    const text = raw.toString('utf8');
    try {
      const custodian = ingest.custodianIds();
      const bundle = custodian.derive(() => hl7v2ToBundle(new Uint8Array(raw), { ids: custodian.ids }));
      await ingest.ingest(() => caller, 'mllp', bundle);
      return ackFor(text);
    } catch (err) {
      if (isMappingError(err)) {
        const first = err.problems[0];
        return ackFor(text, { code: err.code, location: first?.location ?? err.location, text: first ? `${first.location}: ${first.message}` : err.location });
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
