/**
 * Live access notifications: `GET /fhir/AuditEvent/$stream`, server-sent events (text/event-stream) of
 * each new access-history entry about the caller's own data or their wards', as its transaction is
 * committed, read from this organization's peer's block delivery (the same committed blocks, parsed by
 * the same parser, as the ledger view: gateway/src/view/). Nothing is polled and nothing is read from
 * the store: an entry is sent only once it is in a valid transaction of a committed block.
 *
 * Who: a patient (a DID token of a patient DID, or an IdP patient with its DID), for themselves and the
 * patients whose registered guardian they are (the chaincode's rule for the AuditEvent search:
 * audit-contract.ts, canSee); and an active auditor DID, through a gateway of the auditor's own
 * organization (where the chaincode lets it read every entry), for the break-glass accesses only (what
 * the review queue waits for). Other entries are never sent, and nothing
 * tells the caller they exist.
 *
 * Each event is `event: access`, `id: <block>.<transaction>.<n>` (a ledger position, no PHI) and `data:`
 * the entry as a FHIR AuditEvent (toAuditEvent, as the search returns it). A client that reconnects with
 * `Last-Event-ID` is sent every entry after that position, so there is no gap: the stream restarts the
 * peer's delivery at that block. A fresh stream starts at the peer's height and first sends
 * `event: ready` with the id of that position; a client that loads the history after `ready` misses
 * nothing. The stream ends when the caller's token expires (`event: expired`): the client reconnects
 * with a fresh token and its Last-Event-ID.
 *
 * The browser's EventSource cannot send an Authorization header: the web app reads the stream with
 * fetch(); a bearer token never goes into a URL.
 *
 * Each open stream is its own delivery stream from the peer (no shared fan-out yet): the number of open
 * streams is limited per gateway and per caller.
 */
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import type { AuthContext } from '../auth/types';
import { requireScope } from '../auth/scopes';
import { OperationOutcomeError } from '../errors';
import { toAuditEvent } from '../fhir/audit-events';
import { isPatientOrGuardian } from '../fhir/policy';
import type { AuditEntry } from '../ledger/ledger-client';
import { parseBlock, type KeyWrite } from '../view/block-parser';
import type { BlockSource } from '../view/ledger-view';

/** The chaincode's key of one access-history entry: composite `hdx.audit` [eventId] (audit-model.ts, auditKey). */
const AUDIT_OBJECT_TYPE = 'hdx.audit';

/** Where a stream resumes: in block `block`, after the entry (`tx`, `n`), or from its start when `tx` is absent. */
export interface StreamCursor {
  readonly block: bigint;
  readonly tx?: number;
  readonly n?: number;
}

const CURSOR = /^([0-9]{1,19})(?:\.([0-9]{1,9})\.([0-9]{1,9}))?$/;

/** `Last-Event-ID` → cursor; undefined when it is not one this stream wrote. */
export function parseCursor(text: string): StreamCursor | undefined {
  const m = CURSOR.exec(text.trim());
  if (!m) return undefined;
  const [, block = '', tx, n] = m;
  return { block: BigInt(block), ...(tx !== undefined && n !== undefined ? { tx: Number(tx), n: Number(n) } : {}) };
}

export function cursorText(cursor: StreamCursor): string {
  return cursor.tx === undefined ? String(cursor.block) : `${cursor.block}.${cursor.tx}.${cursor.n ?? 0}`;
}

/** Whether the entry at (block, tx, n) comes after the cursor. */
function after(cursor: StreamCursor, block: bigint, tx: number, n: number): boolean {
  if (block !== cursor.block) return block > cursor.block;
  if (cursor.tx === undefined) return true;
  return tx > cursor.tx || (tx === cursor.tx && n > (cursor.n ?? 0));
}

/** One access-history entry written by a valid transaction of a block, with its position. */
export interface PositionedEntry {
  readonly cursor: Required<StreamCursor>;
  readonly entry: AuditEntry;
}

function isEntryKey(key: string): boolean {
  // Composite key: U+0000 objectType U+0000 eventId U+0000. The index keys (`hdx.audit~…`) are other types.
  if (!key.startsWith('\u0000') || !key.endsWith('\u0000')) return false;
  const parts = key.slice(1, -1).split('\u0000');
  return parts.length === 2 && parts[0] === AUDIT_OBJECT_TYPE;
}

