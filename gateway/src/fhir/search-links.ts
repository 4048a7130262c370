/**
 * Chained parameters and `_has` for a search: the linked resources (the targets of a chain, the sources
 * of a `_has`) are found and decided exactly as a search's matches are — the caller's scopes for their
 * type, its compartment, consent for each — so one the caller may not see counts as absent and a chain
 * never tells anything about a record the caller may not see.
 */
import { OperationOutcomeError } from '../errors';
import { governedByPatientReference, inPatientCompartment, valuesOf } from '../model/definitions';
import type { Criterion, ResourceStore, StoredVersion } from '../store/store';
import type { AccessControl, Caller } from './access-control';
import type { ChainSpec, HasSpec } from './search-params';

/** A version the enforcement point permitted, with its decision (what recordDisclosures takes). */
export type Permitted = Awaited<ReturnType<AccessControl['permitted']>>[number];

/** What resolving links needs of the resource service. */
export interface LinkDeps {
  readonly store: ResourceStore;
  readonly access: AccessControl;
  /** This custodian's MSP id (named in a refusal). */
  readonly mspId: string;
  /** Candidates looked at at most, per linked type. */
  readonly maxCandidates: number;
  /**
   * Whether a version is in a compartment-bound caller's compartment: any of its patients' (its patient
   * or a co-patient), exactly as a read or a search match is decided (ResourceService.inCompartmentOf).
   */
  readonly inCompartmentOf: (caller: Caller, v: Pick<StoredVersion, 'patientId' | 'coPatientIds'>) => Promise<boolean>;
  /** The local patients a compartment-bound caller may search (the asked ones otherwise). */
  readonly compartmentPatients: (caller: Caller, asked: readonly string[] | undefined) => Promise<string[] | undefined>;
}

export interface LinkQuery {
  readonly chains?: readonly ChainSpec[];
  readonly has?: readonly HasSpec[];
  /** `_id` of the search, intersected with what `_has` finds. */
  readonly ids?: readonly string[];
  /** The patients the search names: linked patient data is looked for among them only. */
  readonly patientIds?: readonly string[];
}

export interface Links {
  /** One reference criterion per chain: to the targets the caller may see (none: nothing matches). */
  readonly criteria: Criterion[];
  /** The ids the matches must have (`_id` and each `_has`), or undefined when neither is given. */
  readonly ids: string[] | undefined;
  /** The linked resources that link to these matches: they tell the caller about them, so are recorded with them. */
  readonly linkedTo: (matches: readonly StoredVersion[]) => Permitted[];
}

const key = (v: { resourceType: string; id: string }): string => `${v.resourceType}/${v.id}`;

