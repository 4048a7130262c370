/**
 * Search expressions that only navigate (`Observation.code`, `Observation.value.ofType(Quantity)`,
 * `Resource.meta.tag`, `Observation.subject.where((reference.startsWith('Patient/') or type = 'Patient'))`),
 * read in plain JavaScript instead of the FHIRPath engine: most of a type's search parameters are such
 * paths, and the engine's per-value bookkeeping (typed nodes, contexts) was most of the cost of indexing a
 * version. What a navigation selects is what the engine selects, in the same order (model/navigation.test.ts
 * compares the two on every search parameter of every official R4 example); anything else (a function, a
 * comparison, an indexer, `%resource`, a choice whose type filter could match a subtype) is left to the
 * engine: compileNavigation answers undefined.
 *
 * A union whose terms select more than one value in all is left to the engine too: its union removes
 * duplicates by FHIRPath equality (a Quantity of 1e-245 g equals one of 1e-22 g there), which this does
 * not imitate; one value or none is the same either way.
 */
import r4model from 'fhirpath/fhir-context/r4';
import { typeSuffix } from './element-definitions';

/** The parts of fhirpath's R4 model read here: element types, choice elements, elements defined elsewhere, type parents. */
interface NavigationModel {
  readonly path2Type: Readonly<Record<string, string>>;
  readonly choiceTypePaths: Readonly<Record<string, readonly string[]>>;
  readonly pathsDefinedElsewhere: Readonly<Record<string, string>>;
  readonly type2Parent: Readonly<Record<string, string>>;
}

const MODEL = r4model as unknown as NavigationModel;

/**
 * Choice suffixes a type filter for a primitive may also match (FHIRPath's System types stand for several
 * FHIR primitives: `ofType(DateTime)` picks a dateTime, maybe an instant): a filter is read here only on a
 * choice element with no other suffix of its family. Families are drawn wide on purpose.
 */
const PRIMITIVE_FAMILIES: Readonly<Record<string, readonly string[]>> = {
  Boolean: ['Boolean'],
  String: ['String', 'Code', 'Id', 'Markdown', 'Uri', 'Url', 'Canonical', 'Oid', 'Uuid', 'Base64Binary'],
  Integer: ['Integer', 'PositiveInt', 'UnsignedInt', 'Decimal'],
  Decimal: ['Decimal', 'Integer', 'PositiveInt', 'UnsignedInt'],
  Date: ['Date', 'DateTime', 'Instant'],
  DateTime: ['DateTime', 'Instant', 'Date'],
  Time: ['Time'],
};

/** Types whose elements are navigated by their own path (`Observation.component.code`), not by their type's. */
const PATH_TYPES: ReadonlySet<string> = new Set(['BackboneElement', 'Element']);

/** One step: an element (any of several keys, for a choice element named without a type), or a reference-target filter. */
type Step = { readonly keys: readonly string[] } | { readonly refTo: string };

/** A compiled navigation: the steps from the root, and the root's type (absolute expressions only). */
export interface Navigation {
  readonly root: string | undefined;
  readonly steps: readonly Step[];
}

