/** Unit-test helpers: DID resolutions built from local keys, as hdx.identity:Resolve would return them. */
import type { DidKind } from '@hdx/chaincode';
import { type GeneratedDidKey, publicJwkOf } from '../did-key';
import type { DidResolution, DidResolver } from '../types';

export interface ResolutionOptions {
  kind?: DidKind;
  organization?: string;
  deactivated?: boolean;
  /** The key's number in `#key-n` (after rotations). */
  keyNumber?: number;
  /** Leave the key out of authentication and assertionMethod. */
  unlisted?: boolean;
  /** `suspended` (an admin's reversible deactivation of a patient); overrides `deactivated` for hdx.status. */
  status?: DidResolution['hdx']['status'];
  /** The subject link stored at registration (subjectLink(secret, issuer, sub)). */
  subject?: string;
}

export function resolutionOf(key: GeneratedDidKey, options: ResolutionOptions = {}): DidResolution {
  const id = `${key.did}#key-${options.keyNumber ?? 1}`;
  const deactivated = options.deactivated ?? false;
  return {
    didDocument: {
      '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
      id: key.did,
      controller: key.did,
      verificationMethod: [{ id, type: 'JsonWebKey2020', controller: key.did, publicKeyJwk: publicJwkOf(key.publicJwk) }],
      authentication: options.unlisted ? [] : [id],
      assertionMethod: options.unlisted ? [] : [id],
    },
    didDocumentMetadata: { versionId: '1', created: '2025-01-01T00:00:00.000Z', updated: '2025-01-01T00:00:00.000Z', deactivated },
    didResolutionMetadata: { contentType: 'application/did+json' },
    hdx: {
      kind: options.kind ?? 'patient',
      status: options.status ?? (deactivated ? 'deactivated' : 'active'),
      organization: options.organization ?? 'Hospital1MSP',
      guardians: [],
      ...(options.subject !== undefined ? { subject: options.subject } : {}),
    },
  };
}

/** A resolver over fixed resolutions (undefined for any other DID), counting its calls. */
export function fakeResolver(...resolutions: DidResolution[]): DidResolver & { calls: string[] } {
  const calls: string[] = [];
  const byDid = new Map(resolutions.map((r) => [r.didDocument.id, r]));
  const resolver = async (did: string): Promise<DidResolution | undefined> => {
    calls.push(did);
    return byDid.get(did);
  };
  return Object.assign(resolver, { calls });
}
