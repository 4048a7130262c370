/**
 * `Patient/$exchange?patient=<DID>[&_type=…]`: this organization's user asks, through its gateway, for a
 * patient's records held at the other members (exchange/exchange-service.ts: each custodian decides by
 * the patient's consent and records the access). Only the types the user's own scopes let it read are
 * fetched, and the custodian is told so.
 */
import { HDX_DID } from '@hdx/chaincode/dist/protocol';
import { OperationOutcomeError } from '../../errors';
import { assertInteraction, mayRead } from '../policy';
import { assertKnown, list, single } from '../search-params';
import { bind, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

export async function exchange(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  if (!ctx.exchange) throw new OperationOutcomeError('UNSUPPORTED', 'Exchange between members is not configured on this gateway (HDX_ORG_KEY_FILE)');
  assertKnown(req.query, ['patient', '_type']);
  const patient = single(req.query, 'patient');
  if (!patient || !HDX_DID.test(patient)) throw new OperationOutcomeError('INVALID', 'Give the patient as patient=<the patient DID>');
  const types = list(req.query, '_type', TYPE, 'must be resource types');
  if (req.auth.viaOrganization) throw new OperationOutcomeError('FORBIDDEN', 'A member organization cannot relay an exchange further');
  const who = bind(ctx, req, 'Patient', 'read');
  assertInteraction(who, '$exchange', 'Patient', ctx.mspId);
  const readable = (t: string): boolean => mayRead(req.auth, t);
  return { status: 200, resource: await ctx.exchange.fetchPatientRecords(who, patient, types, readable) };
}