/** The access-history entries among a block's writes, in block order, each with its position. */
export function entriesOf(writes: readonly KeyWrite[]): PositionedEntry[] {
  const out: PositionedEntry[] = [];
  let lastTx = -1;
  let n = 0;
  for (const w of writes) {
    if (w.deleted || w.value === undefined || !isEntryKey(w.key)) continue;
    n = w.txIndex === lastTx ? n + 1 : 0;
    lastTx = w.txIndex;
    let entry: AuditEntry;
    try {
      entry = JSON.parse(Buffer.from(w.value).toString('utf8')) as AuditEntry;
    } catch {
      continue;
    }
    if (typeof entry.eventId !== 'string' || typeof entry.patient !== 'string') continue;
    out.push({ cursor: { block: w.blockNumber, tx: w.txIndex, n }, entry });
  }
  return out;
}

/** A DID's resolution as far as the guardian and auditor checks read it. */
type Resolver = (did: string) => Promise<{ hdx: { status: string; guardians: string[]; kind?: string; organization?: string } } | undefined>;

export interface AccessStreamOptions {
  /** The organization's peer: committed blocks from any block on, and its height. */
  readonly source: BlockSource;
  /** The chaincode's name: the namespace of its writes. */
  readonly namespace: string;
  /** DID resolution on the ledger (for the guardian rule, and an auditor's organization). */
  readonly resolve: Resolver;
  /**
   * The organization running this gateway. An auditor is streamed to only through a gateway of their own
   * organization, as the chaincode lets an auditor DID read the whole history (audit-viewer.ts, viewerOf);
   * without it, auditors get no stream.
   */
  readonly mspId?: string;
  readonly log: Logger;
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  readonly heartbeatMs?: number;
  /** How long a stream keeps a guardian check (default 30 s). */
  readonly guardianCacheMs?: number;
  /** Open streams per gateway (default 200) and per caller (default 4). */
  readonly maxStreams?: number;
  readonly maxPerCaller?: number;
  readonly now?: () => number;
}

/** The route handler of `GET /fhir/AuditEvent/$stream` (after authentication). */
export class AccessStream {
  readonly #o: AccessStreamOptions;
  readonly #open = new Map<string, number>();
  #total = 0;

  constructor(options: AccessStreamOptions) {
    this.#o = options;
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.#total;
  }

