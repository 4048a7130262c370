/**
 * AuditEvent: the ledger's access history as FHIR (`GET /fhir/AuditEvent`), its live stream
 * (`$stream`, access-stream.ts), offline-verifiable receipts (`$receipt`, audit/receipt.ts) and the
 * break-glass review (`$review`, fhir/break-glass-review.ts). The chaincode decides who sees which
 * entries (the requester's DID is passed on); the rules here refuse early what it would refuse anyway.
 */
import type { Request, Router } from 'express';
import type { Logger } from 'pino';
import { requireScope } from '../auth/scopes';
import { requireAuth } from '../auth/middleware';
import { fetchReceipt, type ReceiptSource } from '../audit/receipt';
import { OperationOutcomeError } from '../errors';
import { type AuditService, toAuditEvent } from '../fhir/audit-events';
import { parseReviewStates, reviewBreakGlass } from '../fhir/break-glass-review';
import { searchset } from '../fhir/bundle';
import { assertKnown, count, dateFilters, rawQuery, single } from '../fhir/search-params';
import type { LedgerClient } from '../ledger/ledger-client';
import type { BlockSource } from '../view/ledger-view';
import { AccessStream } from './access-stream';
import { sendResource } from './respond';

export interface AuditRoutesDeps {
  readonly audit: AuditService;
  readonly ledger: LedgerClient;
  readonly log: Logger;
  /** This server's FHIR base URL (paging links). */
  readonly baseUrl: string;
  /** The organization running this gateway (an auditor streams only through their own organization's). */
  readonly mspId: string;
  /** `patient=` as sent (a DID, a pseudonym, `Patient/<id>` or `<id>` held here) → the patient reference on the ledger. */
  readonly patientRef: (value: string) => Promise<string>;
  /** The peer's committed blocks: the live stream; not offered when absent. */
  readonly blocks?: { readonly source: BlockSource; readonly namespace: string; readonly heartbeatMs?: number };
  /** The peer's blocks by transaction and number: receipts; not offered when absent. */
  readonly receipts?: { readonly source: ReceiptSource; readonly channel: string; readonly chaincode: string };
}

