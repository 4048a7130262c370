import { randomUUID } from 'node:crypto';
import { validateResource } from '@hdx/fhir-mappers';
import type { Logger } from 'pino';
import type { LedgerClient } from '../ledger/ledger-client';
import type { ResourceStore, StoredVersion } from '../store/store';
import { commitmentOf, commitmentsEqual, patientPseudonym } from './commitment';
import { invalidResource, OperationOutcomeError } from './outcome';

/** Resource types this gateway serves today. */
export const SUPPORTED_TYPES: ReadonlySet<string> = new Set(['Patient']);

type Resource = { resourceType: string; id?: string; meta?: Record<string, unknown> } & Record<string, unknown>;

export interface ResourceServiceDeps {
  readonly store: ResourceStore;
  readonly ledger: LedgerClient;
  readonly log: Logger;
}

function ref(resourceType: string, id: string, versionId: number | string): string {
  return `${resourceType}/${id}/_history/${versionId}`;
}

/** The local patient a resource belongs to. A Patient belongs to itself. */
function patientOf(resource: Resource, id: string): string {
  if (resource.resourceType === 'Patient') return id;
  throw new OperationOutcomeError('UNSUPPORTED', `${resource.resourceType} is not supported yet`);
}

/** Security labels (meta.security codes) travel to the ledger: they are policy, never PHI. */
function securityLabels(meta: Record<string, unknown> | undefined): string[] {
  const security = meta?.security;
  if (!Array.isArray(security)) return [];
  return security
    .map((c: unknown) => (c && typeof c === 'object' && typeof (c as { code?: unknown }).code === 'string' ? (c as { code: string }).code : undefined))
    .filter((c): c is string => c !== undefined)
    .sort();
}

/**
 * Create and read of FHIR resources held by this organization, each version anchored on the ledger
 * before it is acknowledged and checked against its anchor before it is served.
 */
export class ResourceService {
  readonly #store: ResourceStore;
  readonly #ledger: LedgerClient;
  readonly #log: Logger;

  constructor(deps: ResourceServiceDeps) {
    this.#store = deps.store;
    this.#ledger = deps.ledger;
    this.#log = deps.log;
  }

  static assertSupported(resourceType: string): void {
    if (!SUPPORTED_TYPES.has(resourceType)) {
      throw new OperationOutcomeError('UNSUPPORTED', `Resource type "${resourceType}" is not supported by this server (supported: ${[...SUPPORTED_TYPES].join(', ')})`);
    }
  }

  async create(resourceType: string, body: unknown): Promise<Resource> {
    ResourceService.assertSupported(resourceType);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new OperationOutcomeError('INVALID', `The request body must be a FHIR ${resourceType} resource (a JSON object)`);
    }
    const issues = validateResource(body, resourceType).filter((i) => i.severity === 'error');
    if (issues.length > 0) throw invalidResource(issues, `The ${resourceType} is not valid FHIR R4`);

    // The server assigns id, versionId and lastUpdated on create; a client-sent id is ignored (FHIR create).
    const input = body as Resource;
    const id = randomUUID();
    const lastUpdated = new Date().toISOString();
    const { versionId: _v, lastUpdated: _l, ...keptMeta } = input.meta ?? {};
    const resource: Resource = { ...input, id, meta: { ...keptMeta, versionId: '1', lastUpdated } };
    const patientId = patientOf(resource, id);
    await this.#write(resource, 1, patientId, lastUpdated);
    return resource;
  }

  async #write(resource: Resource, versionId: number, patientId: string, lastUpdated: string): Promise<void> {
    const id = resource.id ?? '';
    const key = this.#store.patientKey(patientId);
    this.#store.insertPending({
      resourceType: resource.resourceType,
      id,
      versionId,
      lastUpdated,
      patientId,
      deleted: false,
      content: JSON.stringify(resource),
    });
    try {
      await this.#ledger.anchor({
        resourceType: resource.resourceType,
        id,
        versionId: String(versionId),
        patient: patientPseudonym(key),
        securityLabels: securityLabels(resource.meta),
        lastUpdated,
        commitment: { alg: 'HMAC-SHA-256', value: commitmentOf(key, resource) },
      });
    } catch (err) {
      // Not anchored, so not acknowledged: leave no trace of it in the store.
      this.#store.discardPending(resource.resourceType, id, versionId);
      throw err;
    }
    this.#store.markAnchored(resource.resourceType, id, versionId);
  }

  async read(resourceType: string, id: string): Promise<Resource> {
    ResourceService.assertSupported(resourceType);
    const v = this.#store.readCurrent(resourceType, id);
    if (!v) throw new OperationOutcomeError('NOT_FOUND', `${resourceType}/${id} is not known to this server`);
    return this.#verified(v);
  }

  async vread(resourceType: string, id: string, versionId: string): Promise<Resource> {
    ResourceService.assertSupported(resourceType);
    const n = Number(versionId);
    const v = Number.isInteger(n) && n > 0 ? this.#store.readVersion(resourceType, id, n) : undefined;
    if (!v) throw new OperationOutcomeError('NOT_FOUND', `${ref(resourceType, id, versionId)} is not known to this server`);
    return this.#verified(v);
  }

  /** Releases a stored version only if it still matches the commitment anchored on the ledger. */
  async #verified(v: StoredVersion): Promise<Resource> {
    const resource = JSON.parse(v.content) as Resource;
    const anchor = await this.#ledger.getAnchor(v.resourceType, v.id, String(v.versionId));
    const key = v.patientId === null ? undefined : this.#store.findPatientKey(v.patientId);
    const ok = anchor !== undefined && key !== undefined && !anchor.tombstone && commitmentsEqual(anchor.commitment.value, commitmentOf(key, resource));
    if (!ok) {
      const reason = anchor === undefined ? 'no anchor on the ledger' : anchor.tombstone ? 'anchor is tombstoned' : key === undefined ? 'patient key missing' : 'commitment mismatch';
      this.#log.warn({ event: 'integrity-failure', resource: ref(v.resourceType, v.id, v.versionId), reason }, 'stored resource does not match its ledger anchor; withheld');
      throw new OperationOutcomeError(
        'INTEGRITY',
        `${ref(v.resourceType, v.id, v.versionId)} does not match its anchor on the ledger and is withheld; the custodian has been alerted`,
      );
    }
    return resource;
  }

  /**
   * Settles versions left pending by a crash: anchored on the ledger with the same commitment → kept;
   * otherwise removed (they were never acknowledged). Returns how many of each.
   */
  async settlePending(): Promise<{ kept: number; removed: number }> {
    let kept = 0;
    let removed = 0;
    for (const v of this.#store.listPending()) {
      const anchor = await this.#ledger.getAnchor(v.resourceType, v.id, String(v.versionId));
      const key = v.patientId === null ? undefined : this.#store.findPatientKey(v.patientId);
      if (anchor && key && commitmentsEqual(anchor.commitment.value, commitmentOf(key, JSON.parse(v.content)))) {
        this.#store.markAnchored(v.resourceType, v.id, v.versionId);
        kept++;
      } else {
        this.#store.discardPending(v.resourceType, v.id, v.versionId);
        removed++;
      }
    }
    return { kept, removed };
  }
}
