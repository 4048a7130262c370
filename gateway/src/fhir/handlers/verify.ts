/** `Type/:id/$verify`: the current version checked against its anchor, as Parameters. */
import { bind, checkIds, type FhirContext, type FhirOutcome, type FhirRequest } from './request';

export async function verify(ctx: FhirContext, req: FhirRequest): Promise<FhirOutcome> {
  const [type, id] = [req.type ?? '', req.id ?? ''];
  checkIds(type, id);
  const result = await ctx.resources.verify(bind(ctx, req, type, 'read'), type, id);
  const parameter: Array<Record<string, unknown>> = [
    { name: 'verified', valueBoolean: result.verified },
    { name: 'reason', valueString: result.reason },
  ];
  if (result.anchor) {
    parameter.push(
      { name: 'custodian', valueString: result.anchor.custodian },
      { name: 'transaction', valueString: result.anchor.txId },
      { name: 'anchoredAt', valueInstant: result.anchor.anchoredAt },
    );
  }
  return { status: 200, resource: { resourceType: 'Parameters', parameter } };
}
