/**
 * The break-glass review: an auditor's outcome for a break-glass access entry, kept on the ledger.
 *
 * - A review is a JWS signed by an active auditor DID (verified against its DID document, nonce
 *   consumed, as every DID action): payload `{action: "review", eventId, outcome, nonce, iat}`. It is
 *   submitted by a gateway (or the auditor's own Fabric identity) of the auditor's organization.
 * - Never the actor of the entry, never an organization identity alone (an admin, or a gateway with no
 *   auditor's signature), only entries flagged break-glass; the outcome is a code (REVIEW_OUTCOMES),
 *   never free text.
 * - Append-only: each review is a new key `hdx.review` [eventId, timeKey, txId]; the latest is the
 *   current outcome, the earlier ones stay.
 * - The queue: break-glass entries are indexed (`hdx.audit~breakglass~<timeKey>~<eventId>`, written with
 *   the entry) so their review state is a paged range query.
 */
import type { Context } from 'fabric-contract-api';
import { AuditEntry, auditKey, breakGlassRange, eventIdOfIndexKey, timeKeyOf } from './audit-model';
import { Viewer, canSee } from './audit-viewer';
import { Caller, hasRole } from './caller';
import { conflict, forbidden, invalid, notFound } from './errors';
import { marshal, pageRange, parseBookmark, parsePageSize, readState, scanPartial, txInstant, txTimeKey, writeState } from './ledger';
import { AUDIT_EVENT_ID, REVIEW_OUTCOMES, type ReviewOutcome } from './protocol';
import { verifySignedRequest } from './signed-request';
import { FHIR_INSTANT, JsonObject, optionalString, rejectUnknownFields } from './validate';

export { REVIEW_OUTCOMES, type ReviewOutcome };

/** One review of a break-glass entry, as stored. */
export interface BreakGlassReview {
  /** The reviewed access entry's event id. */
  eventId: string;
  outcome: ReviewOutcome;
  /** The auditor DID that signed the review. */
  reviewer: string;
  /** The auditor's organization (MSP id). */
  reviewerOrganization: string;
  /** Transaction time of the review. */
  reviewedAt: string;
  txId: string;
}

/** A break-glass entry's review state: open until the first review; the latest review is the current outcome. */
export interface ReviewState {
  state: 'open' | 'reviewed';
  /** How many reviews the entry has (append-only). */
  reviews: number;
  current?: BreakGlassReview;
}

export interface ReviewedEntry {
  entry: AuditEntry;
  review: ReviewState;
}

export const REVIEW_KEY = 'hdx.review';
export const REVIEW_EVENT = 'hdx.review';

/** Every review of an entry, oldest first (the keys sort by transaction time). */
async function reviewsOf(ctx: Context, eventId: string): Promise<BreakGlassReview[]> {
  const rows = await scanPartial(ctx, REVIEW_KEY, [eventId]);
  return rows.map((row) => JSON.parse(Buffer.from(row.value).toString('utf8')) as BreakGlassReview);
}

function stateOf(reviews: readonly BreakGlassReview[]): ReviewState {
  const current = reviews.at(-1);
  return current === undefined ? { state: 'open', reviews: 0 } : { state: 'reviewed', reviews: reviews.length, current };
}

/** The review state of a break-glass entry. */
export async function reviewStateOf(ctx: Context, eventId: string): Promise<ReviewState> {
  return stateOf(await reviewsOf(ctx, eventId));
}

/** The review states of the break-glass entries among `entries`, by event id. */
export async function reviewStatesOf(ctx: Context, entries: readonly AuditEntry[]): Promise<Record<string, ReviewState>> {
  const out: Record<string, ReviewState> = {};
  for (const entry of entries) {
    if (entry.breakGlass) out[entry.eventId] = await reviewStateOf(ctx, entry.eventId);
  }
  return out;
}

