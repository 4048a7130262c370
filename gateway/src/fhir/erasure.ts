import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { LedgerClient } from '../ledger/ledger-client';
import type { CustodianIds } from '../store/custodian-ids';
import type { ResourceStore } from '../store/store';
import { AccessControl, type Caller } from './access-control';
import { patientPseudonym } from '../model/commitment';
import { OperationOutcomeError } from '../errors';
import { SUPPORTED_TYPES } from '../model/definitions';

export interface ErasureResult {
  /** Resource versions deleted from this gateway's store. */
  readonly versionsDeleted: number;
  /** Anchors tombstoned on the ledger (`Type/id/_history/v`). */
  readonly anchorsTombstoned: number;
}

/**
 * Erasure (GDPR art. 17) of a patient held by this custodian. On the ledger, every anchor of the patient
 * (under the DID and under the keyed pseudonym) becomes a tombstone: the commitment stays, the link to
 * the patient goes. Off chain, the resources and the patient's HMAC key are destroyed, so no commitment
 * can be linked to any content again. The access history is left intact, and the erasure itself is
 * recorded in it, naming no resource (its entry carries the patient reference and the erasure, never the
 * local Patient id).
 *
 * Re-admission: the keyed ids (CustodianIds) of the patient's resources get a new erasure epoch, so the
 * next message or EHR page about the same person (same MRN, same EHR ids) maps to new ids, unlinkable to
 * the tombstones, and is anchored like any new patient; without `ids` the returning patient's old ids
 * would hit their tombstones.
 *
 * Ledger first, then the store: if the store step fails, running the erasure again completes it (both
 * steps are idempotent).
 */
export class ErasureService {
  constructor(
    private readonly store: ResourceStore,
    private readonly ledger: LedgerClient,
    private readonly log: Logger,
    private readonly mspId: string,
    /** The custodian's keyed ids, whose erasure epochs are bumped (so the same patient can be admitted again). */
    private readonly ids?: CustodianIds,
  ) {}

  async erasePatient(caller: Caller, patientId: string): Promise<ErasureResult> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    if (caller.organization !== this.mspId) throw new OperationOutcomeError('FORBIDDEN', `Only ${this.mspId} may erase records it holds`);
    const did = await this.store.patientDid(patientId);
    const key = await this.store.findPatientKey(patientId);
    if (!(await this.store.readCurrent('Patient', patientId)) && !did && !key) {
      throw new OperationOutcomeError('NOT_FOUND', 'The patient is not known to this server');
    }
    // The patient's resources, while the store still has them (their ids get new epochs below).
    const held = [patientId];
    for (const type of SUPPORTED_TYPES) for (const v of await this.store.search({ resourceType: type, patientIds: [patientId], limit: 1_000_000_000 })) held.push(v.id);
    const refs = [did, key ? patientPseudonym(key) : undefined].filter((r): r is string => r !== undefined);
    let anchorsTombstoned = 0;
    for (const ref of refs) anchorsTombstoned += (await this.ledger.erasePatient(ref)).erased.length;
    if (refs.length > 0) {
      // No `resources`: the local Patient id would link the entry to the tombstones (and, derived from
      // the MRN, to the person).
      const entry = { actor, actorOrganization: caller.organization, purpose, consents: [], breakGlass: false, custodian: this.mspId };
      await this.ledger.recordAccess(refs.map((patient) => ({ ...entry, patient, action: 'D', subtype: 'erase', decision: 'permit', entryId: randomUUID() })));
    }
    // Before the store step: if it fails, running the erasure again bumps the epochs again (harmless).
    const newEpochs = (await this.ids?.forget(held)) ?? 0;
    const versionsDeleted = await this.store.erasePatient(patientId);
    this.log.info({ event: 'erasure', versionsDeleted, anchorsTombstoned, newEpochs }, 'patient erased');
    return { versionsDeleted, anchorsTombstoned };
  }
}
