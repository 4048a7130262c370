/**
 * The gateway's FHIR API as the patient uses it, each request with a fresh single-use DID token.
 * Errors are the gateway's OperationOutcome diagnostics, shown to the patient as they are.
 */
import { didToken, type PatientKey } from './keys';
import { signConsentChange } from './consent-sign';

export interface AppConfig {
  /** The gateway's FHIR base URL: the audience of tokens. */
  fhirBaseUrl: string;
  /** The member organization running this gateway. */
  mspId: string;
}

export class ApiError extends Error {
  public constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What the gateway (same origin) says about itself: /app/config.json, written by the gateway. */
export async function loadConfig(): Promise<AppConfig> {
  const res = await fetch('config.json', { headers: { accept: 'application/json' } });
  if (!res.ok) throw new ApiError(res.status, 'The gateway did not say where its FHIR API is (config.json).');
  return (await res.json()) as AppConfig;
}

async function outcomeText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { issue?: Array<{ diagnostics?: string }> };
    const text = (body.issue ?? [])
      .map((i) => i.diagnostics)
      .filter(Boolean)
      .join(' ');
    if (text) return text;
  } catch {
    // not an OperationOutcome
  }
  return `The gateway answered ${res.status} ${res.statusText}.`;
}

/**
 * Where to send a FHIR request from the page (at <gateway>/app/): the gateway's /fhir, relative to the
 * page so that a gateway behind a path prefix works too. The gateway's own links (next pages) are
 * absolute, under its baseUrl: they are cut to their path below it.
 */
export function fhirPath(config: AppConfig, pathOrUrl: string): string {
  const path = pathOrUrl.startsWith(config.fhirBaseUrl) ? pathOrUrl.slice(config.fhirBaseUrl.length) : pathOrUrl;
  return `../fhir${path}`;
}

export async function fhirRequest(
  config: AppConfig,
  key: PatientKey | undefined,
  scope: string,
  method: string,
  pathOrUrl: string,
  body?: { type: string; text: string },
  purposeOfUse?: string,
): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/fhir+json' };
  if (key) headers.authorization = `Bearer ${await didToken(key, config.fhirBaseUrl, scope, purposeOfUse !== undefined ? { purposeOfUse } : {})}`;
  if (body) headers['content-type'] = body.type;
  const res = await fetch(fhirPath(config, pathOrUrl), { method, headers, ...(body ? { body: body.text } : {}) });
  if (!res.ok) throw new ApiError(res.status, await outcomeText(res));
  return res.json();
}

/** Grants a consent: POST /fhir/Consent with the signed change (application/jose). */
export async function grantConsent(config: AppConfig, key: PatientKey, consent: Record<string, unknown>): Promise<unknown> {
  const jws = await signConsentChange(key, consent, 'grant');
  return fhirRequest(config, key, 'patient/Consent.write', 'POST', '/Consent', { type: 'application/jose', text: jws });
}

/** Revokes a consent: PUT /fhir/Consent/<id> with the signed revocation (its signature is the proof). */
export async function revokeConsent(config: AppConfig, key: PatientKey, consent: Record<string, unknown>): Promise<unknown> {
  const jws = await signConsentChange(key, consent, 'revoke');
  return fhirRequest(config, undefined, '', 'PUT', `/Consent/${encodeURIComponent(String(consent.id))}`, { type: 'application/jose', text: jws });
}

/** The consents of the patient `patient` (the key holder, or a ward of theirs), every page. */
export async function listConsents(config: AppConfig, key: PatientKey, patient: string = key.did): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let url: string | undefined = `/Consent?patient=${encodeURIComponent(patient)}&_count=50`;
  for (let page = 0; url !== undefined && page < 20; page += 1) {
    const bundle = (await fhirRequest(config, key, 'patient/Consent.read', 'GET', url)) as {
      entry?: Array<{ resource?: Record<string, unknown> }>;
      link?: Array<{ relation?: string; url?: string }>;
    };
    for (const e of bundle.entry ?? []) if (e.resource) out.push(e.resource);
    url = bundle.link?.find((l) => l.relation === 'next')?.url;
  }
  return out;
}

/** One page of the access history of `patient` (the key holder, or a ward of theirs): a searchset of AuditEvents. */
export async function accessHistory(config: AppConfig, key: PatientKey, pageUrl?: string, patient: string = key.did): Promise<unknown> {
  return fhirRequest(config, key, 'patient/AuditEvent.read', 'GET', pageUrl ?? `/AuditEvent?patient=${encodeURIComponent(patient)}&_count=50`);
}

/** A read of the patient's own records (or their wards'): scope patient/*.read, purpose PATRQT (a patient's own request). */
export async function patientRead(config: AppConfig, key: PatientKey, pathOrUrl: string): Promise<unknown> {
  return fhirRequest(config, key, 'patient/*.read', 'GET', pathOrUrl, undefined, 'PATRQT');
}
