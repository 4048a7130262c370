/**
 * What a consent decision reads of a resource version besides its patient, custodian and type: its
 * security labels (meta.security codes) and its clinical month (consent `dataPeriod` is decided on it).
 * Both are anchored on the ledger with the version (AnchorInput.securityLabels, .dataMonth), and the
 * chaincode decides a version exactly as it decides a request stating its patient, custodian, type,
 * labels and month. So versions of one patient, type and access class are decided alike, and a search
 * decides each class once instead of each match (the store groups matches by class).
 *
 * A class is never trusted on its own: before a version decided by its class is released, its anchor's
 * labels and month are compared with the class (fhir/resource-service.ts), failing closed.
 */
import { clinicalDateOf } from './definitions';

/** Security labels (meta.security codes), sorted: they travel to the ledger as policy, never PHI. */
export function securityLabels(meta: unknown): string[] {
  const security = meta && typeof meta === 'object' ? (meta as { security?: unknown }).security : undefined;
  if (!Array.isArray(security)) return [];
  return security
    .map((c: unknown) => (c && typeof c === 'object' && typeof (c as { code?: unknown }).code === 'string' ? (c as { code: string }).code : undefined))
    .filter((c): c is string => c !== undefined)
    .sort();
}

/** `YYYY-MM` of a resource's clinical date; none for a Patient (its date is the birth date) or a deletion. */
export function dataMonthOf(resource: Record<string, unknown>, deleted: boolean): string | undefined {
  if (deleted || resource.resourceType === 'Patient') return undefined;
  const date = clinicalDateOf(resource);
  return date !== null && /^\d{4}-\d{2}/.test(date) ? date.slice(0, 7) : undefined;
}

/** The decision-relevant facts of a version, as its anchor states them. */
export interface AccessClass {
  readonly securityLabels: readonly string[];
  readonly dataMonth?: string;
}

/** The class of a version as stored (a canonical string: equal classes, equal strings). */
export function accessClassOf(resource: Record<string, unknown>, deleted: boolean): string {
  return formatAccessClass({ securityLabels: securityLabels(resource.meta), ...optionalMonth(dataMonthOf(resource, deleted)) });
}

function optionalMonth(month: string | undefined): { dataMonth?: string } {
  return month !== undefined ? { dataMonth: month } : {};
}

export function formatAccessClass(c: AccessClass): string {
  return JSON.stringify([c.dataMonth ?? '', [...c.securityLabels].sort()]);
}

/** The class a stored string names; undefined for anything that is not one (never guessed). */
export function parseAccessClass(text: string): AccessClass | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed) || parsed.length !== 2) return undefined;
    const [month, labels] = parsed as [unknown, unknown];
    if (typeof month !== 'string' || (month !== '' && !/^\d{4}-\d{2}$/.test(month))) return undefined;
    if (!Array.isArray(labels) || !labels.every((l): l is string => typeof l === 'string')) return undefined;
    return { securityLabels: labels, ...optionalMonth(month === '' ? undefined : month) };
  } catch {
    return undefined;
  }
}

/** Whether an anchor states exactly this class (labels compared as sets, as the decision reads them). */
export function anchorHasClass(
  anchor: { readonly securityLabels?: readonly string[]; readonly dataMonth?: string; readonly coPatients?: readonly string[] },
  c: AccessClass,
): boolean {
  // A version of several patients is never released by a class (one patient's decision): only as itself.
  if (anchor.coPatients !== undefined && anchor.coPatients.length > 0) return false;
  return formatAccessClass({ securityLabels: anchor.securityLabels ?? [], ...optionalMonth(anchor.dataMonth) }) === formatAccessClass(c);
}
