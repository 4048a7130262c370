import type { DidDocument, DidKind } from '@hdx/chaincode';

/** `hdx.identity:Resolve` output (chaincode/README.md, hdx.identity). */
export interface DidResolution {
  didDocument: DidDocument;
  didDocumentMetadata: {
    versionId: string;
    created: string;
    updated: string;
    deactivated: boolean;
  };
  didResolutionMetadata?: { contentType?: string };
  hdx: {
    kind: DidKind;
    /** `suspended`: an admin's deactivation of a patient without the patient's proof (reversible); refused like deactivated. */
    status: 'active' | 'deactivated' | 'suspended';
    organization: string;
    guardians: string[];
    /** Opaque link to the identity-provider subject the DID was registered for: subjectLink(secret, issuer, sub). */
    subject?: string;
  };
}
