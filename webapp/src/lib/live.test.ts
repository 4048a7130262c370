/**
 * The page's reader of the live access stream, against a stand-in for fetch that answers as the gateway's
 * GET /fhir/AuditEvent/$stream does (gateway/src/http/access-stream.ts; its own tests run it for real).
 */
import { expect } from 'chai';
import { decodeJwt } from 'jose';
import { followAccesses, type LiveState } from './live';
import { generatePatientKey } from './keys';

const CONFIG = { fhirBaseUrl: 'http://127.0.0.1:8080/fhir', mspId: 'Hospital1MSP' };

interface Call {
  url: string;
  headers: Record<string, string>;
}

/** A Response whose body is these SSE chunks, then (unless `open`) its end. */
function sse(chunks: string[], open = false): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      if (!open) controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

const access = (id: string, eventId: string): string => `id: ${id}\nevent: access\ndata: ${JSON.stringify({ resourceType: 'AuditEvent', id: eventId })}\n\n`;

describe('live access notifications in the page (fetch + eventsource-parser)', () => {
  it('sends a fresh bearer token each time, never in the URL, and resumes with Last-Event-ID after a drop', async () => {
    const { key } = await generatePatientKey();
    const calls: Call[] = [];
    const answers = [
      // First connection: ready at block 7, one entry, then the connection drops (split mid-event).
      sse(['retry: 10\n\nid: 7\nevent: ready\ndata: {"resumed":false}\n\n', access('7.0.0', 'a.0').slice(0, 20), access('7.0.0', 'a.0').slice(20)]),
      // Second: resumed, one more entry, and the stream stays open.
      sse(['event: ready\ndata: {"resumed":true}\n\n', access('9.1.0', 'b.0')], true),
    ];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      calls.push({ url, headers: init?.headers as Record<string, string> });
      const next = answers.shift();
      if (!next) throw new Error('no more answers');
      return next;
    }) as typeof fetch;
    const events: string[] = [];
    const readies: boolean[] = [];
    const states: LiveState[] = [];
    const stop = followAccesses(
      CONFIG,
      key,
      { onAccess: (e) => events.push(String(e.id)), onReady: (r) => readies.push(r), onState: (s) => states.push(s) },
      { fetch: fakeFetch, retryMs: 5 },
    );
    const deadline = Date.now() + 5_000;
    while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(events).to.deep.equal(['a.0', 'b.0']);
    expect(readies).to.deep.equal([false, true]);
    expect(calls).to.have.length(2);
    for (const c of calls) {
      expect(c.url).to.equal('../fhir/AuditEvent/$stream');
      expect(c.url).to.not.include('token');
      expect(c.headers.accept).to.equal('text/event-stream');
    }
    const [first, second] = calls.map((c) => c.headers.authorization?.replace(/^Bearer /, '') ?? '');
    expect(first).to.not.equal(second);
    const claims = decodeJwt(first ?? '');
    expect(claims).to.include({ iss: key.did, aud: CONFIG.fhirBaseUrl, scope: 'patient/AuditEvent.read' });
    expect(calls[0]?.headers['last-event-id']).to.equal(undefined);
    expect(calls[1]?.headers['last-event-id']).to.equal('7.0.0');
    expect(states).to.include('live');
  });

  it('reconnects at once when the gateway ends the stream at the token expiry, from the last position', async () => {
    const { key } = await generatePatientKey();
    const calls: Call[] = [];
    const answers = [
      sse(['retry: 60000\n\nid: 3\nevent: ready\ndata: {"resumed":false}\n\n', 'event: expired\ndata: {}\n\n']),
      sse(['event: ready\ndata: {"resumed":true}\n\n'], true),
    ];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      calls.push({ url, headers: init?.headers as Record<string, string> });
      return answers.shift() ?? sse([], true);
    }) as typeof fetch;
    const stop = followAccesses(CONFIG, key, { onAccess: () => undefined, onReady: () => undefined, onState: () => undefined }, { fetch: fakeFetch });
    const deadline = Date.now() + 2_000;
    while (calls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop();
    // Not after the server's one-minute retry: at once.
    expect(calls).to.have.length(2);
    expect(calls[1]?.headers['last-event-id']).to.equal('3');
  });

  it('stops, saying why, when the gateway refuses the caller (reconnecting cannot help)', async () => {
    const { key } = await generatePatientKey();
    let calls = 0;
    const fakeFetch = (async () => {
      calls += 1;
      return new Response(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ diagnostics: 'Live access notifications are for patients' }] }), { status: 403 });
    }) as typeof fetch;
    const done = new Promise<string>((resolve) => {
      followAccesses(
        CONFIG,
        key,
        {
          onAccess: () => undefined,
          onReady: () => undefined,
          onState: (s, detail) => {
            if (s === 'stopped') resolve(detail ?? '');
          },
        },
        { fetch: fakeFetch, retryMs: 5 },
      );
    });
    expect(await done).to.equal('Live access notifications are for patients');
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).to.equal(1);
  });

  it('an auditor’s stream carries an auditor’s scope, and hands on the break-glass AuditEvents it is sent', async () => {
    const { key } = await generatePatientKey();
    const calls: Call[] = [];
    const fakeFetch = (async (url: string, init?: RequestInit) => {
      calls.push({ url, headers: init?.headers as Record<string, string> });
      return sse(['id: 7\nevent: ready\ndata: {"resumed":false}\n\n', access('8.0.1', 'glass-1')], true);
    }) as typeof fetch;
    const got: string[] = [];
    const stop = followAccesses(
      CONFIG,
      key,
      { onAccess: (e) => got.push(String(e.id)), onReady: () => undefined, onState: () => undefined },
      { fetch: fakeFetch, scope: 'user/AuditEvent.read' },
    );
    const deadline = Date.now() + 2_000;
    while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(got).to.deep.equal(['glass-1']);
    expect(decodeJwt(calls[0]?.headers.authorization?.replace(/^Bearer /, '') ?? '')).to.include({ sub: key.did, scope: 'user/AuditEvent.read' });
  });
});
