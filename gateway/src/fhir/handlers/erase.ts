/**
 * `POST Patient/:id/$erase`: the custodian's erasure of a patient (fhir/erasure.ts): every version here,
 * the key and the DID link deleted, the anchors tombstoned on the ledger, the ids given new epochs.
 * Answered with how much was erased, as Parameters.
 */
import { OperationOutcomeError } from '../../errors';
import { assertInteraction } from '../policy';
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

export async function erase(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const id = req.id ?? '';
  checkIds('Patient', id);
  if (!ctx.erasure) throw new OperationOutcomeError('UNSUPPORTED', 'Erasure is not offered by this server');
  const who = bind(ctx, req, 'Patient', 'delete');
  assertInteraction(who, '$erase', 'Patient', ctx.mspId);
  const result = await ctx.erasure.erasePatient(who, id);
  return {
    status: 200,
    resource: {
      resourceType: 'Parameters',
      parameter: [
        { name: 'versionsDeleted', valueInteger: result.versionsDeleted },
        { name: 'anchorsTombstoned', valueInteger: result.anchorsTombstoned },
      ],
    },
  };
}
