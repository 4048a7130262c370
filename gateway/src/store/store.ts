import type { AccessEntryInput } from '../ledger/ledger-client';

/**
 * The gateway's resource store: every version of every FHIR resource this organization holds as
 * custodian, plus the per-patient keys of the HMAC commitments anchored on the ledger.
 *
 * A version is first written `pending`, then marked `anchored` once its anchor is committed on the
 * ledger; only anchored versions are ever served. A pending version left by a crash is settled at start
 * (anchored if the ledger has it, removed otherwise), so nothing acknowledged is lost and nothing
 * unanchored is served.
 */
export interface StoredVersion {
  readonly resourceType: string;
  readonly id: string;
  readonly versionId: number;
  readonly lastUpdated: string;
  /** Local id of the patient the resource belongs to (the Patient's own id for a Patient). */
  readonly patientId: string | null;
  readonly deleted: boolean;
  /** The resource JSON exactly as stored (meta.versionId and meta.lastUpdated included). */
  readonly content: string;
  readonly state: 'pending' | 'anchored';
  /** Its access class (model/access-class.ts), when the store holds one. */
  readonly accessClass?: string;
  /**
   * The other local patients in whose compartments it also is (a resource naming several patients):
   * each one's consents govern it beside `patientId`'s. Such a version has no access class: every
   * decision about it is made for the version itself, from its anchor, which names them all.
   */
  readonly coPatientIds?: readonly string[];
}

/** What search needs besides the content: extracted when the version is written. */
export interface NewVersion extends Omit<StoredVersion, 'state'> {
  /** The resource's clinical date (normalized), for the `date` search parameter. */
  readonly date: string | null;
  /** `system|code` tokens of the resource's main code, for the `code` search parameter. */
  readonly codes: readonly string[];
  /** The version's search index entries (store/search-index.ts); none for a deletion. */
  readonly index?: readonly IndexEntry[];
  /**
   * The version's access class (fhir/access-class.ts): what its anchor says besides the patient that a
   * consent decision reads (security labels, clinical month). Versions of one patient, type and class are
   * decided alike, so a search decides each class once. Absent: the store derives it from the content.
   */
  readonly accessClass?: string;
}

/**
 * One value of one search parameter of a version: token → system, code; string → normalized, as
 * written; reference → `Type/id` (or as written), id; date → [low, high) in the normalized ordering;
 * uri → the value, ''; number → [n1, n2] (a value, or a Range's low and high); quantity → [n1, n2] and
 * system, code, unit (and, in a UCUM unit that converts, [cn1, cn2] in the canonical unit cu). A composite's components are rows `<code>$<i>` sharing `grp` (one per element
 * the composite's expression selects), so a query matches components of the same element only.
 */
export interface IndexEntry {
  readonly param: string;
  readonly v1: string;
  readonly v2: string;
  /** A quantity's unit ('' otherwise). */
  readonly v3?: string;
  /** Low and high of a number or quantity (equal for a plain value; ±Infinity for an open Range). */
  readonly n1?: number;
  readonly n2?: number;
  /** The element a composite's component belongs to (0 otherwise). */
  readonly grp?: number;
  /**
   * A UCUM quantity's canonical form (store/ucum.ts): its unit in base units (`g`, `m-3.g`; '' when the
   * system is not UCUM or the unit does not convert) and [n1, n2] in that unit.
   */
  readonly cu?: string;
  readonly cn1?: number;
  readonly cn2?: number;
}

/** Prefixes of number and quantity parameters (dates take the first six). */
export type NumberPrefix = Comparator | 'sa' | 'eb' | 'ap';

/**
 * A number as searched: the prefix, the value, and the range its precision implies (`5.4` → [5.35,
 * 5.45)), which eq and ne compare against; ap compares against ±10% of the value.
 */
export interface NumberValue {
  readonly op: NumberPrefix;
  readonly value: number;
  readonly lo: number;
  readonly hi: number;
}

/** A quantity as searched: a number, and the system and code (`5.4|http://unitsofmeasure.org|mg`), or a code or unit (`5.4||mg`). */
export interface QuantityValue extends NumberValue {
  readonly system?: string;
  readonly code?: string;
  /** For a UCUM unit that converts: the value, lo and hi in its canonical unit, compared with the index's canonical values. */
  readonly canonical?: { readonly unit: string; readonly value: number; readonly lo: number; readonly hi: number };
}

