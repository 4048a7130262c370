/**
 * A small, strict HL7 v2 (ER7, "pipe and hat") parser.
 *
 * - Encoding characters come from MSH-1 / MSH-2 (any valid choice, not only |^~\&; the v2.7 truncation
 *   character is accepted as a fifth character).
 * - Segments end with CR (the standard), LF or CRLF; MLLP framing (VT … FS CR) and a BOM are stripped.
 * - Fields split into repetitions, components and subcomponents; then escape sequences are decoded:
 *   \F\ \S\ \T\ \R\ \E\ (\P\ truncation), \Xhh…\ (hex bytes, UTF-8 or else ISO-8859-1), \.br\ and \.sp\
 *   (line breaks), \H\ \N\ and the other formatting commands (dropped). Character-set switches (\C…\,
 *   \M…\) and local escapes (\Z…\) are refused (UNMAPPABLE), unknown or unterminated ones are INVALID.
 * - Bytes (Uint8Array) are decoded per MSH-18: UTF-8 by default (invalid UTF-8 is an error), ISO-8859-1
 *   for 8859/1, ASCII checked; other character sets are UNMAPPABLE.
 * - `""` (the HL7 explicit null) reads as empty.
 * Errors are MappingError with a location such as `MSH-2`, `PID-5`, `OBX[2]-5.1` or `segment 4`.
 */
import { MappingError } from '../errors';

export interface Hl7Encoding {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
  truncation?: string;
}

/** fields[n] = repetitions → components → subcomponents (decoded strings); index = HL7 field number. */
export interface Hl7Segment {
  name: string;
  /** 1-based occurrence among segments of the same name (OBX[3] is the third OBX) */
  occurrence: number;
  fields: string[][][][];
}

export interface Hl7Message {
  encoding: Hl7Encoding;
  segments: Hl7Segment[];
}

export const HL7_LIMITS = {
  maxMessageLength: 4 * 1024 * 1024,
  maxSegments: 20_000,
  /** longest field, except OBX-5 and NTE-3 (text) which may use the whole message */
  maxFieldLength: 64 * 1024,
} as const;

const TEXT_FIELDS = new Set(['OBX-5', 'NTE-3']);

/** `PID-5`, `OBX[2]-5`, `PID-3(2).4.1` (occurrence and repetition shown when > 1). */
export function location(seg: Pick<Hl7Segment, 'name' | 'occurrence'>, field: number, rep = 1, comp?: number, sub?: number): string {
  let s = `${seg.name}${seg.occurrence > 1 ? `[${seg.occurrence}]` : ''}-${field}`;
  if (rep > 1) s += `(${rep})`;
  if (comp !== undefined) s += `.${comp}`;
  if (sub !== undefined) s += `.${sub}`;
  return s;
}

function isValidDelimiter(c: string): boolean {
  return c.length === 1 && !/[A-Za-z0-9\s\x00-\x1f\x7f]/.test(c);
}

function decodeBytes(bytes: Uint8Array): string {
  if (bytes.length > HL7_LIMITS.maxMessageLength) {
    throw new MappingError('INVALID', 'message', `message longer than ${HL7_LIMITS.maxMessageLength} bytes`);
  }
  // MSH-18 is read from the first segment decoded as ISO-8859-1 (the delimiters are ASCII)
  const head = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 4096))).toString('latin1');
  const charset = readCharset(head);
  if (charset === '' || charset === 'UNICODE UTF-8') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new MappingError('INVALID', 'MSH-18', 'message bytes are not valid UTF-8');
    }
  }
  if (charset === 'ASCII') {
    if (bytes.some((b) => b > 0x7f)) throw new MappingError('INVALID', 'MSH-18', 'message declares ASCII but has non-ASCII bytes');
    return Buffer.from(bytes).toString('latin1');
  }
  if (charset === '8859/1') return Buffer.from(bytes).toString('latin1');
  throw new MappingError('UNMAPPABLE', 'MSH-18', 'character set not supported (UTF-8, ASCII or 8859/1)');
}

