/**
 * Rebuilding the ledger view from the ledger alone (block 0 on) and comparing it with the live one.
 */
import * as fs from 'node:fs';
import { parseBlock } from './block-parser';
import { compareViews, type ViewComparison } from './compare';
import type { BlockSource } from './ledger-view';
import { ViewStore } from './view-store';

export interface RebuildOptions {
  readonly source: Pick<BlockSource, 'blockEvents'>;
  readonly channel: string;
  /** The chaincode's name. */
  readonly namespace: string;
  /** A new file for the rebuilt view (refused if it exists). */
  readonly file: string;
  /** Rebuild up to this height (blocks 0 … height − 1). */
  readonly height: bigint;
  /** Give up when the blocks do not arrive within this time (ms). Default 10 minutes. */
  readonly timeoutMs?: number;
}

/** A view built from block 0 up to `height`; the caller closes it. */
export async function rebuildView(options: RebuildOptions): Promise<ViewStore> {
  if (options.file !== ':memory:' && fs.existsSync(options.file)) throw new Error(`${options.file} exists: a rebuild writes a new file`);
  const store = new ViewStore(options.file, { channel: options.channel, namespace: options.namespace });
  try {
    if (options.height > 0n) {
      const stream = await options.source.blockEvents(0n);
      const timer = setTimeout(() => stream.close(), options.timeoutMs ?? 600_000);
      try {
        for await (const block of stream) {
          store.apply(parseBlock(block, options.namespace));
          if (store.height() >= options.height) break;
        }
      } finally {
        clearTimeout(timer);
        stream.close();
      }
      if (store.height() < options.height) throw new Error(`the rebuild stopped at height ${store.height()}, before ${options.height}`);
    }
    return store;
  } catch (err) {
    store.close();
    throw err;
  }
}

/**
 * Reads the live view (one consistent snapshot, even while a gateway is applying blocks to it),
 * rebuilds a view from block 0 to the same height in `workFile`, compares them row for row, and
 * deletes the work file.
 */
export async function rebuildAndCompare(options: Omit<RebuildOptions, 'file' | 'height'> & { liveFile: string; workFile: string }): Promise<ViewComparison> {
  const live = new ViewStore(options.liveFile, { channel: options.channel, namespace: options.namespace, readonly: true });
  let snapshot;
  try {
    snapshot = live.snapshot();
  } finally {
    live.close();
  }
  const rebuilt = await rebuildView({ ...options, file: options.workFile, height: snapshot.height });
  try {
    return compareViews(snapshot, rebuilt.snapshot());
  } finally {
    rebuilt.close();
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${options.workFile}${suffix}`, { force: true });
  }
}
