/**
 * The search of both stores as SQL: the conditions of a StoreQuery on the current versions (`rv`, a row
 * of resource_version) and the search index, with NAMED parameters (`@name`, bound in `params`).
 * SqliteStore binds them as they are; PgStore numbers them (toPositional). What the two dialects write
 * differently is in SqlDialect; the rest is SQL both read alike (TRUE/FALSE, COALESCE, `||`, row values).
 */
import { capIndexValue } from './search-index';
import type { Criterion, DateFilter, HistoryQuery, NumberValue, SortKey, StoreQuery } from './store';

export interface SqlDialect {
  /** The condition that `expr` is one of `values` (the permitted class keys), binding what it needs under `name`. */
  classesIn(expr: string, name: string, values: readonly string[], params: Record<string, unknown>): string;
}

export function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * FHIR date comparisons on normalized values (dates as given, date-times as UTC ISO strings), treating a
 * partial date as the whole range it names: ge 2024-01 includes 2024-01-15T10:00Z, le 2024-01 includes
 * the whole of January.
 */
function dateFilters(where: string[], params: Record<string, unknown>, column: string, name: string, filters: readonly DateFilter[]): void {
  filters.forEach((f, i) => {
    const p = `${name}${i}`;
    const end = `${p}e`;
    params[p] = f.value;
    params[end] = `${f.value}\uffff`;
    const clause = {
      eq: `(${column} >= @${p} AND ${column} < @${end})`,
      ne: `NOT (${column} >= @${p} AND ${column} < @${end})`,
      ge: `${column} >= @${p}`,
      gt: `${column} >= @${end}`,
      le: `${column} < @${end}`,
      lt: `${column} < @${p}`,
    }[f.op];
    where.push(`(${column} IS NOT NULL AND ${clause})`);
  });
}

/** The same version as `rv` (the row alias `a` of search_index). */
const sameVersion = (a: string): string => `${a}.resource_type = rv.resource_type AND ${a}.id = rv.id AND ${a}.version_id = rv.version_id`;

/**
 * A number or quantity value against a row's [n1, n2] (a point or a Range): eq the target within the
 * search value's precision range [lo, hi); gt/ge/lt/le some of the target beyond the value; sa/eb all of
 * it after/before; ap the target overlapping the value ±10%.
 */
function numberCond(n1: string, n2: string, v: NumberValue, bind: (suffix: string, value: number) => string): string {
  const value = (): string => bind('v', v.value);
  switch (v.op) {
    case 'eq':
      return `(${n1} >= ${bind('l', v.lo)} AND ${n2} < ${bind('h', v.hi)})`;
    case 'ne':
      return `NOT (${n1} >= ${bind('l', v.lo)} AND ${n2} < ${bind('h', v.hi)})`;
    case 'gt':
      return `${n2} > ${value()}`;
    case 'ge':
      return `${n2} >= ${value()}`;
    case 'lt':
      return `${n1} < ${value()}`;
    case 'le':
      return `${n1} <= ${value()}`;
    case 'sa':
      return `${n1} > ${value()}`;
    case 'eb':
      return `${n2} < ${value()}`;
    case 'ap': {
      const d = Math.abs(v.value) * 0.1;
      return `(${n1} <= ${bind('h', v.value + d)} AND ${n2} >= ${bind('l', v.value - d)})`;
    }
  }
}

/**
 * The condition on the search_index row `a` that one of a criterion's values (OR) holds, without its
 * parameter (the caller names the row). Negation (:not, ne of a date) is the caller's.
 */
