/**
 * The break-glass review as FHIR (transport-free): `POST /fhir/AuditEvent/<eventId>/$review` with a
 * Parameters body, and the review state an AuditEvent of a break-glass entry carries (an extension).
 *
 * The review itself is the auditor's: a compact JWS signed with the auditor's DID key over
 * `{action: "review", eventId, outcome, nonce, iat}`, which the chaincode verifies against the DID
 * document on the ledger (hdx.audit:ReviewBreakGlass, chaincode/src/break-glass-review.ts). The gateway
 * checks the request is the bearer's own and well formed, then hands the signed review to the ledger; it
 * cannot make or alter a review.
 */
import { AUDIT_EVENT_ID, HDX_DID, REVIEW_OUTCOMES, type ReviewOutcome } from '@hdx/chaincode/dist/protocol';
import type { AuthContext } from '../auth/types';
import { OperationOutcomeError } from '../errors';
import type { LedgerClient, ReviewState } from '../ledger/ledger-client';

export { REVIEW_OUTCOMES, type ReviewOutcome };

/** The AuditEvent extension carrying a break-glass entry's review state (complex: state, outcome, reviewer, reviewed, reviews). */
export const BREAK_GLASS_REVIEW_EXTENSION = 'https://hdx.example/fhir/StructureDefinition/break-glass-review';
/** The code system of review outcomes: justified, not-justified, needs-follow-up. */
export const REVIEW_OUTCOME_SYSTEM = 'https://hdx.example/fhir/CodeSystem/break-glass-review-outcome';
/** The code system of review states: open (no review yet), reviewed. */
export const REVIEW_STATE_SYSTEM = 'https://hdx.example/fhir/CodeSystem/break-glass-review-state';
export const REVIEW_STATES = ['open', 'reviewed'] as const;
export type ReviewStateCode = (typeof REVIEW_STATES)[number];

const OUTCOME_DISPLAY: Record<ReviewOutcome, string> = {
  justified: 'Justified',
  'not-justified': 'Not justified',
  'needs-follow-up': 'Needs follow-up',
};

/** The review-state extension of a break-glass AuditEvent. */
export function reviewExtension(review: ReviewState): Record<string, unknown> {
  const current = review.current;
  return {
    url: BREAK_GLASS_REVIEW_EXTENSION,
    extension: [
      { url: 'state', valueCode: review.state },
      { url: 'reviews', valueUnsignedInt: review.reviews },
      ...(current
        ? [
            { url: 'outcome', valueCoding: { system: REVIEW_OUTCOME_SYSTEM, code: current.outcome, display: OUTCOME_DISPLAY[current.outcome] } },
            { url: 'reviewer', valueIdentifier: { system: 'urn:ietf:rfc:3986', value: current.reviewer } },
            { url: 'reviewed', valueDateTime: current.reviewedAt },
          ]
        : []),
    ],
  };
}

