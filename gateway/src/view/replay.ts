/**
 * Replayable decisions (`hdx replay`): re-decides every access entry of a patient's history from the
 * ledger alone, with the chaincode's own evaluator (`decideAccessSteps` of @hdx/chaincode, as
 * hdx.consent:EvaluateAccess, hdx.audit:AuthorizeAndRecord and the gateway's local decisions run it), on
 * the state the entry was decided on, and reports every entry whose recorded decision does not follow.
 *
 * ONE PASS. The committed blocks are read from block 0 in order into a temporary ViewStore (the same
 * block parser and tables as the live ledger view). Before block b is applied the store holds exactly
 * the state at height b (blocks 0 … b−1); each entry is checked when the pass reaches its height.
 *
 * WHICH HEIGHT (the rule this module implements, from chaincode/src/audit-contract.ts and
 * access-decision.ts):
 *
 * - **Decided by the chaincode** — the entry was written by `hdx.audit:AuthorizeAndRecord` (the
 *   transaction's proposal in its block names the function). The chaincode decided and recorded in one
 *   transaction, reading the world state through its stub (only non-paginated reads). A valid
 *   transaction's reads are those of the state just before it in its block (Fabric's MVCC and
 *   phantom-read validation invalidates it otherwise), and no transaction before it in block b changed
 *   what it read, so that is the state at height b: **the entry is re-decided at height b, b being its
 *   own block**, on the very request its proposal carried, with the clock the chaincode used (`now` =
 *   the transaction's whole seconds = `recordedAt` truncated to the second; submitter = the recording
 *   MSP, `entry.gateway`). Decision, consents (in order), reason and breakGlass must be identical.
 * - **Decided by a gateway on its ledger view** — the entry carries `decidedAt.height` h (the number of
 *   blocks the view had applied): **re-decided at height h**, each resource as the gateway asks for it
 *   (`{actor, actorOrganization, actorAuth, purpose, resource}`), at `now` = `occurredAt` (when the outbox
 *   took the entry, just after the decision), submitter = `entry.gateway`. Every resource must replay to
 *   the entry's decision, the entry's consents must be the union of the replayed ones, breakGlass their
 *   or, and (one resource, reason stated) the reason the same. An h past the entry's own block b (h > b)
 *   is a height the ledger had not reached when the entry was recorded: it does not follow.
 * - **Stated by a gateway without a height** (RecordAccess(Batch), AnchorAndRecord without `decidedAt`:
 *   async-mode decisions made by an EvaluateAccess query, whose height no one recorded; the gateway's
 *   own refusals; reference data; changes by the custodian, action C/U/D) cannot be replayed: they are
 *   reported as unchecked, with why. A read among them also says whether its decision would follow at
 *   the height before its own block (`atRecording`): a hint, since it was decided earlier.
 *
 * An entry whose version was not anchored at its height, or whose request the chaincode would refuse,
 * does not follow (the chaincode would have recorded nothing; a gateway's view decides only what it can).
 *
 * No PHI in the report: entries are named by eventId (`<txId>.<n>`), resources by their index in the
 * entry, reasons by code; no actor, no resource id, no chaincode message text.
 */
import * as fs from 'node:fs';
import type { AuditEntry } from '@hdx/chaincode';
import { type AccessRequestInput, decideAccessSteps, parseAccessRequest, type ResolvedDecision, runSync } from '@hdx/chaincode/dist/access-decision';
import { AUDIT_KEY } from '@hdx/chaincode/dist/audit-model';
import { ChaincodeError } from '@hdx/chaincode/dist/errors';
import { coPatientEntryId } from '@hdx/chaincode/dist/protocol';
import { governingPatients } from '@hdx/chaincode/dist/record-model';
import type { JsonObject } from '@hdx/chaincode/dist/validate';
import { parseBlock, type ParsedBlock, type TransactionCall } from './block-parser';
import type { BlockSource } from './ledger-view';
import { viewFacts } from './local-decisions';
import { ViewStore } from './view-store';

/** The function whose entries the chaincode decided itself. */
export const AUTHORIZE_AND_RECORD = 'hdx.audit:AuthorizeAndRecord';
/** Group commit (sync mode): several AuthorizeAndRecord requests in one transaction; an entry's request is the one with its entryId. */
export const AUTHORIZE_AND_RECORD_BATCH = 'hdx.audit:AuthorizeAndRecordBatch';
/** What AuthorizeAndRecord's request holds besides the EvaluateAccess request. */
const AUTHORIZE_EXTRA_FIELDS = ['resources', 'auditAction', 'subtype', 'entryId'] as const;