function valueCond(c: Exclude<Criterion, { kind: 'missing' | 'composite' }>, a: string, name: string, params: Record<string, unknown>): string {
  // Text compared with the index is cut as the index cuts it (search-index.ts capIndexValue).
  const bind = (i: number, suffix: string, value: string | number): string => {
    const cut = typeof value === 'string' && c.kind !== 'date' && !(c.kind === 'string' && c.match !== 'exact');
    params[`${name}_${i}${suffix}`] = cut ? capIndexValue(value) : value;
    return `@${name}_${i}${suffix}`;
  };
  // No value at all (a chain none of whose targets the caller may see): nothing matches.
  if ('values' in c && c.values.length === 0) return 'FALSE';
  switch (c.kind) {
    case 'token': {
      const ors = c.values.map((v, i) => {
        const parts = [...(v.system !== undefined ? [`${a}.v1 = ${bind(i, 's', v.system)}`] : []), ...(v.code !== undefined ? [`${a}.v2 = ${bind(i, 'c', v.code)}`] : [])];
        return parts.length > 0 ? `(${parts.join(' AND ')})` : 'TRUE';
      });
      return ors.join(' OR ');
    }
    case 'string':
      return c.values
        .map((v, i) =>
          c.match === 'exact'
            ? `${a}.v2 = ${bind(i, '', v)}`
            : `${a}.v1 LIKE ${bind(i, '', c.match === 'contains' ? `%${likeEscape(capIndexValue(v))}%` : `${likeEscape(capIndexValue(v))}%`)} ESCAPE '\\'`,
        )
        .join(' OR ');
    case 'reference':
      return c.values.map((v, i) => (v.ref !== undefined ? `${a}.v1 = ${bind(i, 'r', v.ref)}` : `${a}.v2 = ${bind(i, 'i', v.id ?? '')}`)).join(' OR ');
    case 'uri':
      return c.values.map((v, i) => `${a}.v1 = ${bind(i, '', v)}`).join(' OR ');
    case 'date': {
      const lo = bind(0, 'l', c.value);
      const hi = bind(0, 'h', `${c.value}\uffff`);
      const within = `(${a}.v1 >= ${lo} AND ${a}.v2 <= ${hi})`;
      return { eq: within, ne: `NOT ${within}`, ge: `${a}.v2 > ${lo}`, gt: `${a}.v2 > ${hi}`, le: `${a}.v1 < ${hi}`, lt: `${a}.v1 < ${lo}` }[c.op];
    }
    case 'number':
      return c.values.map((v, i) => `(${a}.n1 IS NOT NULL AND ${numberCond(`${a}.n1`, `${a}.n2`, v, (suffix, x) => bind(i, suffix, x))})`).join(' OR ');
    case 'quantity':
      return c.values
        .map((v, i) => {
          // A UCUM unit that converts: the rows in the same canonical unit, compared in it (5 g finds 5000 mg).
          if (v.canonical) {
            const cv: NumberValue = { op: v.op, value: v.canonical.value, lo: v.canonical.lo, hi: v.canonical.hi };
            return `(${a}.cu = ${bind(i, 'u', v.canonical.unit)} AND ${a}.cn1 IS NOT NULL AND ${numberCond(`${a}.cn1`, `${a}.cn2`, cv, (suffix, x) => bind(i, suffix, x))})`;
          }
          const unit =
            v.system !== undefined && v.system !== ''
              ? ` AND ${a}.v1 = ${bind(i, 's', v.system)} AND ${a}.v2 = ${bind(i, 'c', v.code ?? '')}`
              : v.code !== undefined
                ? ` AND (${a}.v2 = ${bind(i, 'c', v.code)} OR ${a}.v3 = ${bind(i, 'c', v.code)})`
                : '';
          return `(${a}.n1 IS NOT NULL AND ${numberCond(`${a}.n1`, `${a}.n2`, v, (suffix, x) => bind(i, suffix, x))}${unit})`;
        })
        .join(' OR ');
  }
}

/**
 * One criterion on the search index, as an SQL condition on the version `rv`: values OR'ed inside one
 * EXISTS. Dates are ranges [v1, v2) compared as FHIR says (eq: within the search range; ge/gt/le/lt:
 * the ranges overlap beyond the search value). A composite value joins its components' rows of one
 * element (same `grp`).
 */
/**
 * One criterion as SQL on `rv`: the versions whose index rows meet it, as an uncorrelated subquery
 * (`(type, id, version) IN (SELECT ...)`), which SQLite runs once through search_index_value and then
 * looks each version up by primary key. (A correlated EXISTS per version made it scan every row of the
 * parameter for every version of the type: quadratic, seconds on 10,000 Observations.)
 */
