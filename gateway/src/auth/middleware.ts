/**
 * Express glue: `authenticate(opts)` verifies the bearer token of every request it sees and sets
 * `req.auth`; handlers then call `requireAuth(req)` and `requireScope(req.auth, type, action)`.
 * Errors go to `next(err)` so the app's error handler renders them as OperationOutcomes.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AuthenticationError, wwwAuthenticateOf } from './errors';
import { assertTokenVerifierOptions, type TokenVerifierOptions, verifyBearerToken } from './token';
import type { AuthContext } from './types';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by authenticate() once the bearer token verified. */
      auth?: AuthContext;
    }
  }
}

/**
 * The authentication middleware. Options are checked here, once (a misconfiguration throws at start).
 * On failure it sets `WWW-Authenticate` (RFC 6750) and passes the AuthenticationError to `next`.
 */
export function authenticate(opts: TokenVerifierOptions): RequestHandler {
  assertTokenVerifierOptions(opts);
  return (req: Request, res: Response, next: NextFunction): void => {
    verifyBearerToken(req.headers.authorization, opts).then(
      (auth) => {
        req.auth = auth;
        next();
      },
      (err: unknown) => {
        const header = wwwAuthenticateOf(err);
        if (header !== undefined && !res.headersSent) res.setHeader('WWW-Authenticate', header);
        next(err);
      },
    );
  };
}

/** The caller of an authenticated request; a 401 if authenticate() did not run or did not succeed. */
export function requireAuth(req: Request): AuthContext {
  if (!req.auth) throw new AuthenticationError('Authentication required: send Authorization: Bearer <token>', null);
  return req.auth;
}
