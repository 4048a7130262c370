/**
 * Access decisions made locally, by the chaincode's OWN decision (`decideAccessSteps` of
 * @hdx/chaincode: the same code hdx.consent:EvaluateAccess and hdx.audit:AuthorizeAndRecord run), on the
 * ledger view's copy of the state it reads, failing closed to the chaincode.
 *
 * A local decision is made only when the view is fresh (caught up with its peer within `maxLagMs`, its
 * block stream connected: LedgerView.fresh); otherwise, or when the view cannot decide (the version's
 * anchor is not in it yet, a request the chaincode would refuse), `decide` answers undefined and the
 * caller asks the chaincode. Never a decision on stale consent.
 *
 * A decision runs synchronously, in one turn of the event loop: the view applies blocks synchronously
 * too, so every fact a decision reads, and the height it reports, are of ONE view height.
 */
import { type FactQuery, decideAccessSteps, factKey, parseAccessRequest, runSync, storedConsent } from '@hdx/chaincode/dist/access-decision';
import type { JsonObject } from '@hdx/chaincode/dist/validate';
import type { Anchor, Decision, EvaluateRequest } from '../ledger/ledger-client';
import { DECISION_INPUT_WRITES, tapCalls } from '../ledger/ledger-calls';
import type { ViewStore } from './view-store';
import { DEFAULT_MAX_LAG_MS, type ViewStatus } from './ledger-view';

/** A decision made on the view, with the view height (blocks applied) it was made at. */
export interface LocalDecision extends Decision {
  readonly height: number;
}

/** What decides whether the view may be used (LedgerView). */
export interface Freshness {
  fresh(maxLagMs: number): boolean;
  /** When the last height check that found the view caught up with its peer started (ms since the epoch). */
  caughtUpAt(): number | undefined;
}

