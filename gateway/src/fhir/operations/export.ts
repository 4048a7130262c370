/**
 * FHIR Bulk Data Access (IG v2) `$export`, transport-free: kick-off, background job, status, files and
 * deletion. Every exported resource goes through the one enforcement point as a search hit does
 * (ResourceService.exportPage → AccessControl: the caller's scopes and compartment, consent for each
 * resource, one access entry per patient committed before anything is written to a file). What the
 * caller may not see is simply absent.
 *
 * Jobs are kept in `<dir>/exports.db` (SQLite) and their files in `<dir>/<job id>/` (folder mode 700,
 * files mode 600). A job belongs to the identity that started it (`ownerOf`): anyone else is answered
 * 404 for its status and files, as for a job that does not exist. A job still running when the gateway
 * stops is reported as failed at the next start and its partial files are deleted, so a half-written
 * file is never served as complete. Finished jobs and their files are deleted after `ttlMs`.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { AuthContext } from '../../auth/types';
import { OperationOutcomeError } from '../../errors';
import { governedByPatientReference, inPatientCompartment, SUPPORTED_TYPES } from '../../model/definitions';
import { AccessControl, chunks } from '../access-control';
import { assertMayExport, type Caller, type ExportLevel } from '../policy';
import type { ResourceService } from '../resource-service';
import type { Resource } from '../write-plan';

export type { ExportLevel };

/** The `_outputFormat` values accepted (all mean FHIR NDJSON, the only format written). */
export const EXPORT_OUTPUT_FORMATS: readonly string[] = ['application/fhir+ndjson', 'application/ndjson', 'ndjson'];
export const NDJSON = 'application/fhir+ndjson';

/** A kick-off request, as the HTTP adapter parsed it. */
export interface ExportRequest {
  readonly level: ExportLevel;
  /** The Group's id (group level). */
  readonly groupId?: string;
  /** `_type`: the types asked for; undefined → every type the caller's scopes read (and the level takes). */
  readonly types?: readonly string[];
  /** `_since`: an instant; only resources changed at or after it. */
  readonly since?: string;
  /** `_outputFormat`, if given. */
  readonly outputFormat?: string;
  /** The kick-off URL, echoed in the manifest (`request`). */
  readonly requestUrl: string;
}

/** The Bulk Data completion manifest. */
export interface ExportManifest {
  readonly transactionTime: string;
  readonly request: string;
  readonly requiresAccessToken: true;
  readonly output: Array<{ type: string; url: string; count: number }>;
  readonly error: Array<{ type: 'OperationOutcome'; url: string; count: number }>;
}

export type ExportStatus =
  | { readonly state: 'in-progress'; readonly progress: string }
  | { readonly state: 'complete'; readonly manifest: ExportManifest; readonly expiresAt: string }
  | { readonly state: 'error'; readonly outcome: Record<string, unknown> };

export interface ExportServiceOptions {
  readonly resources: ResourceService;
  /** The folder of the jobs' database and files (created mode 700): `<HDX_DATA_DIR>/exports`. */
  readonly dir: string;
  readonly log: Logger;
  /** This gateway's FHIR base URL (the status and file URLs are under it). */
  readonly baseUrl: string;
  /** How long a finished job and its files are kept (default one hour). */
  readonly ttlMs?: number;
  /** Jobs running at once, in all (default 2); a caller has at most one running. */
  readonly maxRunning?: number;
  /** Resources evaluated per page (default 200; at most the search candidate limit). */
  readonly pageSize?: number;
  /** A job exporting more resources than this fails, asking to narrow it with _type or _since (default 100 000). */
  readonly maxResources?: number;
}

interface JobRow {
  id: string;
  owner: string;
  state: 'in-progress' | 'complete' | 'error';
  request: string;
  transaction_time: string;
  progress: string;
  manifest: string | null;
  error: string | null;
  finished_at: number | null;
}

/** Who owns a job: the identity a later request must present again (a hash; the database holds no DID). */
export function ownerOf(auth: AuthContext): string {
  const who = [auth.tokenKind, auth.actorAuth, auth.organization ?? '', auth.viaOrganization ?? '', auth.did ?? '', auth.subject];
  return createHash('sha256').update(JSON.stringify(who)).digest('hex');
}

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FILE_NAME = /^([A-Z][A-Za-z]{1,63})\.ndjson$/;
const ERROR_FILE = 'OperationOutcome.ndjson';

/** The answer for a job that is not there or not the caller's: the two are never told apart. */
function unknownJob(): OperationOutcomeError {
  return new OperationOutcomeError('NOT_FOUND', 'No such export job (it may have expired or been deleted, or it is not yours)');
}