/** One criterion on the search index: its values are OR, the criteria of a query AND. */
export type Criterion =
  | { readonly kind: 'token'; readonly param: string; readonly not: boolean; readonly values: ReadonlyArray<{ readonly system?: string; readonly code?: string }> }
  | { readonly kind: 'string'; readonly param: string; readonly match: 'start' | 'exact' | 'contains'; readonly values: readonly string[] }
  | { readonly kind: 'reference'; readonly param: string; readonly values: ReadonlyArray<{ readonly ref?: string; readonly id?: string }> }
  | { readonly kind: 'date'; readonly param: string; readonly op: Comparator; readonly value: string }
  | { readonly kind: 'uri'; readonly param: string; readonly values: readonly string[] }
  | { readonly kind: 'number'; readonly param: string; readonly values: readonly NumberValue[] }
  | { readonly kind: 'quantity'; readonly param: string; readonly values: readonly QuantityValue[] }
  /** Each value is one criterion per component (on `<code>$<i>`), all met by one element. */
  | { readonly kind: 'composite'; readonly param: string; readonly values: ReadonlyArray<readonly Criterion[]> }
  | { readonly kind: 'missing'; readonly param: string; readonly missing: boolean };

/**
 * One key of `_sort`: a column of the version (`_id`, `_lastUpdated`) or an index value of a parameter
 * (`v1`: strings, dates, references, uris; `v2`: token codes; `n1`: numbers and quantities). Ascending
 * takes a resource's lowest value, descending its highest; resources without one come last.
 */
export interface SortKey {
  readonly param: string;
  readonly on: 'id' | 'lastUpdated' | 'v1' | 'v2' | 'n1';
  readonly descending: boolean;
}

/** Names one version. */
export interface VersionKey {
  readonly resourceType: string;
  readonly id: string;
  readonly versionId: number;
}

/** A stored version's search index entries, for indexVersions. */
export interface IndexedVersion extends VersionKey {
  readonly index: readonly IndexEntry[];
}

/**
 * Everything one write stores before it is anchored: one version (a create, update or delete) or every
 * version of a FHIR transaction, with the keys of the patients it creates and the DID links it sets.
 */
export interface PendingWrite {
  /**
   * Names the write in the store (set → the write's DID links, new patients and change entries are
   * stored with its versions, so a restart can settle the whole write, not only its versions).
   */
  readonly writeId?: string;
  readonly versions: readonly NewVersion[];
  /** HMAC keys of patients first seen in this write (Patients it creates). */
  readonly newPatientKeys: ReadonlyArray<{ readonly patientId: string; readonly key: Buffer }>;
  /** Patient DID links this write sets, each with the DID it replaces (restored if the write is discarded). */
  readonly didLinks: ReadonlyArray<{ readonly patientId: string; readonly did: string; readonly previous: string | undefined }>;
  /**
   * The access entries recording this change that the ledger transaction does not carry itself (async
   * audit mode; sync mode beyond one transaction's 200 entries). Stored with the versions; they become
   * `ready` for delivery in the same SQLite transaction that marks the versions anchored (markWriteAnchored),
   * and go with the versions when the write is discarded.
   */
  readonly changeEntries?: readonly AccessEntryInput[];
}

/** A write left pending, as stored (for settling after an ambiguous ledger outcome or a crash). */
export interface StoredPendingWrite {
  /** Undefined for versions written before writes were stored whole (each such version is its own write). */
  readonly writeId: string | undefined;
  readonly versions: readonly StoredVersion[];
  readonly newPatientKeys: ReadonlyArray<{ readonly patientId: string }>;
  readonly didLinks: ReadonlyArray<{ readonly patientId: string; readonly did: string; readonly previous: string | undefined }>;
}

/** What discarding a write needs to know (a PendingWrite or a StoredPendingWrite). */
export interface PendingWriteRef {
  readonly writeId?: string | undefined;
  readonly versions: readonly VersionKey[];
  readonly newPatientKeys: ReadonlyArray<{ readonly patientId: string }>;
  readonly didLinks: ReadonlyArray<{ readonly patientId: string; readonly did: string; readonly previous: string | undefined }>;
}

