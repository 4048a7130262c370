/**
 * FHIR date / dateTime / instant values as time intervals, for ordering checks (per-1).
 *
 * A value of lower precision stands for the whole interval it covers ("2024" = the year 2024).
 * Values without a time zone (dates and partial dates) are local: compared with each other as they are,
 * compared with a zoned dateTime after widening by the largest UTC offsets (−12:00 … +14:00).
 */
export interface FhirTimeInterval {
  /** first millisecond covered (UTC, or "local as if UTC" when zoned is false) */
  lo: number;
  /** last millisecond covered */
  hi: number;
  zoned: boolean;
}

const DATE_TIME = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

const HOUR = 3_600_000;

export function parseFhirDateTime(value: string): FhirTimeInterval | undefined {
  const m = DATE_TIME.exec(value);
  if (!m) return undefined;
  const year = Number(m[1]);
  const month = m[2] === undefined ? undefined : Number(m[2]) - 1;
  const day = m[3] === undefined ? undefined : Number(m[3]);
  if (m[4] !== undefined) {
    const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0${m[7]}`) * 1000);
    const local = Date.UTC(year, month ?? 0, day ?? 1, Number(m[4]), Number(m[5]), Number(m[6]), fraction);
    const tz = m[8];
    let offset = 0;
    if (tz !== undefined && tz !== 'Z') {
      const sign = tz.startsWith('-') ? -1 : 1;
      offset = sign * (Number(tz.slice(1, 3)) * HOUR + Number(tz.slice(4, 6)) * 60_000);
    }
    const at = local - offset;
    // sub-millisecond digits: the value covers at most the rest of that millisecond
    return { lo: at, hi: at, zoned: tz !== undefined };
  }
  if (month === undefined) {
    return { lo: Date.UTC(year, 0, 1), hi: Date.UTC(year + 1, 0, 1) - 1, zoned: false };
  }
  if (day === undefined) {
    return { lo: Date.UTC(year, month, 1), hi: Date.UTC(year, month + 1, 1) - 1, zoned: false };
  }
  return { lo: Date.UTC(year, month, day), hi: Date.UTC(year, month, day + 1) - 1, zoned: false };
}

/** True when `start` is certainly after `end` (whatever the precision and time zones). */
export function isCertainlyAfter(start: FhirTimeInterval, end: FhirTimeInterval): boolean {
  let sLo = start.lo;
  let eHi = end.hi;
  if (start.zoned !== end.zoned) {
    // one side is local time, at any offset between −12:00 and +14:00: UTC = local − offset
    if (!start.zoned) sLo -= 14 * HOUR;
    if (!end.zoned) eHi += 12 * HOUR;
  }
  return sLo > eHi;
}