/** Answers the decision's fact queries from the view (synchronously). */
export function viewFacts(store: ViewStore): (query: FactQuery) => unknown {
  return (query) => {
    switch (query.fact) {
      case 'anchor':
        return store.anchor(query.resourceType, query.id, query.versionId);
      case 'link':
        return store.link(query.custodian, query.pseudonym);
      case 'identity':
        return store.identity(query.did);
      case 'organizationDids':
        return store.organizationDids(query.mspId);
      case 'organizationRemoved':
        return store.organizationRemoved(query.mspId);
      case 'consents':
        return store.consentsOf(query.patient).map(storedConsent);
    }
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Most facts a ViewFacts memo keeps for one height (all are dropped when it is full). */
export const MAX_MEMO_FACTS = 10_000;

/**
 * The view's facts with a memo of ONE view height: the view's state changes only when a block is
 * applied, which moves its height, so a fact read at height h is the fact at h for as long as the view
 * is at h. Any other height (read in the same synchronous pass as the facts, as decideOnView does)
 * drops the whole memo first: a consent revoked, a DID suspended or an anchor erased in a new block is
 * never answered from it. The decision itself (its clock, consent periods, the request) is computed
 * again each time; only the SQLite reads and JSON parsing of the facts are saved. Answers are frozen,
 * so no caller can alter what the next decision reads.
 */
export class ViewFacts {
  readonly #store: ViewStore;
  readonly #maxEntries: number;
  readonly #memo = new Map<string, unknown>();
  #height: bigint | undefined;
  readonly stats = { hits: 0, misses: 0 };

  constructor(store: ViewStore, maxEntries = MAX_MEMO_FACTS) {
    this.#store = store;
    this.#maxEntries = maxEntries;
  }

  get store(): ViewStore {
    return this.#store;
  }

  /** The answers at `height`, which the caller read from the store in the same synchronous pass. */
  at(height: bigint): (query: FactQuery) => unknown {
    if (height !== this.#height) {
      this.#memo.clear();
      this.#height = height;
    }
    const read = viewFacts(this.#store);
    return (query) => {
      const key = factKey(query);
      if (this.#memo.has(key)) {
        this.stats.hits += 1;
        return this.#memo.get(key);
      }
      this.stats.misses += 1;
      const value = deepFreeze(read(query));
      if (this.#memo.size >= this.#maxEntries) this.#memo.clear();
      this.#memo.set(key, value);
      return value;
    };
  }

  /** A version's anchor at the view's current height (for the integrity check of what is served). */
  anchor(resourceType: string, id: string, versionId: string): Anchor | undefined {
    return this.at(this.#store.height())({ fact: 'anchor', resourceType, id, versionId }) as Anchor | undefined;
  }
}

/**
 * One decision on the view's current state, as the chaincode would decide it in a transaction of
 * `submitter` at time `now`. Throws what the chaincode would throw (NOT_FOUND for a version not
 * anchored in the view, INVALID for a malformed request). `facts`: a memo of the view's facts (the same
 * store) to read them through.
 */
export function decideOnView(store: ViewStore, request: EvaluateRequest, clock: { now: number; submitter: string }, facts?: ViewFacts): LocalDecision {
  // The request as the chaincode receives it (JSON), parsed by the chaincode's own parser.
  const input = parseAccessRequest(JSON.parse(JSON.stringify(request)) as JsonObject, 'request');
  const height = store.height();
  const resolved = runSync(decideAccessSteps(input, 'request', clock), facts && facts.store === store ? facts.at(height) : viewFacts(store));
  return { decision: resolved.decision, consents: resolved.consents, reason: resolved.reason, breakGlass: resolved.breakGlass, height: Number(height) };
}

export interface LocalDecisionsOptions {
  readonly store: ViewStore;
  readonly freshness: Freshness;
  /** This gateway's MSP id: the submitter the chaincode would see. */
  readonly mspId: string;
  readonly maxLagMs?: number;
  readonly now?: () => number;
  /** The memo of the view's facts (default: a new one over `store`); server.ts shares it with the integrity check's anchors. */
  readonly facts?: ViewFacts;
}

/** Counts, for /metrics and tests. */
export interface LocalDecisionStats {
  /** Decisions made on the view. */
  local: number;
  /** Requests left to the chaincode because the view was not fresh. */
  stale: number;
  /** Requests left to the chaincode because the view could not decide them (anchor not yet in it, ...). */
  undecidable: number;
}

export class LocalDecisions {
  readonly #store: ViewStore;
  readonly #freshness: Freshness;
  readonly #mspId: string;
  readonly #maxLagMs: number;
  readonly #now: () => number;
  /** The view's facts, remembered for one view height. */
  readonly facts: ViewFacts;
  readonly stats: LocalDecisionStats = { local: 0, stale: 0, undecidable: 0 };
  /** The last time this gateway committed a change decisions read (noteLedgerChange). */
  #changedAt = 0;

  constructor(options: LocalDecisionsOptions) {
    this.#store = options.store;
    this.#freshness = options.freshness;
    this.#mspId = options.mspId;
    this.#maxLagMs = options.maxLagMs ?? DEFAULT_MAX_LAG_MS;
    this.#now = options.now ?? Date.now;
    this.facts = options.facts ?? new ViewFacts(options.store);
  }

  /** Whether the view may decide now. */
  fresh(): boolean {
    if (!this.#freshness.fresh(this.#maxLagMs)) return false;
    // Read your own writes: after this gateway committed a consent or identity change, the view decides
    // again only once a height check started after that commit found it caught up (so it holds the
    // block: the commit was confirmed by the same peer the view follows).
    return this.#changedAt === 0 || (this.#freshness.caughtUpAt() ?? 0) >= this.#changedAt;
  }

  /** This gateway committed (or may have committed) a change decisions read, at `at`: see fresh(). */
  noteLedgerChange(at: number = this.#now()): void {
    this.#changedAt = Math.max(this.#changedAt, at);
  }

  /**
   * Decisions for several requests on ONE view height (in one synchronous pass), in input order; each is
   * undefined where the chaincode must decide (all of them when the view is not fresh).
   */
  decideAll(requests: readonly EvaluateRequest[]): Array<LocalDecision | undefined> {
    if (!this.fresh()) {
      this.stats.stale += requests.length;
      return requests.map(() => undefined);
    }
    const clock = { now: this.#now(), submitter: this.#mspId };
    return requests.map((request) => {
      try {
        const decision = decideOnView(this.#store, request, clock, this.facts);
        this.stats.local += 1;
        return decision;
      } catch {
        // The chaincode decides (and says why) what the view cannot: e.g. an anchor committed after the view's height.
        this.stats.undecidable += 1;
        return undefined;
      }
    });
  }

  decide(request: EvaluateRequest): LocalDecision | undefined {
    return this.decideAll([request])[0];
  }
}

/** /healthz `checks.view`. A stale view is not unhealthy: decisions then go to the chaincode. */
export interface LedgerViewHealth {
  readonly ok: boolean;
  /** Blocks the view reflects. */
  readonly height: string;
  /** Blocks the peer had that the view had not applied, at the last height check. */
  readonly lagBlocks: string | undefined;
  /** Whether decisions may use the view now (caught up within HDX_VIEW_MAX_LAG_MS). */
  readonly fresh: boolean;
  readonly streaming: boolean;
  /** Where reads are decided when the view is fresh. */
  readonly decisions: 'local' | 'chaincode';
}

/** What /healthz says of a view. */
export function viewHealth(view: { status(maxLagMs: number): ViewStatus }, maxLagMs: number, decisions: LedgerViewHealth['decisions']): LedgerViewHealth {
  const st = view.status(maxLagMs);
  return { ok: true, height: st.height, lagBlocks: st.lagBlocks, fresh: st.fresh, streaming: st.streaming, decisions };
}

/** The patient links an anchoring call carries (anchorBatch's second argument, anchorAndRecord's third). */
function linksOf(method: string, args: readonly unknown[]): unknown {
  return method === 'anchorBatch' ? args[1] : method === 'anchorAndRecord' ? args[2] : undefined;
}

/**
 * The ledger client as the gateway's services use it, telling `local` of every write through it that
 * changes what decisions read, once it returns or fails (a failed submit may still have committed), so
 * that the gateway's own next decision never comes from a view without it.
 */
export function notingDecisionInputs<L extends object>(ledger: L, local: Pick<LocalDecisions, 'noteLedgerChange'>): L {
  const changes = (method: string, args: readonly unknown[]): boolean => {
    const links = linksOf(method, args);
    return DECISION_INPUT_WRITES.has(method) || (Array.isArray(links) && links.length > 0);
  };
  return tapCalls(ledger, changes, { settled: () => local.noteLedgerChange() });
}