/** A change entry of an anchored write, durable in the store until delivered (to the outbox or the ledger). */
export interface ReadyChange {
  readonly entryId: string;
  readonly entry: AccessEntryInput;
  /** When its write was marked anchored (ms since the epoch). */
  readonly readyAt: number;
}

export type Comparator = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le';
export interface DateFilter {
  readonly op: Comparator;
  readonly value: string;
}

/** A search over current (latest, not deleted, anchored) versions. Every filter narrows (AND). */
export interface StoreQuery {
  readonly resourceType: string;
  readonly ids?: readonly string[];
  /** Only versions in these patients' compartments (their own, or naming them as co-patients). */
  readonly patientIds?: readonly string[];
  readonly lastUpdated?: readonly DateFilter[];
  readonly date?: readonly DateFilter[];
  /** Any of these (OR): `system|code`, `|code` (no system) or `code` (any system). */
  readonly codes?: readonly string[];
  /** Criteria on the search index (AND). */
  readonly criteria?: readonly Criterion[];
  /**
   * Keyset paging (bulk export): only rows after this one in the query's order (lastUpdated, then id),
   * so a long result is read page by page without an offset.
   */
  readonly after?: { readonly lastUpdated: string; readonly id: string };
  /** The order (`_sort`), then lastUpdated and id; oldest lastUpdated first (then id) without one. */
  readonly sort?: readonly SortKey[];
  /**
   * Only versions of these (patient, class) pairs (the permitted classes of a search, SearchClass.key):
   * consent applied inside the query, so a search pages through any number of matches.
   */
  readonly classes?: readonly string[];
  /** Rows skipped before the first returned, in the query's order. */
  readonly offset?: number;
  /** At most this many rows (the caller asks for one more than it allows, to detect overflow). */
  readonly limit: number;
}

/** The key of a version's (patient, class) group: SearchClass.key, and what StoreQuery.classes lists. */
export function searchClassKey(v: Pick<StoredVersion, 'patientId' | 'id' | 'versionId' | 'accessClass'>): string {
  return `${v.patientId ?? ''}\u001f${v.accessClass ?? `#${v.id}/${v.versionId}`}`;
}

/**
 * The matches of a search grouped by what their consent decision reads: the patient and the access class
 * (a version written without one is a class of its own). `key` names the group in StoreQuery.classes.
 */
export interface SearchClass {
  readonly key: string;
  readonly patientId: string | null;
  /** The class (fhir/access-class.ts), or undefined for a version stored without one (`version` names it). */
  readonly accessClass: string | undefined;
  readonly version?: { readonly id: string; readonly versionId: number };
  readonly count: number;
}

/** Which versions a history lists (typeHistory), newest first. */
export interface HistoryQuery {
  readonly since?: string;
  readonly at?: { readonly low: string; readonly high: string };
  /** Only versions of these types (the types the caller may read). */
  readonly types?: readonly string[];
  /** Only versions in these patients' compartments (a compartment-bound caller's). */
  readonly patientIds?: readonly string[];
  /** Only versions of these groups (HistoryClass.key): consent applied inside the query, as a search's. */
  readonly classes?: readonly string[];
  /** Rows skipped before the first returned. */
  readonly offset?: number;
  readonly limit: number;
}

/** The versions of a history grouped by what their consent decision reads: type, patient and access class. */
export interface HistoryClass extends SearchClass {
  readonly resourceType: string;
}

/** The key of a version's history group: its type, then its search group (searchClassKey). */
export function historyClassKey(v: Pick<StoredVersion, 'resourceType' | 'patientId' | 'id' | 'versionId' | 'accessClass'>): string {
  return `${v.resourceType}\u001f${searchClassKey(v)}`;
}