  /** Checks the caller and the Last-Event-ID, then streams until the client leaves or the token expires. */
  async serve(req: Request, res: Response, auth: AuthContext): Promise<void> {
    const { did, auditor } = this.#caller(auth);
    if (auditor) {
      // The chaincode's rule: an auditor DID reads everything only through its own organization's gateway.
      const record = await this.#o.resolve(did).catch(() => undefined);
      if (!(record?.hdx.status === 'active' && record.hdx.kind === 'auditor' && this.#o.mspId !== undefined && record.hdx.organization === this.#o.mspId)) {
        throw new OperationOutcomeError('FORBIDDEN', "An auditor's live stream is served only by a gateway of the auditor's own organization");
      }
    }
    const last = req.get('last-event-id');
    const resume = last === undefined || last === '' ? undefined : parseCursor(last);
    if (last !== undefined && last !== '' && resume === undefined)
      throw new OperationOutcomeError('INVALID', 'Last-Event-ID must be the id of an event of this stream (<block>.<transaction>.<n>, or <block>)');
    const now = this.#o.now ?? Date.now;
    const lifetimeMs = auth.expiresAt * 1000 - now();
    if (lifetimeMs <= 0) throw new OperationOutcomeError('UNAUTHENTICATED', 'The token has expired');
    if (this.#total >= (this.#o.maxStreams ?? 200)) throw new OperationOutcomeError('TOO_MANY_REQUESTS', 'Too many live streams are open on this gateway; try again later');
    if ((this.#open.get(did) ?? 0) >= (this.#o.maxPerCaller ?? 4))
      throw new OperationOutcomeError('TOO_MANY_REQUESTS', 'Too many live streams are open for this caller: close one (another tab or device) first');

    let height: bigint;
    try {
      height = await this.#o.source.chainHeight();
    } catch {
      throw new OperationOutcomeError('UNAVAILABLE', 'The ledger is not reachable: live access notifications are unavailable');
    }
    if (resume && resume.block > height) throw new OperationOutcomeError('INVALID', 'Last-Event-ID names a position beyond the ledger');
    const start: StreamCursor = resume ?? { block: height };
    let blocks: Awaited<ReturnType<BlockSource['blockEvents']>>;
    try {
      blocks = await this.#o.source.blockEvents(start.block);
    } catch {
      throw new OperationOutcomeError('UNAVAILABLE', 'The ledger is not reachable: live access notifications are unavailable');
    }

    this.#total += 1;
    this.#open.set(did, (this.#open.get(did) ?? 0) + 1);
    let closed = false;
    const timers: NodeJS.Timeout[] = [];
    const close = (): void => {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      blocks.close();
      this.#total -= 1;
      const left = (this.#open.get(did) ?? 1) - 1;
      if (left > 0) this.#open.set(did, left);
      else this.#open.delete(did);
    };
    res.on('close', close);

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-store');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    res.write('retry: 3000\n\n');
    // A fresh stream tells the client where it starts (its Last-Event-ID from now on); a resumed one keeps the client's.
    res.write(`${resume ? '' : `id: ${cursorText(start)}\n`}event: ready\ndata: ${JSON.stringify({ resumed: resume !== undefined })}\n\n`);

    timers.push(
      setInterval(() => {
        if (!closed) res.write(': keep-alive\n\n');
      }, this.#o.heartbeatMs ?? 15_000),
    );
    // A stream lives no longer than the token that opened it (a revoked or deactivated DID stops being served).
    timers.push(
      setTimeout(
        () => {
          if (closed) return;
          res.write('event: expired\ndata: {}\n\n');
          res.end();
          close();
        },
        Math.min(lifetimeMs, 2 ** 31 - 1),
      ),
    );

    const guardianOf = new Map<string, { ok: boolean; at: number }>();
    const visible = async (entry: AuditEntry): Promise<boolean> => {
      // An auditor, who may search every entry, is sent the break-glass accesses (the review queue's).
      if (auditor) return entry.breakGlass === true;
      const patient = entry.patient;
      if (patient === did) return true;
      if (!HDX_DID.test(patient)) return false;
      const cached = guardianOf.get(patient);
      if (cached && now() - cached.at < (this.#o.guardianCacheMs ?? 30_000)) return cached.ok;
      const ok = await isPatientOrGuardian(did, patient, this.#o.resolve);
      guardianOf.set(patient, { ok, at: now() });
      return ok;
    };

    try {
      for await (const block of blocks) {
        if (closed) break;
        const parsed = parseBlock(block, this.#o.namespace);
        for (const { cursor, entry } of entriesOf(parsed.writes)) {
          if (!after(start, cursor.block, cursor.tx, cursor.n)) continue;
          if (!(await visible(entry))) continue;
          if (closed) break;
          res.write(`id: ${cursorText(cursor)}\nevent: access\ndata: ${JSON.stringify(toAuditEvent(entry))}\n\n`);
        }
      }
    } catch (err) {
      // Block numbers and error kinds only: an entry names a patient.
      if (!closed) this.#o.log.warn({ reason: err instanceof Error ? err.name : 'unknown' }, 'access stream: the block delivery failed; the client will resume');
    } finally {
      if (!closed) res.end();
      close();
    }
  }

  /** The patient (or guardian), or the auditor, the stream is for; anyone else is refused. */
  #caller(auth: AuthContext): { did: string; auditor: boolean } {
    const scope = requireScope(auth, 'AuditEvent', 'search');
    if (auth.viaOrganization !== undefined || auth.actorAuth === 'delegated') {
      throw new OperationOutcomeError('FORBIDDEN', 'The access history is not available to a member organization acting for a user');
    }
    if (!auth.did) throw new OperationOutcomeError('FORBIDDEN', 'Live access notifications need a registered patient DID (claim hdx_did)');
    if (auth.role !== 'patient' && auth.role !== 'auditor') {
      throw new OperationOutcomeError(
        'FORBIDDEN',
        'Live access notifications are for patients (and guardians), and for auditors (break-glass accesses); others search /fhir/AuditEvent for their own actions',
      );
    }
    // SMART: a patient/ scope binds to the patient signed in (as everywhere in policy.ts).
    if (auth.role === 'auditor' && scope.context !== 'user')
      throw new OperationOutcomeError('FORBIDDEN', 'patient/ scopes bind to the patient signed in; an auditor uses user/ scopes');
    return { did: auth.did, auditor: auth.role === 'auditor' };
  }
}