/** Who decided: the chaincode (AuthorizeAndRecord), a gateway on its view (decidedAt), or a gateway stating it. */
export type DecidedBy = 'chaincode' | 'gateway-view' | 'gateway-stated';
export type Verdict = 'follows' | 'does-not-follow' | 'unchecked';

export interface DecisionOutcome {
  readonly decision: 'permit' | 'deny';
  readonly consents: readonly string[];
  readonly reason?: string;
  readonly breakGlass: boolean;
}

export interface EntryReplay {
  readonly eventId: string;
  readonly recordedAt: string;
  /** The block holding the entry's transaction, when the pass reached it. */
  readonly block?: string;
  readonly decidedBy?: DecidedBy;
  /** The height (blocks 0 … height−1) the entry was re-decided at. */
  readonly height?: number;
  readonly verdict: Verdict;
  readonly recorded: DecisionOutcome;
  readonly replayed?: DecisionOutcome;
  /** Why it does not follow, or why it was not checked. */
  readonly why?: string;
  /**
   * For a read a gateway stated without a height: whether its decision would follow at the height
   * before its own block (the state when it was recorded). A hint, not a verdict: the decision was made
   * earlier, at a height no one recorded, and a consent may have changed in between.
   */
  readonly atRecording?: 'follows' | 'differs';
}

export interface ReplayReport {
  readonly patient: string;
  /** Blocks read (the pass stops once every entry is settled). */
  readonly blocksRead: string;
  readonly entries: number;
  readonly follows: number;
  readonly doesNotFollow: readonly EntryReplay[];
  readonly unchecked: readonly EntryReplay[];
}

export interface ReplayProgress {
  /** Blocks applied so far. */
  readonly height: bigint;
  /** The ledger height the pass reads up to at most. */
  readonly target: bigint;
  readonly settled: number;
  readonly entries: number;
}

export interface ReplayOptions {
  /** The patient the history is about (as the entries name it). */
  readonly patient: string;
  /** The patient's access entries, as the ledger's state holds them (hdx.audit:QueryAccess). */
  readonly entries: readonly AuditEntry[];
  readonly source: Pick<BlockSource, 'blockEvents'>;
  readonly channel: string;
  /** The chaincode's name: the namespace of its writes. */
  readonly namespace: string;
  /** Read blocks 0 … target−1 at most: the ledger height once the entries were read. */
  readonly target: bigint;
  /** Where the temporary view is built (default in memory). A file is refused if it exists. */
  readonly file?: string;
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** Blocks between two progress calls (default 500). */
  readonly progressEvery?: number;
  /** Give up when the blocks stop arriving for this long (ms). Default 10 minutes. */
  readonly timeoutMs?: number;
}

function outcomeOf(entry: AuditEntry): DecisionOutcome {
  return { decision: entry.decision, consents: [...entry.consents], ...(entry.reason !== undefined ? { reason: entry.reason } : {}), breakGlass: entry.breakGlass };
}

/** A JSON value with object keys sorted, for comparing an entry as read with the one its block wrote. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The composite key `hdx.audit` [eventId] the chaincode writes an entry under (as `auditKey`). */
function entryKey(eventId: string): string {
  return `\u0000${AUDIT_KEY}\u0000${eventId}\u0000`;
}

/** What a chaincode error means for a recorded decision (its message may name a resource: not kept). */
function refusal(err: unknown, what: string, height: number): string {
  if (err instanceof ChaincodeError) {
    return err.code === 'NOT_FOUND' ? `${what} was not anchored at height ${height}` : `the chaincode would refuse ${what} at height ${height} (${err.code})`;
  }
  throw err;
}

type Check = { verdict: 'follows' | 'does-not-follow'; replayed?: DecisionOutcome; why?: string };

/** One decision, as the chaincode makes it, on the store's current state. */
function decideNow(store: ViewStore, input: AccessRequestInput, clock: { now: number; submitter: string }): ResolvedDecision {
  return runSync(decideAccessSteps(input, 'request', clock), viewFacts(store));
}

/**
 * The request an AuthorizeAndRecord entry was decided on: the transaction's one request, or, in an
 * AuthorizeAndRecordBatch, the request carrying the entry's entryId (unique within a batch).
 */
/** Whether an entry's entryId is a request's own, or that of one of its co-patients' entries (coPatientEntryId). */
function isEntryOf(entryId: string, requestEntryId: unknown): boolean {
  if (typeof requestEntryId !== 'string') return false;
  if (entryId === requestEntryId) return true;
  const n = /^co([0-9]{1,2})-/.exec(entryId)?.[1];
  return n !== undefined && coPatientEntryId(requestEntryId, Number(n)) === entryId;
}

