/**
 * FHIR R4 rules that the JSON schema cannot express, checked by walking the resource with the type
 * model derived from the schema (so a Reference or a Period is recognised wherever it occurs: in
 * contained resources, Bundle entries, extensions, components...).
 *
 * Checked (R4 invariant keys where they exist):
 *  - required elements the schema cannot require: primitives (`x` or `_x`) and choice elements of
 *    cardinality 1..1, listed in required-elements.ts
 *  - ext-1 (an Extension has extensions or a value[x], not both)
 *  - JSON representation / ele-1: no empty objects, no empty arrays; `_x` arrays align with `x` arrays
 *  - choice elements: at most one `value[x]` (etc.) present
 *  - Reference: literal reference format (Type/id[/_history/vid], absolute URL, urn:uuid:, urn:oid:, #id);
 *    ref-1 (local `#id` resolves to a contained resource); Reference.type consistent with the reference
 *  - dom-2 (no nested contained), dom-3 (contained resources are referenced), dom-4 (no meta.versionId /
 *    lastUpdated in contained), dom-5 (no security labels in contained)
 *  - per-1 Period start ≤ end (precision- and time-zone-aware)
 *  - rng-2 Range low ≤ high; rat-1 Ratio numerator and denominator together; qty-3 Quantity code needs system
 *  - att-1 Attachment data needs contentType; cpt-2 ContactPoint value needs system
 *  - txt-1 (partial: Narrative div is an XHTML div; no active content such as script or event handlers);
 *    txt-2 (non-empty narrative)
 *  - pat-1 Patient.contact has details or an organization
 *  - obs-6 Observation.dataAbsentReason only without value[x]; obs-7 no value[x] when a component has the
 *    same code as the Observation
 *  - Bundle: bdl-1 (total only in searchset/history), bdl-2 (entry.search only in searchset), bdl-3 (entry.request
 *    required in batch/transaction/history, else prohibited), bdl-4 (entry.response required in
 *    batch-response/transaction-response/history, else prohibited), bdl-5 (entry has resource, request or
 *    response), bdl-7 (fullUrl unique, except versions in history), bdl-8 (fullUrl not version specific),
 *    bdl-9/10/11 (document: identifier, timestamp, Composition first), bdl-12 (message: MessageHeader
 *    first); fullUrl is absolute and agrees with the resource id; transaction/batch request.url agrees with the
 *    resource type (and id for PUT); urn:uuid references resolve to an entry fullUrl (error in a
 *    transaction, warning elsewhere).
 */
import { type FhirIssue } from './issue';
import { isCertainlyAfter, parseFhirDateTime } from './fhir-datetime';
import { REQUIRED_ELEMENTS } from './required-elements';
import type { TypeModel } from './type-model';

type Json = Record<string, unknown>;

