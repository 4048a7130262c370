/**
 * The staff view's operations (fhir/access-check.ts):
 *
 * - `GET /Patient/$access-check?patient=&purpose=&resourceType=[&custodian=]`: whether the CALLER (a
 *   practitioner or member system) would be permitted, at patient level, and why in plain words. Reads
 *   no record and records nothing (SECURITY.md says why).
 * - `POST /Patient/$request-access` (Parameters: patient, purpose, resourceType...): a practitioner of
 *   this organization asks the patient for access; stored on the ledger (hdx.consent:RequestAccess).
 * - `GET /Patient/$access-requests?patient=<DID>`: the patient's open requests, for the patient or an
 *   active guardian only, each with whether a consent now permits it.
 *
 * Registered before the Patient routes (`/Patient/:id` would take the operation's name as an id).
 */
import type { Router } from 'express';
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import { requireAuth } from '../auth/middleware';
import { OperationOutcomeError } from '../errors';
import { accessCheckParameters, checkAccess, parseAccessQuestion, parseRequestParameters, permittedNow, requestPart, staffActor } from '../fhir/access-check';
import { isPatientOrGuardian } from '../fhir/policy';
import { rawQuery, single } from '../fhir/search-params';
import type { LedgerClient } from '../ledger/ledger-client';
import { mapLimit } from '../util/concurrency';
import { sendResource } from './respond';

export interface StaffRoutesDeps {
  readonly ledger: LedgerClient;
  /** The organization running this gateway. */
  readonly mspId: string;
}

export function registerStaffRoutes(fhir: Router, deps: StaffRoutesDeps): void {
  const { ledger, mspId } = deps;

  fhir.get('/Patient/$access-check', async (req, res) => {
    const actor = staffActor(requireAuth(req), mspId, 'The access check');
    const question = parseAccessQuestion(rawQuery(req.query), mspId);
    sendResource(res, 200, accessCheckParameters(await checkAccess(ledger, actor, question)));
  });

  fhir.post('/Patient/$request-access', async (req, res) => {
    const auth = requireAuth(req);
    if (auth.role !== 'practitioner') throw new OperationOutcomeError('FORBIDDEN', 'Access requests are made by practitioners');
    const actor = staffActor(auth, mspId, 'An access request');
    // The requester's own organization submits it, for its own practitioner (the chaincode checks it again).
    if (actor.organization !== mspId || actor.actorAuth === 'delegated') {
      throw new OperationOutcomeError('FORBIDDEN', `Make access requests at your own organization's gateway (this one is ${mspId}'s)`);
    }
    if (Object.keys(rawQuery(req.query)).length > 0)
      throw new OperationOutcomeError('INVALID', 'POST /fhir/Patient/$request-access takes no URL parameters: send a Parameters body');
    const stored = await ledger.requestAccess(parseRequestParameters(req.body, actor.did));
    sendResource(res, 200, { resourceType: 'Parameters', parameter: [requestPart(stored, false)] });
  });

  fhir.get('/Patient/$access-requests', async (req, res) => {
    const auth = requireAuth(req);
    const q = rawQuery(req.query);
    for (const name of Object.keys(q)) if (name !== 'patient') throw new OperationOutcomeError('INVALID', `Unknown parameter ${name}: ask with patient=<the patient DID>`);
    const patient = single(q, 'patient');
    if (!patient || !HDX_DID.test(patient)) throw new OperationOutcomeError('INVALID', 'Ask with patient=<the patient DID>');
    // The patient, or an active guardian of the (active) patient: as for their access history. Refused
    // alike for a patient who exists and one who does not.
    const mayList =
      auth.role === 'patient' &&
      auth.did !== undefined &&
      auth.viaOrganization === undefined &&
      auth.actorAuth !== 'delegated' &&
      (await isPatientOrGuardian(auth.did, patient, (d) => ledger.resolveDid(d)));
    if (!mayList) throw new OperationOutcomeError('FORBIDDEN', "A patient's access requests are listed only for the patient and their guardians");
    const requests = await ledger.listAccessRequests(patient);
    const permitted = await mapLimit(requests, 4, (r) => permittedNow(ledger, r));
    sendResource(res, 200, { resourceType: 'Parameters', parameter: requests.map((r, i) => requestPart(r, permitted[i] === true)) });
  });
}
