import { SUPPORTED_TYPES } from '../model/definitions';
import { supportedSearchParams } from './search-params';

/** The _include values a type takes (`*` and each of its reference parameters), omitted when it has none. */
function includesOf(type: string): { searchInclude?: string[] } {
  const includes = supportedSearchParams(type)
    .filter((p) => p.type === 'reference' && !(type === 'Patient' && p.name === 'patient'))
    .map((p) => `${type}:${p.name}`);
  return includes.length > 0 ? { searchInclude: ['*', ...includes] } : {};
}

const BULK_DATA = 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition';

/** The CapabilityStatement: only what this server really does. */
export function capabilityStatement(baseUrl: string, version: string): Record<string, unknown> {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-21',
    publisher: 'HDX',
    kind: 'instance',
    software: { name: 'HDX gateway', version },
    implementation: { description: 'HDX gateway: FHIR R4 with consent enforced and every disclosure recorded on the consortium ledger', url: baseUrl },
    // Bulk Data Access v2: $export at the system, Patient and Group levels (fhir/operations/export.ts).
    instantiates: ['http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'],
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    // PATCH: JSON Patch (RFC 6902) and FHIRPath Patch (a Parameters sent as FHIR JSON).
    patchFormat: ['application/json-patch+json', 'application/merge-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Every version is anchored on the Hyperledger Fabric ledger (HMAC-SHA-256 commitment) before it is acknowledged and checked against its anchor before it is returned. Every disclosure is decided by the patient consents on the ledger and recorded there before data leaves (sync audit mode). Unknown search parameters are refused (ignored with Prefer: handling=lenient). Every search type also takes _count, _getpagesoffset, _include and _revinclude (* for every reference parameter; :iterate too, up to 4 rounds), _sort (_id, _lastUpdated or a non-composite parameter of the type; - for descending), _total (none|estimate|accurate), _summary (true|false|text|data|count) and _elements, and chained parameters up to four levels deep (subject.name, subject:Patient.identifier, result.subject:Patient.general-practitioner.name) and _has (_has:Observation:patient:code, ending in a chain: _has:DiagnosticReport:subject:result.code, or in a _has of its type, up to 3 deep: _has:Observation:patient:_has:DiagnosticReport:result:code), whose linked resources count only when the caller may see them; totals count only what the caller may see.',
        security: {
          cors: false,
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          description:
            "Bearer JWT: from the hospital's identity provider, or self-signed (ES256) with a DID key registered on the ledger. Claims: hdx_did, role, SMART scopes, purpose_of_use (HL7 v3 PurposeOfUse), break_glass_reason with ETREAT.",
        },
        interaction: [
          {
            code: 'transaction',
            documentation:
              'All or nothing: every entry checked first, urn:uuid references resolved, every version anchored on the ledger (500 per ledger transaction; a larger transaction is anchored in several and nothing of it is served until all are committed). At most 20,000 entries; POST, PUT, PATCH (a Parameters holding a FHIRPath Patch, or a Binary carrying a JSON Patch or a JSON Merge Patch), DELETE and GET (read, vread and search: processed last; a read checked before the writes commit without recording, a search checked for its parameters and scopes; then each read or searched and recorded through consent once they have); ifNoneExist, ifMatch, conditional update, patch and delete (PUT/PATCH/DELETE Type?query) and conditional references.',
          },
          {
            code: 'history-system',
            documentation: "Every version of every type the token's scopes read, for this custodian's own users, each through consent; _since, _at, _count, _getpagesoffset.",
          },
          {
            code: 'batch',
            documentation:
              'Each entry on its own, as the single interactions: read and vread (GET Type/id[/_history/vid]), search (GET Type?query, a searchset), create, update, patch and delete. At most 20,000 entries.',
          },
        ],
        operation: [
          {
            name: 'export',
            definition: `${BULK_DATA}/export`,
            documentation:
              'Bulk Data $export (Prefer: respond-async; _type, _since, _outputFormat NDJSON) for this organization’s practitioners and systems; Patient/$export also for a patient, its own records only. Every resource is decided by consent and recorded on the ledger like a search hit.',
          },
        ],
        resource: [
          ...[...SUPPORTED_TYPES].map((type) => ({
            type,
            // versioned-update: If-Match on update and delete is honoured (a mismatch is 412).
            versioning: 'versioned-update',
            readHistory: true,
            updateCreate: false,
            conditionalCreate: true,
            conditionalUpdate: true,
            conditionalDelete: 'single',
            // If-None-Match and If-Modified-Since on read (304 only for a caller allowed to read it).
            conditionalRead: 'full-support',
            interaction: ['create', 'read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'search-type'].map((code) => ({ code })),
            ...includesOf(type),
            searchParam: supportedSearchParams(type),
            operation: [
              ...(type === 'Patient' ? [{ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' }] : []),
              ...(type === 'Patient' ? [{ name: 'export', definition: `${BULK_DATA}/patient-export` }] : []),
              // The staff view (fhir/access-check.ts): patient-level access check and access requests.
              ...(type === 'Patient'
                ? ['access-check', 'request-access', 'access-requests'].map((name) => ({ name, definition: `${baseUrl}/OperationDefinition/hdx-${name}` }))
                : []),
              ...(type === 'Group' ? [{ name: 'export', definition: `${BULK_DATA}/group-export` }] : []),
              { name: 'verify', definition: `${baseUrl}/OperationDefinition/hdx-verify` },
            ],
          })),
          {
            type: 'Consent',
            documentation: 'On the ledger. Create (grant), update and revoke take the patient-signed change as a compact JWS (Content-Type: application/jose).',
            versioning: 'versioned',
            interaction: ['create', 'read', 'update', 'search-type'].map((code) => ({ code })),
            searchParam: [{ name: 'patient', type: 'reference' }],
          },
          {
            type: 'AuditEvent',
            documentation: "The ledger's access history: patients see their own, actors their own actions, auditors all.",
            interaction: [{ code: 'search-type' }],
            searchParam: ['patient', 'agent', 'entity', 'date', 'action', 'outcome', 'review-state'].map((name) => ({
              name,
              type: name === 'date' ? 'date' : name === 'patient' || name === 'agent' || name === 'entity' ? 'reference' : 'token',
              ...(name === 'review-state' ? { documentation: 'Break-glass entries by review state (open, reviewed): the review queue, for auditors' } : {}),
            })),
            operation: [{ name: 'review', definition: `${baseUrl}/OperationDefinition/hdx-audit-review` }],
          },
        ],
      },
    ],
  };
}
