/**
 * State access: canonical JSON marshalling, transaction time, key helpers and iteration.
 * LevelDB only: every lookup is by key, key range or composite key.
 */
import canonicalize from 'canonicalize';
import type { Context } from 'fabric-contract-api';
import { invalid } from './errors';

type KV = { key: string; value: Uint8Array };
type StateIterator = { next(): Promise<{ value?: KV; done?: boolean }>; close(): Promise<void> };

/** RFC 8785 canonical JSON. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) {
    throw new Error('value cannot be serialized as JSON');
  }
  return text;
}

export function marshal(value: unknown): Uint8Array {
  return Buffer.from(canonicalJson(value), 'utf8');
}

export function unmarshal<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
}

export async function readState<T>(ctx: Context, key: string): Promise<T | undefined> {
  const bytes = await ctx.stub.getState(key);
  return bytes && bytes.length > 0 ? unmarshal<T>(bytes) : undefined;
}

export async function writeState(ctx: Context, key: string, value: unknown): Promise<void> {
  await ctx.stub.putState(key, marshal(value));
}

/** Index entries carry a small value: an empty value would be a delete in Fabric. */
export const INDEX_MARKER: Uint8Array = Buffer.from([0]);

/** Transaction time as a FHIR instant with millisecond precision (`2024-01-02T03:04:05.678Z`). */
export function txInstant(ctx: Context): string {
  const { seconds, nanos } = txTimeParts(ctx);
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6)).toISOString();
}

/** Transaction time as a fixed-width, lexically sortable key with nanosecond precision. */
export function txTimeKey(ctx: Context): string {
  const { seconds, nanos } = txTimeParts(ctx);
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}Z`;
}

/** Transaction time in whole seconds since the epoch. */
export function txEpochSeconds(ctx: Context): number {
  return txTimeParts(ctx).seconds;
}

function txTimeParts(ctx: Context): { seconds: number; nanos: number } {
  const ts = ctx.stub.getTxTimestamp();
  const raw: unknown = ts.seconds;
  const seconds = typeof raw === 'number' ? raw : typeof raw === 'object' && raw !== null ? Number(String(raw)) : Number.NaN;
  if (!Number.isFinite(seconds)) {
    throw new Error('transaction timestamp is unavailable');
  }
  return { seconds, nanos: ts.nanos ?? 0 };
}

async function drain(iterator: StateIterator): Promise<KV[]> {
  const out: KV[] = [];
  try {
    for (;;) {
      const result = await iterator.next();
      if (result.value) {
        out.push({ key: result.value.key, value: result.value.value });
      }
      if (result.done || !result.value) {
        break;
      }
    }
  } finally {
    await iterator.close();
  }
  return out;
}

/** All entries under a partial composite key (for submit transactions: no pagination there). */
export async function scanPartial(ctx: Context, objectType: string, attributes: string[]): Promise<KV[]> {
  const iterator = (await ctx.stub.getStateByPartialCompositeKey(objectType, attributes)) as unknown as StateIterator;
  return drain(iterator);
}

export interface Page<T> {
  records: T[];
  fetchedRecordsCount: number;
  /** Pass back to get the next page; empty when there is no more. */
  bookmark: string;
}

export const MAX_PAGE_SIZE = 200;
export const DEFAULT_PAGE_SIZE = 50;

/** Parses a page size parameter ("" → default). */
export function parsePageSize(text: string | number | undefined): number {
  if (text === undefined || text === '') {
    return DEFAULT_PAGE_SIZE;
  }
  const n = typeof text === 'number' ? text : /^[0-9]{1,6}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw invalid(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  return n;
}

/**
 * One page under a partial composite key. Paginated queries are only allowed in read-only
 * (evaluate) transactions.
 */
export async function pagePartial(ctx: Context, objectType: string, attributes: string[], pageSize: number, bookmark: string): Promise<Page<KV>> {
  // Fabric's peer uses a non-empty bookmark as the start key without bounding it by the query's range,
  // so a bookmark from outside the prefix would read other keys (another patient's, for instance).
  const prefix = ctx.stub.createCompositeKey(objectType, attributes);
  if (bookmark !== '' && !bookmark.startsWith(prefix)) {
    throw invalid('bookmark does not belong to this query');
  }
  return pageOf(await ctx.stub.getStateByPartialCompositeKeyWithPagination(objectType, attributes, pageSize, bookmark));
}

/** A paginated query's response as a Page (the shim's metadata may be missing in older peers). */
async function pageOf(response: { iterator: unknown; metadata?: { fetchedRecordsCount?: number; bookmark?: string } }): Promise<Page<KV>> {
  const records = await drain(response.iterator as StateIterator);
  return {
    records,
    fetchedRecordsCount: response.metadata?.fetchedRecordsCount ?? records.length,
    bookmark: response.metadata?.bookmark ?? '',
  };
}

/** One page of a simple-key range [startKey, endKey). Read-only transactions only. */
export async function pageRange(ctx: Context, startKey: string, endKey: string, pageSize: number, bookmark: string): Promise<Page<KV>> {
  // As pagePartial: the peer does not bound a bookmark by [startKey, endKey).
  if (bookmark !== '' && (bookmark < startKey || bookmark >= endKey)) {
    throw invalid('bookmark does not belong to this query');
  }
  return pageOf(await ctx.stub.getStateByRangeWithPagination(startKey, endKey, pageSize, bookmark));
}

/** A bookmark parameter: opaque, but bounded. */
export function parseBookmark(text: string | undefined): string {
  const value = text ?? '';
  if (value.length > 2048) {
    throw invalid('bookmark is too long');
  }
  return value;
}
