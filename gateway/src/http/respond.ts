/** Writing FHIR answers: shared by the route adapters of http/. */
import type { Response } from 'express';
import type { Logger } from 'pino';
import type { Resource } from '../model/resource';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** A resource (or Bundle, OperationOutcome, Parameters) as application/fhir+json. */
export function sendResource(res: Response, status: number, resource: unknown): void {
  res.status(status).type(FHIR_JSON).send(JSON.stringify(resource));
}

/** ETag and Last-Modified of the version a resource carries. */
export function versionHeaders(res: Response, resource: Resource): void {
  const m = resource.meta as { versionId?: string; lastUpdated?: string } | undefined;
  if (m?.versionId) res.setHeader('ETag', `W/"${m.versionId}"`);
  if (m?.lastUpdated) res.setHeader('Last-Modified', new Date(m.lastUpdated).toUTCString());
}

/** Resolves once `res` may take more (drain) or is gone (close): true if it may be written to. */
function writable(res: Response): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean) => (): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/**
 * A Bundle whose entries come one at a time (a batch or transaction answer): its other fields, then
 * each entry written as it comes, with the response's own backpressure, so the answer is never built
 * whole. The first entry is awaited before anything is sent, so a failure before it is answered as any
 * error (the error handler's OperationOutcome). A failure after that can only cut the answer short: it
 * is logged and the connection closed, and the client sees an incomplete body. When the client goes
 * away, no further entry is asked for (a batch processes no further window).
 */
export async function sendStreamedBundle(res: Response, status: number, fields: Readonly<Record<string, unknown>>, entries: AsyncIterable<object>, log: Logger): Promise<void> {
  const it = entries[Symbol.asyncIterator]();
  let next = await it.next();
  const head = JSON.stringify(fields);
  res.status(status).type(FHIR_JSON);
  res.write(`${head.slice(0, -1)}${head === '{}' ? '' : ','}"entry":[`);
  let first = true;
  try {
    while (next.done !== true) {
      const more = !res.destroyed && res.write(`${first ? '' : ','}${JSON.stringify(next.value)}`);
      first = false;
      // The client is gone (or goes while the answer waits to drain): no further entry is asked for.
      if (!more && (res.destroyed || !(await writable(res)))) {
        await it.return?.(undefined);
        return;
      }
      next = await it.next();
    }
  } catch (err) {
    log.error({ err }, 'internal error while a Bundle answer was being sent; the answer was cut short');
    res.destroy();
    return;
  }
  res.end(']}');
}
