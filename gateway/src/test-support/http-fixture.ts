/**
 * For the HTTP unit tests: what their set-ups share. Registering the test's DIDs on the fake ledger,
 * a consent-like decision policy, and a POST that expects 201 and gives the new id.
 */
import { expect } from 'chai';
import request from 'supertest';
import type { Anchor, AuthorizeRequest, Decision, DidKind, EvaluateRequest } from '../ledger/ledger-client';
import type { FakeLedger } from './fake-ledger';

/** Registers every `[did, kind]` on the fake ledger. */
export async function registerAll(ledger: FakeLedger, dids: ReadonlyArray<readonly [string, DidKind]>): Promise<void> {
  for (const [did, kind] of dids) await ledger.registerDid({ did, kind });
}

type Request = AuthorizeRequest | EvaluateRequest;

/**
 * A decision policy as consents would make it: the patient itself (unless `patientSelf` is false) and
 * the custodian's own users treating are permitted; anyone else is permitted when `permits` says so (a
 * consent `c1`), else denied.
 */
export function consentLike(
  permits: (req: Request, anchor: Anchor | undefined) => boolean,
  opts: { patientSelf?: boolean } = {},
): (req: Request, anchor: Anchor | undefined) => Decision {
  return (req, anchor) => {
    const patient = anchor?.patient ?? req.patient;
    if (opts.patientSelf !== false && req.actor === patient) return { decision: 'permit', consents: [], reason: 'patient-or-guardian', breakGlass: false };
    if (req.actorOrganization === (anchor?.custodian ?? req.custodian) && req.purpose === 'TREAT')
      return { decision: 'permit', consents: [], reason: 'custodian-treatment', breakGlass: false };
    if (permits(req, anchor)) return { decision: 'permit', consents: ['c1'], reason: 'consent-permit', breakGlass: false };
    return { decision: 'deny', consents: [], reason: 'no-permit', breakGlass: false };
  };
}

/** POSTs a resource to `/fhir/<its type>` as `as`, expects 201 and gives its id. */
export function poster(app: Parameters<typeof request>[0], as: [string, string]): (body: Record<string, unknown>) => Promise<string> {
  return async (body) => {
    const res = await request(app)
      .post(`/fhir/${String(body.resourceType)}`)
      .set(...as)
      .set('content-type', 'application/fhir+json')
      .send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return String(res.body.id);
  };
}
