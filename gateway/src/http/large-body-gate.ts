/**
 * Admission of large request bodies. The custodian's own feeds may send a whole EHR export in one
 * transaction (up to FEED_BODY_LIMIT, 20,000 entries), and such a body is held whole while it is
 * validated, indexed and anchored: a 40 MB transaction of 20,000 Observations took the process from
 * 274 MB to a 1.19 GB peak (measured with the fake ledger). So at most `inFlight` bodies larger than
 * the common limit (or of unknown length) are read and processed at a time per process; the next ones
 * wait their turn, at most `queue` of them for at most `waitMs`, and any beyond that get a 503 with
 * Retry-After before their body is read. Against whom: a compromised or runaway feed (or staff token)
 * sending many large bodies at once, which would otherwise exhaust the gateway's memory and stop it
 * for everyone.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { OperationOutcomeError } from '../errors';

export interface LargeBodyGateOptions {
  /** Bodies above this many bytes (Content-Length), or without a stated length, are large. */
  readonly thresholdBytes: number;
  /** Large bodies processed at once (default 2). */
  readonly inFlight?: number;
  /** Large bodies waiting for a turn (default 8); one more is refused at once. */
  readonly queue?: number;
  /** Longest wait for a turn, ms (default 120,000); then refused. */
  readonly waitMs?: number;
}

/** Seconds a refused sender is told to wait before trying again. */
const RETRY_AFTER_SECONDS = 5;

export class LargeBodyGate {
  readonly #threshold: number;
  readonly #inFlight: number;
  readonly #queue: number;
  readonly #waitMs: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(options: LargeBodyGateOptions) {
    this.#threshold = options.thresholdBytes;
    this.#inFlight = Math.max(1, options.inFlight ?? 2);
    this.#queue = Math.max(0, options.queue ?? 8);
    this.#waitMs = options.waitMs ?? 120_000;
  }

  /** Large bodies being processed, and waiting. */
  get state(): { running: number; waiting: number } {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  /** Whether a request's body is large: above the threshold, or of unknown length (chunked). */
  isLarge(req: Request): boolean {
    const length = req.headers['content-length'];
    if (length === undefined) return req.headers['transfer-encoding'] !== undefined;
    const n = Number(length);
    return !Number.isFinite(n) || n > this.#threshold;
  }

  /** Middleware: passes small bodies through; a large one waits for a turn, held until its response ends. */
  readonly admit: RequestHandler = (req: Request, res: Response, next: NextFunction): void => {
    if (!this.isLarge(req)) {
      next();
      return;
    }
    const start = (): void => {
      this.#running += 1;
      let released = false;
      res.on('close', () => {
        if (released) return;
        released = true;
        this.#release();
      });
      next();
    };
    if (this.#running < this.#inFlight) {
      start();
      return;
    }
    if (this.#waiting.length >= this.#queue) {
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      next(this.#busy());
      return;
    }
    const turn = (): void => {
      clearTimeout(timer);
      start();
    };
    this.#waiting.push(turn);
    const timer = setTimeout(() => {
      const at = this.#waiting.indexOf(turn);
      if (at < 0) return;
      this.#waiting.splice(at, 1);
      res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      next(this.#busy());
    }, this.#waitMs);
    // A sender that gives up while waiting (its connection closes) leaves the queue.
    res.on('close', () => {
      const at = this.#waiting.indexOf(turn);
      if (at >= 0) {
        this.#waiting.splice(at, 1);
        clearTimeout(timer);
      }
    });
  };

  #release(): void {
    this.#running -= 1;
    const next = this.#waiting.shift();
    if (next) next();
  }

  #busy(): OperationOutcomeError {
    return new OperationOutcomeError(
      'UNAVAILABLE',
      `This gateway is processing as many large bodies (over ${Math.round(this.#threshold / 1_000_000)} MB) as it takes at once, with ${this.#queue} more waiting: retry in ${RETRY_AFTER_SECONDS} s, or send smaller Bundles`,
    );
  }
}
