/**
 * Consent: on the ledger, created and changed only with the patient's signature (a compact JWS the
 * chaincode verifies against the patient's DID document), read by those related to the patient.
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import type { Request, RequestHandler, Router } from 'express';
import { requireScope } from '../auth/scopes';
import { requireAuth } from '../auth/middleware';
import { OperationOutcomeError } from '../errors';
import { searchset } from '../fhir/bundle';
import { type ConsentService, toFhirConsent } from '../fhir/consent-service';
import { checkIds } from '../fhir/handlers/request';
import { relatedTo, type RelationDeps } from '../fhir/policy';
import { assertKnown, count, rawQuery, single } from '../fhir/search-params';
import type { Resource } from '../model/resource';
import { sendResource, versionHeaders } from './respond';

const DID = HDX_DID;

export interface ConsentRoutesDeps {
  readonly consents: ConsentService;
  readonly relation: RelationDeps;
  /** This server's FHIR base URL (Location, paging links). */
  readonly baseUrl: string;
  readonly mspId: string;
}

function signedBody(req: Request): string {
  if (!req.is('application/jose') || typeof req.body !== 'string') {
    throw new OperationOutcomeError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Send the patient-signed consent change as a compact JWS with Content-Type: application/jose (make it with `hdx consent-sign`)',
    );
  }
  return req.body;
}

/**
 * `PUT /Consent/:id` without a bearer token: a revocation, whose own signature is the proof. Registered
 * before authentication; a request with an Authorization header goes on to the authenticated route.
 */
export function registerSignedRevocation(fhir: Router, deps: ConsentRoutesDeps, joseBody: RequestHandler): void {
  const { consents } = deps;
  // A revocation needs no bearer token: its own signature, which the chaincode verifies against the
  // patient's DID document, is the proof. So a patient whose DID an admin suspended (and who can no
  // longer sign in) can still revoke.
  fhir.put(
    '/Consent/:id',
    (req, _res, next) => next(req.headers.authorization === undefined ? undefined : 'route'),
    joseBody,
    async (req: Request<{ id: string }>, res) => {
      checkIds('Consent', req.params.id);
      const { record } = await consents.change(signedBody(req), { id: req.params.id, actions: ['revoke'] });
      const resource = toFhirConsent(record);
      versionHeaders(res, resource as Resource);
      sendResource(res, 200, resource);
    },
  );
}

/** POST, PUT, GET `/Consent` and `/Consent/:id`, after authentication. */
export function registerConsentRoutes(fhir: Router, deps: ConsentRoutesDeps): void {
  const { consents, relation } = deps;
  fhir.post('/Consent', async (req, res) => {
    requireScope(requireAuth(req), 'Consent', 'create');
    const { record } = await consents.change(signedBody(req), { actions: ['grant'] });
    const resource = toFhirConsent(record);
    res.setHeader('Location', `${deps.baseUrl}/Consent/${record.id}/_history/${record.version}`);
    versionHeaders(res, resource as Resource);
    sendResource(res, 201, resource);
  });
  fhir.put('/Consent/:id', async (req: Request<{ id: string }>, res) => {
    checkIds('Consent', req.params.id);
    requireScope(requireAuth(req), 'Consent', 'update');
    const { record } = await consents.change(signedBody(req), { id: req.params.id, actions: ['update', 'revoke'] });
    const resource = toFhirConsent(record);
    versionHeaders(res, resource as Resource);
    sendResource(res, 200, resource);
  });
  fhir.get('/Consent/:id', async (req: Request<{ id: string }>, res) => {
    checkIds('Consent', req.params.id);
    const auth = requireAuth(req);
    requireScope(auth, 'Consent', 'read');
    const record = await consents.read(req.params.id);
    // A consent says what a patient hides and from whom: only those related to the patient see it.
    if (!(await relatedTo(auth, record.consent.patient.reference, deps.mspId, relation)))
      throw new OperationOutcomeError('NOT_FOUND', `Consent/${req.params.id} is not on the ledger`);
    const resource = toFhirConsent(record);
    versionHeaders(res, resource as Resource);
    sendResource(res, 200, resource);
  });
  fhir.get('/Consent', async (req, res) => {
    requireScope(requireAuth(req), 'Consent', 'search');
    const q = rawQuery(req.query);
    assertKnown(q, ['patient', '_count', '_bookmark']);
    const patient = single(q, 'patient');
    if (!patient || !DID.test(patient)) throw new OperationOutcomeError('INVALID', 'Search Consent by patient=<the patient DID>');
    // Refused alike for a patient who exists and one who does not: the refusal says nothing of either.
    if (!(await relatedTo(requireAuth(req), patient, deps.mspId, relation))) {
      throw new OperationOutcomeError(
        'FORBIDDEN',
        "A patient's consents are listed only for the patient, their guardians, the staff of a custodian holding the patient, and auditors",
      );
    }
    const page = await consents.listByPatient(patient, count(q), single(q, '_bookmark') ?? '');
    sendResource(
      res,
      200,
      searchset({
        baseUrl: deps.baseUrl,
        path: '/Consent',
        query: q,
        resources: page.records.map(toFhirConsent),
        ...(page.bookmark ? { next: { _bookmark: page.bookmark } } : {}),
      }),
    );
  });
}