const MAX_DEPTH = 128;
const ID = '[A-Za-z0-9\\-\\.]{1,64}';
const RELATIVE_REF = new RegExp(`^([A-Z][A-Za-z]+)/(${ID})(/_history/${ID})?$`);
const ABSOLUTE_URL = /^https?:\/\/[^\s/?#]+[^\s]*$/;
const ABSOLUTE_REST = new RegExp(`^https?://\\S*/([A-Z][A-Za-z]+)/(${ID})(/_history/${ID})?$`);
const URN_UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const URN_OID = /^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$/;
const LOCAL_REF = new RegExp(`^#(${ID})?$`);
const STRUCTURE_DEFINITION = 'http://hl7.org/fhir/StructureDefinition/';
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Count', 'Distance', 'Duration']);
const XHTML_DIV = /^<div(\s[^>]*)?\sxmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["'][^>]*>/;
const ACTIVE_CONTENT = /<\s*\/?\s*(script|object|applet|iframe|frame|frameset|embed|form|input|button|base|link|meta|style|head|body|html|title)\b|\son[a-z]+\s*=|javascript:/i;

interface BundleScope {
  type: string | undefined;
  fullUrls: Set<string>;
  urnRefs: Array<{ ref: string; expr: string }>;
}

interface ResourceScope {
  containedIds: Set<string>;
  localRefs: Set<string>;
  inContained: boolean;
}

/** Whether a string equal to `value` appears anywhere in `node` (a canonical, uri or url naming a contained resource), skipping the top-level keys in `skip`. */
function mentions(node: unknown, value: string, skip: ReadonlySet<string> = new Set(), depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  if (typeof node === 'string') return node === value;
  if (Array.isArray(node)) return node.some((n) => mentions(n, value, new Set(), depth + 1));
  if (!isObj(node)) return false;
  return Object.entries(node).some(([k, v]) => !skip.has(k) && mentions(v, value, new Set(), depth + 1));
}

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export class InvariantChecker {
  readonly #model: TypeModel;
  readonly #resourceTypes: ReadonlySet<string>;
  readonly #issues: FhirIssue[] = [];
  readonly #bundles: BundleScope[] = [];

  constructor(model: TypeModel, resourceTypes: ReadonlySet<string>) {
    this.#model = model;
    this.#resourceTypes = resourceTypes;
  }

  static check(model: TypeModel, resourceTypes: ReadonlySet<string>, resource: unknown, root: string): FhirIssue[] {
    const c = new InvariantChecker(model, resourceTypes);
    if (isObj(resource)) c.#resource(resource, root, undefined, 0);
    return c.#issues;
  }

  #add(code: FhirIssue['code'], expression: string, diagnostics: string, severity: FhirIssue['severity'] = 'error'): void {
    this.#issues.push({ severity, code, expression, diagnostics: `${expression}: ${diagnostics}` });
  }

  // ---- resources -------------------------------------------------------------------------------

  #resource(res: Json, expr: string, container: ResourceScope | undefined, depth: number): void {
    const rt = str(res['resourceType']);
    if (rt === undefined || !this.#resourceTypes.has(rt)) return; // reported by the schema
    const scope: ResourceScope = container ?? {
      containedIds: new Set(),
      localRefs: new Set(),
      inContained: false,
    };
    if (container === undefined) this.#collectContained(res, scope);
    if (container !== undefined) this.#checkContainedRules(res, expr);

    const bundle = rt === 'Bundle' ? this.#openBundle(res) : undefined;
    const childScope: ResourceScope = container === undefined ? scope : { ...scope, inContained: true };
    this.#element(res, rt, expr, childScope, depth);
    if (rt === 'Bundle' && bundle) this.#closeBundle(res, expr, bundle);
    if (rt === 'Observation') this.#observation(res, expr);
    if (rt === 'Patient') this.#patient(res, expr);
    if (container === undefined) this.#checkContainedReferenced(res, expr, scope);
  }

  #collectContained(res: Json, scope: ResourceScope): void {
    const contained = res['contained'];
    if (!Array.isArray(contained)) return;
    for (const c of contained) {
      const id = isObj(c) ? str(c['id']) : undefined;
      if (id !== undefined) scope.containedIds.add(id);
    }
  }

  #checkContainedRules(res: Json, expr: string): void {
    if (res['contained'] !== undefined) this.#add('invariant', `${expr}.contained`, 'dom-2: a contained resource SHALL NOT contain additional contained resources');
    const meta = res['meta'];
    if (isObj(meta)) {
      if (meta['versionId'] !== undefined || meta['lastUpdated'] !== undefined) {
        this.#add('invariant', `${expr}.meta`, 'dom-4: a contained resource SHALL NOT have meta.versionId or meta.lastUpdated');
      }
      if (meta['security'] !== undefined) this.#add('invariant', `${expr}.meta.security`, 'dom-5: a contained resource SHALL NOT have security labels');
    }
  }

  #checkContainedReferenced(res: Json, expr: string, scope: ResourceScope): void {
    const contained = res['contained'];
    if (!Array.isArray(contained)) return;
    contained.forEach((c, i) => {
      if (!isObj(c)) return;
      const id = str(c['id']);
      if (id === undefined) {
        this.#add('invariant', `${expr}.contained[${i}].id`, 'a contained resource SHALL have an id');
        return;
      }
      // dom-3 counts a `#id` in any reference, canonical, uri or url of the resource (a contained ValueSet is named by `valueSet: "#vs1"`).
      if (
        !scope.localRefs.has(id) &&
        !this.#refersToContainer(c) &&
        !mentions(res, `#${id}`, new Set(['contained'])) &&
        !contained.some((other, j) => j !== i && mentions(other, `#${id}`))
      ) {
        this.#add('invariant', `${expr}.contained[${i}]`, 'dom-3: a contained resource SHALL be referenced from elsewhere in the resource or refer to the containing resource');
      }
    });
  }

  #refersToContainer(node: unknown, depth = 0): boolean {
    if (depth > MAX_DEPTH) return false;
    if (Array.isArray(node)) return node.some((n) => this.#refersToContainer(n, depth + 1));
    if (!isObj(node)) return false;
    if (node['reference'] === '#') return true;
    return Object.values(node).some((v) => typeof v === 'object' && this.#refersToContainer(v, depth + 1));
  }

  // ---- elements --------------------------------------------------------------------------------

  #element(node: Json, defName: string, expr: string, scope: ResourceScope, depth: number): void {
    if (depth > MAX_DEPTH) {
      this.#add('structure', expr, `nesting deeper than ${MAX_DEPTH} levels is not accepted`);
      return;
    }
    const props = this.#model.props.get(defName);
    if (props === undefined) return;
    if (Object.keys(node).length === 0) {
      this.#add('invariant', expr, 'ele-1: an element SHALL have a value or children (empty object)');
      return;
    }
    for (const [key, value] of Object.entries(node)) {
      const info = props.get(key);
      if (info === undefined) continue; // unknown elements are reported by the schema
      const childExpr = `${expr}.${key}`;
      if (Array.isArray(value)) {
        this.#array(value, info.type, key === 'contained', childExpr, scope, depth);
        if (key.startsWith('_')) this.#checkAligned(node, key, childExpr);
      } else if (isObj(value) && info.type !== undefined) {
        this.#child(value, info.type, false, childExpr, scope, depth + 1);
      }
    }
    this.#choices(node, defName, expr);
    this.#required(node, defName, expr);
    this.#typeRules(node, defName, expr, scope);
  }

  #required(node: Json, defName: string, expr: string): void {
    const names = REQUIRED_ELEMENTS[defName];
    if (names === undefined) return;
    for (const name of names) {
      let present: boolean;
      if (name.endsWith('[x]')) {
        const group = this.#model.choices.get(defName)?.get(name.slice(0, -3)) ?? [];
        present = group.some((n) => node[n] !== undefined || node[`_${n}`] !== undefined);
      } else {
        present = node[name] !== undefined || node[`_${name}`] !== undefined;
      }
      if (!present) this.#add('required', `${expr}.${name}`, 'required element is missing');
    }
  }

  #array(values: unknown[], type: string | undefined, contained: boolean, expr: string, scope: ResourceScope, depth: number): void {
    if (values.length === 0) {
      this.#add('invariant', expr, 'ele-1: arrays SHALL NOT be empty (omit the element instead)');
      return;
    }
    if (type === undefined) return;
    values.forEach((v, i) => {
      if (isObj(v)) this.#child(v, type, contained, `${expr}[${i}]`, scope, depth + 1);
    });
  }

  #child(value: Json, type: string, contained: boolean, expr: string, scope: ResourceScope, depth: number): void {
    if (type === 'ResourceList') {
      this.#resource(value, expr, contained ? scope : undefined, depth);
    } else {
      this.#element(value, type, expr, scope, depth);
    }
  }

  #checkAligned(node: Json, key: string, expr: string): void {
    const primitive = node[key.slice(1)];
    const ext = node[key];
    if (Array.isArray(primitive) && Array.isArray(ext) && primitive.length !== ext.length) {
      this.#add('structure', expr, `the extension array SHALL have the same length as ${key.slice(1)} (use null to align)`);
    }
  }

  #choices(node: Json, defName: string, expr: string): void {
    const groups = this.#model.choices.get(defName);
    if (groups === undefined) return;
    for (const [base, names] of groups) {
      let present = 0;
      for (const n of names) if (node[n] !== undefined || node[`_${n}`] !== undefined) present += 1;
      if (present > 1) this.#add('structure', `${expr}.${base}[x]`, `only one ${base}[x] type may be present`);
    }
  }

  #typeRules(node: Json, defName: string, expr: string, scope: ResourceScope): void {
    switch (defName) {
      case 'Reference':
        this.#reference(node, expr, scope);
        break;
      case 'Period':
        this.#period(node, expr);
        break;
      case 'Range':
        this.#range(node, expr);
        break;
      case 'Ratio':
        if ((node['numerator'] === undefined) !== (node['denominator'] === undefined)) {
          this.#add('invariant', expr, 'rat-1: numerator and denominator SHALL both be present, or both absent');
        }
        break;
      case 'Attachment':
        if (node['data'] !== undefined && node['contentType'] === undefined) {
          this.#add('invariant', `${expr}.contentType`, 'att-1: an attachment with data SHALL have a contentType');
        }
        break;
      case 'ContactPoint':
        if (node['value'] !== undefined && node['system'] === undefined) {
          this.#add('invariant', `${expr}.system`, 'cpt-2: a system is required if a value is provided');
        }
        break;
      case 'Extension': {
        const hasValue = Object.keys(node).some((k) => /^_?value[A-Z]/.test(k));
        if (hasValue === (node['extension'] !== undefined)) {
          this.#add('invariant', expr, 'ext-1: an extension SHALL have either extensions or a value[x], not both');
        }
        break;
      }
      case 'Narrative':
        this.#narrative(node, expr);
        break;
      default:
        if (QUANTITY_TYPES.has(defName) && node['code'] !== undefined && node['system'] === undefined) {
          this.#add('invariant', `${expr}.system`, 'qty-3: if a code for the unit is present, the system SHALL also be present');
        }
    }
  }

  // ---- data types ------------------------------------------------------------------------------

  #reference(node: Json, expr: string, scope: ResourceScope): void {
    const ref = str(node['reference']);
    if (ref === undefined) return;
    const at = `${expr}.reference`;
    if (ref.startsWith('#')) {
      if (!LOCAL_REF.test(ref)) {
        this.#add('value', at, 'a local reference SHALL be "#" followed by a contained resource id');
      } else if (ref === '#') {
        if (!scope.inContained) this.#add('invariant', at, 'ref-1: "#" (the containing resource) may only be used inside a contained resource');
      } else {
        scope.localRefs.add(ref.slice(1));
        if (!scope.containedIds.has(ref.slice(1))) this.#add('invariant', at, 'ref-1: a local reference SHALL resolve to a contained resource');
      }
      return;
    }
    const typed = RELATIVE_REF.exec(ref) ?? ABSOLUTE_REST.exec(ref);
    if (typed) {
      const t = typed[1] ?? '';
      if (!this.#resourceTypes.has(t) && !ABSOLUTE_URL.test(ref)) {
        this.#add('value', at, 'a relative reference SHALL start with a FHIR R4 resource type');
        return;
      }
      const declared = str(node['type']);
      if (declared !== undefined && this.#resourceTypes.has(t) && declared !== t && declared !== STRUCTURE_DEFINITION + t) {
        this.#add('invariant', `${expr}.type`, 'Reference.type SHALL be consistent with the resource type in Reference.reference');
      }
      return;
    }
    if (ref.startsWith('urn:uuid:')) {
      if (!URN_UUID.test(ref)) this.#add('value', at, 'a urn:uuid reference SHALL be a lower-case RFC 4122 UUID');
      else this.#bundles.at(-1)?.urnRefs.push({ ref, expr: at });
      return;
    }
    if (ref.startsWith('urn:oid:')) {
      if (!URN_OID.test(ref)) this.#add('value', at, 'a urn:oid reference SHALL be a valid OID');
      return;
    }
    if (ABSOLUTE_URL.test(ref)) return;
    this.#add('value', at, 'not a valid literal reference (expected Type/id, an absolute URL, urn:uuid:, urn:oid: or #id)');
  }

  #period(node: Json, expr: string): void {
    const start = str(node['start']);
    const end = str(node['end']);
    if (start === undefined || end === undefined) return;
    const s = parseFhirDateTime(start);
    const e = parseFhirDateTime(end);
    if (s && e && isCertainlyAfter(s, e)) this.#add('invariant', expr, 'per-1: if present, start SHALL have a lower or equal value than end');
  }

  #range(node: Json, expr: string): void {
    const low = isObj(node['low']) ? num(node['low']['value']) : undefined;
    const high = isObj(node['high']) ? num(node['high']['value']) : undefined;
    if (low !== undefined && high !== undefined && low > high) {
      this.#add('invariant', expr, 'rng-2: if present, low SHALL have a lower value than high');
    }
  }

  #narrative(node: Json, expr: string): void {
    const div = str(node['div']);
    if (div === undefined) return;
    const at = `${expr}.div`;
    if (!XHTML_DIV.test(div) || !/<\/div>\s*$/.test(div)) {
      this.#add('invariant', at, 'txt-1: the narrative SHALL be a single XHTML <div> with the XHTML namespace');
    } else if (ACTIVE_CONTENT.test(div)) {
      this.#add('invariant', at, 'txt-1: the narrative SHALL contain only basic HTML formatting (no scripts, forms, event handlers or active content)');
    } else if (div.replace(/<[^>]*>/g, '').trim() === '' && !/<img\b/i.test(div)) {
      this.#add('invariant', at, 'txt-2: the narrative SHALL have some non-whitespace content');
    }
  }

  // ---- resources with their own rules ----------------------------------------------------------

  #observation(res: Json, expr: string): void {
    const valueKeys = Object.keys(res).filter((k) => /^_?value[A-Z]/.test(k));
    if (res['dataAbsentReason'] !== undefined && valueKeys.length > 0) {
      this.#add('invariant', `${expr}.dataAbsentReason`, 'obs-6: dataAbsentReason SHALL only be present if value[x] is not present');
    }
    const code = res['code'];
    const components = res['component'];
    if (valueKeys.length === 0 || !Array.isArray(components) || !isObj(code)) return;
    const codes = codingKeys(code);
    components.forEach((c, i) => {
      if (isObj(c) && isObj(c['code']) && [...codingKeys(c['code'])].some((k) => codes.has(k))) {
        this.#add('invariant', `${expr}.component[${i}].code`, 'obs-7: if a component has the same code as the Observation, the Observation SHALL NOT have a value[x]');
      }
    });
  }

  #patient(res: Json, expr: string): void {
    const contacts = res['contact'];
    if (!Array.isArray(contacts)) return;
    contacts.forEach((c, i) => {
      if (!isObj(c)) return;
      if (c['name'] === undefined && c['telecom'] === undefined && c['address'] === undefined && c['organization'] === undefined) {
        this.#add('invariant', `${expr}.contact[${i}]`, 'pat-1: a contact SHALL have contact details or a reference to an organization');
      }
    });
  }

  #openBundle(res: Json): BundleScope {
    const scope: BundleScope = { type: str(res['type']), fullUrls: new Set(), urnRefs: [] };
    const entries = res['entry'];
    if (Array.isArray(entries)) {
      for (const e of entries) {
        const f = isObj(e) ? str(e['fullUrl']) : undefined;
        if (f !== undefined) scope.fullUrls.add(f);
      }
    }
    this.#bundles.push(scope);
    return scope;
  }

  #closeBundle(res: Json, expr: string, scope: BundleScope): void {
    this.#bundles.pop();
    const type = scope.type;
    if (res['total'] !== undefined && type !== 'searchset' && type !== 'history') {
      this.#add('invariant', `${expr}.total`, 'bdl-1: total only when a search or history');
    }
    const entries = Array.isArray(res['entry']) ? res['entry'] : [];
    if (type === 'document') this.#document(res, expr, entries);
    if (type === 'message') {
      const first = entries[0];
      if (!isObj(first) || !isObj(first['resource']) || first['resource']['resourceType'] !== 'MessageHeader') {
        this.#add('invariant', `${expr}.entry[0].resource`, 'bdl-12: a message SHALL have a MessageHeader as the first resource');
      }
    }
    const seen = new Map<string, Set<string | undefined>>();
    entries.forEach((e, i) => {
      if (isObj(e)) this.#entry(e, `${expr}.entry[${i}]`, type, seen);
    });
    for (const { ref, expr: at } of scope.urnRefs) {
      if (scope.fullUrls.has(ref)) continue;
      if (type === 'transaction') this.#add('invariant', at, 'a urn:uuid reference in a transaction SHALL resolve to the fullUrl of an entry');
      else this.#add('invariant', at, 'a urn:uuid reference does not resolve to any entry of the Bundle', 'warning');
    }
  }

  #document(res: Json, expr: string, entries: unknown[]): void {
    const identifier = res['identifier'];
    if (!isObj(identifier) || identifier['system'] === undefined || identifier['value'] === undefined) {
      this.#add('invariant', `${expr}.identifier`, 'bdl-9: a document SHALL have an identifier with a system and a value');
    }
    if (res['timestamp'] === undefined) this.#add('invariant', `${expr}.timestamp`, 'bdl-10: a document SHALL have a date (timestamp)');
    const first = entries[0];
    if (!isObj(first) || !isObj(first['resource']) || first['resource']['resourceType'] !== 'Composition') {
      this.#add('invariant', `${expr}.entry[0].resource`, 'bdl-11: a document SHALL have a Composition as the first resource');
    }
  }

  #entry(e: Json, at: string, type: string | undefined, seen: Map<string, Set<string | undefined>>): void {
    const needsRequest = type === 'batch' || type === 'transaction' || type === 'history';
    const needsResponse = type === 'batch-response' || type === 'transaction-response' || type === 'history';
    if (needsRequest && e['request'] === undefined) this.#add('invariant', `${at}.request`, `bdl-3: entry.request is mandatory in a ${type} Bundle`);
    if (!needsRequest && e['request'] !== undefined) this.#add('invariant', `${at}.request`, 'bdl-3: entry.request is only allowed in batch, transaction or history Bundles');
    if (needsResponse && e['response'] === undefined) this.#add('invariant', `${at}.response`, `bdl-4: entry.response is mandatory in a ${type} Bundle`);
    if (!needsResponse && e['response'] !== undefined)
      this.#add('invariant', `${at}.response`, 'bdl-4: entry.response is only allowed in batch-response, transaction-response or history Bundles');
    if (e['search'] !== undefined && type !== 'searchset') this.#add('invariant', `${at}.search`, 'bdl-2: entry.search only when a search');
    if (e['resource'] === undefined && e['request'] === undefined && e['response'] === undefined) {
      this.#add('invariant', at, 'bdl-5: an entry SHALL have a resource, a request or a response');
    }
    const resource = isObj(e['resource']) ? e['resource'] : undefined;
    const fullUrl = str(e['fullUrl']);
    if (fullUrl !== undefined) this.#fullUrl(fullUrl, resource, `${at}.fullUrl`, type, seen);
    const request = e['request'];
    if (resource && isObj(request) && (type === 'transaction' || type === 'batch')) this.#request(request, resource, `${at}.request.url`);
  }

  #fullUrl(fullUrl: string, resource: Json | undefined, at: string, type: string | undefined, seen: Map<string, Set<string | undefined>>): void {
    if (fullUrl.includes('/_history/')) this.#add('invariant', at, 'bdl-8: fullUrl cannot be a version specific reference');
    if (!URN_UUID.test(fullUrl) && !URN_OID.test(fullUrl) && !ABSOLUTE_URL.test(fullUrl)) {
      this.#add('value', at, 'fullUrl SHALL be an absolute URL, a urn:uuid: (lower-case UUID) or a urn:oid:');
    }
    const rest = ABSOLUTE_REST.exec(fullUrl);
    if (rest && resource && resource['id'] !== undefined && (resource['resourceType'] !== rest[1] || resource['id'] !== rest[2])) {
      this.#add('invariant', at, 'fullUrl SHALL NOT disagree with the resource type and id');
    }
    const meta = resource && isObj(resource['meta']) ? resource['meta'] : undefined;
    const version = meta ? str(meta['versionId']) : undefined;
    const versions = seen.get(fullUrl);
    if (versions === undefined) {
      seen.set(fullUrl, new Set([version]));
    } else if (type !== 'history' || versions.has(version)) {
      this.#add('invariant', at, 'bdl-7: fullUrl SHALL be unique in a Bundle (or, in a history, differ by meta.versionId)');
    } else {
      versions.add(version);
    }
  }

  #request(request: Json, resource: Json, at: string): void {
    const method = str(request['method']);
    const url = str(request['url']);
    if (url === undefined || (method !== 'POST' && method !== 'PUT')) return;
    const [path = ''] = url.split('?');
    const [type, id, more] = path.split('/');
    if (type !== resource['resourceType']) {
      this.#add('invariant', at, `request.url of a ${method} SHALL name the type of the entry's resource`);
      return;
    }
    if (method === 'POST' && (id !== undefined || more !== undefined)) {
      this.#add('invariant', at, 'request.url of a POST SHALL be the resource type only');
    }
    if (method === 'PUT' && id !== undefined && resource['id'] !== undefined && resource['id'] !== id) {
      this.#add('invariant', at, "request.url of a PUT SHALL carry the id of the entry's resource");
    }
  }
}

function codingKeys(cc: Json): Set<string> {
  const out = new Set<string>();
  const codings = cc['coding'];
  if (Array.isArray(codings)) {
    for (const c of codings) {
      if (isObj(c) && typeof c['code'] === 'string') out.add(`${str(c['system']) ?? ''}|${c['code']}`);
    }
  }
  return out;
}
