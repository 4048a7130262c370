/**
 * Per-identity rate limits (review #16), on express-rate-limit:
 *
 * - `beforeAuth`: mounted before authenticate(), keyed by client IP. Bounds what an unauthenticated
 *   caller (junk tokens, no token) can make this gateway do.
 * - `afterAuth`: mounted after authenticate(), keyed by who is calling: the DID for DID tokens (the
 *   practitioner's DID for a delegated token), the IdP subject for IdP tokens; by IP when no caller
 *   was established.
 *
 * Both send the standard `RateLimit` / `RateLimit-Policy` headers (IETF draft 7) and, once the limit
 * is reached, pass a TOO_MANY_REQUESTS OperationOutcomeError (429, issue `throttled`, with
 * `Retry-After`) to the app's error handler. Counters are per process (express-rate-limit's memory
 * store) unless a shared `store` is given.
 */
import type { Request, RequestHandler } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';

export interface RateLimitOptions {
  /** The window, in ms (default 60 000). */
  readonly windowMs?: number;
  /** Requests per authenticated identity per window (default 600). */
  readonly perIdentity?: number;
  /** Requests per client IP per window before authentication (default 1200: several users may share an IP). */
  readonly perIp?: number;
  /** Where counts are kept (default: in memory, per process). One store per limiter: give a factory. */
  readonly store?: (name: 'ip' | 'identity') => Store;
}

export const DEFAULT_RATE_WINDOW_MS = 60_000;
export const DEFAULT_RATE_PER_IDENTITY = 600;
export const DEFAULT_RATE_PER_IP = 1200;

export interface RateLimiters {
  /** Mount before authenticate(): keyed by client IP. */
  readonly beforeAuth: RequestHandler;
  /** Mount after authenticate(): keyed by the authenticated identity. */
  readonly afterAuth: RequestHandler;
}

/** The rate-limit key of a caller: `did:<DID>` for DID tokens, `idp:<sub>` for identity-provider tokens. */
export function identityKeyOf(auth: AuthContext): string {
  return auth.tokenKind === 'did' ? `did:${auth.did ?? auth.subject}` : `idp:${auth.subject}`;
}

/** The client address as Express computes it (behind a proxy, set the app's `trust proxy`). */
function ipKeyOf(req: Request): string {
  return `ip:${req.ip ?? req.socket.remoteAddress ?? 'unknown'}`;
}

export function assertRateLimitOptions(opts: RateLimitOptions): void {
  const check = (name: string, value: number | undefined, max: number): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > max)) throw new Error(`rate limit: ${name} must be an integer from 1 to ${max}`);
  };
  check('windowMs', opts.windowMs, 86_400_000);
  check('perIdentity', opts.perIdentity, 1_000_000);
  check('perIp', opts.perIp, 1_000_000);
}

/** The two limiters; options are checked here (a misconfiguration throws at start). */
export function createRateLimiters(opts: RateLimitOptions = {}): RateLimiters {
  assertRateLimitOptions(opts);
  const windowMs = opts.windowMs ?? DEFAULT_RATE_WINDOW_MS;
  const windowSec = Math.ceil(windowMs / 1000);
  const make = (name: 'ip' | 'identity', limit: number, keyOf: (req: Request) => string, who: string): RequestHandler =>
    rateLimit({
      windowMs,
      limit,
      standardHeaders: 'draft-7',
      legacyHeaders: false,
      requestPropertyName: name === 'ip' ? 'rateLimitIp' : 'rateLimitIdentity',
      keyGenerator: (req) => keyOf(req),
      ...(opts.store ? { store: opts.store(name) } : {}),
      handler: (_req, _res, next) => {
        next(new OperationOutcomeError('TOO_MANY_REQUESTS', `Too many requests: at most ${limit} per ${windowSec} s ${who}; retry after the Retry-After header's seconds`));
      },
    });
  return {
    beforeAuth: make('ip', opts.perIp ?? DEFAULT_RATE_PER_IP, ipKeyOf, 'from one address'),
    afterAuth: make('identity', opts.perIdentity ?? DEFAULT_RATE_PER_IDENTITY, (req) => (req.auth ? identityKeyOf(req.auth) : ipKeyOf(req)), 'for one caller'),
  };
}