function readCharset(text: string): string {
  const start = text.indexOf('MSH');
  if (start < 0 || text.length < start + 4) return '';
  const sep = text[start + 3] ?? '|';
  const line = text.slice(start).split(/\r\n|\r|\n/)[0] ?? '';
  const parts = line.split(sep);
  // MSH-18 is parts[17] (MSH-1 is the separator itself); first repetition, first component
  const raw = parts[17] ?? '';
  return (raw.split(/[~^]/)[0] ?? '').trim().toUpperCase();
}

function readEncoding(line: string): Hl7Encoding {
  if (line.length < 8) throw new MappingError('INVALID', 'MSH-2', 'MSH segment is truncated before its encoding characters');
  const field = line[3] ?? '';
  if (!isValidDelimiter(field)) throw new MappingError('INVALID', 'MSH-1', 'invalid field separator');
  const end = line.indexOf(field, 4);
  const chars = end < 0 ? line.slice(4) : line.slice(4, end);
  if (chars.length < 4 || chars.length > 5) {
    throw new MappingError('INVALID', 'MSH-2', 'encoding characters must be 4 (or 5 with truncation) characters');
  }
  const all = [field, ...chars];
  if (!all.every(isValidDelimiter) || new Set(all).size !== all.length) {
    throw new MappingError('INVALID', 'MSH-2', 'encoding characters must be distinct punctuation, different from the field separator');
  }
  const [component = '', repetition = '', escape = '', subcomponent = '', truncation] = chars;
  const enc: Hl7Encoding = { field, component, repetition, escape, subcomponent };
  if (truncation !== undefined) enc.truncation = truncation;
  return enc;
}

const FORMATTING = new Set(['H', 'N', '.fi', '.nf', '.in', '.ti', '.sk', '.ce']);

function decodeHex(hex: string, loc: string): string {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(hex)) {
    throw new MappingError('INVALID', loc, 'invalid \\X..\\ hexadecimal escape');
  }
  const bytes = Buffer.from(hex, 'hex');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

function escapeSequence(seq: string, enc: Hl7Encoding, loc: string): string {
  switch (seq) {
    case 'F':
      return enc.field;
    case 'S':
      return enc.component;
    case 'T':
      return enc.subcomponent;
    case 'R':
      return enc.repetition;
    case 'E':
      return enc.escape;
    case 'P':
      if (enc.truncation !== undefined) return enc.truncation;
      break;
    case '.br':
      return '\n';
    default:
  }
  if (seq.startsWith('X')) return decodeHex(seq.slice(1), loc);
  if (/^\.sp( ?[+-]?\d+)?$/.test(seq)) return '\n';
  if (FORMATTING.has(seq) || /^\.(in|ti|sk) ?[+-]?\d+$/.test(seq)) return '';
  if (/^[CM][0-9A-Fa-f]+$/.test(seq)) throw new MappingError('UNMAPPABLE', loc, 'character set escape sequences are not supported');
  if (seq.startsWith('Z')) throw new MappingError('UNMAPPABLE', loc, 'locally defined escape sequences are not supported');
  throw new MappingError('INVALID', loc, 'unknown escape sequence');
}

/** Decodes escape sequences in one leaf value (after splitting, so decoded delimiters stay data). */
export function unescapeValue(value: string, enc: Hl7Encoding, loc: string): string {
  if (!value.includes(enc.escape)) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const start = value.indexOf(enc.escape, i);
    if (start < 0) {
      out += value.slice(i);
      break;
    }
    out += value.slice(i, start);
    const end = value.indexOf(enc.escape, start + 1);
    if (end < 0) throw new MappingError('INVALID', loc, 'unterminated escape sequence');
    out += escapeSequence(value.slice(start + 1, end), enc, loc);
    i = end + 1;
  }
  return out;
}

function splitField(raw: string, enc: Hl7Encoding, seg: Hl7Segment, n: number): string[][][] {
  return raw.split(enc.repetition).map((rep, r) => {
    const comps = rep.split(enc.component);
    return comps.map((comp, c) => {
      const subs = comp.split(enc.subcomponent);
      return subs.map((sub, s) => {
        if (!sub.includes(enc.escape)) return sub === '""' ? '' : sub;
        // location as precise as the structure: PID-5, PID-5.2 or PID-3.4.2
        const loc = location(seg, n, r + 1, comps.length > 1 || subs.length > 1 ? c + 1 : undefined, subs.length > 1 ? s + 1 : undefined);
        const v = unescapeValue(sub, enc, loc);
        return v === '""' ? '' : v;
      });
    });
  });
}

