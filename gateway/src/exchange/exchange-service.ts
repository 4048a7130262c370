import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { P256PrivateJwk } from '../auth/did-key';
import { signDidToken } from '../auth/issue';
import { AccessControl, type Caller } from '../fhir/access-control';
import { commitmentOf, commitmentsEqual, OPENING_KEY_EXTENSION } from '../model/commitment';
import type { OperationOutcomeIssue } from '../errors';
import type { LedgerClient, LocateResult } from '../ledger/ledger-client';
import type { Resource } from '../model/resource';

export { OPENING_KEY_EXTENSION };

const MAX_PAGES = 50;
/** Largest page hdx.record:LocateRecords serves. */
const LOCATE_PAGE = 200;
const FETCH_TIMEOUT_MS = 15_000;

type Entry = { fullUrl?: string; resource?: Resource; extension?: Array<{ url: string; valueBase64Binary?: string }> };
type Bundle = { resourceType: 'Bundle'; entry?: Entry[]; link?: Array<{ relation: string; url: string }> };

export interface ExchangeOptions {
  readonly ledger: LedgerClient;
  readonly log: Logger;
  /** This gateway's organization. */
  readonly mspId: string;
  /** The organization DID key member-to-member requests are signed with. */
  readonly orgKey: P256PrivateJwk & { kid: string };
  /** Gateway FHIR base URLs by MSP id, overriding what the organizations registered on the ledger. */
  readonly memberUrls: Readonly<Record<string, string>>;
}

/**
 * Exchange between members, for one of this organization's users: find the patient's records held by
 * other members through the ledger's record locator (consent-checked for the user), fetch them from each
 * custodian's gateway over FHIR (the custodian authenticates this organization and the user, enforces
 * consent and records the access), check every resource against its anchor on the ledger, and return
 * them as one Bundle with a Provenance per custodian. What does not verify is not passed on.
 */
export class ExchangeService {
  constructor(private readonly opts: ExchangeOptions) {}