function criterionSql(c: Criterion, name: string, params: Record<string, unknown>): string {
  const exists = (cond: string): string => {
    params[`${name}p`] = c.param;
    return `(rv.resource_type, rv.id, rv.version_id) IN (SELECT si.resource_type, si.id, si.version_id FROM search_index si WHERE si.resource_type = @type AND si.param = @${name}p AND (${cond}))`;
  };
  switch (c.kind) {
    case 'missing':
      return c.missing ? `NOT ${exists('TRUE')}` : exists('TRUE');
    case 'token':
      return c.not ? `NOT ${exists(valueCond(c, 'si', name, params))}` : exists(valueCond(c, 'si', name, params));
    case 'composite': {
      const ors = c.values.map((components, i) => {
        const rows = components.map((_, j) => `search_index s${j}`).join(', ');
        const conds = components.map((comp, j) => {
          const n = `${name}v${i}c${j}`;
          params[`${n}p`] = comp.param;
          if (comp.kind === 'missing' || comp.kind === 'composite') throw new Error('a composite component is a plain criterion');
          const sameRow = j === 0 ? 's0.resource_type = @type' : `s${j}.resource_type = s0.resource_type AND s${j}.id = s0.id AND s${j}.version_id = s0.version_id`;
          return `${sameRow} AND s${j}.param = @${n}p AND s${j}.grp = s0.grp AND (${valueCond(comp, `s${j}`, n, params)})`;
        });
        return `(rv.resource_type, rv.id, rv.version_id) IN (SELECT s0.resource_type, s0.id, s0.version_id FROM ${rows} WHERE ${conds.join(' AND ')})`;
      });
      return `(${ors.join(' OR ')})`;
    }
    default:
      return exists(valueCond(c, 'si', name, params));
  }
}

/** ORDER BY terms of `_sort` keys (lowest value ascending, highest descending, none last), then lastUpdated and id. */
export function orderBy(keys: readonly SortKey[], params: Record<string, unknown>): string {
  const terms = keys.map((k, i) => {
    const dir = k.descending ? 'DESC' : 'ASC';
    if (k.on === 'id') return `rv.id ${dir}`;
    if (k.on === 'lastUpdated') return `rv.last_updated ${dir}`;
    params[`sort${i}`] = k.param;
    const value = `(SELECT ${k.descending ? 'MAX' : 'MIN'}(ss.${k.on}) FROM search_index ss WHERE ${sameVersion('ss')} AND ss.param = @sort${i})`;
    return `${value} IS NULL, ${value} ${dir}`;
  });
  return [...terms, 'rv.last_updated', 'rv.id'].join(', ');
}

/** A match's group in searchClasses and StoreQuery.classes: its class, or the version itself when it has none. */
export const CLASS_OF_ROW = "COALESCE(rv.access_class, '#' || rv.id || '/' || rv.version_id)";
/** The key of a (patient, class) group: a row's patient and class, or a SearchClass's. */
const KEY_OF_ROW = `COALESCE(rv.patient_id, '') || CAST(@unitSeparator AS TEXT) || ${CLASS_OF_ROW}`;

/** Binds each value as `@<name><i>` and returns the comma-separated placeholders. */
function listParams(name: string, values: readonly string[], params: Record<string, unknown>): string {
  values.forEach((v, i) => (params[`${name}${i}`] = v));
  return values.map((_, i) => `@${name}${i}`).join(', ');
}

/** Only rows whose group key (`keyExpr`) is one of the permitted `classes` (none: no row). */
function classesFilter(keyExpr: string, classes: readonly string[], params: Record<string, unknown>, dialect: SqlDialect): string {
  if (classes.length === 0) return 'FALSE';
  params.unitSeparator = '\u001f';
  return dialect.classesIn(keyExpr, 'classes', classes, params);
}

/** The group key of a history row: its type, then its (patient, class) key. */
const HISTORY_KEY_OF_ROW = `rv.resource_type || CAST(@unitSeparator AS TEXT) || ${KEY_OF_ROW}`;

/** A row is in one of these patients' compartments: as its patient, or as one of its co-patients. */
function patientsIn(patientIds: readonly string[], params: Record<string, unknown>): string {
  if (patientIds.length === 0) return 'FALSE';
  const own = listParams('pt', patientIds, params);
  const co = patientIds.map((p, i) => {
    params[`cpt${i}`] = `% ${p} %`;
    return `rv.co_patients LIKE @cpt${i}`;
  });
  return `(rv.patient_id IN (${own}) OR (rv.co_patients IS NOT NULL AND (${co.join(' OR ')})))`;
}

/**
 * WHERE terms of a history (store typeHistory and historyClasses): anchored versions of the type (or
 * of the types listed), changed since `since`, current at some time in `at`, in the patients'
 * compartments, of the permitted groups.
 */
