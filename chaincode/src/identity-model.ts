/**
 * DID records: `did:hdx:<RFC 7638 thumbprint of the initial P-256 key>` with a W3C DID document.
 */
import type { Context } from 'fabric-contract-api';
import { conflict, notFound } from './errors';
import { P256Jwk } from './jose';
import { readState } from './ledger';

export const DID_KINDS = ['patient', 'practitioner', 'organization', 'device', 'system', 'auditor'] as const;
export type DidKind = (typeof DID_KINDS)[number];

export const DID_CONTEXT = ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'] as const;

export interface VerificationMethod {
  id: string;
  type: 'JsonWebKey2020';
  controller: string;
  publicKeyJwk: P256Jwk;
}

export interface ServiceEndpoint {
  id: string;
  type: 'FhirEndpoint';
  serviceEndpoint: string;
}

export interface DidDocument {
  '@context': string[];
  id: string;
  controller: string;
  verificationMethod: VerificationMethod[];
  authentication: string[];
  assertionMethod: string[];
  service?: ServiceEndpoint[];
}

/** A salted hash of a local identifier (e.g. an MRN), with the organization that linked it. */
export interface IdentifierLink {
  hash: string;
  mspId: string;
}

/**
 * `suspended`: frozen by an admin of the patient's organization without the patient's proof (reversible,
 * see hdx.identity:Reactivate); `deactivated`: final.
 */
export const DID_STATUSES = ['active', 'suspended', 'deactivated'] as const;
export type DidStatus = (typeof DID_STATUSES)[number];

/** A guardian change proposed by an admin without the patient's proof, waiting for a second organization. */
export interface PendingGuardian {
  guardian: string;
  change: 'add' | 'remove';
  /** MSP id of the proposing admin. */
  proposedBy: string;
  proposedAt: string;
  txId: string;
}

/** A reactivation of a suspended patient DID proposed by an admin, waiting for the regulator. */
export interface PendingReactivation {
  proposedBy: string;
  proposedAt: string;
  txId: string;
}

export interface IdentityRecord {
  did: string;
  kind: DidKind;
  status: DidStatus;
  /** 1 at registration, +1 per change. */
  version: number;
  created: string;
  updated: string;
  /** The organization (MSP id) the identity belongs to: the one that registered it. */
  organization: string;
  /** Number of the current key: the verification method is `<did>#key-<keyNumber>`. */
  keyNumber: number;
  document: DidDocument;
  links: {
    registeredBy: { mspId: string; id: string };
    identifiers: IdentifierLink[];
    /** Opaque keyed hash of the identity-provider subject (made by the gateway), for off-boarding. */
    subject?: string;
  };
  /** DIDs allowed to sign consents for this patient. */
  guardians: string[];
  /** Guardian changes proposed without the patient's proof, not yet in force. */
  pendingGuardians?: PendingGuardian[];
  /** Reactivation proposed by an admin (suspended patients only), not yet approved. */
  pendingReactivation?: PendingReactivation;
  txId: string;
}

export const DID_KEY = 'hdx.did';
export const DID_VERSION_KEY = 'hdx.did~version';
/** [salted identifier hash, did] */
export const DID_LINK_INDEX = 'hdx.did~link';
/** [MSP id, did] of organization DIDs. */
export const DID_ORG_INDEX = 'hdx.did~org';
/** [registering MSP id, subject hash, did]: DIDs by identity-provider subject, for off-boarding. */
export const DID_SUBJECT_INDEX = 'hdx.did~subject';

export function didKey(ctx: Context, did: string): string {
  return ctx.stub.createCompositeKey(DID_KEY, [did]);
}

export function didVersionKey(ctx: Context, did: string, version: number): string {
  return ctx.stub.createCompositeKey(DID_VERSION_KEY, [did, padVersion(version)]);
}

export function padVersion(version: number): string {
  return String(version).padStart(10, '0');
}

export function keyId(did: string, keyNumber: number): string {
  return `${did}#key-${keyNumber}`;
}

export function buildDocument(did: string, jwk: P256Jwk, keyNumber: number, fhirBaseUrl?: string): DidDocument {
  const id = keyId(did, keyNumber);
  const document: DidDocument = {
    '@context': [...DID_CONTEXT],
    id: did,
    controller: did,
    verificationMethod: [{ id, type: 'JsonWebKey2020', controller: did, publicKeyJwk: jwk }],
    authentication: [id],
    assertionMethod: [id],
  };
  if (fhirBaseUrl !== undefined) {
    document.service = [{ id: `${did}#fhir`, type: 'FhirEndpoint', serviceEndpoint: fhirBaseUrl }];
  }
  return document;
}

export function currentJwk(record: IdentityRecord): P256Jwk {
  const method = record.document.verificationMethod[0];
  if (!method) {
    throw new Error('DID document without a verification method');
  }
  return method.publicKeyJwk;
}

export function fhirBaseUrlOf(record: IdentityRecord): string | undefined {
  return record.document.service?.find((s) => s.type === 'FhirEndpoint')?.serviceEndpoint;
}

export async function findIdentity(ctx: Context, did: string): Promise<IdentityRecord | undefined> {
  return readState<IdentityRecord>(ctx, didKey(ctx, did));
}

export async function getIdentity(ctx: Context, did: string): Promise<IdentityRecord> {
  const record = await findIdentity(ctx, did);
  if (!record) {
    throw notFound(`${did} is not registered`);
  }
  return record;
}

/** A registered DID that is still active (CONFLICT when deactivated). */
export async function getActiveIdentity(ctx: Context, did: string): Promise<IdentityRecord> {
  const record = await getIdentity(ctx, did);
  if (record.status !== 'active') {
    throw conflict(`${did} is ${record.status}`);
  }
  return record;
}

/** W3C DID resolution result for one stored version. */
export function resolutionOf(record: IdentityRecord): unknown {
  return {
    didDocument: record.document,
    didDocumentMetadata: {
      versionId: String(record.version),
      created: record.created,
      updated: record.updated,
      deactivated: record.status === 'deactivated',
    },
    didResolutionMetadata: { contentType: 'application/did+json' },
    hdx: {
      kind: record.kind,
      status: record.status,
      organization: record.organization,
      guardians: record.guardians,
      pendingGuardians: record.pendingGuardians ?? [],
      // The keyed hash of the IdP subject a staff DID was registered for: gateways check IdP tokens
      // carrying the DID against it (unlinkable to the subject without the organization's secret).
      ...(record.links.subject ? { subject: record.links.subject } : {}),
      ...(record.pendingReactivation ? { pendingReactivation: record.pendingReactivation } : {}),
    },
  };
}
