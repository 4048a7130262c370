import { expect } from 'chai';
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';
import { createRateLimiters, identityKeyOf, type RateLimitOptions } from './rate-limit';

/** A stand-in authenticate(): the caller named in x-who (`did:…` or `idp:…`), none → no req.auth. */
function fakeAuth(req: Request, _res: Response, next: NextFunction): void {
  const who = req.headers['x-who'];
  if (typeof who === 'string') {
    const [kind, id = ''] = who.split('|');
    req.auth = {
      subject: id,
      ...(kind === 'did' ? { did: id } : {}),
      role: 'practitioner',
      scopes: [],
      tokenKind: kind === 'did' ? 'did' : 'idp',
      actorAuth: kind === 'did' ? 'did' : 'idp',
      expiresAt: 0,
    } as AuthContext;
  }
  next();
}

function appWith(opts: RateLimitOptions): express.Express {
  const { beforeAuth, afterAuth } = createRateLimiters(opts);
  const app = express();
  app.use(beforeAuth, fakeAuth, afterAuth);
  app.get('/x', (_req, res) => {
    res.json({ ok: true });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err instanceof OperationOutcomeError ? err : new OperationOutcomeError('INTERNAL', 'unexpected');
    res.status(e.status).type('application/fhir+json').send(JSON.stringify(e.outcome));
  });
  return app;
}

describe('http/rate-limit (per identity, per IP before authentication)', () => {
  it('429 as a FHIR OperationOutcome (throttled) with Retry-After once an identity passes its limit', async () => {
    const app = appWith({ perIdentity: 2, perIp: 100 });
    const dr = 'did|did:hdx:dr';
    const first = await request(app).get('/x').set('x-who', dr);
    expect(first.status).to.equal(200);
    expect(first.headers.ratelimit).to.equal('limit=2, remaining=1, reset=60');
    expect(first.headers['ratelimit-policy']).to.equal('2;w=60');
    expect((await request(app).get('/x').set('x-who', dr)).status).to.equal(200);
    const third = await request(app).get('/x').set('x-who', dr);
    expect(third.status).to.equal(429);
    expect(third.headers['content-type']).to.match(/^application\/fhir\+json/);
    expect(third.headers['retry-after']).to.match(/^\d+$/);
    const outcome = JSON.parse(third.text);
    expect(outcome.resourceType).to.equal('OperationOutcome');
    expect(outcome.issue[0]).to.deep.include({ severity: 'error', code: 'throttled' });
    expect(outcome.issue[0].details.coding[0].code).to.equal('TOO_MANY_REQUESTS');
    expect(outcome.issue[0].diagnostics).to.match(/at most 2 per 60 s for one caller/);
  });

  it('counts each identity on its own: another DID or an IdP subject is not slowed by the first', async () => {
    const app = appWith({ perIdentity: 1, perIp: 100 });
    expect((await request(app).get('/x').set('x-who', 'did|did:hdx:a')).status).to.equal(200);
    expect((await request(app).get('/x').set('x-who', 'did|did:hdx:a')).status).to.equal(429);
    expect((await request(app).get('/x').set('x-who', 'did|did:hdx:b')).status).to.equal(200);
    expect((await request(app).get('/x').set('x-who', 'idp|did:hdx:a')).status).to.equal(200);
  });

  it('before authentication, counts by IP: unauthenticated floods stop at perIp', async () => {
    const app = appWith({ perIdentity: 100, perIp: 3 });
    for (let i = 0; i < 3; i++) expect((await request(app).get('/x')).status).to.equal(200);
    const res = await request(app).get('/x').set('x-who', 'did|did:hdx:c');
    expect(res.status).to.equal(429);
    expect(JSON.parse(res.text).issue[0].diagnostics).to.match(/at most 3 per 60 s from one address/);
  });

  it('keys: did:<DID> for DID tokens (the practitioner for a delegated token), idp:<sub> for IdP tokens; options are checked', () => {
    const base = { role: 'practitioner' as const, scopes: [], expiresAt: 0 };
    expect(identityKeyOf({ ...base, subject: 'did:hdx:org', did: 'did:hdx:dr', tokenKind: 'did', actorAuth: 'delegated', viaOrganization: 'did:hdx:org' })).to.equal(
      'did:did:hdx:dr',
    );
    expect(identityKeyOf({ ...base, subject: 'dr-house', did: 'did:hdx:dr', tokenKind: 'idp', actorAuth: 'idp' })).to.equal('idp:dr-house');
    expect(() => createRateLimiters({ perIdentity: 0 })).to.throw(/perIdentity/);
    expect(() => createRateLimiters({ windowMs: 1.5 })).to.throw(/windowMs/);
  });
});
