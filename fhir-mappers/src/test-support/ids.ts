import { createHash } from 'node:crypto';
import { keyedIds, type StableIds } from '../ids';

/** A fixed custodian id secret for tests and golden files (32 bytes; a real custodian's is random). */
export const TEST_ID_SECRET: Uint8Array = createHash('sha256').update('hdx fhir-mappers test custodian').digest();

/** Keyed ids under TEST_ID_SECRET, every subject at epoch 0 (never erased). */
export const TEST_IDS: StableIds = keyedIds(TEST_ID_SECRET);