export interface ResourceStore {
  /** Writes a new version as pending. Fails with a CONFLICT OperationOutcomeError if the version exists. */
  insertPending(version: NewVersion): Promise<void>;
  markAnchored(resourceType: string, id: string, versionId: number): Promise<void>;
  /** Removes a pending version whose anchoring failed. Never removes an anchored version. */
  discardPending(resourceType: string, id: string, versionId: number): Promise<void>;
  listPending(): Promise<StoredVersion[]>;
  /**
   * Stores a whole write as pending in ONE transaction: every version, key and link, or none (CONFLICT
   * if a version exists or a DID is linked to another patient).
   */
  insertPendingWrite(write: PendingWrite): Promise<void>;
  /** Undoes insertPendingWrite after its anchoring failed, in one transaction; anchored versions are never touched. */
  discardPendingWrite(write: PendingWriteRef): Promise<void>;
  /** Marks every version of a write anchored, in one transaction. */
  markAnchoredAll(versions: readonly VersionKey[]): Promise<void>;
  /**
   * Marks every version of a write anchored AND makes its change entries ready for delivery, in ONE
   * SQLite transaction (so no acknowledged change is ever without its access entry).
   */
  markWriteAnchored(write: PendingWriteRef): Promise<void>;
  /**
   * Replaces the search index rows of versions already stored (pending or anchored) with the given ones,
   * in one transaction; a version the store does not hold gets none. A write is indexed this way while its
   * anchors are on their way to the ledger (search never finds a pending version, so the rows change
   * nothing until it is anchored, and discarding the version removes them).
   */
  indexVersions(versions: readonly IndexedVersion[]): Promise<void>;
  /** Writes left pending (every pending version, grouped by write), oldest first. */
  listPendingWrites(): Promise<StoredPendingWrite[]>;
  /** The pending versions of one resource. */
  pendingVersions(resourceType: string, id: string): Promise<StoredVersion[]>;
  /** Change entries ready for delivery, oldest first. */
  readyChanges(limit: number): Promise<ReadyChange[]>;
  /** Removes delivered change entries. */
  dropChanges(entryIds: readonly string[]): Promise<void>;
  /** How many change entries wait for delivery, and since when the oldest (ms since the epoch). */
  readyChangeStats(): Promise<{ count: number; oldestReadyAt: number | undefined }>;
  /** The latest anchored version (deleted or not), or undefined. */
  readCurrent(resourceType: string, id: string): Promise<StoredVersion | undefined>;
  readVersion(resourceType: string, id: string, versionId: number): Promise<StoredVersion | undefined>;
  /** Every anchored version of a resource, newest first. */
  history(resourceType: string, id: string): Promise<StoredVersion[]>;
  /**
   * Every anchored version of every resource of a type (undefined: of every type), newest first;
   * `since` (an instant) excludes older ones; `at` keeps only versions that were current at some point
   * in [low, high) (normalized dates, FHIR `_at`).
   */
  typeHistory(resourceType: string | undefined, opts: HistoryQuery): Promise<StoredVersion[]>;
  /** The versions `typeHistory` would list (without classes, offset and limit), counted by type, patient and access class. */
  historyClasses(resourceType: string | undefined, opts: Omit<HistoryQuery, 'classes' | 'offset' | 'limit'>): Promise<HistoryClass[]>;
  /** Current versions matching the query, in the query's sort order (then oldest lastUpdated first, then id). */
  search(query: StoreQuery): Promise<StoredVersion[]>;
  /** The current versions matching the query (its order, paging and limit aside), counted by patient and access class. */
  searchClasses(query: Omit<StoreQuery, 'limit' | 'offset' | 'sort' | 'classes'>): Promise<SearchClass[]>;

  /** The patient's HMAC key, creating it on first use. */
  patientKey(patientId: string): Promise<Buffer>;
  /** The patient's HMAC key if it exists (undefined after erasure). */
  findPatientKey(patientId: string): Promise<Buffer | undefined>;
  /** Links a local patient to the DID the patient registered (one DID per patient). */
  linkPatientDid(patientId: string, did: string): Promise<void>;
  patientDid(patientId: string): Promise<string | undefined>;
  patientByDid(did: string): Promise<string | undefined>;

  /**
   * Erasure: deletes every version of the patient's resources (the Patient included), the patient's
   * HMAC key and DID link, in one transaction. Returns how many versions were deleted.
   */
  erasePatient(patientId: string): Promise<number>;

  /**
   * Runs `fn` while no other process sharing this store runs `exclusive` with the same key (a conditional
   * create's query: two gateway processes never both create). SQLite serves one process: it runs `fn`.
   */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;

  ping(): Promise<void>;
  close(): Promise<void>;
}