const STEP = /^\.(?:([a-z][A-Za-z0-9]*)(?![A-Za-z0-9(])|ofType\(([A-Za-z]+)\)|where\(\(reference\.startsWith\('([A-Z][A-Za-z]+)\/'\) or type = '([A-Z][A-Za-z]+)'\)\))/;

/** The FHIR type a choice suffix names (`Quantity`, `DateTime` → dateTime). */
function typeOfSuffix(suffix: string): string {
  return suffix in MODEL.type2Parent ? suffix : `${suffix.charAt(0).toLowerCase()}${suffix.slice(1)}`;
}

/** Whether `type` is `ancestor` or derives from it (compared without case: the model writes some parents capitalized). */
function derivesFrom(type: string, ancestor: string): boolean {
  const want = ancestor.toLowerCase();
  for (let t: string | undefined = type, n = 0; t !== undefined && n < 20; t = MODEL.type2Parent[t] ?? MODEL.type2Parent[typeOfSuffix(t)], n++) {
    if (t.toLowerCase() === want) return true;
  }
  return false;
}

/**
 * The key suffix `ofType(type)` selects among a choice element's types, when exactly one of them can match:
 * undefined for a System type, a type not among the choices, or one another choice derives from (Age is a Quantity).
 */
function choiceSuffix(type: string, choices: readonly string[]): string | undefined {
  const suffix = typeSuffix(type);
  if (!choices.includes(suffix)) return undefined;
  const family = PRIMITIVE_FAMILIES[suffix];
  if (family === undefined && suffix !== type) return undefined; // a primitive without a family here
  if (family?.some((f) => f !== suffix && choices.includes(f))) return undefined;
  return choices.some((c) => c !== suffix && derivesFrom(typeOfSuffix(c), type)) ? undefined : suffix;
}

/** The model path the next element is named under, after an element of `type` at `path`; undefined: not navigated further here. */
function nextPath(path: string, type: string | undefined): string | undefined {
  if (type === undefined || type === 'Resource' || type === 'DomainResource') return undefined;
  return PATH_TYPES.has(type) ? path : type;
}

/**
 * The steps of one union term, from `base` (a type or an element path such as `Observation.component`;
 * absolute terms name their root type first). Undefined when the term is not a navigation read here.
 */
function compileTerm(term: string, base: string | undefined): Navigation | undefined {
  let rest = term.trim();
  let root: string | undefined;
  let path: string | undefined = base;
  if (base === undefined) {
    const m = /^([A-Z][A-Za-z]+)/.exec(rest);
    if (!m?.[1]) return undefined;
    root = m[1];
    path = root;
    rest = rest.slice(root.length);
  } else {
    rest = `.${rest}`;
    // An element path (`Observation.component`) is navigated as its type is (a datatype by the type's own paths).
    if (base.includes('.')) {
      const resolved = MODEL.pathsDefinedElsewhere[base] ?? base;
      path = nextPath(resolved, MODEL.path2Type[resolved]);
    }
  }
  const steps: Step[] = [];
  while (rest !== '') {
    const m = STEP.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length);
    const [, name, , refTo, refType] = m;
    if (refTo !== undefined) {
      if (refTo !== refType) return undefined;
      steps.push({ refTo });
      continue;
    }
    // A type filter is read only right after the choice element it picks (handled below).
    if (name === undefined || path === undefined) return undefined;
    const full = `${path}.${name}`;
    const choices = MODEL.choiceTypePaths[full];
    if (choices) {
      const next = STEP.exec(rest);
      if (next?.[2] !== undefined) {
        const suffix = choiceSuffix(next[2], choices);
        if (suffix === undefined) return undefined;
        rest = rest.slice(next[0].length);
        steps.push({ keys: [`${name}${suffix}`] });
        path = nextPath(full, typeOfSuffix(suffix));
      } else {
        // Any of its types; what is under it depends on which: not navigated further here.
        steps.push({ keys: choices.map((c) => `${name}${c}`) });
        path = undefined;
      }
      continue;
    }
    const resolved = MODEL.pathsDefinedElsewhere[full] ?? full;
    const type = MODEL.path2Type[resolved];
    if (type === undefined) return undefined;
    steps.push({ keys: [name] });
    path = nextPath(resolved, type);
  }
  return { root, steps };
}

/** A union of navigations, or undefined when any term is not one. */
export function compileNavigation(terms: readonly string[], base?: string): readonly Navigation[] | undefined {
  const out: Navigation[] = [];
  for (const term of terms) {
    const n = compileTerm(term, base);
    if (!n) return undefined;
    out.push(n);
  }
  return out;
}

function isReferenceTo(node: object, type: string): boolean {
  const r = node as { reference?: unknown; type?: unknown };
  return (typeof r.reference === 'string' && r.reference.startsWith(`${type}/`)) || r.type === type;
}

/** Appends the values of `key` in `node` (each item of an array; nothing for null: a primitive with only an extension). */
function pushValues(out: unknown[], node: object, key: string): void {
  const v = (node as Record<string, unknown>)[key];
  if (v === undefined || v === null) return;
  if (!Array.isArray(v)) {
    out.push(v);
    return;
  }
  for (const x of v as unknown[]) if (x !== undefined && x !== null) out.push(x);
}

/**
 * What the navigations select in `root`; undefined (left to the engine) when an absolute one names a root
 * type other than the resource's, or when a union selects more than one value.
 */
export function navigate(navigations: readonly Navigation[], root: Record<string, unknown>): unknown[] | undefined {
  const out: unknown[] = [];
  for (const n of navigations) {
    if (n.root !== undefined && n.root !== root.resourceType && n.root !== 'Resource' && n.root !== 'DomainResource') return undefined;
    let nodes: unknown[] = [root];
    for (const step of n.steps) {
      const next: unknown[] = [];
      for (const node of nodes) {
        if (typeof node !== 'object' || node === null) continue;
        if ('refTo' in step) {
          if (isReferenceTo(node, step.refTo)) next.push(node);
        } else {
          for (const key of step.keys) pushValues(next, node, key);
        }
      }
      nodes = next;
      if (nodes.length === 0) break;
    }
    for (const v of nodes) out.push(v);
  }
  return navigations.length > 1 && out.length > 1 ? undefined : out;
}
