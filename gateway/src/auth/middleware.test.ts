import { expect } from 'chai';
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { OperationOutcomeError } from '../errors';
import { generateDidKey } from './did-key';
import { wwwAuthenticateOf } from './errors';
import { signDidToken } from './issue';
import { authenticate, requireAuth } from './middleware';
import { MemoryJtiStore } from './replay';
import { requireScope } from './scopes';
import { fakeResolver, resolutionOf } from './test-support/fixtures';

const BASE = 'http://127.0.0.1:8080/fhir';

/** An app shaped like http/app.ts: authenticate on /fhir, handlers check scopes, one error handler. */
function appWith(resolver = fakeResolver()) {
  const app = express();
  app.get('/open', (_req, res) => {
    res.json({ open: true });
  });
  const fhir = express.Router();
  fhir.use(authenticate({ audience: BASE, mspId: 'Hospital1MSP', resolveDid: resolver, jtiStore: new MemoryJtiStore() }));
  fhir.get('/:type/:id', (req: Request<{ type: string; id: string }>, res) => {
    const auth = requireAuth(req);
    const scope = requireScope(auth, req.params.type, 'read');
    res.json({ subject: auth.subject, role: auth.role, grantedBy: scope.text });
  });
  app.use('/fhir', fhir);
  app.get('/unguarded', (req, res) => {
    res.json(requireAuth(req));
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err instanceof OperationOutcomeError ? err : new OperationOutcomeError('INTERNAL', 'Internal error');
    const header = wwwAuthenticateOf(e);
    if (header) res.setHeader('WWW-Authenticate', header);
    res.status(e.status).type('application/fhir+json').send(JSON.stringify(e.outcome));
  });
  return app;
}

describe('auth/middleware', () => {
  const key = generateDidKey();
  const token = (scope = 'patient/*.read'): string => signDidToken({ key: key.privateJwk, audience: BASE, scope, purposeOfUse: 'TREAT' });

  it('sets req.auth for a valid token', async () => {
    const res = await request(appWith(fakeResolver(resolutionOf(key))))
      .get('/fhir/Patient/1')
      .set('Authorization', `Bearer ${token()}`);
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ subject: key.did, role: 'patient', grantedBy: 'patient/*.read' });
  });

  it('401 OperationOutcome with WWW-Authenticate when the header is missing', async () => {
    const res = await request(appWith()).get('/fhir/Patient/1');
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.equal('Bearer realm="hdx"');
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(res.body.issue[0].code).to.equal('login');
    expect(res.body.issue[0].details.coding[0].code).to.equal('UNAUTHENTICATED');
  });

  it('401 with error="invalid_token" for a token that does not verify, without echoing it', async () => {
    const good = token();
    const at = good.length - 20; // inside the signature (the last character carries padding bits only)
    const bad = `${good.slice(0, at)}${good[at] === 'A' ? 'B' : 'A'}${good.slice(at + 1)}`;
    const res = await request(appWith(fakeResolver(resolutionOf(key))))
      .get('/fhir/Patient/1')
      .set('Authorization', `Bearer ${bad}`);
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.match(/^Bearer realm="hdx", error="invalid_token", error_description="The token signature does not verify"$/);
    expect(res.text).to.not.include(bad.split('.')[1] ?? 'x');
  });

  it('403 insufficient_scope naming the scope that is missing', async () => {
    const res = await request(appWith(fakeResolver(resolutionOf(key))))
      .get('/fhir/Observation/1')
      .set('Authorization', `Bearer ${token('patient/Patient.read')}`);
    expect(res.status).to.equal(403);
    expect(res.headers['www-authenticate']).to.equal('Bearer realm="hdx", error="insufficient_scope", scope="patient/Observation.read"');
    expect(res.body.issue[0].code).to.equal('forbidden');
    expect(res.body.issue[0].diagnostics).to.include('patient/Observation.read');
  });

  it('503 (not 401) when the ledger cannot resolve the DID', async () => {
    const down = Object.assign(async () => Promise.reject(new OperationOutcomeError('UNAVAILABLE', 'The ledger is unavailable')), { calls: [] });
    const res = await request(appWith(down)).get('/fhir/Patient/1').set('Authorization', `Bearer ${token()}`);
    expect(res.status).to.equal(503);
    expect(res.headers['www-authenticate']).to.equal(undefined);
  });

  it('leaves routes it is not mounted on alone; requireAuth there is a 401', async () => {
    expect((await request(appWith()).get('/open')).status).to.equal(200);
    const res = await request(appWith()).get('/unguarded');
    expect(res.status).to.equal(401);
  });

  it('checks its options when it is created', () => {
    expect(() => authenticate({ audience: BASE })).to.throw(/configure an identity provider/);
  });
});
