/** The part of `@lhncbc/ucum-lhc` (the NLM's UCUM library; it ships no types) that store/ucum.ts uses. */
declare module '@lhncbc/ucum-lhc' {
  export interface BaseUnitsResult {
    /** `succeeded`, or `invalid` / `failed` / `error` for a unit that is not UCUM or cannot be converted (arbitrary units). */
    readonly status: string;
    /** The value in the base units. */
    readonly magnitude?: number;
    /** The base units and their exponents (`mg/dL` → `{ m: -3, g: 1 }`). */
    readonly unitToExp?: Readonly<Record<string, number>>;
    /** A unit converted by a function, not a factor (`Cel`, `[pH]`). */
    readonly fromUnitIsSpecial?: boolean;
  }
  export class UcumLhcUtils {
    static getInstance(): UcumLhcUtils;
    convertToBaseUnits(fromUnit: string, fromVal: number): BaseUnitsResult;
  }
}