  /**
   * `readable` says which types the user's own scopes let it read: nothing else is fetched, and each
   * custodian is asked with a token scoped to the one type being fetched (never wider than the user's).
   */
  async fetchPatientRecords(
    caller: Caller,
    patient: string,
    types: readonly string[] | undefined,
    readable: (resourceType: string) => boolean = () => false,
  ): Promise<Record<string, unknown>> {
    const { actor, purpose } = AccessControl.requireActor(caller);
    const located = await this.#locate(patient, actor, caller.organization, purpose, caller.actorAuth);
    const entries: Array<Record<string, unknown>> = [];
    const issues: OperationOutcomeIssue[] = [];
    for (const c of located) {
      if (c.custodian === this.opts.mspId) continue; // this organization's own records are read here directly
      const listed = new Set(
        c.resources.filter((r) => (!types || types.includes(r.resourceType)) && readable(r.resourceType)).map((r) => `${r.resourceType}/${r.id}/_history/${r.versionId}`),
      );
      if (listed.size === 0) continue;
      const base = this.opts.memberUrls[c.custodian] ?? c.fhirBaseUrl;
      if (!base) {
        issues.push(warning(`${c.custodian} holds records but has no gateway URL on the ledger or in HDX_MEMBER_GATEWAYS`));
        continue;
      }
      const verified: Resource[] = [];
      for (const type of [...new Set([...listed].map((r) => r.split('/')[0] ?? ''))]) {
        let fetched: Entry[];
        try {
          fetched = await this.#fetchAll(`${base}/${type}?patient=${encodeURIComponent(patient)}&_count=100`, base, actor, caller, type);
        } catch (err) {
          issues.push(warning(`${type} records of ${c.custodian} could not be fetched: ${err instanceof Error ? err.message : 'error'}`));
          continue;
        }
        for (const e of fetched) {
          const r = e.resource;
          const ref = r ? `${r.resourceType}/${String(r.id)}/_history/${String(r.meta?.versionId)}` : '';
          if (!r || !listed.has(ref)) continue; // only what the locator, on the ledger, says this user may have
          const problem = await this.#verify(r, e, c.custodian);
          if (problem) issues.push(warning(`${ref} from ${c.custodian} was not passed on: ${problem}`));
          else verified.push(r);
        }
      }
      if (verified.length === 0) continue;
      for (const r of verified) entries.push({ fullUrl: `${base}/${r.resourceType}/${String(r.id)}`, resource: r });
      entries.push({ fullUrl: `urn:uuid:${randomUUID()}`, resource: provenance(c.custodian, base, verified) });
    }
    if (issues.length > 0) entries.push({ fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'OperationOutcome', issue: issues } });
    return { resourceType: 'Bundle', type: 'collection', timestamp: new Date().toISOString(), entry: entries };
  }

  async #locate(patient: string, actor: string, actorOrganization: string, purpose: string, actorAuth: Caller['actorAuth']): Promise<LocateResult['custodians']> {
    const out = new Map<string, LocateResult['custodians'][number]>();
    let bookmark = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const r = await this.opts.ledger.locateRecords({ patient, actor, actorOrganization, actorAuth, purpose, pageSize: LOCATE_PAGE, ...(bookmark ? { bookmark } : {}) });
      for (const c of r.custodians) {
        const known = out.get(c.custodian);
        if (known) known.resources.push(...c.resources);
        else out.set(c.custodian, { ...c, resources: [...c.resources] });
      }
      if (!r.bookmark || r.fetchedRecordsCount === 0) break;
      bookmark = r.bookmark;
    }
    return [...out.values()];
  }

  /** Pages through a custodian's search, with a fresh single-use organization token per request. */
  async #fetchAll(url: string, base: string, actor: string, caller: Caller, resourceType: string): Promise<Entry[]> {
    const entries: Entry[] = [];
    let next: string | undefined = url;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const token = signDidToken({
        key: this.opts.orgKey,
        kid: this.opts.orgKey.kid,
        audience: base,
        scope: `user/${resourceType}.read`,
        purposeOfUse: caller.purpose ?? 'TREAT',
        ...(caller.breakGlassReason ? { breakGlassReason: caller.breakGlassReason } : {}),
        onBehalfOf: actor,
        ttlSec: 60,
      });
      const res = await fetch(next, { headers: { authorization: `Bearer ${token}`, accept: 'application/fhir+json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (res.status !== 200) throw new Error(`the custodian answered ${res.status}`);
      const bundle = (await res.json()) as Bundle;
      entries.push(...(bundle.entry ?? []));
      const link = bundle.link?.find((l) => l.relation === 'next')?.url;
      // Follow only links to the same custodian (same origin and base path), never elsewhere.
      next = link && sameBase(link, base) ? link : undefined;
    }
    return entries;
  }

  /** The resource must match the commitment anchored on the ledger (read from this member's own peer). */
  async #verify(r: Resource, e: Entry, custodian: string): Promise<string | undefined> {
    const keyText = e.extension?.find((x) => x.url === OPENING_KEY_EXTENSION)?.valueBase64Binary;
    if (!keyText) return 'the custodian sent no opening key';
    const anchor = await this.opts.ledger.getAnchor(r.resourceType, String(r.id), String(r.meta?.versionId));
    if (!anchor) return 'it is not anchored on the ledger';
    if (anchor.tombstone) return 'its anchor is erased';
    if (anchor.custodian !== custodian) return 'its anchor names another custodian';
    if (!commitmentsEqual(anchor.commitment.value, commitmentOf(Buffer.from(keyText, 'base64'), r))) return 'it does not match its anchor';
    return undefined;
  }
}

function sameBase(link: string, base: string): boolean {
  try {
    const l = new URL(link);
    const b = new URL(base);
    return l.origin === b.origin && (l.pathname === b.pathname || l.pathname.startsWith(`${b.pathname.replace(/\/$/, '')}/`));
  } catch {
    return false;
  }
}

function warning(diagnostics: string): OperationOutcomeIssue {
  return { severity: 'warning', code: 'processing', diagnostics };
}

/** Where the fetched records came from, and that each was checked against its anchor. */
function provenance(custodian: string, base: string, resources: readonly Resource[]): Record<string, unknown> {
  return {
    resourceType: 'Provenance',
    target: resources.map((r) => ({ reference: `${base}/${r.resourceType}/${String(r.id)}/_history/${String(r.meta?.versionId)}` })),
    recorded: new Date().toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: 'UPDATE', display: 'retrieved from the custodian' }] },
    agent: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'custodian' }] },
        who: { identifier: { system: 'urn:hdx:msp', value: custodian } },
      },
    ],
    entity: [{ role: 'source', what: { identifier: { system: 'urn:ietf:rfc:3986', value: base } } }],
    reason: [{ coding: [{ system: 'https://hdx.example/fhir/CodeSystem/verification', code: 'anchor-verified', display: 'each resource matched its commitment on the ledger' }] }],
  };
}
