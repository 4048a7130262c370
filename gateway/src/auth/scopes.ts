/**
 * SMART on FHIR resource scopes: `<context>/<ResourceType|*>.<permissions>`, with SMART v1 permissions
 * (`read`, `write`, `*`) and SMART v2 ones (letters of `cruds`, in that order: `.rs`, `.cud`, `.cruds`).
 * Other scopes a token may carry (`openid`, `fhirUser`, `launch/patient`, `offline_access`, …) are
 * kept aside and grant nothing here.
 */
import { InsufficientScopeError } from './errors';

export type ScopeContext = 'patient' | 'user' | 'system';
/** SMART v2 permission letters: create, read, update, delete, search. */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';
/** What a request does to a resource type. `write` is SMART v1 write: create, update and delete. */
export type ScopeAction = 'read' | 'search' | 'create' | 'update' | 'delete' | 'write';

export interface Scope {
  /** The scope as written in the token. */
  readonly text: string;
  readonly context: ScopeContext;
  /** A FHIR resource type, or `*` for every type. */
  readonly resourceType: string;
  readonly permissions: ReadonlySet<Permission>;
}

export interface ParsedScopes {
  /** The resource scopes, in token order. */
  readonly scopes: Scope[];
  /** Everything else the scope claim held (`openid`, `launch/patient`, …): recognized by nobody here. */
  readonly other: string[];
}

/** Thrown for a resource scope that does not parse; the message names the rule, never the text. */
export class ScopeSyntaxError extends Error {
  constructor(
    message: string,
    /** 1-based position of the bad entry in the scope claim. */
    readonly position: number,
  ) {
    super(message);
    this.name = ScopeSyntaxError.name;
  }
}

const PERMISSION_ORDER: readonly Permission[] = ['c', 'r', 'u', 'd', 's'];
const ACTION_PERMISSIONS: Record<ScopeAction, readonly Permission[]> = {
  read: ['r'],
  search: ['s'],
  create: ['c'],
  update: ['u'],
  delete: ['d'],
  write: ['c', 'u', 'd'],
};
const RESOURCE_SCOPE = /^(patient|user|system)\/([^.]*)\.(.*)$/;
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const MAX_SCOPES = 100;

function v1Permissions(p: string): Permission[] | undefined {
  if (p === 'read') return ['r', 's'];
  if (p === 'write') return ['c', 'u', 'd'];
  if (p === '*') return [...PERMISSION_ORDER];
  return undefined;
}

/** The permissions of a SMART v2 suffix (letters of `cruds`, each once, in that order). */
function v2Permissions(p: string): Permission[] | undefined {
  if (p.length === 0 || p.length > 5) return undefined;
  const out: Permission[] = [];
  let last = -1;
  for (const ch of p) {
    const at = PERMISSION_ORDER.indexOf(ch as Permission);
    if (at <= last) return undefined;
    last = at;
    out.push(ch as Permission);
  }
  return out;
}

/**
 * Parses one resource scope (`patient/*.read`, `user/Observation.rs`, `system/*.*`), or returns
 * undefined for a string that is not a resource scope at all (`openid`, `launch/patient`).
 * Throws a ScopeSyntaxError for something that starts like one but does not parse.
 */
export function parseScope(text: string, position = 1): Scope | undefined {
  if (!/^(patient|user|system)\//.test(text)) return undefined;
  if (text.includes('?')) {
    throw new ScopeSyntaxError(`scope ${position}: SMART v2 scope parameters (?…) are not supported`, position);
  }
  const m = RESOURCE_SCOPE.exec(text);
  if (!m) throw new ScopeSyntaxError(`scope ${position} must look like patient/Observation.read or user/*.rs`, position);
  const [, context, resourceType = '', suffix = ''] = m;
  if (resourceType !== '*' && !RESOURCE_TYPE.test(resourceType)) {
    throw new ScopeSyntaxError(`scope ${position}: the resource type must be a FHIR type name or *`, position);
  }
  const permissions = v1Permissions(suffix) ?? v2Permissions(suffix);
  if (!permissions) {
    throw new ScopeSyntaxError(`scope ${position}: the permissions must be read, write or * (SMART v1) or letters of cruds in that order (SMART v2)`, position);
  }
  return { text, context: context as ScopeContext, resourceType, permissions: new Set(permissions) };
}

/** Parses a space-separated scope claim. */
export function parseScopes(claim: string): ParsedScopes {
  const entries = claim.split(' ').filter((s) => s.length > 0);
  if (entries.length > MAX_SCOPES) throw new ScopeSyntaxError(`the scope claim may hold at most ${MAX_SCOPES} scopes`, MAX_SCOPES + 1);
  const scopes: Scope[] = [];
  const other: string[] = [];
  entries.forEach((entry, i) => {
    const scope = parseScope(entry, i + 1);
    if (scope) scopes.push(scope);
    else other.push(entry);
  });
  return { scopes, other };
}

/** Whether one scope grants an action on a resource type. */
export function scopeGrants(scope: Scope, resourceType: string, action: ScopeAction): boolean {
  if (scope.resourceType !== '*' && scope.resourceType !== resourceType) return false;
  return ACTION_PERMISSIONS[action].every((p) => scope.permissions.has(p));
}

/** The broadest scope granting an action (system before user before patient), if any. */
export function grantingScope(scopes: readonly Scope[], resourceType: string, action: ScopeAction): Scope | undefined {
  const granting = scopes.filter((s) => scopeGrants(s, resourceType, action));
  const rank: Record<ScopeContext, number> = { system: 0, user: 1, patient: 2 };
  return granting.sort((a, b) => rank[a.context] - rank[b.context])[0];
}

/** What requireScope needs of the caller: its scopes and role (to suggest the right scope). */
export interface ScopeHolder {
  readonly scopes: readonly Scope[];
  readonly role?: string;
}

export function hasScope(holder: ScopeHolder, resourceType: string, action: ScopeAction): boolean {
  return grantingScope(holder.scopes, resourceType, action) !== undefined;
}

/** The SMART v1 and v2 scopes a caller of this role would typically ask for (named in the 403). */
export function suggestedScope(role: string | undefined, resourceType: string, action: ScopeAction): { v1: string; v2: string } {
  const context: ScopeContext = role === 'patient' ? 'patient' : role === 'system' || role === 'organization' || role === 'device' ? 'system' : 'user';
  const v1 = action === 'read' || action === 'search' ? 'read' : 'write';
  return { v1: `${context}/${resourceType}.${v1}`, v2: `${context}/${resourceType}.${ACTION_PERMISSIONS[action].join('')}` };
}

/**
 * The scope that grants `action` on `resourceType` (the broadest one: a `patient/` scope only when
 * nothing broader grants it, so the caller knows to restrict to the patient's compartment), or a
 * FORBIDDEN error (InsufficientScopeError, an OperationOutcomeError) naming the scope that is missing.
 */
export function requireScope(holder: ScopeHolder, resourceType: string, action: ScopeAction): Scope {
  const scope = grantingScope(holder.scopes, resourceType, action);
  if (scope) return scope;
  const { v1, v2 } = suggestedScope(holder.role, resourceType, action);
  throw new InsufficientScopeError(`The token lacks the scope to ${action} ${resourceType}: it needs ${v1} (SMART v2: ${v2})`, v1);
}