/** What a `$review` request asks: the outcome and the auditor's signed review. */
export interface ReviewRequest {
  outcome: ReviewOutcome;
  proof: string;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_PROOF = 16 * 1024;
const HOW =
  'Send a Parameters resource with outcome (valueCode: justified, not-justified or needs-follow-up) and proof (valueString: the compact JWS you signed with your DID key over {action: "review", eventId, outcome, nonce, iat})';

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Reads the Parameters body of `$review`; every problem is a 400 naming it. */
export function parseReviewParameters(body: unknown): ReviewRequest {
  if (!isObject(body) || body.resourceType !== 'Parameters') throw new OperationOutcomeError('INVALID', `The body must be a FHIR Parameters resource. ${HOW}`);
  const params = body.parameter;
  if (!Array.isArray(params)) throw new OperationOutcomeError('INVALID', `Parameters.parameter is missing. ${HOW}`);
  let outcome: string | undefined;
  let proof: string | undefined;
  for (const [i, p] of params.entries()) {
    if (!isObject(p) || typeof p.name !== 'string') throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] must have a name`);
    if (p.name === 'outcome' && outcome === undefined) {
      const code = typeof p.valueCode === 'string' ? p.valueCode : isObject(p.valueCoding) && p.valueCoding.system === REVIEW_OUTCOME_SYSTEM ? p.valueCoding.code : undefined;
      if (typeof code !== 'string')
        throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] (outcome) must have a valueCode (or a valueCoding of ${REVIEW_OUTCOME_SYSTEM})`);
      outcome = code;
    } else if (p.name === 'proof' && proof === undefined) {
      if (typeof p.valueString !== 'string') throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}] (proof) must have a valueString: the compact JWS`);
      proof = p.valueString.trim();
    } else {
      // No free text: a note could hold PHI, and the ledger keeps nothing but the outcome code.
      throw new OperationOutcomeError('INVALID', `Parameters.parameter[${i}]: $review takes one outcome and one proof, nothing else (no free-text notes)`);
    }
  }
  if (outcome === undefined) throw new OperationOutcomeError('INVALID', `The outcome parameter is missing. ${HOW}`);
  if (!(REVIEW_OUTCOMES as readonly string[]).includes(outcome)) throw new OperationOutcomeError('INVALID', `The outcome must be one of ${REVIEW_OUTCOMES.join(', ')}`);
  if (proof === undefined) throw new OperationOutcomeError('INVALID', `The proof parameter is missing. ${HOW}`);
  if (proof.length > MAX_PROOF || !COMPACT_JWS.test(proof)) throw new OperationOutcomeError('INVALID', 'The proof must be a compact JWS (header.payload.signature, base64url)');
  return { outcome: outcome as ReviewOutcome, proof };
}

/** The signer DID (`kid`) and payload of a compact JWS, unverified (the chaincode verifies it). */
function peek(proof: string): { signer: string; payload: Record<string, unknown> } {
  const [h = '', p = ''] = proof.split('.');
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as unknown;
    const kid = isObject(header) && typeof header.kid === 'string' ? header.kid : '';
    if (!isObject(payload)) throw new Error('payload');
    return { signer: kid.split('#')[0] ?? '', payload };
  } catch {
    throw new OperationOutcomeError('INVALID', 'The proof is not a JWS with a JSON header and payload');
  }
}

/**
 * An auditor's review of the break-glass entry `eventId`: checks the caller is an auditor DID acting
 * for itself and the signed review is theirs and says what the request says, then records it on the
 * ledger. Returns the entry and its new review state.
 */
export async function reviewBreakGlass(ledger: LedgerClient, auth: AuthContext, eventId: string, body: unknown): Promise<Awaited<ReturnType<LedgerClient['reviewBreakGlass']>>> {
  if (auth.viaOrganization !== undefined || auth.actorAuth === 'delegated') {
    throw new OperationOutcomeError('FORBIDDEN', 'A break-glass review is the auditor’s own: never made by a member organization acting for a user');
  }
  if (auth.role !== 'auditor' || !auth.did || !HDX_DID.test(auth.did)) {
    throw new OperationOutcomeError('FORBIDDEN', 'Break-glass access is reviewed by auditors, with their own DID');
  }
  if (!AUDIT_EVENT_ID.test(eventId)) {
    throw new OperationOutcomeError('INVALID', 'Review an access entry by its ledger event id <txId>.<n> (the AuditEvent extension ledger-event-id)');
  }
  const request = parseReviewParameters(body);
  const { signer, payload } = peek(request.proof);
  if (signer !== auth.did) throw new OperationOutcomeError('FORBIDDEN', 'The proof must be signed with your own DID key (its kid names another DID)');
  if (payload.action !== 'review') throw new OperationOutcomeError('INVALID', 'The proof payload must have action "review"');
  if (payload.eventId !== eventId) throw new OperationOutcomeError('INVALID', 'The proof payload names another access entry than the URL');
  if (payload.outcome !== request.outcome) throw new OperationOutcomeError('INVALID', 'The proof payload names another outcome than the outcome parameter');
  return ledger.reviewBreakGlass(request.proof);
}

/** `review-state` of an AuditEvent search: open and/or reviewed (a comma is OR). */
export function parseReviewStates(value: string): ReviewStateCode[] {
  const codes = value.split(',').map((c) => c.trim().replace(new RegExp(`^${REVIEW_STATE_SYSTEM.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\|`), ''));
  if (codes.length === 0 || codes.some((c) => !(REVIEW_STATES as readonly string[]).includes(c))) {
    throw new OperationOutcomeError('INVALID', `Search parameter review-state takes ${REVIEW_STATES.join(' or ')} (a comma for both)`);
  }
  return [...new Set(codes as ReviewStateCode[])];
}
