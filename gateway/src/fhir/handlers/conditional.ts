/** The search of a conditional update, patch or delete (`PUT /Type?query`, `PATCH /Type?query`, `DELETE /Type?query`): the raw query string, required. */
import { OperationOutcomeError } from '../../errors';
import type { FhirRequest } from './request';

export function conditionalQuery(req: FhirRequest, what: string, method: 'PUT' | 'PATCH' | 'DELETE'): string {
  const query = req.queryString ?? '';
  if (query === '') throw new OperationOutcomeError('INVALID', `${what} needs an id (${method} /Type/id) or a search (${method} /Type?param=value)`);
  return query;
}
