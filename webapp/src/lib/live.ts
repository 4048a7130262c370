/**
 * Live access notifications: the gateway's `GET /fhir/AuditEvent/$stream` (server-sent events of each
 * access entry about the patient or their wards, as its block commits; for an auditor, each break-glass
 * access), read with fetch() and a
 * streaming body reader, because the browser's EventSource cannot send an Authorization header and a
 * token must never go into a URL. Each connection carries a fresh single-use DID token; after a drop, or
 * when the gateway ends the stream at the token's expiry, it reconnects with `Last-Event-ID` so no entry
 * is missed (the gateway replays from that ledger position). Events are parsed with eventsource-parser.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { fhirPath, type AppConfig } from './api';
import { didToken, type PatientKey } from './keys';
import type { AccessRow } from './audit';

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/** The live access stream as the pages see it. */
export interface Live {
  state: LiveState;
  detail: string;
  /** Entries that arrived on the stream, newest first. */
  rows: AccessRow[];
  /** Counts fresh (not resumed) connections: the history is loaded again after each. */
  epoch: number;
}

export interface LiveHandlers {
  /** A new access entry (a FHIR AuditEvent). */
  onAccess(event: Record<string, unknown>): void;
  /** The stream is connected; `resumed` when it continues after a Last-Event-ID (nothing was missed). */
  onReady(resumed: boolean): void;
  onState(state: LiveState, detail?: string): void;
}

export interface LiveOptions {
  /** Replaces fetch (tests). */
  readonly fetch?: typeof fetch;
  /** First pause before reconnecting (doubles up to 30 s; the server's `retry:` sets it). */
  readonly retryMs?: number;
  readonly tokenTtlSec?: number;
  /** The token's scope: a patient's `patient/AuditEvent.read` (the default), an auditor's `user/AuditEvent.read`. */
  readonly scope?: string;
}

/**
 * Statuses after which reconnecting at once cannot help (the DID is not registered yet, the caller is not
 * a patient, the scope is missing): the stream stops and says why; the app tries again later.
 */
const FATAL = new Set([400, 401, 403, 404]);

async function problemText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { issue?: Array<{ diagnostics?: string }> };
    const text = body.issue?.map((i) => i.diagnostics).find(Boolean);
    if (text) return text;
  } catch {
    // not an OperationOutcome
  }
  return `The gateway answered ${res.status}.`;
}

/**
 * Follows the patient's access stream until the returned function is called (then it reports nothing
 * more), or until the gateway refuses the caller (`stopped`, with the gateway's reason).
 */
export function followAccesses(config: AppConfig, key: PatientKey, handlers: LiveHandlers, options: LiveOptions = {}): () => void {
  const abort = new AbortController();
  const doFetch = options.fetch ?? fetch.bind(globalThis);
  let lastId: string | undefined;
  let retryMs = options.retryMs ?? 3_000;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });

  const run = async (): Promise<void> => {
    let failures = 0;
    while (!abort.signal.aborted) {
      handlers.onState(lastId === undefined ? 'connecting' : 'reconnecting');
      let expired = false;
      try {
        const token = await didToken(key, config.fhirBaseUrl, options.scope ?? 'patient/AuditEvent.read', { ttlSec: options.tokenTtlSec ?? 300 });
        const res = await doFetch(fhirPath(config, '/AuditEvent/$stream'), {
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastId !== undefined ? { 'last-event-id': lastId } : {}) },
          cache: 'no-store',
          signal: abort.signal,
        });
        if (!res.ok || !res.body) {
          const text = await problemText(res);
          if (FATAL.has(res.status)) {
            handlers.onState('stopped', text);
            return;
          }
          throw new Error(text);
        }
        const parser = createParser({
          onEvent: (m: EventSourceMessage) => {
            if (m.id !== undefined) lastId = m.id;
            if (m.event === 'ready') {
              failures = 0;
              handlers.onState('live');
              handlers.onReady((JSON.parse(m.data) as { resumed?: boolean }).resumed === true);
            } else if (m.event === 'access') {
              handlers.onAccess(JSON.parse(m.data) as Record<string, unknown>);
            } else if (m.event === 'expired') {
              expired = true;
            }
          },
          onRetry: (ms: number) => {
            retryMs = ms;
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch (err) {
        if (abort.signal.aborted) break;
        failures += 1;
        handlers.onState('reconnecting', err instanceof Error ? err.message : String(err));
      }
      if (abort.signal.aborted) break;
      // The token's end closes the stream on purpose: reconnect at once; otherwise back off.
      if (!expired) await sleep(Math.min(30_000, retryMs * 2 ** Math.max(0, failures - 1)));
    }
  };
  void run();
  return () => abort.abort();
}