function requestOf(entry: AuditEntry, call: TransactionCall): JsonObject {
  const arg = JSON.parse(Buffer.from(call.args[0] ?? []).toString('utf8')) as unknown;
  if (call.fn !== AUTHORIZE_AND_RECORD_BATCH) return arg as JsonObject;
  const found = Array.isArray(arg)
    ? (arg as JsonObject[]).find((r) => r !== null && typeof r === 'object' && entry.entryId !== undefined && isEntryOf(entry.entryId, r.entryId))
    : undefined;
  if (!found) throw new SyntaxError("no request of the batch carries the entry's entryId");
  return found;
}

/** An AuthorizeAndRecord entry: its own request, re-decided at the height before its block. */
function checkChaincodeEntry(store: ViewStore, entry: AuditEntry, call: TransactionCall, height: number): Check {
  const recorded = outcomeOf(entry);
  let resolved;
  try {
    const obj = requestOf(entry, call);
    const input = parseAccessRequest(obj, 'request', AUTHORIZE_EXTRA_FIELDS);
    resolved = decideNow(store, input, { now: Math.floor(Date.parse(entry.recordedAt) / 1000) * 1000, submitter: entry.gateway });
  } catch (err) {
    if (err instanceof SyntaxError) return { verdict: 'does-not-follow', why: 'its transaction did not carry a JSON request' };
    return { verdict: 'does-not-follow', why: refusal(err, 'its request', height) };
  }
  const replayed: DecisionOutcome = { decision: resolved.decision, consents: resolved.consents, reason: resolved.reason, breakGlass: resolved.breakGlass };
  // The entry names the decision's patient, or one of the other patients whose consents decided it.
  if (![resolved.request.patient, ...(resolved.coPatients ?? [])].includes(entry.patient)) {
    return { verdict: 'does-not-follow', replayed, why: 'the decision is about another patient than the entry names' };
  }
  if (resolved.resource !== undefined && entry.resources[0] !== resolved.resource)
    return { verdict: 'does-not-follow', replayed, why: 'the entry names another resource than its request' };
  const same =
    replayed.decision === recorded.decision &&
    sameList(replayed.consents, recorded.consents) &&
    (replayed.reason ?? '') === (recorded.reason ?? '') &&
    replayed.breakGlass === recorded.breakGlass;
  return same ? { verdict: 'follows', replayed } : { verdict: 'does-not-follow', replayed, why: `the chaincode's decision at height ${height} differs from the entry` };
}

/** An entry a gateway decided on its view at `height`: each resource re-decided as the gateway asks for it. */
function checkViewEntry(store: ViewStore, entry: AuditEntry, height: number): Check | { verdict: 'unchecked'; why: string } {
  const recorded = outcomeOf(entry);
  if (entry.resources.length === 0) return { verdict: 'unchecked', why: 'the entry names no resource to decide' };
  const clock = { now: Date.parse(entry.occurredAt), submitter: entry.gateway };
  const decisions: DecisionOutcome[] = [];
  for (const [i, ref] of entry.resources.entries()) {
    // `Type/id` (all versions) names no decision; the chaincode's parser checks the rest of the grammar.
    const parts = ref.split('/');
    if (parts.length !== 4) return { verdict: 'unchecked', why: `resources[${i}] names no version` };
    const [resourceType = '', id = '', , versionId = ''] = parts;
    const request = { actor: entry.actor, actorOrganization: entry.actorOrganization, actorAuth: entry.actorAuth, purpose: entry.purpose, resource: ref };
    let resolved;
    try {
      resolved = decideNow(store, parseAccessRequest(request as unknown as JsonObject, 'request'), clock);
    } catch (err) {
      return { verdict: 'does-not-follow', why: refusal(err, `resources[${i}]`, height) };
    }
    const anchored = store.anchor(resourceType, id, versionId);
    const patients = [resolved.request.patient, ...(resolved.coPatients ?? []), ...(anchored ? governingPatients(anchored) : [])];
    if (!patients.includes(entry.patient)) {
      return { verdict: 'does-not-follow', why: `resources[${i}] is not about the entry's patient at height ${height}` };
    }
    decisions.push({ decision: resolved.decision, consents: resolved.consents, reason: resolved.reason, breakGlass: resolved.breakGlass });
  }
  const single = decisions.length === 1 ? decisions[0] : undefined;
  const replayed: DecisionOutcome = {
    decision: decisions.every((d) => d.decision === 'permit') ? 'permit' : 'deny',
    consents: [...new Set(decisions.flatMap((d) => d.consents))].sort(),
    ...(single?.reason !== undefined ? { reason: single.reason } : {}),
    breakGlass: decisions.some((d) => d.breakGlass),
  };
  const mixed = decisions.filter((d) => d.decision !== recorded.decision).length;
  if (mixed > 0) {
    return {
      verdict: 'does-not-follow',
      replayed,
      why: `${mixed} of ${decisions.length} resources replay to ${recorded.decision === 'permit' ? 'deny' : 'permit'} at height ${height}`,
    };
  }
  const same =
    sameList(replayed.consents, [...recorded.consents].sort()) &&
    replayed.breakGlass === recorded.breakGlass &&
    (single === undefined || recorded.reason === undefined || recorded.reason === replayed.reason);
  return same
    ? { verdict: 'follows', replayed }
    : { verdict: 'does-not-follow', replayed, why: `the consents, reason or break-glass flag differ from the decision at height ${height}` };
}

