import type { RequestHandler } from 'express';
import { AuthenticationError } from '../auth/errors';
import { parseScopes } from '../auth/scopes';
import type { AuthContext } from '../auth/types';

export interface TestCaller {
  did?: string;
  role?: AuthContext['role'];
  organization?: string;
  scope?: string;
  purpose?: string;
  breakGlassReason?: string;
  tokenKind?: 'idp' | 'did';
  actorAuth?: AuthContext['actorAuth'];
  viaOrganization?: string;
}

/** The header a unit test sends instead of a bearer token (the real token path is tested in auth/ and test/). */
export function asCaller(c: TestCaller): [string, string] {
  return ['x-test-auth', Buffer.from(JSON.stringify(c)).toString('base64url')];
}

/** Stand-in for authenticate(): takes the caller from the x-test-auth header; none → 401. */
export const fakeAuthenticate: RequestHandler = (req, _res, next) => {
  const header = req.headers['x-test-auth'];
  if (typeof header !== 'string') {
    next(new AuthenticationError('Authentication required: send Authorization: Bearer <token>', undefined));
    return;
  }
  const c = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as TestCaller;
  req.auth = {
    subject: c.did ?? 'user-1',
    ...(c.did ? { did: c.did } : {}),
    role: c.role ?? 'practitioner',
    ...(c.organization ? { organization: c.organization } : {}),
    scopes: parseScopes(c.scope ?? 'user/*.*').scopes,
    ...(c.purpose ? { purposeOfUse: c.purpose } : {}),
    ...(c.breakGlassReason ? { breakGlassReason: c.breakGlassReason } : {}),
    tokenKind: c.tokenKind ?? 'idp',
    actorAuth: c.actorAuth ?? (c.viaOrganization ? 'delegated' : (c.tokenKind ?? 'idp')),
    ...(c.viaOrganization ? { viaOrganization: c.viaOrganization } : {}),
    // The registered kind of the DID, as the token verifier resolves it (the role of a DID token).
    ...(c.did ? { didKind: (c.role === 'admin' ? 'practitioner' : (c.role ?? 'practitioner')) as NonNullable<AuthContext['didKind']> } : {}),
    expiresAt: Math.floor(Date.now() / 1000) + 300,
  };
  next();
};
