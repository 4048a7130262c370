/**
 * A large Bundle body kept as the bytes it came in, framed instead of parsed whole: one pass over the
 * bytes finds where each element of the top-level `entry` array begins and ends (strings and escapes
 * honoured; the nesting depth bounded as for any body), then the frame (the body with each entry
 * replaced by `null`) and every entry are checked to be JSON, one at a time. Only then is the body handed
 * on, as a BundleSource whose entries are parsed when asked for: so nothing of a body that is not JSON
 * is ever acted on (a batch never runs half of a broken body), and neither the body's text nor all of
 * its entries as objects are held at once.
 *
 * What is refused (400, as the JSON body parser refuses it): a body that is not JSON, or whose entry
 * `index` is not, one nested too deeply, a Bundle with `entry` twice.
 */
import { OperationOutcomeError } from '../errors';
import { asBundleSource, type BundleSource, parsedEntries } from '../fhir/bundle-source';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const ENTRY = Buffer.from('entry');

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function notJson(what: string): OperationOutcomeError {
  return new OperationOutcomeError('INVALID', `${what} is not valid JSON`);
}

interface Frame {
  /** Offsets of the `[` and `]` of the top-level `entry` array, if the body has one. */
  readonly entries?: { readonly open: number; readonly close: number };
  /** Each entry's start and end offsets (end: the comma or `]` after it). */
  readonly spans: number[];
}

/** One pass over the bytes: the top-level `entry` array's elements. Throws on too deep a nesting or a second `entry`. */
function scan(body: Buffer, maxDepth: number): Frame {
  let depth = 0;
  let inString = false;
  let stringStart = -1;
  /** The last string closed at depth 1 (a key, once its colon follows). */
  let lastKey: [number, number] | undefined;
  let keyIsEntry = false;
  let inEntries = false;
  let entries: { open: number; close: number } | undefined;
  let element = -1;
  let afterComma = false;
  const spans: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as number;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) {
        inString = false;
        if (depth === 1) lastKey = [stringStart, i];
      }
      continue;
    }
    if (isSpace(c)) continue;
    if (inEntries && depth === 2 && element < 0 && c !== COMMA && c !== CLOSE_ARRAY && c !== CLOSE_OBJECT) element = i;
    switch (c) {
      case QUOTE:
        inString = true;
        stringStart = i + 1;
        break;
      case COLON:
        if (depth === 1) keyIsEntry = lastKey !== undefined && body.subarray(lastKey[0], lastKey[1]).equals(ENTRY);
        break;
      case OPEN_OBJECT:
      case OPEN_ARRAY:
        if (depth === 1 && keyIsEntry && c === OPEN_ARRAY) {
          if (entries !== undefined) throw new OperationOutcomeError('INVALID', 'Bundle.entry appears more than once');
          inEntries = true;
          entries = { open: i, close: -1 };
        }
        depth++;
        if (depth > maxDepth) throw new OperationOutcomeError('INVALID', `The request body is nested more than ${maxDepth} levels deep`);
        break;
      case CLOSE_OBJECT:
      case CLOSE_ARRAY:
        depth--;
        if (inEntries && depth === 1) {
          // The entry array's end (a `}` here is a broken body: the frame will not parse).
          if (element >= 0) spans.push(element, i);
          else if (afterComma) throw notJson('The request body');
          if (entries) entries.close = c === CLOSE_ARRAY ? i : -1;
          inEntries = false;
          element = -1;
        }
        break;
      case COMMA:
        if (depth === 1) keyIsEntry = false;
        if (inEntries && depth === 2) {
          if (element < 0) throw notJson('The request body');
          spans.push(element, i);
          element = -1;
          afterComma = true;
        }
        break;
      default:
        break;
    }
    if (c !== COMMA && inEntries && depth >= 2) afterComma = false;
  }
  if (inString || depth !== 0 || (entries !== undefined && entries.close < 0)) throw notJson('The request body');
  return { ...(entries ? { entries } : {}), spans };
}

/**
 * The body as a BundleSource, once the frame and every entry are known to be JSON; otherwise the 400
 * naming what is not. The body's fields other than `entry` are parsed; the entries are parsed when asked
 * for. A body that is not a JSON object is refused as the JSON body parser refuses it.
 */
export function frameBundle(body: Buffer, maxDepth: number): BundleSource {
  const frame = scan(body, maxDepth);
  const spans = frame.spans;
  const count = spans.length / 2;
  const text = frame.entries
    ? `${body.toString('utf8', 0, frame.entries.open)}[${new Array<string>(count).fill('null').join(',')}]${body.toString('utf8', frame.entries.close + 1)}`
    : body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw notJson('The request body');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new OperationOutcomeError('INVALID', 'The request body must be a JSON object (a FHIR resource) or array');
  const entryAt = (index: number): unknown => JSON.parse(body.toString('utf8', spans[2 * index], spans[2 * index + 1])) as unknown;
  for (let index = 0; index < count; index++) {
    try {
      entryAt(index);
    } catch {
      throw notJson(`Bundle.entry[${index}]`);
    }
  }
  const { entry, ...fields } = parsed as Record<string, unknown>;
  // No top-level entry array framed (none, or its key written with escapes): the Bundle as parsed.
  if (!frame.entries) return parsedEntries(fields, entry);
  // The framed array is the one JSON.parse kept (another `entry`, its key written with escapes, would replace it).
  if (!Array.isArray(entry) || entry.length !== count || entry.some((e) => e !== null)) throw new OperationOutcomeError('INVALID', 'Bundle.entry appears more than once');
  return asBundleSource({ fields, entryCount: count, entry: entryAt });
}
