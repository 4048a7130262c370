/**
 * UCUM canonical units for quantity search, from the NLM's UCUM library (`@lhncbc/ucum-lhc`, the one the
 * `fhirpath` engine uses): a quantity in a UCUM unit is indexed, beside its value as given, as its value in
 * the unit's base units (`5000 mg` → `5 g`, `72 /min` → `1.2 s-1`), and a search in a UCUM unit compares
 * there, so `5|http://unitsofmeasure.org|g` finds 5000 mg. Only units that are a factor of their base
 * units convert: a unit the library does not know, an arbitrary one (`[IU]`) or a special one converted
 * by a function (`Cel`, `[pH]`) has no canonical form and is matched as given.
 */
import { UcumLhcUtils } from '@lhncbc/ucum-lhc';

export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/** A unit's canonical form: its base units (`g`, `m-3.g`, `1` for a dimensionless one) and the factor to them. */
export interface CanonicalUnit {
  readonly unit: string;
  readonly factor: number;
}

/** Units looked up, by code (null: does not convert). Bounded: a code is whatever a stored resource says. */
const known = new Map<string, CanonicalUnit | null>();
const MAX_KNOWN = 10_000;
/** A longer code is no unit anyone writes: it is not parsed. */
const MAX_CODE = 200;

let utils: UcumLhcUtils | undefined;

/** The canonical form of a UCUM unit code, or undefined when it does not convert by a factor. */
export function canonicalUnit(code: string): CanonicalUnit | undefined {
  const cached = known.get(code);
  if (cached !== undefined) return cached ?? undefined;
  let found: CanonicalUnit | null = null;
  if (code !== '' && code.length <= MAX_CODE) {
    utils ??= UcumLhcUtils.getInstance();
    const r = utils.convertToBaseUnits(code, 1);
    if (r.status === 'succeeded' && r.fromUnitIsSpecial !== true && r.unitToExp && typeof r.magnitude === 'number' && Number.isFinite(r.magnitude) && r.magnitude > 0) {
      const parts = Object.entries(r.unitToExp)
        .filter(([, exp]) => exp !== 0)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([u, exp]) => (exp === 1 ? u : `${u}${String(exp)}`));
      found = { unit: parts.length > 0 ? parts.join('.') : '1', factor: r.magnitude };
    }
  }
  if (known.size >= MAX_KNOWN) known.clear();
  known.set(code, found);
  return found ?? undefined;
}

/**
 * A value in the base units: scaled by the factor and rounded to 15 significant digits, so that the stored
 * value and the searched one are alike where the decimals are (3 dg and 0.3 g, 10*3/uL and 1e12 m-3).
 * ±Infinity (an open end of a Range or a comparator) stays as it is.
 */
export function toCanonical(value: number, factor: number): number {
  if (!Number.isFinite(value)) return value;
  return Number((value * factor).toPrecision(15));
}

/**
 * The canonical form of a quantity as indexed or searched: its system must be UCUM and its code convert;
 * the values are scaled alike. Undefined otherwise (then it is matched as given).
 */
export function canonicalQuantity<T extends readonly number[]>(system: string | undefined, code: string | undefined, values: T): { unit: string; values: number[] } | undefined {
  if (system !== UCUM_SYSTEM || code === undefined) return undefined;
  const c = canonicalUnit(code);
  return c ? { unit: c.unit, values: values.map((v) => toCanonical(v, c.factor)) } : undefined;
}