export function registerAuditRoutes(fhir: Router, deps: AuditRoutesDeps): void {
  const { audit, ledger, log } = deps;
  fhir.get('/AuditEvent', async (req, res) => {
    const auth = requireAuth(req);
    requireScope(auth, 'AuditEvent', 'search');
    // The access history is read by people for themselves: never by a member organization for someone.
    if (auth.viaOrganization !== undefined || auth.actorAuth === 'delegated') {
      throw new OperationOutcomeError('FORBIDDEN', 'The access history is not available to a member organization acting for a user');
    }
    if (!auth.did) throw new OperationOutcomeError('FORBIDDEN', 'Reading the access history needs a registered DID (claim hdx_did)');
    const q = rawQuery(req.query);
    assertKnown(q, ['patient', 'agent', 'entity', 'date', 'action', 'outcome', 'review-state', '_count', '_bookmark']);
    const reviewState = single(q, 'review-state');
    const reviewStates = reviewState === undefined ? undefined : parseReviewStates(reviewState);
    // The break-glass review queue is the auditors' (the chaincode refuses anyone else as well).
    if (reviewStates && auth.role !== 'auditor') throw new OperationOutcomeError('FORBIDDEN', 'The break-glass review queue (review-state) is for auditors');
    let from: string | undefined;
    let to: string | undefined;
    for (const f of dateFilters('date', q.date) ?? []) {
      if (f.op === 'ge' || f.op === 'gt') from = f.value;
      else if (f.op === 'lt' || f.op === 'le') to = f.value;
      else throw new OperationOutcomeError('INVALID', 'Search parameter date takes ge/gt and lt/le here');
    }
    const patient = single(q, 'patient');
    const entity = single(q, 'entity');
    const action = single(q, 'action');
    const outcome = single(q, 'outcome');
    const agent = single(q, 'agent');
    const result = await audit.search(auth.did, {
      ...(patient !== undefined ? { patient: await deps.patientRef(patient) } : {}),
      ...(agent !== undefined ? { agent } : {}),
      ...(entity !== undefined ? { entity } : {}),
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
      ...(action !== undefined ? { action } : {}),
      ...(outcome !== undefined ? { outcome } : {}),
      ...(reviewStates ? { reviewStates } : {}),
      count: count(q),
      bookmark: single(q, '_bookmark') ?? '',
    });
    sendResource(
      res,
      200,
      searchset({ baseUrl: deps.baseUrl, path: '/AuditEvent', query: q, resources: result.events, ...(result.bookmark ? { next: { _bookmark: result.bookmark } } : {}) }),
    );
  });

  // Live access notifications (server-sent events) for a patient and their wards, from committed blocks.
  const accessStream = deps.blocks
    ? new AccessStream({
        source: deps.blocks.source,
        namespace: deps.blocks.namespace,
        resolve: (d) => ledger.resolveDid(d),
        mspId: deps.mspId,
        log,
        ...(deps.blocks.heartbeatMs !== undefined ? { heartbeatMs: deps.blocks.heartbeatMs } : {}),
      })
    : undefined;
  fhir.get('/AuditEvent/$stream', async (req, res) => {
    const auth = requireAuth(req);
    if (!accessStream) throw new OperationOutcomeError('UNSUPPORTED', 'Live access notifications are not offered by this server');
    if (Object.keys(rawQuery(req.query)).length > 0)
      throw new OperationOutcomeError('INVALID', "GET /fhir/AuditEvent/$stream takes no parameters: it streams the accesses to the caller's own data and their wards'");
    await accessStream.serve(req, res, auth);
  });

  // Offline-verifiable audit receipts (src/audit/receipt.ts): for auditors, of any entry they may read.
  fhir.get('/AuditEvent/:eventId/$receipt', async (req: Request<{ eventId: string }>, res) => {
    const auth = requireAuth(req);
    if (!deps.receipts) throw new OperationOutcomeError('UNSUPPORTED', 'Audit receipts are not offered by this server');
    requireScope(auth, 'AuditEvent', 'read');
    if (auth.viaOrganization !== undefined || auth.actorAuth === 'delegated') {
      throw new OperationOutcomeError('FORBIDDEN', 'Audit receipts are not available to a member organization acting for a user');
    }
    // A receipt holds the whole block (its data hash covers every transaction in it), so it discloses the
    // block's other transactions: only auditors, who may read the whole access history, get receipts.
    if (auth.role !== 'auditor' || !auth.did) {
      throw new OperationOutcomeError('FORBIDDEN', "Audit receipts are for auditors: a receipt carries the whole block, other members' transactions included");
    }
    if (Object.keys(rawQuery(req.query)).length > 0) throw new OperationOutcomeError('INVALID', 'GET /fhir/AuditEvent/<eventId>/$receipt takes no parameters');
    const eventId = req.params.eventId;
    if (!/^[A-Za-z0-9]{1,128}\.[0-9]{1,6}$/.test(eventId)) {
      throw new OperationOutcomeError('INVALID', 'The receipt is asked by the ledger event id <txId>.<n> (the AuditEvent extension ledger-event-id)');
    }
    const receipt = await fetchReceipt(deps.receipts.source, { channel: deps.receipts.channel, chaincode: deps.receipts.chaincode, eventId, requester: auth.did });
    if (!receipt) throw new OperationOutcomeError('NOT_FOUND', `AuditEvent ${eventId} is not known`);
    res.setHeader('Content-Disposition', `attachment; filename="receipt-${eventId}.json"`);
    res.status(200).type('application/json; charset=utf-8').send(JSON.stringify(receipt));
  });

  // The break-glass review: an auditor records an outcome, signed with their DID key, on the ledger.
  fhir.post('/AuditEvent/:eventId/$review', async (req: Request<{ eventId: string }>, res) => {
    const auth = requireAuth(req);
    requireScope(auth, 'AuditEvent', 'update');
    if (Object.keys(rawQuery(req.query)).length > 0)
      throw new OperationOutcomeError('INVALID', 'POST /fhir/AuditEvent/<eventId>/$review takes no URL parameters: send a Parameters body');
    const { entry, review } = await reviewBreakGlass(ledger, auth, req.params.eventId, req.body);
    sendResource(res, 200, toAuditEvent(entry, review));
  });
}
