/**
 * The one FHIR R4 validator of HDX: the official R4 JSON schema (ajv 8, adapted at load time, see
 * schema.ts) plus the invariants the schema cannot express (see invariants.ts).
 *
 * The schema is compiled once, lazily, on first use (2–3 s), and cached for the process;
 * `prepareValidator()` does it ahead of time (e.g. at gateway start).
 */
import Ajv, { type ValidateFunction } from 'ajv';
import { issueFromAjv } from './ajv-issues';
import { InvariantChecker } from './invariants';
import { type FhirIssue, rootName, safeName } from './issue';
import { loadFhirSchema } from './schema';
import { buildTypeModel, type TypeModel } from './type-model';

export type { FhirIssue } from './issue';

/** At most this many issues are returned; one more issue says how many were left out. */
export const MAX_ISSUES = 100;

interface Compiled {
  validate: ValidateFunction;
  model: TypeModel;
  resourceTypes: ReadonlySet<string>;
  patternNames: ReadonlyMap<string, string>;
}

let compiled: Compiled | undefined;

function compile(): Compiled {
  const loaded = loadFhirSchema();
  const ajv = new Ajv({ strict: false, discriminator: true, allErrors: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json') as object);
  const validate = ajv.compile(loaded.schema);
  return {
    validate,
    model: buildTypeModel(loaded.definitions),
    resourceTypes: loaded.resourceTypes,
    patternNames: loaded.patternNames,
  };
}

function getCompiled(): Compiled {
  compiled ??= compile();
  return compiled;
}

/** Compiles the schema now rather than on the first validation. Idempotent. */
export function prepareValidator(): void {
  getCompiled();
}

/** The FHIR R4 resource types the validator knows (from the schema). */
export function fhirResourceTypes(): ReadonlySet<string> {
  return getCompiled().resourceTypes;
}

function dedupe(issues: FhirIssue[]): FhirIssue[] {
  const seen = new Set<string>();
  const out: FhirIssue[] = [];
  for (const i of issues) {
    const key = `${i.severity}|${i.code}|${i.expression}|${i.diagnostics}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(i);
    }
  }
  return out;
}

const SEVERITY_RANK: Record<FhirIssue['severity'], number> = { error: 0, warning: 1 };

/**
 * At most MAX_ISSUES issues, the most severe first (errors are never crowded out by warnings), and a
 * note of how many more there are, as severe as the worst of them: warnings beyond the cap stay warnings.
 */
function cap(issues: FhirIssue[]): FhirIssue[] {
  if (issues.length <= MAX_ISSUES) return issues;
  const ranked = [...issues].sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]);
  const kept = ranked.slice(0, MAX_ISSUES);
  const worst = ranked[MAX_ISSUES]?.severity ?? 'error';
  kept.push({
    severity: worst,
    code: 'invalid',
    expression: kept[0]?.expression.split(/[.[]/)[0] ?? 'Resource',
    diagnostics: `${issues.length - MAX_ISSUES} further issues not listed`,
  });
  return kept;
}

/** The resource type as expression root, only when it is a real R4 type (anything else could be any text). */
function knownRoot(resource: unknown, c: Compiled): string {
  const root = rootName(resource);
  return c.resourceTypes.has(root) ? root : 'Resource';
}

function expectedTypeIssues(resource: unknown, expectedType: string, c: Compiled): FhirIssue[] {
  if (!c.resourceTypes.has(expectedType)) {
    return [{ severity: 'error', code: 'invalid', expression: 'Resource.resourceType', diagnostics: `expected type '${safeName(expectedType)}' is not a FHIR R4 resource type` }];
  }
  const root = knownRoot(resource, c);
  const actual = (resource as Record<string, unknown>)['resourceType'];
  if (actual === expectedType) return [];
  const shown = root === actual ? `'${root}'` : 'the given resourceType';
  return [
    { severity: 'error', code: 'invalid', expression: `${root}.resourceType`, diagnostics: `${root}.resourceType: ${shown} does not match the expected type '${expectedType}'` },
  ];
}

/**
 * Validates a FHIR R4 resource (any type, including Bundles and contained resources).
 * Returns [] when valid. Never throws; never echoes values from the resource in diagnostics.
 * @param expectedType when given, resourceType must equal it (e.g. 'Patient' for a POST to /Patient)
 */
export function validateResource(resource: unknown, expectedType?: string): FhirIssue[] {
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    return [{ severity: 'error', code: 'structure', expression: 'Resource', diagnostics: 'Resource: a resource SHALL be a JSON object' }];
  }
  const c = getCompiled();
  const root = knownRoot(resource, c);
  const issues: FhirIssue[] = expectedType === undefined ? [] : expectedTypeIssues(resource, expectedType, c);
  try {
    if (!c.validate(resource)) {
      for (const err of c.validate.errors ?? []) {
        const issue = issueFromAjv(err, root, c.patternNames);
        if (issue) issues.push(issue);
      }
    }
    issues.push(...InvariantChecker.check(c.model, c.resourceTypes, resource, root));
  } catch (err) {
    // only reachable with inputs no JSON parser produces (cycles) or absurd nesting (stack exhaustion)
    const why = err instanceof RangeError ? 'nesting is too deep or the structure is cyclic' : 'the resource could not be processed';
    issues.push({ severity: 'error', code: 'structure', expression: root, diagnostics: `${root}: ${why}` });
  }
  return cap(dedupe(issues));
}
