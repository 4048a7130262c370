import { expect } from 'chai';
import express from 'express';
import type { AddressInfo } from 'node:net';
import * as http from 'node:http';
import { LargeBodyGate } from './large-body-gate';
import { OperationOutcomeError } from '../errors';

/** An app whose handler holds each admitted request until released, so the gate's turns can be seen. */
function held(gate: LargeBodyGate): { app: express.Express; release: () => void; admitted: () => number } {
  const app = express();
  let admitted = 0;
  const waiting: Array<() => void> = [];
  app.post('/', gate.admit, (req, res) => {
    admitted += 1;
    req.resume();
    waiting.push(() => res.status(200).end('done'));
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const e = err as OperationOutcomeError;
    res.status(e.status).json({ code: e.code, diagnostics: e.message });
  });
  return { app, release: () => waiting.shift()?.(), admitted: () => admitted };
}

function send(port: number, bytes: number, headers: Record<string, string> = {}): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'content-length': String(bytes), ...headers } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(Buffer.alloc(bytes, 32));
  });
}

const until = async (probe: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(probe()).to.equal(true);
};

describe('http/large-body-gate', () => {
  let server: http.Server | undefined;
  afterEach(() => server?.close());
  const listen = (app: express.Express): Promise<number> =>
    new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port));
      server = s;
    });

  it('lets small bodies through at once, runs large ones one turn at a time, and refuses one beyond the queue with 503 and Retry-After', async () => {
    const gate = new LargeBodyGate({ thresholdBytes: 1000, inFlight: 1, queue: 1 });
    const { app, release, admitted } = held(gate);
    const port = await listen(app);
    const small = send(port, 10);
    const first = send(port, 5000);
    await until(() => admitted() === 2 && gate.state.running === 1);
    const second = send(port, 5000);
    await until(() => gate.state.waiting === 1);
    const third = await send(port, 5000);
    expect(third.status).to.equal(503);
    expect(third.retryAfter).to.equal('5');
    expect(JSON.parse(third.body).diagnostics).to.match(/retry in 5 s, or send smaller Bundles/);
    expect(admitted()).to.equal(2);
    release(); // the small one
    release(); // the first large one: the second gets its turn
    expect((await small).status).to.equal(200);
    expect((await first).status).to.equal(200);
    await until(() => admitted() === 3);
    release();
    expect((await second).status).to.equal(200);
    expect(gate.state).to.deep.equal({ running: 0, waiting: 0 });
  });

  it('treats a body of unknown length (chunked) as large, and refuses a wait that outlasts waitMs', async () => {
    const gate = new LargeBodyGate({ thresholdBytes: 1000, inFlight: 1, queue: 4, waitMs: 50 });
    const { app, release, admitted } = held(gate);
    const port = await listen(app);
    const first = send(port, 5000);
    await until(() => admitted() === 1);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end('x');
    });
    expect(chunked).to.equal(503);
    release();
    expect((await first).status).to.equal(200);
    expect(gate.state).to.deep.equal({ running: 0, waiting: 0 });
  });
});