/** Checks and records one signed review; returns the entry with its new review state. */
export async function reviewBreakGlass(ctx: Context, caller: Caller, reviewJws: unknown): Promise<ReviewedEntry> {
  if (!hasRole(caller, 'gateway', 'auditor')) {
    // An admin (an organization identity) never reviews, not even with a signature in hand: the review
    // is the auditor's, submitted by its organization's gateway or its own Fabric identity.
    throw forbidden('a break-glass review is submitted by a gateway or auditor identity of the auditor’s organization, never by an admin');
  }
  const verified = await verifySignedRequest(ctx, reviewJws, ['review'], 'review');
  const payload: JsonObject = verified.payload;
  rejectUnknownFields(payload, ['action', 'nonce', 'iat', 'eventId', 'outcome'], 'review payload');
  const reviewer = verified.signerRecord;
  if (reviewer.kind !== 'auditor') {
    throw forbidden(`only an auditor DID reviews break-glass access (the signer is a ${reviewer.kind} DID)`);
  }
  if (caller.did !== undefined && caller.did !== reviewer.did) {
    throw forbidden('a caller with its own DID submits only its own reviews');
  }
  if (reviewer.organization !== caller.mspId) {
    throw forbidden('an auditor’s review is submitted through its own organization');
  }
  const eventId = payload.eventId;
  if (typeof eventId !== 'string' || !AUDIT_EVENT_ID.test(eventId)) {
    throw invalid('review payload.eventId must be an access entry’s event id <txId>.<n>');
  }
  const outcome = payload.outcome;
  if (typeof outcome !== 'string' || !(REVIEW_OUTCOMES as readonly string[]).includes(outcome)) {
    throw invalid(`review payload.outcome must be one of ${REVIEW_OUTCOMES.join(', ')}`);
  }
  const entry = await readState<AuditEntry>(ctx, auditKey(ctx, eventId));
  if (!entry) {
    throw notFound(`audit entry ${eventId} does not exist`);
  }
  if (!entry.breakGlass) {
    throw conflict(`audit entry ${eventId} is not a break-glass access: only break-glass access is reviewed`);
  }
  if (entry.actor === reviewer.did) {
    throw forbidden('the actor of a break-glass access never reviews it');
  }
  const txId = ctx.stub.getTxID();
  const review: BreakGlassReview = {
    eventId,
    outcome: outcome as ReviewOutcome,
    reviewer: reviewer.did,
    reviewerOrganization: reviewer.organization,
    reviewedAt: txInstant(ctx),
    txId,
  };
  // A new key per review (the transaction's time and id): a later review adds, never overwrites.
  await writeState(ctx, ctx.stub.createCompositeKey(REVIEW_KEY, [eventId, txTimeKey(ctx), txId]), review);
  ctx.stub.setEvent(REVIEW_EVENT, marshal({ eventId, outcome: review.outcome, reviewedAt: review.reviewedAt }));
  // Reads do not see the transaction's own writes: the state is the earlier reviews plus this one.
  return { entry, review: stateOf([...(await reviewsOf(ctx, eventId)), review]) };
}

export const REVIEW_STATES = ['open', 'reviewed'] as const;

/**
 * The break-glass entries the viewer may see, oldest first, with their review state: `{state?: open |
 * reviewed, from?, to?, pageSize?, bookmark?}` (window [from, to) on the recording time). Entries of
 * another state, or that the viewer may not see, are left out of the page (the bookmark goes on).
 */
export async function queryBreakGlass(ctx: Context, viewer: Viewer, query: JsonObject): Promise<{ entries: ReviewedEntry[]; bookmark: string; fetchedRecordsCount: number }> {
  if (!viewer.all && viewer.organization === undefined) {
    throw forbidden('the break-glass review queue is read by auditors (and admins, for their organization)');
  }
  const state = optionalString(query, 'state', 'query');
  if (state !== undefined && !(REVIEW_STATES as readonly string[]).includes(state)) {
    throw invalid(`query.state must be one of ${REVIEW_STATES.join(', ')}`);
  }
  const from = optionalString(query, 'from', 'query', FHIR_INSTANT, 'must be a FHIR instant');
  const to = optionalString(query, 'to', 'query', FHIR_INSTANT, 'must be a FHIR instant');
  const [start, end] = breakGlassRange(from === undefined ? undefined : timeKeyOf(from), to === undefined ? undefined : timeKeyOf(to));
  if (end < start) {
    throw invalid('query.from must not be after query.to');
  }
  const pageSize = parsePageSize(query.pageSize as string | number | undefined);
  const page = await pageRange(ctx, start, end, pageSize, parseBookmark(optionalString(query, 'bookmark', 'query')));
  const entries: ReviewedEntry[] = [];
  for (const row of page.records) {
    const entry = await readState<AuditEntry>(ctx, auditKey(ctx, eventIdOfIndexKey(row.key)));
    if (!entry || !(await canSee(ctx, viewer, entry))) continue;
    const review = await reviewStateOf(ctx, entry.eventId);
    if (state === undefined || review.state === state) entries.push({ entry, review });
  }
  return { entries, bookmark: page.bookmark, fetchedRecordsCount: page.fetchedRecordsCount };
}
