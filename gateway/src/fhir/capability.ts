import { RESOURCE_SEARCH_PARAMS } from './search-params';
import { SUPPORTED_TYPES } from './resource-types';

const SEARCH_PARAM_TYPES: Record<string, string> = {
  _id: 'token',
  _lastUpdated: 'date',
  patient: 'reference',
  subject: 'reference',
  code: 'token',
  date: 'date',
};

/** The CapabilityStatement: only what this server really does. */
export function capabilityStatement(baseUrl: string, version: string): Record<string, unknown> {
  const searchParam = RESOURCE_SEARCH_PARAMS.filter((p) => p in SEARCH_PARAM_TYPES).map((name) => ({ name, type: SEARCH_PARAM_TYPES[name] }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-21',
    publisher: 'HDX',
    kind: 'instance',
    software: { name: 'HDX gateway', version },
    implementation: { description: 'HDX gateway: FHIR R4 with consent enforced and every disclosure recorded on the consortium ledger', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Every version is anchored on the Hyperledger Fabric ledger (HMAC-SHA-256 commitment) before it is acknowledged and checked against its anchor before it is returned. Every disclosure is decided by the patient consents on the ledger and recorded there before data leaves (sync audit mode). Unknown search parameters are refused.',
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
              'All or nothing: every entry checked first, urn:uuid references resolved, every version anchored in one ledger transaction. At most 500 entries; POST, PUT and DELETE only (no GET, no conditional interactions).',
          },
          {
            code: 'batch',
            documentation: 'Each entry on its own, as the single interactions: read and vread (GET Type/id[/_history/vid]), create, update and delete. At most 500 entries.',
          },
        ],
        resource: [
          ...[...SUPPORTED_TYPES].map((type) => ({
            type,
            versioning: 'versioned',
            readHistory: true,
            updateCreate: false,
            conditionalCreate: false,
            conditionalUpdate: false,
            conditionalDelete: 'not-supported',
            interaction: ['create', 'read', 'vread', 'update', 'delete', 'history-instance', 'history-type', 'search-type'].map((code) => ({ code })),
            searchParam: type === 'Patient' ? searchParam.filter((p) => !['patient', 'subject', 'code'].includes(p.name)) : searchParam,
            operation: [
              ...(type === 'Patient' ? [{ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' }] : []),
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
            searchParam: ['patient', 'agent', 'entity', 'date', 'action', 'outcome'].map((name) => ({
              name,
              type: name === 'date' ? 'date' : name === 'patient' || name === 'agent' || name === 'entity' ? 'reference' : 'token',
            })),
          },
        ],
      },
    ],
  };
}
