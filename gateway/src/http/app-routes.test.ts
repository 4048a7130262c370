import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { testStore } from '../test-support/test-store';
import { FakeLedger } from '../test-support/fake-ledger';
import { testApp } from '../test-support/test-app';

describe('/app: the patient web app', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hdx-webapp-'));
    mkdirSync(path.join(dir, 'assets'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>HDX</title><script type="module" src="/app/assets/index-abc.js"></script>');
    writeFileSync(path.join(dir, 'assets', 'index-abc.js'), 'console.log("hdx")');
    writeFileSync(path.join(dir, '.secret'), 'not served');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const app = (webappDir: string) => testApp({ store: testStore(), ledger: new FakeLedger(), baseUrl: 'https://h1.example/fhir', webappDir }).app;

  it('serves the built app at /app/ with a strict content security policy, and /app redirects to /app/', async () => {
    const a = app(dir);
    const redirect = await request(a).get('/app?x=1');
    expect(redirect.status).to.equal(301);
    expect(redirect.headers.location).to.equal('/app/?x=1');
    const page = await request(a).get('/app/');
    expect(page.status).to.equal(200);
    expect(page.headers['content-type']).to.match(/^text\/html/);
    expect(page.text).to.include('<title>HDX</title>');
    expect(page.headers['content-security-policy']).to.include("script-src 'self'");
    expect(page.headers['content-security-policy']).to.include("frame-ancestors 'none'");
    expect(page.headers['x-content-type-options']).to.equal('nosniff');
    expect(page.headers['cache-control']).to.equal('no-cache');
    const asset = await request(a).get('/app/assets/index-abc.js');
    expect(asset.status).to.equal(200);
    expect(asset.headers['cache-control']).to.include('immutable');
  });

  it("tells the page the gateway's FHIR base URL (the token audience) and member", async () => {
    const res = await request(app(dir)).get('/app/config.json');
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ fhirBaseUrl: 'https://h1.example/fhir', mspId: 'Hospital1MSP' });
  });

  it('answers anything else under /app, dotfiles and paths out of the folder with a 404 OperationOutcome', async () => {
    for (const p of ['/app/missing.js', '/app/.secret', '/app/%2e%2e/package.json', '/app/../gateway/package.json']) {
      const res = await request(app(dir)).get(p);
      expect(res.status, p).to.equal(404);
      expect(res.body.resourceType, p).to.equal('OperationOutcome');
      expect(res.text, p).to.not.include('not served');
    }
  });

  it('says how to build it when the app is not built, with a 404 OperationOutcome (never a 500)', async () => {
    const res = await request(app(path.join(dir, 'nowhere'))).get('/app/');
    expect(res.status).to.equal(404);
    expect(res.body.issue[0].diagnostics).to.include('npm run build');
    // The FHIR API is unaffected.
    expect((await request(app(path.join(dir, 'nowhere'))).get('/fhir/metadata')).status).to.equal(200);
  });
});
