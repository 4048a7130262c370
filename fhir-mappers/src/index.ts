export { type FhirIssue, validateResource, prepareValidator, fhirResourceTypes, MAX_ISSUES } from './validate';
