/** The transport-free FHIR interactions and operations: one file each (request.ts says what they take and give). */
export { batch } from './batch';
export { conditionalDelete } from './conditional-delete';
export { conditionalPatch } from './conditional-patch';
export { conditionalUpdate } from './conditional-update';
export { create, ifNoneExistQuery } from './create';
export { deleteResource } from './delete';
export { erase } from './erase';
export { everything } from './everything';
export { exchange } from './exchange';
export { historyInstance, historySystem, historyType } from './history';
export { patch } from './patch';
export { read } from './read';
export { search } from './search';
export { update } from './update';
export { verify } from './verify';
export { vread } from './vread';
export type { BodyFormat, FhirContext, FhirOutcome, FhirRequest } from './request';
