import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { newLogger } from '../logger';
import { sendStreamedBundle } from './respond';

/** An app answering GET / with a streamed Bundle of the entries `make` yields. */
async function serve(make: () => AsyncIterable<object>): Promise<{ port: number; close: () => void; done: Promise<void> }> {
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const app = express();
  app.get('/', (_req, res, next) => {
    sendStreamedBundle(res, 200, { resourceType: 'Bundle', type: 'batch-response' }, make(), newLogger('silent'))
      .then(finished)
      .catch((err: unknown) => {
        finished();
        next(err);
      });
  });
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: err.message });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { port: (server.address() as AddressInfo).port, close: () => server.close(), done };
}

function get(port: number, onResponse?: (res: http.IncomingMessage, req: http.ClientRequest) => void): Promise<{ status: number; body: string; complete: boolean }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, complete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, complete: false }));
      onResponse?.(res, req);
    });
    req.on('error', () => resolve({ status: 0, body: '', complete: false }));
  });
}

describe('sendStreamedBundle: a Bundle answer written entry by entry', () => {
  it('writes the fields and every entry as one JSON Bundle, in order (none: an empty entry array)', async () => {
    const s = await serve(async function* () {
      for (let i = 0; i < 1000; i++) yield { response: { status: '201 Created' }, n: i, text: 'x'.repeat(200) };
    });
    const res = await get(s.port);
    s.close();
    expect(res.status).to.equal(200);
    const bundle = JSON.parse(res.body) as { resourceType: string; type: string; entry: Array<{ n: number }> };
    expect(bundle.type).to.equal('batch-response');
    expect(bundle.entry.map((e) => e.n)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i));
    const none = await serve(async function* () {
      // Nothing to answer.
      yield* [];
    });
    expect(JSON.parse((await get(none.port)).body)).to.deep.equal({ resourceType: 'Bundle', type: 'batch-response', entry: [] });
    none.close();
  });

  it('a failure before the first entry is answered as any error; one after it cuts the answer short', async () => {
    // Fails when the first entry is asked for.
    const early = await serve(() => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('before anything')) }) }));
    const first = await get(early.port);
    early.close();
    expect(first.status).to.equal(500);
    expect(JSON.parse(first.body)).to.deep.equal({ error: 'before anything' });

    const late = await serve(async function* () {
      yield { n: 1 };
      throw new Error('midway');
    });
    const second = await get(late.port);
    late.close();
    // The connection is closed: the client never gets a complete Bundle (nor, if nothing was flushed yet, any answer).
    expect(second.complete).to.equal(false);
    expect(() => JSON.parse(second.body) as unknown).to.throw(SyntaxError);
  });

  it('asks for no further entry once the client has gone away (a batch processes no further window)', async () => {
    let asked = 0;
    let returned = false;
    const s = await serve(async function* () {
      try {
        for (;;) {
          asked++;
          // Each entry large enough that the socket's buffers fill and the writer waits for the client.
          yield { n: asked, text: 'y'.repeat(64 * 1024) };
          await new Promise((r) => setTimeout(r, 1));
        }
      } finally {
        returned = true;
      }
    });
    await get(s.port, (res, req) => {
      res.once('data', () => req.destroy());
    });
    await s.done;
    s.close();
    const at = asked;
    await new Promise((r) => setTimeout(r, 50));
    expect(returned).to.equal(true);
    expect(asked).to.equal(at);
    expect(asked).to.be.lessThan(1000);
  });
});
