import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { OperationOutcomeError } from '../errors';
import { jsonBody, type JsonBodyOptions, jsonDepth } from './body';

function appWith(opts: JsonBodyOptions = {}): express.Express {
  const app = express();
  app.use(jsonBody(opts));
  app.post('/echo', (req, res) => {
    res.json({ body: req.body as unknown, type: typeof req.body });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err instanceof OperationOutcomeError ? err : new OperationOutcomeError('INTERNAL', 'unexpected');
    res.status(e.status).json(e.outcome);
  });
  return app;
}

const FHIR = 'application/fhir+json';

/** POSTs raw bytes (supertest would re-serialize a Buffer sent as +json). */
async function rawPost(app: express.Express, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string }> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/echo', method: 'POST', headers: { ...headers, 'Content-Length': String(body.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.close();
  }
}

describe('http/body (bounded JSON body parser)', () => {
  it('parses application/fhir+json and application/json bodies', async () => {
    const patient = { resourceType: 'Patient', id: 'p1', name: [{ family: 'Quist', given: ['Ann'] }] };
    const a = await request(appWith()).post('/echo').set('Content-Type', FHIR).send(JSON.stringify(patient));
    expect(a.status).to.equal(200);
    expect(a.body.body).to.deep.equal(patient);
    const b = await request(appWith())
      .post('/echo')
      .set('Content-Type', 'application/json; charset=utf-8')
      .send(JSON.stringify([1, { a: '[{' }]));
    expect(b.body.body).to.deep.equal([1, { a: '[{' }]);
  });

  it('answers a 100 000-deep body with 400 INVALID naming the depth, not a crash', async () => {
    const bomb = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const res = await request(appWith()).post('/echo').set('Content-Type', FHIR).send(bomb);
    expect(res.status).to.equal(400);
    expect(res.body.resourceType).to.equal('OperationOutcome');
    expect(res.body.issue[0].code).to.equal('invalid');
    expect(res.body.issue[0].diagnostics).to.equal('The request body is nested more than 64 levels deep');
    const objects = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
    expect((await request(appWith()).post('/echo').set('Content-Type', 'application/json').send(objects)).status).to.equal(400);
  });

  it('accepts exactly maxDepth levels and refuses one more; brackets inside strings do not count', async () => {
    const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
    const app = appWith({ maxDepth: 5 });
    expect((await request(app).post('/echo').set('Content-Type', FHIR).send(deep(5))).status).to.equal(200);
    const over = await request(app).post('/echo').set('Content-Type', FHIR).send(deep(6));
    expect(over.status).to.equal(400);
    expect(over.body.issue[0].diagnostics).to.match(/more than 5 levels/);
    const tricky = JSON.stringify({ a: '[[[[[[[[[[{{{{{{{{\\"]]]' });
    expect((await request(app).post('/echo').set('Content-Type', FHIR).send(tricky)).status).to.equal(200);
  });

  it('400 for text that is not JSON, and for a top-level scalar', async () => {
    const bad = await request(appWith()).post('/echo').set('Content-Type', FHIR).send('{"a": ');
    expect(bad.status).to.equal(400);
    expect(bad.body.issue[0].diagnostics).to.equal('The request body is not valid JSON');
    const scalar = await request(appWith()).post('/echo').set('Content-Type', FHIR).send('"Patient"');
    expect(scalar.status).to.equal(400);
    expect(scalar.body.issue[0].diagnostics).to.match(/must be a JSON object/);
  });

  it('413 TOO_LARGE naming the limit, also for a compressed body that inflates past it', async () => {
    const app = appWith({ limit: '1kb' });
    const big = JSON.stringify({ resourceType: 'Patient', text: 'x'.repeat(2000) });
    const res = await request(app).post('/echo').set('Content-Type', FHIR).send(big);
    expect(res.status).to.equal(413);
    expect(res.body.issue[0].code).to.equal('too-long');
    expect(res.body.issue[0].diagnostics).to.equal('The request body is larger than 1kb');
    const zipped = await rawPost(app, { 'Content-Type': FHIR, 'Content-Encoding': 'gzip' }, gzipSync(Buffer.from(big)));
    expect(zipped.status).to.equal(413);
    expect(zipped.text).to.include('larger than 1kb');
  });

  it('leaves other media types alone, and an empty JSON body is {}', async () => {
    const jose = await request(appWith()).post('/echo').set('Content-Type', 'application/jose').send('a.b.c');
    expect(jose.status).to.equal(200);
    expect(jose.body.type).to.equal('undefined');
    const empty = await request(appWith()).post('/echo').set('Content-Type', FHIR).set('Content-Length', '0').send('');
    expect(empty.body.body).to.deep.equal({});
  });

  it('jsonDepth counts objects and arrays and stops past the maximum', () => {
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).to.equal(4);
    expect(jsonDepth('"[[["')).to.equal(0);
    expect(jsonDepth('["\\\\", ["x"]]')).to.equal(2);
    expect(jsonDepth('['.repeat(1_000_000), 10)).to.equal(11);
    expect(() => jsonBody({ maxDepth: 0 })).to.throw(/maxDepth/);
  });
});
