/** Writing FHIR answers: shared by the route adapters of http/. */
import type { Response } from 'express';
import type { Resource } from '../model/resource';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** A resource (or Bundle, OperationOutcome, Parameters) as application/fhir+json. */
export function sendResource(res: Response, status: number, resource: unknown): void {
  res.status(status).type(FHIR_JSON).send(JSON.stringify(resource));
}

/** ETag and Last-Modified of the version a resource carries. */
export function versionHeaders(res: Response, resource: Resource): void {
  const m = resource.meta as { versionId?: string; lastUpdated?: string } | undefined;
  if (m?.versionId) res.setHeader('ETag', `W/"${m.versionId}"`);
  if (m?.lastUpdated) res.setHeader('Last-Modified', new Date(m.lastUpdated).toUTCString());
}
