import { useEffect, useState } from 'preact/hooks';
import { type AppConfig, grantConsent, listConsents, revokeConsent } from '../lib/api';
import {
  type ConsentForm,
  DATA_CLASSES,
  emptyForm,
  emptyScope,
  formFromConsent,
  formProblems,
  plainWords,
  PURPOSES,
  type Scope,
  SECURITY_LABELS,
  toFhirConsent,
} from '../lib/consent-form';
import type { PatientKey } from '../lib/keys';
import type { Subject } from '../lib/wards';
import { useRun } from './use-run';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  /** Whose consents: the key holder's, or a ward's (signed with the key holder's own key, as guardian). */
  subject: Subject;
  /** A form to start from (an access request's Grant): shown to edit, then reviewed in plain words and signed. */
  prefill?: ConsentForm | undefined;
}

function toggle(list: string[], value: string, on: boolean): string[] {
  return on ? [...list.filter((v) => v !== value), value] : list.filter((v) => v !== value);
}

function splitTypes(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

function ScopeFields({ idPrefix, scope, onChange, legend }: { idPrefix: string; scope: Scope; onChange: (s: Scope) => void; legend: string }) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      <p class="hint">Choose nothing for all kinds of data.</p>
      <div class="choices">
        {DATA_CLASSES.map((c) => (
          <label key={c.id} class="check">
            <input
              type="checkbox"
              id={`${idPrefix}-class-${c.id}`}
              checked={scope.dataClasses.includes(c.id)}
              onChange={(e) => onChange({ ...scope, dataClasses: toggle(scope.dataClasses, c.id, e.currentTarget.checked) })}
            />
            {c.label}
          </label>
        ))}
      </div>
      <label for={`${idPrefix}-types`}>Other record types (FHIR resource types, separated by commas)</label>
      <input
        id={`${idPrefix}-types`}
        type="text"
        autoComplete="off"
        value={scope.resourceTypes.join(', ')}
        onChange={(e) => onChange({ ...scope, resourceTypes: splitTypes(e.currentTarget.value) })}
      />
      <p class="hint">Only records marked as (choose none for any record):</p>
      <div class="choices">
        {SECURITY_LABELS.map((l) => {
          const value = `${l.system}|${l.code}`;
          return (
            <label key={value} class="check">
              <input
                type="checkbox"
                id={`${idPrefix}-label-${l.code}`}
                checked={scope.securityLabels.includes(value)}
                onChange={(e) => onChange({ ...scope, securityLabels: toggle(scope.securityLabels, value, e.currentTarget.checked) })}
              />
              {l.label}
            </label>
          );
        })}
      </div>
    </fieldset>
  );
}

