/**
 * `/did`: W3C DID resolution from the ledger (public keys only, no PHI), registration of DIDs and
 * off-boarding of identity-provider subjects by this organization's admins.
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
// The consortium's regulator, the only member whose admins register auditor DIDs: the chaincode's own
// constant (caller.ts is plain data and loads no contract).
import { REGULATOR_MSP } from '@hdx/chaincode/dist/caller';
import express, { type Request, type RequestHandler, type Router } from 'express';
import type { Logger } from 'pino';
import { requireAuth } from '../auth/middleware';
import { subjectLink } from '../auth/token';
import type { Config } from '../config';
import { OperationOutcomeError } from '../errors';
import { relatedTo, type RelationDeps } from '../fhir/policy';
import type { LedgerClient } from '../ledger/ledger-client';
import { jsonBody } from './body';

const DID = HDX_DID;

export interface DidRoutesDeps {
  readonly config: Pick<Config, 'baseUrl' | 'mspId'>;
  readonly log: Logger;
  readonly ledger: LedgerClient;
  /** Who is related to a patient DID (their custodian's staff, guardians, auditors): who may resolve it. */
  readonly relation: RelationDeps;
  readonly authenticate: RequestHandler;
  /** The per-identity request limit, after authentication. */
  readonly afterAuth: RequestHandler;
  /** Binds staff DIDs registered here to their identity-provider subject (see subjectLink). */
  readonly subjectLinkSecret?: Buffer;
  /** `iss` of this organization's identity provider (the subject link covers it). */
  readonly idpIssuer?: string;
}

export function didRoutes(deps: DidRoutesDeps): Router {
  const { config, log, ledger, relation, authenticate, afterAuth } = deps;
  const did = express.Router();
  did.use(authenticate, afterAuth, jsonBody({ limit: '64kb' }));
  did.get('/:did', async (req: Request<{ did: string }>, res) => {
    if (!DID.test(req.params.did)) throw new OperationOutcomeError('INVALID', 'Not a did:hdx DID');
    const resolution = await ledger.resolveDid(req.params.did);
    // A patient's DID document names their hospital and guardians: only those related to the patient
    // see it, and everyone else gets the same answer as for an unknown DID.
    const visible = resolution !== undefined && (resolution.hdx.kind !== 'patient' || (await relatedTo(requireAuth(req), req.params.did, config.mspId, relation)));
    if (!resolution || !visible) throw new OperationOutcomeError('NOT_FOUND', 'The DID is not registered on the ledger');
    res.status(200).type('application/ld+json;profile="https://w3id.org/did-resolution"').send(JSON.stringify(resolution));
  });
  // Off-boarding: every DID this organization registered for an IdP subject is deactivated on the ledger.
  did.post('/$offboard', async (req, res) => {
    const auth = requireAuth(req);
    if (auth.tokenKind !== 'idp' || auth.role !== 'admin')
      throw new OperationOutcomeError('FORBIDDEN', 'Off-boarding needs an admin of this organization, with a token from its identity provider');
    const subject = (req.body as { subject?: unknown } | undefined)?.subject;
    if (typeof subject !== 'string' || subject.length === 0 || subject.length > 256)
      throw new OperationOutcomeError('INVALID', 'The body must be {"subject": "<the identity-provider sub to off-board>"}');
    const { subject: link } = withSubjectLink({ subject });
    const found = await ledger.findBySubject(String(link));
    const deactivated: string[] = [];
    for (const f of found.filter((d) => d.status === 'active')) {
      await ledger.deactivateDid({ did: f.did });
      deactivated.push(f.did);
    }
    log.info({ event: 'offboard', deactivated: deactivated.length }, 'identity-provider subject off-boarded');
    res.status(200).json({ deactivated, alreadyInactive: found.filter((d) => d.status !== 'active').map((d) => d.did) });
  });
  did.post('/', async (req, res) => {
    const auth = requireAuth(req);
    if (auth.tokenKind !== 'idp' || auth.role !== 'admin') {
      throw new OperationOutcomeError('FORBIDDEN', 'Registering a DID needs an admin of this organization, with a token from its identity provider');
    }
    if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
      throw new OperationOutcomeError('INVALID', 'The body must be a registration: {kind, publicKeyJwk, proof} (make the proof with `hdx did-proof`)');
    }
    const kind = (req.body as { kind?: unknown }).kind;
    if (kind === 'auditor' && config.mspId !== REGULATOR_MSP) throw new OperationOutcomeError('FORBIDDEN', `Auditor DIDs are registered by the regulator (${REGULATOR_MSP}) only`);
    if (kind === 'organization') throw new OperationOutcomeError('FORBIDDEN', "An organization's DID is registered when the member joins, not through this API");
    const resolution = await ledger.registerDid(withSubjectLink(req.body as Record<string, unknown>));
    res.setHeader('Location', `${config.baseUrl.replace(/\/fhir$/, '')}/did/${resolution.didDocument.id}`);
    res.status(201).type('application/ld+json;profile="https://w3id.org/did-resolution"').send(JSON.stringify(resolution));
  });

  /**
   * A staff DID is tied to its holder's identity-provider subject (`subject` in the registration, the
   * IdP's `sub`): the ledger keeps only a keyed hash of it, IdP tokens carrying the DID must come from
   * that subject, and off-boarding the subject finds the DID.
   */
  function withSubjectLink(body: Record<string, unknown>): Record<string, unknown> {
    const { subject, ...rest } = body;
    if (subject === undefined) return rest;
    if (typeof subject !== 'string' || subject.length === 0 || subject.length > 256)
      throw new OperationOutcomeError('INVALID', 'registration.subject must be the identity-provider subject (sub) of the DID holder, 1 to 256 characters');
    if (rest.kind === 'patient') throw new OperationOutcomeError('INVALID', 'registration.subject ties a staff DID to its IdP account; patients register without one');
    if (!deps.subjectLinkSecret || !deps.idpIssuer)
      throw new OperationOutcomeError('UNSUPPORTED', 'This gateway has no identity provider configured to tie DIDs to (HDX_IDP_ISSUER)');
    return { ...rest, subject: subjectLink(deps.subjectLinkSecret, deps.idpIssuer, subject) };
  }

  return did;
}