interface Pending {
  entry: AuditEntry;
  /** The check made at decidedAt.height, before the entry's own block is reached. */
  atHeight?: ReturnType<typeof checkViewEntry>;
}

/** Why an entry a gateway stated without a height cannot be replayed. */
function statedWhy(entry: AuditEntry, fn: string | undefined): string {
  const by = fn ?? 'a transaction whose invocation its block does not show';
  if (entry.action === 'C' || entry.action === 'U' || entry.action === 'D')
    return `recorded by ${by} as a change (action ${entry.action}) by the custodian: no consent decision to replay`;
  if (entry.action !== 'R') return `recorded by ${by} as action ${entry.action} without decidedAt: no decision height to replay at`;
  return `recorded by ${by} without decidedAt: decided by an EvaluateAccess query at a height no one recorded, or by the gateway itself`;
}

/**
 * Replays the patient's access history: one pass over blocks 0 … target−1 (stopping once every entry is
 * settled), each entry re-decided at its height as the module comment says.
 */
export async function replayAccessHistory(options: ReplayOptions): Promise<ReplayReport> {
  const results = new Map<string, EntryReplay>();
  const pending = new Map<string, Pending>();
  const byTx = new Map<string, Pending[]>();
  const byHeight = new Map<number, Pending[]>();
  for (const entry of options.entries) {
    if (pending.has(entry.eventId)) continue;
    const p: Pending = { entry };
    pending.set(entry.eventId, p);
    byTx.set(entry.txId, [...(byTx.get(entry.txId) ?? []), p]);
    if (entry.decidedAt !== undefined) byHeight.set(entry.decidedAt.height, [...(byHeight.get(entry.decidedAt.height) ?? []), p]);
  }
  const settle = (p: Pending, result: Omit<EntryReplay, 'eventId' | 'recordedAt' | 'recorded'>): void => {
    results.set(p.entry.eventId, { eventId: p.entry.eventId, recordedAt: p.entry.recordedAt, recorded: outcomeOf(p.entry), ...result });
    pending.delete(p.entry.eventId);
  };

  let blocksRead = 0n;
  if (pending.size > 0 && options.target > 0n) {
    if (options.file !== undefined && fs.existsSync(options.file)) throw new Error(`${options.file} exists: a replay builds its view in a new file`);
    const store = new ViewStore(options.file ?? ':memory:', { channel: options.channel, namespace: options.namespace });
    const stream = await options.source.blockEvents(0n);
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => stream.close(), options.timeoutMs ?? 600_000);
    };
    const every = BigInt(options.progressEvery ?? 500);
    const progress = (): void => options.onProgress?.({ height: store.height(), target: options.target, settled: results.size, entries: results.size + pending.size });
    try {
      arm();
      for await (const block of stream) {
        arm();
        const parsed: ParsedBlock = parseBlock(block, options.namespace, { calls: true });
        if (parsed.blockNumber < store.height()) continue;
        const height = Number(store.height());
        // 1. Entries a gateway decided at this height: the store holds exactly that state now.
        for (const p of byHeight.get(height) ?? []) if (pending.has(p.entry.eventId)) p.atHeight = checkViewEntry(store, p.entry, height);
        // 2. Entries recorded in this block.
        const calls = new Map((parsed.calls ?? []).map((c) => [c.txId, c]));
        for (const txId of new Set(parsed.writes.map((w) => w.txId))) {
          for (const p of byTx.get(txId) ?? []) {
            if (!pending.has(p.entry.eventId)) continue;
            const block = String(parsed.blockNumber);
            const written = parsed.writes.find((w) => w.txId === txId && w.key === entryKey(p.entry.eventId));
            if (!written?.value) {
              settle(p, { block, verdict: 'unchecked', why: 'its transaction did not write it' });
              continue;
            }
            let fromBlock: AuditEntry;
            try {
              fromBlock = JSON.parse(Buffer.from(written.value).toString('utf8')) as AuditEntry;
            } catch {
              settle(p, { block, verdict: 'unchecked', why: 'its block holds no JSON entry under its key' });
              continue;
            }
            if (canonical(fromBlock) !== canonical(p.entry)) {
              settle(p, { block, verdict: 'unchecked', why: 'the entry read from the ledger state differs from the one its block wrote' });
              continue;
            }
            const call = calls.get(txId);
            if (call?.fn === AUTHORIZE_AND_RECORD || call?.fn === AUTHORIZE_AND_RECORD_BATCH) {
              settle(p, { block, decidedBy: 'chaincode', height, ...checkChaincodeEntry(store, p.entry, call, height) });
            } else if (p.entry.decidedAt !== undefined) {
              const h = p.entry.decidedAt.height;
              if (h > height) {
                settle(p, { block, decidedBy: 'gateway-view', height: h, verdict: 'does-not-follow', why: `decided at height ${h}, past its own block ${block}` });
              } else {
                settle(p, { block, decidedBy: 'gateway-view', height: h, ...(p.atHeight ?? { verdict: 'unchecked', why: 'its height was not replayed' }) });
              }
            } else {
              const hint = p.entry.action === 'R' ? checkViewEntry(store, p.entry, height).verdict : 'unchecked';
              settle(p, {
                block,
                decidedBy: 'gateway-stated',
                verdict: 'unchecked',
                why: statedWhy(p.entry, call?.fn),
                ...(hint === 'unchecked' ? {} : { atRecording: hint === 'follows' ? 'follows' : 'differs' }),
              });
            }
          }
        }
        store.apply(parsed);
        if (store.height() % every === 0n) progress();
        if (pending.size === 0 || store.height() >= options.target) break;
      }
      blocksRead = store.height();
      progress();
    } finally {
      clearTimeout(timer);
      stream.close();
      store.close();
    }
    if (pending.size > 0 && blocksRead < options.target) {
      throw new Error(`the block stream stopped at height ${blocksRead}, before ${options.target}: ${pending.size} entries not replayed`);
    }
  }
  for (const p of [...pending.values()]) settle(p, { verdict: 'unchecked', why: `its transaction is in none of blocks 0 to ${options.target - 1n}` });

  const all = options.entries.map((e) => results.get(e.eventId)).filter((r): r is EntryReplay => r !== undefined);
  const unique = [...new Map(all.map((r) => [r.eventId, r])).values()];
  return {
    patient: options.patient,
    blocksRead: String(blocksRead),
    entries: unique.length,
    follows: unique.filter((r) => r.verdict === 'follows').length,
    doesNotFollow: unique.filter((r) => r.verdict === 'does-not-follow'),
    unchecked: unique.filter((r) => r.verdict === 'unchecked'),
  };
}

