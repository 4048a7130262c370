/**
 * The break-glass review queue: the gateway's `GET /fhir/AuditEvent?review-state=open` (break-glass
 * entries no auditor reviewed yet) and `POST /fhir/AuditEvent/<eventId>/$review`, whose proof the
 * auditor signs here with their DID key, as the chaincode verifies it (hdx.audit:ReviewBreakGlass,
 * chaincode/src/break-glass-review.ts): a compact JWS over the canonical `{action: "review", eventId,
 * outcome, nonce, iat}`. The review state an AuditEvent carries is the gateway's extension
 * break-glass-review (gateway/src/fhir/break-glass-review.ts).
 */
import { type AppConfig, fhirRequest } from './api';
import { signCompact } from './jws';
import { newNonce, type PatientKey } from './keys';
import { arr, type Json, obj } from './json';

export const BREAK_GLASS_REVIEW_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/break-glass-review';
export const LEDGER_EVENT_ID_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/ledger-event-id';

/** The outcomes an auditor may record (the chaincode's REVIEW_OUTCOMES), with what the page says. */
export const REVIEW_OUTCOMES = [
  { code: 'justified', label: 'Justified' },
  { code: 'not-justified', label: 'Not justified' },
  { code: 'needs-follow-up', label: 'Needs follow-up' },
] as const;
export type ReviewOutcome = (typeof REVIEW_OUTCOMES)[number]['code'];

/** The scope of the auditor's review request: reading the queue, updating (reviewing) an AuditEvent. */
export const REVIEW_SCOPE = 'user/AuditEvent.rus';

/** The first page of the open queue (oldest first). */
export const OPEN_QUEUE_PATH = '/AuditEvent?review-state=open&_count=100';

export interface ReviewInfo {
  state: 'open' | 'reviewed';
  reviews: number;
  outcome?: ReviewOutcome;
  reviewer?: string;
  reviewed?: string;
}

/** The ledger event id `<txId>.<n>` of an AuditEvent (what `$review` and `$receipt` take). */
export function ledgerEventId(event: unknown): string | undefined {
  const ext = arr(obj(event).extension)
    .map(obj)
    .find((x) => x.url === LEDGER_EVENT_ID_EXTENSION);
  return typeof ext?.valueString === 'string' ? ext.valueString : undefined;
}

/** The review state an AuditEvent of a break-glass entry carries; undefined for any other. */
export function reviewOf(event: unknown): ReviewInfo | undefined {
  const ext = arr(obj(event).extension)
    .map(obj)
    .find((x) => x.url === BREAK_GLASS_REVIEW_EXTENSION);
  if (!ext) return undefined;
  const parts = new Map(
    arr(ext.extension)
      .map(obj)
      .map((p) => [p.url, p] as const),
  );
  const state = parts.get('state')?.valueCode;
  if (state !== 'open' && state !== 'reviewed') return undefined;
  const outcome = obj(parts.get('outcome')?.valueCoding).code;
  const reviewer = obj(parts.get('reviewer')?.valueIdentifier).value;
  const reviewed = parts.get('reviewed')?.valueDateTime;
  const reviews = parts.get('reviews')?.valueUnsignedInt;
  return {
    state,
    reviews: typeof reviews === 'number' ? reviews : 0,
    ...(REVIEW_OUTCOMES.some((o) => o.code === outcome) ? { outcome: outcome as ReviewOutcome } : {}),
    ...(typeof reviewer === 'string' ? { reviewer } : {}),
    ...(typeof reviewed === 'string' ? { reviewed } : {}),
  };
}

/** What the page shows for an outcome code. */
export function outcomeLabel(outcome: string | undefined): string {
  return REVIEW_OUTCOMES.find((o) => o.code === outcome)?.label ?? 'Not reviewed';
}

/** The auditor's signed review: a compact JWS over the canonical `{action: "review", eventId, outcome, nonce, iat}`. */
export async function signReview(key: PatientKey, eventId: string, outcome: ReviewOutcome, options: { iat?: number; nonce?: string } = {}): Promise<string> {
  const payload = { action: 'review', eventId, outcome, nonce: options.nonce ?? newNonce(), iat: options.iat ?? Math.floor(Date.now() / 1000) };
  return signCompact(payload, key.privateKey, key.kid);
}

/** The `$review` body: a FHIR Parameters with the outcome and the signed proof. */
export function reviewParameters(outcome: ReviewOutcome, proof: string): Json {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'outcome', valueCode: outcome },
      { name: 'proof', valueString: proof },
    ],
  };
}

/** Records the auditor's outcome on the ledger; answers the updated AuditEvent. */
export async function recordReview(config: AppConfig, key: PatientKey, eventId: string, outcome: ReviewOutcome): Promise<Json> {
  const proof = await signReview(key, eventId, outcome);
  const body = JSON.stringify(reviewParameters(outcome, proof));
  return obj(await fhirRequest(config, key, REVIEW_SCOPE, 'POST', `/AuditEvent/${encodeURIComponent(eventId)}/$review`, { type: 'application/fhir+json', text: body }));
}

/** Every open break-glass entry (up to `maxPages` pages of 100). */
export async function openQueue(config: AppConfig, key: PatientKey, maxPages = 10): Promise<Json[]> {
  const out: Json[] = [];
  let url: string | undefined = OPEN_QUEUE_PATH;
  for (let page = 0; url !== undefined && page < maxPages; page += 1) {
    const bundle = obj(await fhirRequest(config, key, REVIEW_SCOPE, 'GET', url));
    for (const e of arr(bundle.entry)) {
      const resource = obj(obj(e).resource);
      if (resource.resourceType === 'AuditEvent') out.push(resource);
    }
    const next = arr(bundle.link)
      .map(obj)
      .find((l) => l.relation === 'next')?.url;
    url = typeof next === 'string' ? next : undefined;
  }
  return out;
}

/**
 * The queue with `event` (an open break-glass entry from the live stream) added at its place (oldest
 * first), or the same array when it is already there (by ledger event id).
 */
export function joinQueue(queue: Json[], event: Json): Json[] {
  const id = ledgerEventId(event);
  if (id === undefined || queue.some((e) => ledgerEventId(e) === id)) return queue;
  const when = (e: Json): string => {
    const period = obj(e.period);
    return typeof period.start === 'string' ? period.start : typeof e.recorded === 'string' ? e.recorded : '';
  };
  const at = queue.findIndex((e) => when(e) > when(event));
  return at < 0 ? [...queue, event] : [...queue.slice(0, at), event, ...queue.slice(at)];
}