export function ConsentPage({ config, patientKey, subject, prefill }: Props) {
  const [form, setForm] = useState<ConsentForm>(prefill ?? emptyForm());
  /** The exact Consent shown for review and then signed (undefined while editing). */
  const [review, setReview] = useState<Record<string, unknown> | undefined>();
  const [problems, setProblems] = useState<string[]>([]);
  const [consents, setConsents] = useState<Record<string, unknown>[]>([]);
  const { busy, status, error, setStatus, setError, run } = useRun();

  const refresh = async (isCurrent: () => boolean = () => true): Promise<void> => {
    try {
      const list = await listConsents(config, patientKey, subject.did);
      if (isCurrent()) setConsents(list);
    } catch (err) {
      if (!isCurrent()) return;
      setConsents([]);
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  useEffect(() => {
    // Another person's consents: nothing of the previous one's stays on the page, nor arrives late.
    let current = true;
    setConsents([]);
    setReview(undefined);
    setStatus(prefill ? 'The form below answers the access request: check it, then review it before signing.' : '');
    setError('');
    if (prefill) setForm(prefill);
    void refresh(() => current);
    return () => {
      current = false;
    };
  }, [patientKey.did, subject.did, prefill]);

  const onReview = (event: Event): void => {
    event.preventDefault();
    const found = formProblems(form);
    setProblems(found);
    setReview(found.length === 0 ? toFhirConsent(form, subject.did, crypto.randomUUID()) : undefined);
    if (found.length > 0) setTimeout(() => document.getElementById('form-problems')?.focus(), 0);
    else setTimeout(() => document.getElementById('review-title')?.focus(), 0);
  };

  const sign = (consent: Record<string, unknown>): Promise<void> =>
    run(async () => {
      await grantConsent(config, patientKey, consent);
      setStatus(`Consent granted and recorded on the ledger (Consent/${String(consent.id)}).`);
      setForm(emptyForm());
      setReview(undefined);
      await refresh();
    });

  const revoke = (consent: Record<string, unknown>): Promise<void> =>
    run(async () => {
      await revokeConsent(config, patientKey, consent);
      setStatus(`Consent revoked (Consent/${String(consent.id)}). From now on it permits nothing.`);
      await refresh();
    });

  const setWho = (index: number, patch: Partial<ConsentForm['who'][number]>): void => setForm({ ...form, who: form.who.map((w, i) => (i === index ? { ...w, ...patch } : w)) });

  const active = consents.filter((c) => c.status === 'active');
  const inactive = consents.filter((c) => c.status !== 'active');

  return (
    <section aria-labelledby="consents-title">
      <h1 id="consents-title">{subject.self ? 'Consents' : 'Consents of your ward'}</h1>
      <p role="status" class="status" id="consent-status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert" id="consent-error">
          {error}
        </p>
      )}

      <h2>{subject.self ? 'My consents' : `The consents of ${subject.did}`}</h2>
      {active.length === 0 && !subject.self && <p id="no-consents">Your ward has no active consent: only the staff of the hospitals holding their records can see them.</p>}
      {active.length === 0 && subject.self && (
        <p id="no-consents">
          You have no active consent: only the staff of the hospitals holding your records can see them, for treating you (and, in an emergency, a practitioner who breaks the
          glass: that is recorded and highlighted in your access history).
        </p>
      )}
      <ul class="cards" id="consent-list">
        {active.map((c) => (
          <li key={String(c.id)} class="card" data-consent-id={String(c.id)}>
            {plainWords(formFromConsent(c))
              .slice(0, -1)
              .map((line) => (
                <p key={line}>{line}</p>
              ))}
            <button type="button" class="danger" disabled={busy} onClick={() => void revoke(c)} aria-label={`Revoke consent ${String(c.id)}`}>
              Revoke
            </button>
          </li>
        ))}
      </ul>
      {inactive.length > 0 && (
        <details>
          <summary>Revoked consents ({inactive.length})</summary>
          <ul class="cards">
            {inactive.map((c) => (
              <li key={String(c.id)} class="card revoked">
                <p>{plainWords(formFromConsent(c))[0]}</p>
                <p>Revoked.</p>
              </li>
            ))}
          </ul>
        </details>
      )}

      <h2>Give a new consent</h2>
      {!review ? (
        <form onSubmit={onReview} noValidate>
          {problems.length > 0 && (
            <div class="error" id="form-problems" tabIndex={-1} role="alert">
              <p>Please correct:</p>
              <ul>
                {problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            </div>
          )}
          <fieldset>
            <legend>Who may see my data</legend>
            {form.who.map((w, i) => (
              <div class="who" key={i}>
                <div class="choices" role="radiogroup" aria-label={`Kind of recipient ${i + 1}`}>
                  <label class="check">
                    <input
                      type="radio"
                      name={`who-kind-${i}`}
                      id={`who-${i}-organization`}
                      checked={w.kind === 'organization'}
                      onChange={() => setWho(i, { kind: 'organization' })}
                    />
                    An organization (its staff)
                  </label>
                  <label class="check">
                    <input type="radio" name={`who-kind-${i}`} id={`who-${i}-person`} checked={w.kind === 'person'} onChange={() => setWho(i, { kind: 'person' })} />A practitioner
                    or another person (by DID)
                  </label>
                </div>
                <label for={`who-${i}-value`}>{w.kind === 'organization' ? 'Organization member id (for example Hospital2MSP)' : 'Their DID (did:hdx:…)'}</label>
                <input id={`who-${i}-value`} type="text" autoComplete="off" spellcheck={false} value={w.value} onInput={(e) => setWho(i, { value: e.currentTarget.value })} />
                {form.who.length > 1 && (
                  <button type="button" class="secondary" onClick={() => setForm({ ...form, who: form.who.filter((_, j) => j !== i) })}>
                    Remove recipient {i + 1}
                  </button>
                )}
              </div>
            ))}
            <button type="button" class="secondary" onClick={() => setForm({ ...form, who: [...form.who, { kind: 'organization', value: '' }] })}>
              Add another recipient
            </button>
          </fieldset>

          <ScopeFields idPrefix="what" legend="What they may see" scope={form.what} onChange={(what) => setForm({ ...form, what })} />

          <fieldset>
            <legend>Why (for which purposes)</legend>
            <div class="choices">
              {PURPOSES.map((p) => (
                <label key={p.code} class="check">
                  <input
                    type="checkbox"
                    id={`why-${p.code}`}
                    checked={form.why.includes(p.code)}
                    onChange={(e) => setForm({ ...form, why: toggle(form.why, p.code, e.currentTarget.checked) })}
                  />
                  {p.label}
                </label>
              ))}
            </div>
          </fieldset>

          <fieldset>
            <legend>When</legend>
            <div class="dates">
              <div>
                <label for="valid-from">Permission starts (empty: now)</label>
                <input id="valid-from" type="date" value={form.validFrom} onInput={(e) => setForm({ ...form, validFrom: e.currentTarget.value })} />
              </div>
              <div>
                <label for="valid-to">Permission ends (empty: until I revoke it)</label>
                <input id="valid-to" type="date" value={form.validTo} onInput={(e) => setForm({ ...form, validTo: e.currentTarget.value })} />
              </div>
              <div>
                <label for="data-from">Only records dated from (empty: any date)</label>
                <input id="data-from" type="date" value={form.dataFrom} onInput={(e) => setForm({ ...form, dataFrom: e.currentTarget.value })} />
              </div>
              <div>
                <label for="data-to">Only records dated until</label>
                <input id="data-to" type="date" value={form.dataTo} onInput={(e) => setForm({ ...form, dataTo: e.currentTarget.value })} />
              </div>
            </div>
          </fieldset>

          {form.exceptions.map((e, i) => (
            <div key={i} class="exception">
              <ScopeFields
                idPrefix={`except-${i}`}
                legend={`Exception ${i + 1}: what stays closed to them`}
                scope={e}
                onChange={(s) => setForm({ ...form, exceptions: form.exceptions.map((x, j) => (j === i ? s : x)) })}
              />
              <button type="button" class="secondary" onClick={() => setForm({ ...form, exceptions: form.exceptions.filter((_, j) => j !== i) })}>
                Remove exception {i + 1}
              </button>
            </div>
          ))}
          <p>
            <button type="button" class="secondary" id="add-exception" onClick={() => setForm({ ...form, exceptions: [...form.exceptions, emptyScope()] })}>
              Add an exception
            </button>
          </p>
          <button type="submit" id="review-consent">
            Review before signing
          </button>
        </form>
      ) : (
        <div class="review" aria-labelledby="review-title">
          <h3 id="review-title" tabIndex={-1}>
            Please read before you sign
          </h3>
          {!subject.self && (
            <p id="consent-for-ward">
              You sign this consent as the guardian of <span class="mono">{subject.did}</span>, with your own key: in the words below, “I” and “my” are your ward.
            </p>
          )}
          <div id="consent-words">
            {plainWords(form).map((line) => (
              <p key={line}>{line}</p>
            ))}
          </div>
          <details>
            <summary>The FHIR Consent that will be signed</summary>
            <pre>{JSON.stringify(review, null, 2)}</pre>
          </details>
          <button type="button" id="sign-consent" disabled={busy} onClick={() => void sign(review)}>
            Sign and grant
          </button>{' '}
          <button type="button" class="secondary" disabled={busy} onClick={() => setReview(undefined)}>
            Change it
          </button>
        </div>
      )}
    </section>
  );
}
