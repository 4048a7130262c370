/**
 * A JSON body parser for `application/json` and `application/fhir+json` that bounds both the size and
 * the nesting depth of the body (review #16, issue 9 "Hardening"). The raw text is scanned for its depth
 * before JSON.parse, so a 100 000-deep `[[[[…` is answered 400 instead of overflowing the stack (and
 * costs one linear scan). Mount it AFTER authenticate(), so nobody unauthenticated makes the gateway
 * buffer a large body.
 *
 * Failures are OperationOutcomeErrors passed to `next`: 400 INVALID naming the problem (too deep, not
 * JSON, not an object or array), 413 TOO_LARGE naming the limit, 415 for an unsupported charset.
 * Bodies of other media types are left alone (req.body untouched).
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { OperationOutcomeError } from '../errors';
import { timeSync } from '../util/phase-timing';
import { frameBundle } from './bundle-frame';

export interface JsonBodyOptions {
  /** Largest body accepted, in bytes or as '5mb' (default '5mb'). */
  readonly limit?: number | string;
  /** Deepest nesting of objects and arrays accepted (default 64; a FHIR resource rarely passes 20). */
  readonly maxDepth?: number;
  /** Media types parsed (default application/json and application/fhir+json). */
  readonly types?: readonly string[];
}

export const DEFAULT_JSON_LIMIT = '5mb';
export const DEFAULT_JSON_MAX_DEPTH = 64;
export const JSON_MEDIA_TYPES: readonly string[] = ['application/json', 'application/fhir+json'];

/**
 * The nesting depth of JSON text (objects and arrays; brackets inside strings do not count), or
 * `maxDepth + 1` as soon as it goes deeper (the scan stops there). Does not validate the text.
 */
export function jsonDepth(text: string, maxDepth = Number.MAX_SAFE_INTEGER): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > maxDepth) return deepest;
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return deepest;
}

function bodyError(err: unknown, limit: number | string): OperationOutcomeError {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  if (type === 'entity.too.large') return new OperationOutcomeError('TOO_LARGE', `The request body is larger than ${String(limit)}`);
  if (type === 'charset.unsupported' || type === 'encoding.unsupported')
    return new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'The request body charset or content encoding is not supported (send UTF-8 JSON)');
  if (type === 'request.aborted') return new OperationOutcomeError('INVALID', 'The request body was not received completely');
  return new OperationOutcomeError('INVALID', 'The request body could not be read');
}

/** Checks the options (a misconfiguration throws at start). */
function checked(opts: JsonBodyOptions): { limit: number | string; maxDepth: number; types: string[] } {
  const limit = opts.limit ?? DEFAULT_JSON_LIMIT;
  const maxDepth = opts.maxDepth ?? DEFAULT_JSON_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 1000) throw new Error('json body: maxDepth must be an integer from 1 to 1000');
  const types = [...(opts.types ?? JSON_MEDIA_TYPES)];
  if (types.length === 0) throw new Error('json body: types must name at least one media type');
  return { limit, maxDepth, types };
}

/** JSON text → the parsed body, or the 400 saying what is wrong with it. */
function parseText(text: string, maxDepth: number): { body: unknown } | OperationOutcomeError {
  if (text.trim() === '') return { body: {} };
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return new OperationOutcomeError('INVALID', 'The request body must be a JSON object (a FHIR resource) or array');
  return timeSync('parse', (): { body: unknown } | OperationOutcomeError => {
    if (jsonDepth(text, maxDepth) > maxDepth) return new OperationOutcomeError('INVALID', `The request body is nested more than ${maxDepth} levels deep`);
    try {
      return { body: JSON.parse(text) as unknown };
    } catch {
      return new OperationOutcomeError('INVALID', 'The request body is not valid JSON');
    }
  });
}

/** The body parser; options are checked here (a misconfiguration throws at start). */
export function jsonBody(opts: JsonBodyOptions = {}): RequestHandler {
  const { limit, maxDepth, types } = checked(opts);
  // express.text reads the raw body (size limit, charset, gzip/deflate) for the JSON types only.
  const readText = express.text({ type: types, limit, defaultCharset: 'utf-8' });

  return (req: Request, res: Response, next: NextFunction): void => {
    readText(req, res, (err?: unknown) => {
      if (err) {
        next(bodyError(err, limit));
        return;
      }
      const text: unknown = req.body;
      if (typeof text !== 'string' || !req.is(types)) {
        next();
        return;
      }
      const parsed = parseText(text, maxDepth);
      if (parsed instanceof OperationOutcomeError) {
        next(parsed);
        return;
      }
      req.body = parsed.body;
      next();
    });
  };
}

export interface FramedBodyOptions extends JsonBodyOptions {
  /** Bodies larger than this many bytes that `frames` takes are framed (http/bundle-frame.ts) instead of parsed whole. */
  readonly frameOver: number;
  /** Which requests' large bodies are framed: those that are a Bundle POSTed to the FHIR base. */
  readonly frames: (req: Request) => boolean;
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * The JSON body parser of the custodian's own feeds (bodies up to tens of MB): as jsonBody, except that
 * a body over `frameOver` bytes that `frames` takes is kept as its bytes and framed as a Bundle
 * (req.body is then a BundleSource, fhir/bundle-source.ts), never turned into one string nor parsed
 * whole. The body must be UTF-8 (the only charset FHIR JSON is sent in); another is a 415.
 */
export function framedJsonBody(opts: FramedBodyOptions): RequestHandler {
  const { limit, maxDepth, types } = checked(opts);
  const readBytes = express.raw({ type: types, limit });
  return (req: Request, res: Response, next: NextFunction): void => {
    readBytes(req, res, (err?: unknown) => {
      if (err) {
        next(bodyError(err, limit));
        return;
      }
      const bytes: unknown = req.body;
      if (!Buffer.isBuffer(bytes) || !req.is(types)) {
        next();
        return;
      }
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.get('content-type') ?? '')?.[1];
      if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
        next(new OperationOutcomeError('UNSUPPORTED_MEDIA_TYPE', 'The request body charset or content encoding is not supported (send UTF-8 JSON)'));
        return;
      }
      const body = bytes.subarray(0, 3).equals(UTF8_BOM) ? bytes.subarray(3) : bytes;
      if (body.length > opts.frameOver && opts.frames(req)) {
        try {
          req.body = timeSync('parse', () => frameBundle(body, maxDepth));
        } catch (e) {
          next(e);
          return;
        }
        next();
        return;
      }
      const parsed = parseText(body.toString('utf8'), maxDepth);
      if (parsed instanceof OperationOutcomeError) {
        next(parsed);
        return;
      }
      req.body = parsed.body;
      next();
    });
  };
}