/** The ledger as `hdx replay` needs it (FabricLedger): the access history, the height, the blocks. */
export interface ReplayLedger extends Pick<BlockSource, 'blockEvents' | 'chainHeight'> {
  queryAccess(query: { patient: string; requester: string; pageSize: number; bookmark?: string }): Promise<{ entries: AuditEntry[]; bookmark: string }>;
}

/** The largest page hdx.audit:QueryAccess gives. */
const HISTORY_PAGE = 200;

/**
 * Reads the patient's access history (hdx.audit:QueryAccess by patient, the patient as requester: every
 * entry recorded under the patient's DID, whoever recorded it), then the ledger height, and replays it
 * up to that height: every entry read is in a block below it.
 */
export async function replayPatient(
  ledger: ReplayLedger,
  options: Pick<ReplayOptions, 'patient' | 'channel' | 'namespace' | 'onProgress' | 'progressEvery' | 'timeoutMs' | 'file'> & { onHistoryPage?: (entries: number) => void },
): Promise<ReplayReport> {
  const entries: AuditEntry[] = [];
  let bookmark = '';
  for (;;) {
    const page = await ledger.queryAccess({ patient: options.patient, requester: options.patient, pageSize: HISTORY_PAGE, ...(bookmark !== '' ? { bookmark } : {}) });
    entries.push(...page.entries);
    options.onHistoryPage?.(entries.length);
    if (page.bookmark === '' || page.bookmark === bookmark) break;
    bookmark = page.bookmark;
  }
  const target = await ledger.chainHeight();
  const { onHistoryPage: _pages, ...rest } = options;
  return replayAccessHistory({ ...rest, entries, source: ledger, target });
}