export function historyWhere(resourceType: string | undefined, q: Omit<HistoryQuery, 'offset' | 'limit'>, params: Record<string, unknown>, dialect: SqlDialect): string[] {
  const where = ["rv.state = 'anchored'"];
  if (resourceType !== undefined) {
    params.type = resourceType;
    where.push('rv.resource_type = @type');
  }
  if (q.types) where.push(q.types.length === 0 ? 'FALSE' : `rv.resource_type IN (${listParams('ht', q.types, params)})`);
  if (q.since !== undefined) {
    params.since = q.since;
    where.push('rv.last_updated >= @since');
  }
  if (q.at !== undefined) {
    // A version was current from its lastUpdated until the next anchored version's: it overlaps `at`
    // when it began before at's end and no later version began at or before at's start.
    params.atLow = q.at.low;
    params.atHigh = q.at.high;
    where.push(`rv.last_updated < @atHigh AND NOT EXISTS (
      SELECT 1 FROM resource_version n WHERE n.resource_type = rv.resource_type AND n.id = rv.id AND n.state = 'anchored'
        AND n.version_id > rv.version_id AND n.last_updated <= @atLow)`);
  }
  if (q.patientIds) where.push(patientsIn(q.patientIds, params));
  if (q.classes) where.push(classesFilter(HISTORY_KEY_OF_ROW, q.classes, params, dialect));
  return where;
}

/** The order of a history: newest first. */
export const HISTORY_ORDER = 'rv.last_updated DESC, rv.resource_type, rv.id, rv.version_id DESC';

/** The SELECT of historyClasses (its WHERE from historyWhere). */
export function historyClassesSql(where: readonly string[]): string {
  return `SELECT rv.resource_type AS resource_type, rv.patient_id AS patient_id, rv.access_class AS access_class, ${CLASS_OF_ROW} AS cls,
                 MIN(rv.id) AS id, MIN(rv.version_id) AS version_id, COUNT(*) AS n
            FROM resource_version rv WHERE ${where.join(' AND ')} GROUP BY rv.resource_type, rv.patient_id, rv.access_class, cls`;
}

/**
 * WHERE terms (and their named parameters) of a query's filters: current, anchored, not deleted,
 * matching. `classesIn` is how the dialect tests a row's group key against the list of permitted keys
 * bound as parameter `classes`.
 */
export function whereOf(q: Omit<StoreQuery, 'limit' | 'offset' | 'sort'>, params: Record<string, unknown>, dialect: SqlDialect): string[] {
  const where = [
    'rv.resource_type = @type',
    "rv.state = 'anchored'",
    'rv.deleted = 0',
    "rv.version_id = (SELECT MAX(r2.version_id) FROM resource_version r2 WHERE r2.resource_type = rv.resource_type AND r2.id = rv.id AND r2.state = 'anchored')",
  ];
  params.type = q.resourceType;
  if (q.ids) where.push(q.ids.length === 0 ? 'FALSE' : `rv.id IN (${listParams('id', q.ids, params)})`);
  // A version is in a patient's compartment as its patient or as one of its co-patients.
  if (q.patientIds) where.push(patientsIn(q.patientIds, params));
  if (q.codes && q.codes.length > 0) {
    // Tokens are stored as ` system|code ` (a coding without system as ` |code `).
    const ors = q.codes.map((c, i) => {
      params[`code${i}`] = c.includes('|') ? `% ${likeEscape(c)} %` : `%|${likeEscape(c)} %`;
      return `rv.codes LIKE @code${i} ESCAPE '\\'`;
    });
    where.push(`(${ors.join(' OR ')})`);
  }
  (q.criteria ?? []).forEach((c, i) => where.push(criterionSql(c, `c${i}`, params)));
  dateFilters(where, params, 'rv.last_updated', 'lu', q.lastUpdated ?? []);
  dateFilters(where, params, 'rv.clinical_date', 'cd', q.date ?? []);
  if (q.after) {
    params.afterLu = q.after.lastUpdated;
    params.afterId = q.after.id;
    where.push('(rv.last_updated > @afterLu OR (rv.last_updated = @afterLu AND rv.id > @afterId))');
  }
  if (q.classes) where.push(classesFilter(KEY_OF_ROW, q.classes, params, dialect));
  return where;
}
