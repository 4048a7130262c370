/**
 * Packed index rows (issue 11): an index keeps ONE key per (index value…, transaction) whose value lists
 * the members that transaction filed under it, instead of one key per member. The Node shim sends a
 * transaction's state requests to the peer one at a time, so every key written is a round trip on every
 * endorser: an AnchorBatch of 500 anchors of one patient writes one index row, not 500 index keys.
 *
 * Writing: a transaction's rows are accumulated in memory (`packedRows`) and written by `flush`. Fabric
 * reads do not see the transaction's own writes, and a second putState of a key replaces the first, so a
 * row is only ever written from the complete list the transaction holds: a second flush rewrites the
 * whole row, never a part of it.
 *
 * Reading: rows come in key order, and a page counts MEMBERS, not rows, so a page can end inside a row;
 * its bookmark then names the row and how many of its members were already read (`<offset>:<row key>`),
 * and a bookmark that is only a row key (offset 0) is the peer's own, as before packing.
 *
 * Rows written before packing (one key per member, its value INDEX_MARKER or a JSON object) stay
 * readable: a packed row's value is a JSON array, so the two shapes are told apart by value alone.
 */
import type { Context } from 'fabric-contract-api';
import { invalid } from './errors';
import { Page, marshal, pagePartial, pageRange, unmarshal } from './ledger';

type KV = { key: string; value: Uint8Array };

/**
 * How the members of one packed index read back. `S` is what a row stores per member, `M` what readers
 * get: a row key may carry part of each member (the transaction id of an access entry's event id).
 */
export interface PackedIndex<S, M> {
  /** A member of a packed row, with that row's key. */
  member(rowKey: string, item: S): M;
  /** The member a row of the shape before packing stands for (one key per member). */
  legacyMember(key: string, value: Uint8Array): M;
  /** The order a row lists its members in (the order they were added when absent). */
  compare?(a: S, b: S): number;
}

/** '[': a packed row's value is a JSON array; an older row's is INDEX_MARKER (0x00) or a JSON object. */
const PACKED_ROW = 0x5b;

export function isPackedRow(value: Uint8Array): boolean {
  return value.length > 0 && value[0] === PACKED_ROW;
}

/** The members of one row, either shape, in the order the row lists them. */
export function membersOfRow<S, M>(index: PackedIndex<S, M>, key: string, value: Uint8Array): M[] {
  if (!isPackedRow(value)) {
    return [index.legacyMember(key, value)];
  }
  return unmarshal<S[]>(value).map((item) => index.member(key, item));
}

interface PendingRow {
  items: unknown[];
  compare?: (a: unknown, b: unknown) => number;
  /** Whether the row is in committed state (so an emptied row must be deleted). */
  committed: boolean;
  /** Changed since the last flush. */
  dirty: boolean;
}

/** The packed rows one transaction adds to or removes from, written by `flush`. */
export class PackedRows {
  readonly #rows = new Map<string, PendingRow>();

  public constructor(private readonly ctx: Context) {}

  /**
   * Adds a member to a row of THIS transaction (its key holds the transaction id): no such row is in
   * committed state, so nothing is read.
   */
  public add<S>(index: PackedIndex<S, unknown>, key: string, item: S): void {
    if (!key.includes(this.ctx.stub.getTxID())) {
      throw new Error('a packed row written by a transaction must hold its transaction id');
    }
    const row: PendingRow = this.#rows.get(key) ?? { items: [], committed: false, dirty: false };
    if (index.compare) row.compare = index.compare as (a: unknown, b: unknown) => number;
    row.items.push(item);
    row.dirty = true;
    this.#rows.set(key, row);
  }

  /**
   * Removes the members `matches` picks from a row (read once per transaction). Returns how many it
   * removed: 0 when no such row exists, which for a caller means the member was filed before packing.
   */
  public async remove<S>(key: string, matches: (item: S) => boolean): Promise<number> {
    let row = this.#rows.get(key);
    if (!row) {
      const value = await this.ctx.stub.getState(key);
      const committed = value !== undefined && value.length > 0;
      if (committed && !isPackedRow(value)) {
        throw new Error('a packed index key holds a value that is not a packed row');
      }
      row = { items: committed ? unmarshal<unknown[]>(value) : [], committed, dirty: false };
      this.#rows.set(key, row);
    }
    const kept = row.items.filter((item) => !matches(item as S));
    const removed = row.items.length - kept.length;
    if (removed > 0) {
      row.items = kept;
      row.dirty = true;
    }
    return removed;
  }

  /** Writes every row changed since the last flush: the whole row, or its deletion once it is empty. */
  public async flush(): Promise<void> {
    for (const [key, row] of this.#rows) {
      if (!row.dirty) continue;
      row.dirty = false;
      if (row.items.length > 0) {
        if (row.compare) row.items.sort(row.compare);
        await this.ctx.stub.putState(key, marshal(row.items));
        row.committed = true;
      } else if (row.committed) {
        await this.ctx.stub.deleteState(key);
        row.committed = false;
      }
    }
  }
}

/** One PackedRows per transaction: every writer of a transaction adds to the same rows. */
const rowsOfTransaction = new WeakMap<object, PackedRows>();

