/**
 * Rows of the stores' tables as the store interface gives them: the same columns on SQLite and
 * PostgreSQL (sqlite-store.ts, pg-store.ts), so one mapping serves both.
 */
import { accessClassOf } from '../model/access-class';
import { type HistoryClass, type NewVersion, searchClassKey, type SearchClass, type StoredPendingWrite, type StoredVersion } from './store';

/** A resource_version row. */
export interface VersionRow {
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: string;
  patient_id: string | null;
  deleted: number;
  content: string;
  state: 'pending' | 'anchored';
  write_id?: string | null;
  access_class?: string | null;
  co_patients?: string | null;
}

/** The co_patients column: ` id1 id2 ` (FHIR ids hold no spaces, `%` or `_`, so LIKE '% id %' finds one), or NULL. */
export function coPatientsColumn(ids: readonly string[] | undefined): string | null {
  return ids && ids.length > 0 ? ` ${ids.join(' ')} ` : null;
}

/** A stored version's access class: none for a version of several patients (decided as itself), else the given or derived one. */
export function accessClassColumn(v: Pick<NewVersion, 'accessClass' | 'coPatientIds' | 'content' | 'deleted'>): string | null {
  if (v.coPatientIds && v.coPatientIds.length > 0) return null;
  return v.accessClass ?? accessClassOf(JSON.parse(v.content) as Record<string, unknown>, v.deleted);
}

export function toVersion(r: VersionRow): StoredVersion {
  return {
    resourceType: r.resource_type,
    id: r.id,
    versionId: r.version_id,
    lastUpdated: r.last_updated,
    patientId: r.patient_id,
    deleted: r.deleted === 1,
    content: r.content,
    state: r.state,
    ...(typeof r.access_class === 'string' ? { accessClass: r.access_class } : {}),
    ...(typeof r.co_patients === 'string' && r.co_patients.trim() !== '' ? { coPatientIds: r.co_patients.trim().split(' ') } : {}),
  };
}

/** The pending_write row of a write: the DID links it set and the patients it created, as JSON. */
export interface PendingWriteMeta {
  did_links: string;
  new_patients: string;
}

/**
 * Pending versions (oldest first) grouped into their writes, each with what its pending_write row says
 * (`metaOf`); a version stored before writes were stored whole is a write of its own.
 */
export function groupPendingWrites(rows: readonly VersionRow[], metaOf: (writeId: string, row: VersionRow) => PendingWriteMeta | undefined): StoredPendingWrite[] {
  const writes = new Map<string, { versions: StoredVersion[] }>();
  const out: StoredPendingWrite[] = [];
  for (const row of rows) {
    const writeId = row.write_id ?? undefined;
    if (writeId === undefined) {
      out.push({ writeId: undefined, versions: [toVersion(row)], newPatientKeys: [], didLinks: [] });
      continue;
    }
    const known = writes.get(writeId);
    if (known) {
      known.versions.push(toVersion(row));
      continue;
    }
    const versions = [toVersion(row)];
    writes.set(writeId, { versions });
    const meta = metaOf(writeId, row);
    const didLinks = meta
      ? (JSON.parse(meta.did_links) as Array<{ patientId: string; did: string; previous: string | null }>).map((l) => ({
          patientId: l.patientId,
          did: l.did,
          previous: l.previous ?? undefined,
        }))
      : [];
    const newPatientKeys = meta ? (JSON.parse(meta.new_patients) as string[]).map((patientId) => ({ patientId })) : [];
    out.push({ writeId, versions, newPatientKeys, didLinks });
  }
  return out;
}

/** A row of searchClasses' GROUP BY (the count is a string on PostgreSQL: a bigint). */
export interface ClassRow {
  patient_id: string | null;
  access_class: string | null;
  id: string;
  version_id: number;
  n: number | string;
}

/** A historyClasses row: a search group, with its type. */
export function toHistoryClass(r: ClassRow & { resource_type: string }): HistoryClass {
  const c = toSearchClass(r);
  return { ...c, resourceType: r.resource_type, key: `${r.resource_type}\u001f${c.key}` };
}

export function toSearchClass(r: ClassRow): SearchClass {
  return {
    key: searchClassKey({ patientId: r.patient_id, accessClass: r.access_class ?? undefined, id: r.id, versionId: r.version_id }),
    patientId: r.patient_id,
    accessClass: r.access_class ?? undefined,
    ...(r.access_class === null ? { version: { id: r.id, versionId: r.version_id } } : {}),
    count: Number(r.n),
  };
}