/** Types a patient-level or Group export takes: the patients' own data (no reference data). */
function patientData(type: string): boolean {
  return inPatientCompartment(type) || governedByPatientReference(type);
}

function outcome(severity: 'error' | 'warning', code: string, diagnostics: string): Record<string, unknown> {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

/** What one running job needs besides its row. */
interface RunningJob {
  readonly caller: Caller;
  readonly types: readonly string[];
  readonly patientIds: readonly string[] | undefined;
  readonly since: string | undefined;
  cancelled: boolean;
  readonly done: Promise<void>;
}

export class ExportService {
  readonly #resources: ResourceService;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #base: string;
  readonly #ttlMs: number;
  readonly #maxRunning: number;
  readonly #pageSize: number;
  readonly #maxResources: number;
  readonly #db: Database.Database;
  readonly #running = new Map<string, RunningJob>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(opts: ExportServiceOptions) {
    this.#resources = opts.resources;
    this.#dir = opts.dir;
    this.#log = opts.log;
    this.#base = opts.baseUrl;
    this.#ttlMs = opts.ttlMs ?? 60 * 60 * 1000;
    this.#maxRunning = opts.maxRunning ?? 2;
    this.#pageSize = opts.pageSize ?? 200;
    this.#maxResources = opts.maxResources ?? 100_000;
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.#dir, 0o700);
    const dbFile = path.join(this.#dir, 'exports.db');
    this.#db = new Database(dbFile);
    // Owner hashes and kick-off URLs (a Group id): the gateway's own, like the files (SQLite gives its WAL the same mode).
    fs.chmodSync(dbFile, 0o600);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS export_job (
      id TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL, transaction_time TEXT NOT NULL,
      progress TEXT NOT NULL, manifest TEXT, error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER)`);
    // A job left running by a stop or a crash: its files may be half written, so they go and it fails.
    const interrupted = this.#db.prepare("SELECT id FROM export_job WHERE state = 'in-progress'").all() as Array<{ id: string }>;
    for (const { id } of interrupted) {
      this.#removeFiles(id);
      this.#finish(id, 'error', null, JSON.stringify(outcome('error', 'incomplete', 'The export was interrupted by a restart of the gateway; start a new export')));
    }
    this.sweep();
    this.#sweeper = setInterval(() => this.sweep(), 60_000);
    this.#sweeper.unref();
  }

  /**
   * Starts an export for the caller and returns its job id. `scoped(type)` binds the caller for reading
   * a type (scope, kind and purpose checked, policy.ts) and throws when it may not. Who may export:
   * system and Group level, this organization's practitioners and systems; patient level, those too
   * (every patient's data), or a patient (its own compartment only). Never a delegated or another
   * member's caller (they ask one patient at a time), and never under break-glass.
   */
  async kickOff(scoped: (type: string) => Caller, owner: string, req: ExportRequest): Promise<string> {
    if (req.outputFormat !== undefined && !EXPORT_OUTPUT_FORMATS.includes(req.outputFormat)) {
      throw new OperationOutcomeError('INVALID', `_outputFormat must be one of ${EXPORT_OUTPUT_FORMATS.join(', ')} (only FHIR NDJSON is written)`);
    }
    const levelTakes = (t: string): boolean => req.level === 'system' || patientData(t);
    for (const t of req.types ?? []) {
      if (!SUPPORTED_TYPES.has(t)) throw new OperationOutcomeError('INVALID', `_type: ${t} is not a resource type this server holds`);
      if (!levelTakes(t)) throw new OperationOutcomeError('INVALID', `_type: ${t} is not patient data: export it with the system-level $export`);
    }
    // Asked for explicitly: the caller must be able to read each (else 403). Otherwise: what its scopes read.
    let types: string[];
    let caller: Caller | undefined;
    if (req.types) {
      types = [...new Set(req.types)];
      for (const t of types) caller = scoped(t);
    } else {
      types = [];
      let refusal: unknown;
      for (const t of [...SUPPORTED_TYPES].filter(levelTakes).sort()) {
        try {
          caller = scoped(t);
          types.push(t);
        } catch (err) {
          refusal ??= err;
        }
      }
      if (types.length === 0) throw refusal instanceof Error ? refusal : new OperationOutcomeError('FORBIDDEN', 'The token reads no resource type');
    }
    if (!caller) throw new OperationOutcomeError('INVALID', '_type names no resource type');
    AccessControl.requireActor(caller);
    assertMayExport(caller, req.level);
    this.sweep();
    this.#assertMayStart(owner);
    let patientIds: string[] | undefined;
    if (req.level === 'group') {
      // The Group is read through the enforcement point like any read (404 if the caller may not see it).
      const group = await this.#resources.read(scoped('Group'), 'Group', String(req.groupId));
      patientIds = membersOf(group);
      this.#assertMayStart(owner);
    }

    const id = randomUUID();
    const transactionTime = new Date().toISOString();
    this.#db
      .prepare("INSERT INTO export_job (id, owner, state, request, transaction_time, progress, created_at) VALUES (?, ?, 'in-progress', ?, ?, ?, ?)")
      .run(id, owner, req.requestUrl, transactionTime, 'queued', Date.now());
    fs.mkdirSync(this.#jobDir(id), { mode: 0o700 });
    const job = { caller, types, patientIds, since: req.since, cancelled: false } as Omit<RunningJob, 'done'> & { cancelled: boolean };
    const done = this.#run(id, job, transactionTime).finally(() => this.#running.delete(id));
    this.#running.set(id, Object.assign(job, { done }));
    this.#log.info({ event: 'export-started', job: id, level: req.level, types: types.length }, 'bulk export started');
    return id;
  }

  /** The job's status, for its owner only (anyone else: 404). */
  status(owner: string, id: string): ExportStatus {
    const row = this.#row(owner, id);
    if (row.state === 'in-progress') return { state: 'in-progress', progress: row.progress };
    if (row.state === 'error') return { state: 'error', outcome: JSON.parse(row.error ?? '{}') as Record<string, unknown> };
    return {
      state: 'complete',
      manifest: JSON.parse(row.manifest ?? '{}') as ExportManifest,
      expiresAt: new Date((row.finished_at ?? Date.now()) + this.#ttlMs).toISOString(),
    };
  }

  /** The path of a finished job's output file, for its owner only (anyone else, or no such file: 404). */
  file(owner: string, id: string, name: string): string {
    const row = this.#row(owner, id);
    const m = FILE_NAME.exec(name);
    if (row.state !== 'complete' || !m) throw unknownJob();
    const manifest = JSON.parse(row.manifest ?? '{}') as ExportManifest;
    const listed = [...manifest.output, ...manifest.error].some((o) => o.url === this.#fileUrl(id, name));
    const file = path.join(this.#jobDir(id), name);
    if (!listed || !fs.existsSync(file)) throw unknownJob();
    return file;
  }

  /** Cancels a running job, or deletes a finished one, with its files (its owner only; anyone else: 404). */
  async remove(owner: string, id: string): Promise<void> {
    this.#row(owner, id);
    this.#db.prepare('DELETE FROM export_job WHERE id = ?').run(id);
    const running = this.#running.get(id);
    if (running) {
      running.cancelled = true;
      await running.done;
    }
    this.#removeFiles(id);
    this.#log.info({ event: 'export-deleted', job: id }, 'bulk export deleted');
  }

  /** Deletes finished jobs (and their files) older than the time to keep them. */
  sweep(): void {
    const expired = this.#db.prepare("SELECT id FROM export_job WHERE state != 'in-progress' AND finished_at < ?").all(Date.now() - this.#ttlMs) as Array<{ id: string }>;
    for (const { id } of expired) {
      this.#db.prepare('DELETE FROM export_job WHERE id = ?').run(id);
      this.#removeFiles(id);
    }
  }

  /** Stops: running jobs are cancelled (and reported failed at the next start), the database closed. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const running = [...this.#running.values()];
    running.forEach((r) => (r.cancelled = true));
    await Promise.all(running.map((r) => r.done));
    this.#db.close();
  }

  statusUrl(id: string): string {
    return `${this.#base}/$export-status/${id}`;
  }

  #fileUrl(id: string, name: string): string {
    return `${this.#base}/$export-file/${id}/${name}`;
  }

  #jobDir(id: string): string {
    return path.join(this.#dir, id);
  }

  /** One running job per caller, and at most maxRunning in all (429 otherwise). */
  #assertMayStart(owner: string): void {
    if ((this.#db.prepare("SELECT COUNT(*) AS n FROM export_job WHERE owner = ? AND state = 'in-progress'").get(owner) as { n: number }).n > 0) {
      throw new OperationOutcomeError('TOO_MANY_REQUESTS', 'You have an export running: wait for it to finish, or delete it, before starting another');
    }
    if (this.#running.size >= this.#maxRunning) throw new OperationOutcomeError('TOO_MANY_REQUESTS', 'Too many exports are running on this server: try again later');
  }

  #row(owner: string, id: string): JobRow {
    if (!JOB_ID.test(id)) throw unknownJob();
    const row = this.#db.prepare('SELECT * FROM export_job WHERE id = ?').get(id) as JobRow | undefined;
    if (!row || row.owner !== owner) throw unknownJob();
    return row;
  }

  #removeFiles(id: string): void {
    fs.rmSync(this.#jobDir(id), { recursive: true, force: true });
  }

  #finish(id: string, state: 'complete' | 'error', manifest: string | null, error: string | null): void {
    this.#db.prepare('UPDATE export_job SET state = ?, manifest = ?, error = ?, finished_at = ?, progress = ? WHERE id = ?').run(state, manifest, error, Date.now(), state, id);
  }

  async #run(id: string, job: Omit<RunningJob, 'done'>, transactionTime: string): Promise<void> {
    const files = new Map<string, { handle: fs.promises.FileHandle; count: number }>();
    const write = async (name: string, line: string): Promise<void> => {
      let f = files.get(name);
      if (!f) {
        f = { handle: await fs.promises.open(path.join(this.#jobDir(id), name), 'wx', 0o600), count: 0 };
        files.set(name, f);
      }
      await f.handle.write(`${line}\n`);
      f.count++;
    };
    const progress = this.#db.prepare('UPDATE export_job SET progress = ? WHERE id = ?');
    let exported = 0;
    try {
      for (const [i, type] of job.types.entries()) {
        // One type at a time, in pages, and patient ids in slices the store's IN list takes.
        const slices = job.patientIds === undefined ? [undefined] : chunks(job.patientIds, 500);
        for (const patientIds of slices) {
          if (patientIds?.length === 0) continue;
          let after: { lastUpdated: string; id: string } | undefined;
          do {
            if (job.cancelled) return;
            const page = await this.#resources.exportPage(job.caller, type, {
              ...(patientIds ? { patientIds } : {}),
              ...(job.since ? { since: job.since } : {}),
              until: transactionTime,
              ...(after ? { after } : {}),
              limit: this.#pageSize,
            });
            for (const r of page.resources) await write(`${type}.ndjson`, JSON.stringify(r as Resource));
            for (const w of page.withheld) {
              await write(ERROR_FILE, JSON.stringify(outcome('error', 'exception', `${w.resourceType}/${w.id} does not match its anchor on the ledger and is withheld`)));
            }
            exported += page.resources.length;
            if (exported > this.#maxResources) {
              throw new OperationOutcomeError('TOO_LARGE', `The export holds more than ${this.#maxResources} resources: narrow it with _type or _since`);
            }
            after = page.next;
            progress.run(`type ${i + 1} of ${job.types.length} (${type}); ${exported} resources`, id);
          } while (after);
        }
      }
      for (const f of files.values()) await f.handle.sync();
      const manifest: ExportManifest = {
        transactionTime,
        request: (this.#db.prepare('SELECT request FROM export_job WHERE id = ?').get(id) as { request: string } | undefined)?.request ?? '',
        requiresAccessToken: true,
        output: [...files.entries()].filter(([n]) => n !== ERROR_FILE).map(([n, f]) => ({ type: n.replace(/\.ndjson$/, ''), url: this.#fileUrl(id, n), count: f.count })),
        error: [...files.entries()].filter(([n]) => n === ERROR_FILE).map(([n, f]) => ({ type: 'OperationOutcome' as const, url: this.#fileUrl(id, n), count: f.count })),
      };
      if (!job.cancelled) this.#finish(id, 'complete', JSON.stringify(manifest), null);
      this.#log.info({ event: 'export-complete', job: id, resources: exported, files: files.size }, 'bulk export complete');
    } catch (err) {
      // The job fails whole: its partial files go. The reason is ours (no PHI) or a generic one.
      const known = err instanceof OperationOutcomeError && err.code !== 'INTERNAL';
      if (!known) this.#log.error({ event: 'export-failed', job: id, err }, 'bulk export failed');
      else this.#log.warn({ event: 'export-failed', job: id, code: err.code }, 'bulk export failed');
      const failure = known ? err.outcome : outcome('error', 'exception', 'The export failed on the server; start a new export, and tell the operator if it fails again');
      if (!job.cancelled) this.#finish(id, 'error', null, JSON.stringify(failure));
      this.#removeFiles(id);
    } finally {
      for (const f of files.values()) await f.handle.close().catch(() => undefined);
      if (job.cancelled) this.#removeFiles(id);
    }
  }
}

/** The local Patient ids a Group's active members name (`Patient/<id>`); other members are not patients. */
export function membersOf(group: Resource): string[] {
  const members = Array.isArray(group.member) ? (group.member as Array<{ entity?: { reference?: unknown }; inactive?: unknown }>) : [];
  const ids = new Set<string>();
  for (const m of members) {
    const ref = m.entity?.reference;
    const match = typeof ref === 'string' ? /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
    if (match?.[1] && m.inactive !== true) ids.add(match[1]);
  }
  return [...ids];
}
