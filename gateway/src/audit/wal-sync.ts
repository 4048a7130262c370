/**
 * Group sync of an SQLite WAL file, off the event loop (the async audit outbox's durability: gateway/README.md).
 *
 * With `synchronous = FULL` an SQLite commit in WAL mode writes its frames to the `-wal` file and then
 * fsyncs it, inside the synchronous better-sqlite3 call: the event loop stops for the whole disk flush
 * (1–3 ms on this machine), once per group commit of the outbox. With `synchronous = NORMAL` the commit
 * writes the same frames and returns without the flush; `durable()` then flushes the file (fdatasync,
 * on libuv's thread pool) and resolves only when the flush is done, so a commit that returned before
 * `durable()` was called is on disk when it resolves: the guarantee FULL gives, while the event loop
 * serves other requests. One flush runs at a time; the callers that arrive meanwhile share the next
 * one (a flush that started before their commit returned would not cover it).
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

const open = promisify(fs.open);
const fdatasync = promisify(fs.fdatasync);
const close = promisify(fs.close);

export class WalSync {
  readonly #file: string;
  readonly #flush: ((file: string) => Promise<void>) | undefined;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  /** The WAL file's descriptor, opened at the first flush and kept until close(). */
  #fd: number | undefined;
  /** Flushes started (for tests and the benchmark). */
  flushes = 0;

  /**
   * `walFile`: the database file's `-wal` file, which SQLite keeps (same file, truncated and rewritten,
   * never unlinked) while the connection that writes it is open: its descriptor stays valid until
   * close(), called before that connection closes. `flush` replaces the fdatasync (tests).
   */
  constructor(walFile: string, flush?: (file: string) => Promise<void>) {
    this.#file = walFile;
    this.#flush = flush;
  }

  /** Resolves once a flush of the WAL file that started after this call has finished (rejects when it fails). */
  durable(): Promise<void> {
    if (this.#running === undefined) return this.#start();
    this.#next ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#next = undefined;
        return this.#start();
      });
    return this.#next;
  }

  /** Waits for the flushes asked for, then closes the descriptor. */
  async close(): Promise<void> {
    await this.#next?.catch(() => undefined);
    await this.#running?.catch(() => undefined);
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) await close(fd);
  }

  async #fdatasync(): Promise<void> {
    this.#fd ??= await open(this.#file, 'r');
    await fdatasync(this.#fd);
  }

  #start(): Promise<void> {
    this.flushes += 1;
    const run = (this.#flush ? this.#flush(this.#file) : this.#fdatasync()).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }
}
