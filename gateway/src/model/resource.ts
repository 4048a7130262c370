/**
 * The one resource type of the gateway: a FHIR R4 resource (`@types/fhir`'s `Resource`: resourceType, id,
 * meta typed as the spec's) of any of the 145 types, whose other elements are read generically (the store
 * holds every type as JSON; the definitions in definitions.ts say what each element is).
 */
import type { Resource as R4Resource } from 'fhir/r4';

export type Resource = R4Resource & Record<string, unknown>;
