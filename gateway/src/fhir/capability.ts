import { SUPPORTED_TYPES } from './resource-service';

/** The CapabilityStatement: only what this server really does. */
export function capabilityStatement(baseUrl: string, version: string): Record<string, unknown> {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-21',
    publisher: 'HDX',
    kind: 'instance',
    software: { name: 'HDX gateway', version },
    implementation: { description: 'HDX gateway: FHIR R4 with every version anchored on the consortium ledger', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        documentation: 'Each created version is anchored on the Hyperledger Fabric ledger (HMAC-SHA-256 commitment) before it is acknowledged, and checked against its anchor before it is returned.',
        resource: [...SUPPORTED_TYPES].map((type) => ({
          type,
          versioning: 'versioned',
          readHistory: true,
          updateCreate: false,
          interaction: [{ code: 'create' }, { code: 'read' }, { code: 'vread' }],
        })),
      },
    ],
  };
}
