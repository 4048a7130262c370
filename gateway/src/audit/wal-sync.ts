/**
 * Group sync of an SQLite WAL file, off the event loop (the outbox's durability, DURABILITY.md).
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

/**
 * Flushes a file's data (and the size needed to read it back) to disk. A plain descriptor opened for
 * the flush (Linux flushes the file's pages whichever descriptor wrote them), not a FileHandle: that
 * costs more JavaScript than the flush itself.
 */
export async function fdatasyncFile(file: string): Promise<void> {
  const fd = await open(file, 'r');
  try {
    await fdatasync(fd);
  } finally {
    await close(fd);
  }
}

export class WalSync {
  readonly #file: string;
  readonly #flush: (file: string) => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  /** Flushes started (for tests and the benchmark). */
  flushes = 0;

  /** `walFile`: the database file's `-wal` file; `flush` is fdatasyncFile except in tests. */
  constructor(walFile: string, flush: (file: string) => Promise<void> = fdatasyncFile) {
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

  #start(): Promise<void> {
    this.flushes += 1;
    const run = this.#flush(this.#file).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }
}