function parseSegment(line: string, index: number, enc: Hl7Encoding, counts: Map<string, number>): Hl7Segment {
  const name = line.slice(0, 3);
  if (!/^[A-Z][A-Z0-9]{2}$/.test(name) || (line.length > 3 && line[3] !== enc.field)) {
    throw new MappingError('INVALID', `segment ${index + 1}`, 'not a segment: expected a three-character segment name followed by the field separator');
  }
  const occurrence = (counts.get(name) ?? 0) + 1;
  counts.set(name, occurrence);
  const seg: Hl7Segment = { name, occurrence, fields: [] };
  const parts = line.split(enc.field);
  if (name === 'MSH') {
    seg.fields[1] = [[[enc.field]]];
    seg.fields[2] = [[[parts[1] ?? '']]];
  }
  const firstField = name === 'MSH' ? 2 : 1;
  for (let p = firstField; p < parts.length; p++) {
    const n = name === 'MSH' ? p + 1 : p;
    const raw = parts[p] ?? '';
    if (raw.length > HL7_LIMITS.maxFieldLength && !TEXT_FIELDS.has(`${name}-${n}`)) {
      throw new MappingError('INVALID', location(seg, n), `field longer than ${HL7_LIMITS.maxFieldLength} characters`);
    }
    seg.fields[n] = splitField(raw, enc, seg, n);
  }
  return seg;
}

/** Parses an HL7 v2 message (text, or bytes decoded per MSH-18). Throws MappingError. */
export function parseHl7v2(input: string | Uint8Array): Hl7Message {
  let text = typeof input === 'string' ? input : decodeBytes(input);
  if (text.length > HL7_LIMITS.maxMessageLength) {
    throw new MappingError('INVALID', 'message', `message longer than ${HL7_LIMITS.maxMessageLength} characters`);
  }
  text = text
    .replace(/^\uFEFF/, '')
    .replace(/^\x0b/, '')
    .replace(/\x1c\r?$/, '');
  const lines = text.split(/\r\n|\r|\n/);
  while (lines.length > 0 && lines[lines.length - 1]?.trim() === '') lines.pop();
  const first = lines[0] ?? '';
  if (first.startsWith('FHS') || first.startsWith('BHS')) throw new MappingError('UNMAPPABLE', 'segment 1', 'HL7 v2 batches are not supported; send one message at a time');
  if (!first.startsWith('MSH')) throw new MappingError('INVALID', 'segment 1', 'a message must start with an MSH segment');
  if (lines.length > HL7_LIMITS.maxSegments) throw new MappingError('INVALID', 'message', `more than ${HL7_LIMITS.maxSegments} segments`);
  const encoding = readEncoding(first);
  const counts = new Map<string, number>();
  const segments: Hl7Segment[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') throw new MappingError('INVALID', `segment ${i + 1}`, 'empty segment inside the message');
    segments.push(parseSegment(line, i, encoding, counts));
  });
  return { encoding, segments };
}

// ---- accessors -----------------------------------------------------------------------------------

/** Repetitions of field n ([] when absent or empty). */
export function repetitions(seg: Hl7Segment, n: number): string[][][] {
  const f = seg.fields[n];
  if (f === undefined) return [];
  return f.filter((rep) => rep.some((comp) => comp.some((sub) => sub.trim() !== '')));
}

/** A component (1-based) of a repetition, subcomponent 1 unless given; trimmed; undefined when empty. */
export function comp(rep: string[][] | undefined, c: number, s = 1): string | undefined {
  const v = rep?.[c - 1]?.[s - 1]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

/** Subcomponents of one component as a pseudo-repetition (for composite types nested in a component: CX.4 HD). */
export function subcomponents(rep: string[][] | undefined, c: number): string[][] {
  return (rep?.[c - 1] ?? []).map((s) => [s]);
}

/** The first repetition's component c (subcomponent s) of field n. */
export function value(seg: Hl7Segment | undefined, n: number, c = 1, s = 1): string | undefined {
  if (seg === undefined) return undefined;
  return comp(repetitions(seg, n)[0], c, s);
}