/** The packed rows of the transaction `ctx` runs (shared by every writer in it). */
export function packedRows(ctx: Context): PackedRows {
  let rows = rowsOfTransaction.get(ctx.stub);
  if (!rows) {
    rows = new PackedRows(ctx);
    rowsOfTransaction.set(ctx.stub, rows);
  }
  return rows;
}

/** Writes what the transaction changed in packed rows; every writer calls it before it returns. */
export async function flushPackedRows(ctx: Context): Promise<void> {
  await rowsOfTransaction.get(ctx.stub)?.flush();
}

/** A key range a paged query reads rows from, in key order. */
export interface RowRange {
  /** The key the range starts at (a page that ends with the previous range continues here). */
  readonly start: string;
  /** Whether a bookmark's row key lies within this range. */
  holds(key: string): boolean;
  /** At most `limit` rows from `from` (a key of this range, '' for its start) and the next row's key ('' at its end). */
  rows(limit: number, from: string): Promise<Page<KV>>;
}

/** Rows under a partial composite key. */
export function partialKeyRange(ctx: Context, objectType: string, attributes: string[]): RowRange {
  const start = ctx.stub.createCompositeKey(objectType, attributes);
  return { start, holds: (key) => key.startsWith(start), rows: (limit, from) => pagePartial(ctx, objectType, attributes, limit, from) };
}

/** Rows of the simple-key range [startKey, endKey). */
export function simpleKeyRange(ctx: Context, startKey: string, endKey: string): RowRange {
  return { start: startKey, holds: (key) => key >= startKey && key < endKey, rows: (limit, from) => pageRange(ctx, startKey, endKey, limit, from) };
}

export interface MemberPage<M> {
  /** The page's members, each with the key of its row, in key order and row order. */
  members: Array<{ key: string; member: M }>;
  /** Members read onto this page (before a reader filters them). */
  fetchedRecordsCount: number;
  /** Pass back for the next page; empty when there is no more. */
  bookmark: string;
}

/** Where a bookmark points: a row key and how many of that row's members were already read. */
const OFFSET_BOOKMARK = /^([1-9][0-9]{0,5}):/;

function parsePosition(bookmark: string): { key: string; offset: number } {
  // Row keys start with U+0000 (composite) or a letter (simple), never with a digit.
  const match = OFFSET_BOOKMARK.exec(bookmark);
  return match ? { key: bookmark.slice(match[0].length), offset: Number(match[1]) } : { key: bookmark, offset: 0 };
}

function positionOf(key: string, offset: number): string {
  return offset === 0 ? key : `${offset}:${key}`;
}

/** Rows asked for first: enough for a page of small rows in one query, few when rows are large. */
const FIRST_ROWS = 8;

/**
 * One page of `pageSize` members over `ranges` in order. A bookmark's row key must lie in one of them
 * (the peer would otherwise read from anywhere: ledger.ts pagePartial); a page that reaches the end of a
 * range continues with the next. No member is skipped or repeated across pages while the rows stay as
 * they are; a row removed between two pages (an erasure) is simply not read.
 */
export async function pageMembers<S, M>(index: PackedIndex<S, M>, ranges: RowRange[], pageSize: number, bookmark: string): Promise<MemberPage<M>> {
  const position = parsePosition(bookmark);
  let r = bookmark === '' ? 0 : ranges.findIndex((range) => range.holds(position.key));
  if (r < 0) {
    throw invalid('bookmark does not belong to this query');
  }
  const members: MemberPage<M>['members'] = [];
  let from = position.key;
  let rowsRead = 0;
  let membersRead = 0;
  for (; r < ranges.length; r++) {
    const range = ranges[r] as RowRange;
    for (;;) {
      const needed = pageSize - members.length;
      // Rows are read a few at a time at first: a packed row may hold hundreds of members, and a page
      // never needs more rows than members; then as many as the rows read so far suggest.
      const limit = rowsRead === 0 ? Math.min(needed, FIRST_ROWS) : Math.max(1, Math.min(needed, Math.ceil((needed * rowsRead) / membersRead)));
      const page = await range.rows(limit, from);
      for (const [i, row] of page.records.entries()) {
        const all = membersOfRow(index, row.key, row.value);
        rowsRead += 1;
        membersRead += all.length;
        const skip = row.key === position.key ? position.offset : 0;
        const taken = all.slice(skip, skip + (pageSize - members.length));
        members.push(...taken.map((member) => ({ key: row.key, member })));
        if (members.length < pageSize) continue;
        const end = skip + taken.length;
        if (end < all.length) {
          return { members, fetchedRecordsCount: members.length, bookmark: positionOf(row.key, end) };
        }
        const next = page.records[i + 1]?.key ?? (page.bookmark !== '' ? page.bookmark : (ranges[r + 1]?.start ?? ''));
        return { members, fetchedRecordsCount: members.length, bookmark: next };
      }
      if (page.bookmark === '') break;
      from = page.bookmark;
    }
    from = '';
  }
  return { members, fetchedRecordsCount: members.length, bookmark: '' };
}