/** `Type/id` of the literal references a version's reference parameter holds. */
function referencedKeys(v: StoredVersion, param: string): string[] {
  return valuesOf(JSON.parse(v.content) as Record<string, unknown>, param).flatMap((value) => {
    const r = value && typeof value === 'object' ? (value as { reference?: unknown }).reference : undefined;
    const m = typeof r === 'string' ? /([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(r) : null;
    return m?.[1] && m[2] ? [`${m[1]}/${m[2]}`] : [];
  });
}

/** The ids of the resources of a type a version's reference parameter points at. */
function referencedIds(v: StoredVersion, param: string, type: string): string[] {
  return referencedKeys(v, param)
    .filter((k) => k.startsWith(`${type}/`))
    .map((k) => k.slice(type.length + 1));
}

/** Each version once (a resource both matched, included or linked is recorded once). */
export function dedupe(xs: readonly Permitted[]): Permitted[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = `${key(x.version)}/${String(x.version.versionId)}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Whether the linked resources of a type are a patient's data (else reference data, in no patient's compartment). */
function patientData(type: string): boolean {
  return inPatientCompartment(type) || governedByPatientReference(type);
}

/**
 * Another member's user links to patient data only within the patients it names: checked for every type
 * a chain or `_has` may reach before anything is looked up, so the refusal never depends on what is held.
 */
function assertNamesPatient(mspId: string, caller: Caller, type: string, namesPatient: boolean): void {
  if (patientData(type) && !namesPatient && !caller.local && caller.compartmentOf === undefined) {
    throw new OperationOutcomeError('INVALID', `A search from outside ${mspId} that chains to ${type} must name the patient (patient=<the patient DID>)`);
  }
}

/**
 * The refusal resolveLinks would give before looking anything up: another member's user naming no
 * patient while a chain or `_has` reaches patient data of a type its scopes read. For a check made
 * before anything is read (a transaction's search entries).
 */
export function assertLinksNamePatient(
  mspId: string,
  caller: Caller,
  q: Pick<LinkQuery, 'chains' | 'has'>,
  namesPatient: boolean,
  mayRead: (resourceType: string) => boolean,
): void {
  const reached = [...(q.chains ?? []).flatMap(chainTypes), ...(q.has ?? []).flatMap(hasTypes)];
  for (const t of reached) if (mayRead(t)) assertNamesPatient(mspId, caller, t, namesPatient);
}

/** The types a chain reaches, at every level. */
function chainTypes(c: ChainSpec): string[] {
  return [...c.hops.flatMap((h) => h.types), ...c.targets.map((x) => x.type)];
}

/** The types a `_has` reaches: its source, and those of the chain or the `_has` nested in it. */
function hasTypes(h: HasSpec): string[] {
  return [h.source, ...(h.chain ? chainTypes(h.chain) : []), ...(h.has ? hasTypes(h.has) : [])];
}

/** Candidates a level of a chain (or a `_has`) may still look at: shared by the types of the level, named in the refusal beyond it. */
interface Budget {
  readonly param: string;
  left: number;
}

/**
 * The current resources of a type meeting criteria that the caller may see: its scopes for the type,
 * its compartment, and consent for each, exactly as a search's matches. Patient data is looked for
 * among the patients the search names (a compartment-bound caller's own), and another member's user
 * must name them, so that neither the candidate limit nor the matches tell about other patients.
 */
async function visibleLinked(
  deps: LinkDeps,
  caller: Caller,
  type: string,
  criteria: readonly Criterion[],
  asked: readonly string[] | undefined,
  mayRead: (t: string) => boolean,
  budget: Budget,
  ids?: readonly string[],
): Promise<Permitted[]> {
  if (!mayRead(type)) return [];
  assertNamesPatient(deps.mspId, caller, type, asked !== undefined);
  const patientIds = patientData(type) ? await deps.compartmentPatients(caller, asked) : undefined;
  if ((patientIds !== undefined && patientIds.length === 0) || ids?.length === 0) return [];
  const candidates = await deps.store.search({ resourceType: type, criteria, ...(ids ? { ids } : {}), ...(patientIds ? { patientIds } : {}), limit: budget.left + 1 });
  if (candidates.length > budget.left) {
    throw new OperationOutcomeError(
      'INVALID',
      `Search parameter ${budget.param} links to more than ${String(deps.maxCandidates)} resources at one level, too many for one answer: narrow it`,
    );
  }
  budget.left -= candidates.length;
  const inScope: StoredVersion[] = [];
  // A record in several patients' compartments is in the caller's when any of them is, as for a search's matches.
  for (const v of candidates) if (v.patientId === null || (await deps.inCompartmentOf(caller, v))) inScope.push(v);
  return deps.access.permitted(caller, inScope);
}

/** One level of a resolved chain: the reference parameter leading to it and the linked resources the caller may see there. */
interface Step {
  readonly param: string;
  readonly found: Permitted[];
}

/**
 * A chain resolved level by level from the last: the resources of the last level meeting the criteria,
 * then at each level up those whose reference parameter points at one found below, each level decided
 * as a search's matches are (scopes, compartment, consent), so a record the caller may not see at any
 * level counts as absent and breaks the chain there. The steps are outermost first.
 */
async function resolveChain(deps: LinkDeps, caller: Caller, chain: ChainSpec, asked: readonly string[] | undefined, mayRead: (t: string) => boolean): Promise<Step[]> {
  for (const t of chainTypes(chain)) if (mayRead(t)) assertNamesPatient(deps.mspId, caller, t, asked !== undefined);
  let found: Permitted[] = [];
  let budget: Budget = { param: chain.key, left: deps.maxCandidates };
  for (const t of chain.targets) found.push(...(await visibleLinked(deps, caller, t.type, t.criteria, asked, mayRead, budget)));
  const params = [chain.param, ...chain.hops.map((h) => h.param)];
  const steps: Step[] = [{ param: params.at(-1) ?? chain.param, found }];
  for (let i = chain.hops.length - 1; i >= 0; i--) {
    const hop = chain.hops[i];
    if (!hop) continue;
    const below = found;
    found = [];
    budget = { param: chain.key, left: deps.maxCandidates };
    if (below.length > 0) {
      const criterion: Criterion = { kind: 'reference', param: hop.param, values: below.map((x) => ({ ref: key(x.version) })) };
      for (const type of hop.types) found.push(...(await visibleLinked(deps, caller, type, [criterion], asked, mayRead, budget)));
    }
    steps.unshift({ param: params[i] ?? chain.param, found });
  }
  return steps;
}

/**
 * A resolved `_has`: the sources the caller may see whose `param` points at a resource of `type` (the type
 * searched, or for a nested `_has` the source of the one around it), and what they were found through: the
 * levels of a chain at its end, or the nested `_has`.
 */
interface Reverse {
  readonly type: string;
  readonly param: string;
  readonly found: Permitted[];
  readonly steps?: Step[];
  readonly inner?: Reverse;
}

/**
 * A `_has` of `type` resolved from its last part up, each level decided as a search's matches are
 * (scopes, compartment, consent, its own candidate budget), so a record the caller may not see at any
 * level counts as absent and breaks the path there: the sources meeting its criteria; or, for a chain as
 * its last part, the chain resolved, then the sources pointing at what it found; or, for a nested `_has`
 * (search.html#has), that `_has` of the source type resolved, then the sources its sources point at.
 */
async function resolveHas(deps: LinkDeps, caller: Caller, type: string, has: HasSpec, asked: readonly string[] | undefined, mayRead: (t: string) => boolean): Promise<Reverse> {
  // Every type the path may reach, before anything is looked up: the refusal never depends on what is held.
  for (const t of hasTypes(has)) if (mayRead(t)) assertNamesPatient(deps.mspId, caller, t, asked !== undefined);
  const budget = { param: has.key, left: deps.maxCandidates };
  if (has.chain) {
    const steps = await resolveChain(deps, caller, has.chain, asked, mayRead);
    const below = steps[0]?.found ?? [];
    const criterion: Criterion = { kind: 'reference', param: has.chain.param, values: below.map((x) => ({ ref: key(x.version) })) };
    const found = below.length > 0 ? await visibleLinked(deps, caller, has.source, [criterion], asked, mayRead, budget) : [];
    return { type, param: has.param, found, steps };
  }
  if (has.has) {
    const inner = await resolveHas(deps, caller, has.source, has.has, asked, mayRead);
    const ids = [...new Set(inner.found.flatMap((x) => referencedIds(x.version, inner.param, has.source)))];
    const found = await visibleLinked(deps, caller, has.source, has.criteria, asked, mayRead, budget, ids);
    return { type, param: has.param, found, inner };
  }
  return { type, param: has.param, found: await visibleLinked(deps, caller, has.source, has.criteria, asked, mayRead, budget) };
}

/** The criteria (chains) and ids (_has) a search's chains and _has parameters come to, from the linked resources the caller may see. */
export async function resolveLinks(deps: LinkDeps, caller: Caller, resourceType: string, q: LinkQuery, mayRead: (resourceType: string) => boolean): Promise<Links> {
  const criteria: Criterion[] = [];
  let ids = q.ids ? [...q.ids] : undefined;
  const chained: Step[][] = [];
  const reverse: Reverse[] = [];
  for (const chain of q.chains ?? []) {
    const steps = await resolveChain(deps, caller, chain, q.patientIds, mayRead);
    chained.push(steps);
    criteria.push({ kind: 'reference', param: chain.param, values: (steps[0]?.found ?? []).map((x) => ({ ref: key(x.version) })) });
  }
  for (const has of q.has ?? []) {
    const r = await resolveHas(deps, caller, resourceType, has, q.patientIds, mayRead);
    reverse.push(r);
    const referenced = new Set(r.found.flatMap((x) => referencedIds(x.version, r.param, resourceType)));
    ids = (ids ?? [...referenced]).filter((id) => referenced.has(id));
  }
  const linkedTo = (matches: readonly StoredVersion[]): Permitted[] => {
    if (matches.length === 0) return [];
    const out: Permitted[] = [];
    // Level by level: what the matches link to, then what those link to, and so on.
    const walk = (start: readonly StoredVersion[], steps: readonly Step[]): void => {
      let from = start;
      for (const step of steps) {
        const refs = new Set(from.flatMap((m) => referencedKeys(m, step.param)));
        const linked = step.found.filter((x) => refs.has(key(x.version)));
        out.push(...linked);
        from = linked.map((x) => x.version);
      }
    };
    // A _has: the sources pointing at the matches, then (nested) the sources pointing at those, and so on;
    // a chain at its end: what the last sources link to along it. Each tells about the matches.
    const walkReverse = (targets: readonly StoredVersion[], r: Reverse): void => {
      const targetKeys = new Set(targets.map(key));
      const linking = r.found.filter((x) => referencedIds(x.version, r.param, r.type).some((id) => targetKeys.has(`${r.type}/${id}`)));
      out.push(...linking);
      const from = linking.map((x) => x.version);
      if (r.steps) walk(from, r.steps);
      if (r.inner && from.length > 0) walkReverse(from, r.inner);
    };
    for (const steps of chained) walk(matches, steps);
    for (const r of reverse) walkReverse(matches, r);
    return out;
  };
  return { criteria, ids, linkedTo };
}
