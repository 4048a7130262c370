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

/** The body parser; options are checked here (a misconfiguration throws at start). */
export function jsonBody(opts: JsonBodyOptions = {}): RequestHandler {
  const limit = opts.limit ?? DEFAULT_JSON_LIMIT;
  const maxDepth = opts.maxDepth ?? DEFAULT_JSON_MAX_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > 1000) throw new Error('json body: maxDepth must be an integer from 1 to 1000');
  const types = [...(opts.types ?? JSON_MEDIA_TYPES)];
  if (types.length === 0) throw new Error('json body: types must name at least one media type');
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
      if (text.trim() === '') {
        req.body = {};
        next();
        return;
      }
      const first = text.trimStart()[0];
      if (first !== '{' && first !== '[') {
        next(new OperationOutcomeError('INVALID', 'The request body must be a JSON object (a FHIR resource) or array'));
        return;
      }
      const parsed = timeSync('parse', (): { body: unknown } | OperationOutcomeError => {
        if (jsonDepth(text, maxDepth) > maxDepth) return new OperationOutcomeError('INVALID', `The request body is nested more than ${maxDepth} levels deep`);
        try {
          return { body: JSON.parse(text) as unknown };
        } catch {
          return new OperationOutcomeError('INVALID', 'The request body is not valid JSON');
        }
      });
      if (parsed instanceof OperationOutcomeError) {
        next(parsed);
        return;
      }
      req.body = parsed.body;
      next();
    });
  };
}
