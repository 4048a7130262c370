/**
 * Comparing two ledger views row for row: the live one against one rebuilt from block 0.
 */
import { VIEW_TABLES, type ViewRow, type ViewSnapshot, type ViewTable } from './view-store';

export interface ViewDifference {
  readonly table: ViewTable;
  /** The row's key columns (ledger keys: DIDs, consent ids, keyed resource ids). */
  readonly key: readonly string[];
  /** `live-only`: the rebuilt view lacks it; `rebuilt-only`: the live one does; `changed`: both, unequal. */
  readonly kind: 'live-only' | 'rebuilt-only' | 'changed';
  /** For `changed`: the columns that differ. */
  readonly columns?: readonly string[];
}

export interface ViewComparison {
  /** True when both reflect the same height and hold the same rows. */
  readonly equal: boolean;
  readonly liveHeight: bigint;
  readonly rebuiltHeight: bigint;
  readonly differences: readonly ViewDifference[];
}

function keyOf(row: ViewRow, columns: readonly string[]): string[] {
  return columns.map((c) => String(row[c]));
}

/** Rows keyed by their key columns (joined with U+0000, which no ledger key attribute holds). */
function byKey(rows: readonly ViewRow[], columns: readonly string[]): Map<string, ViewRow> {
  return new Map(rows.map((row) => [keyOf(row, columns).join('\u0000'), row]));
}

/** Every row present in one view only, or different between them, table by table. */
export function compareViews(live: ViewSnapshot, rebuilt: ViewSnapshot): ViewComparison {
  const differences: ViewDifference[] = [];
  for (const [table, columns] of Object.entries(VIEW_TABLES) as Array<[ViewTable, readonly string[]]>) {
    const a = byKey(live.tables[table], columns);
    const b = byKey(rebuilt.tables[table], columns);
    for (const [k, row] of a) {
      const other = b.get(k);
      if (!other) {
        differences.push({ table, key: keyOf(row, columns), kind: 'live-only' });
        continue;
      }
      const changed = [...new Set([...Object.keys(row), ...Object.keys(other)])].filter((c) => row[c] !== other[c]).sort();
      if (changed.length > 0) differences.push({ table, key: keyOf(row, columns), kind: 'changed', columns: changed });
    }
    for (const [k, row] of b) {
      if (!a.has(k)) differences.push({ table, key: keyOf(row, columns), kind: 'rebuilt-only' });
    }
  }
  return { equal: differences.length === 0 && live.height === rebuilt.height, liveHeight: live.height, rebuiltHeight: rebuilt.height, differences };
}
