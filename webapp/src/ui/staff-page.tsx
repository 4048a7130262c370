import { useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import type { PatientKey } from '../lib/keys';
import { type AccessAnswer, type AccessQuestion, checkAccess, questionProblems, requestAccess, STAFF_PURPOSES } from '../lib/staff';
import { useRun } from './use-run';

interface Props {
  config: AppConfig;
  /** The practitioner's own key (imported on My key, as an auditor's is). */
  patientKey: PatientKey;
}

/** The gateway's explanation without its leading verdict, which the badge shows. */
function withoutVerdict(text: string): string {
  const rest = text.replace(/^(Not permitted|Permitted): /, '');
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

/**
 * The staff view: a practitioner asks whether they may read one kind of a patient's records, held by one
 * member, for one purpose, and sees why not in plain words; then may ask the patient for access. The
 * answer is decided for this key's DID at patient level: it never says whether a record exists.
 */
export function StaffPage({ config, patientKey }: Props) {
  const [question, setQuestion] = useState<AccessQuestion>({ patient: '', purpose: 'TREAT', resourceType: 'Observation', custodian: '' });
  const [asked, setAsked] = useState<AccessQuestion | undefined>();
  const [answer, setAnswer] = useState<AccessAnswer | undefined>();
  const [problems, setProblems] = useState<string[]>([]);
  const { busy, status, error, setStatus, run } = useRun();

  const onCheck = (event: Event): void => {
    event.preventDefault();
    const found = questionProblems(question);
    setProblems(found);
    setAnswer(undefined);
    if (found.length > 0) {
      setTimeout(() => document.getElementById('staff-problems')?.focus(), 0);
      return;
    }
    const q = { ...question };
    void run(async () => {
      setAnswer(await checkAccess(config, patientKey, q));
      setAsked(q);
      setTimeout(() => document.getElementById('staff-answer')?.focus(), 0);
    });
  };

  const onRequest = (): void => {
    if (!asked) return;
    void run(async () => {
      await requestAccess(config, patientKey, asked);
      setStatus(
        `Request sent to the patient: access to their ${asked.resourceType} records for ${asked.purpose}. They see it in their app, at any member. Asking again replaces it.`,
      );
    });
  };

  const set = (patch: Partial<AccessQuestion>): void => setQuestion({ ...question, ...patch });

  return (
    <section aria-labelledby="staff-title">
      <h1 id="staff-title">Staff: may I read it?</h1>
      <p>
        Signed in as <span class="mono">{patientKey.did}</span>. The answer is decided for you by the patient’s consents on the ledger. It never says whether the patient has
        records, nor which consent decided. It answers for records with no sensitivity label: a record marked sensitive, or a consent limited to certain dates, is decided when you
        read it.
      </p>
      <p role="status" class="status" id="staff-status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert" id="staff-error">
          {error}
        </p>
      )}
      <form onSubmit={onCheck} noValidate>
        {problems.length > 0 && (
          <div class="error" id="staff-problems" tabIndex={-1} role="alert">
            <p>Please correct:</p>
            <ul>
              {problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          </div>
        )}
        <label for="staff-patient">Patient DID (did:hdx:…)</label>
        <input id="staff-patient" type="text" autoComplete="off" spellcheck={false} value={question.patient} onInput={(e) => set({ patient: e.currentTarget.value })} />
        <label for="staff-purpose">Purpose</label>
        <select id="staff-purpose" value={question.purpose} onChange={(e) => set({ purpose: e.currentTarget.value })}>
          {STAFF_PURPOSES.map((p) => (
            <option key={p.code} value={p.code}>
              {p.label} ({p.code})
            </option>
          ))}
        </select>
        <label for="staff-type">Record type (FHIR resource type)</label>
        <input id="staff-type" type="text" autoComplete="off" spellcheck={false} value={question.resourceType} onInput={(e) => set({ resourceType: e.currentTarget.value })} />
        <label for="staff-custodian">Held by (member id of the hospital holding the records)</label>
        <input id="staff-custodian" type="text" autoComplete="off" spellcheck={false} value={question.custodian} onInput={(e) => set({ custodian: e.currentTarget.value })} />
        <p>
          <button type="submit" id="staff-check" disabled={busy}>
            Check access
          </button>
        </p>
      </form>
      {answer && asked && (
        <div class={`callout ${answer.permitted ? 'permit' : 'deny'}`} id="staff-answer" tabIndex={-1} data-permitted={String(answer.permitted)} data-reason={answer.reason}>
          <p>
            <strong class={`badge ${answer.permitted ? 'ok' : 'no'}`}>{answer.permitted ? 'Permitted' : 'Not permitted'}</strong>{' '}
            <span id="staff-explanation">{withoutVerdict(answer.explanation)}</span>
          </p>
          {answer.breakGlassAvailable === true && (
            <p id="staff-break-glass">
              In an emergency you may break the glass (purpose ETREAT, with a reason): unless the patient refused it, the read is permitted, recorded, shown to the patient and
              reviewed by an auditor.
            </p>
          )}
          {!answer.permitted && answer.reason === 'no-consent' && (
            <p>
              <button type="button" id="staff-request" disabled={busy} onClick={onRequest}>
                Ask the patient for access
              </button>
            </p>
          )}
        </div>
      )}
    </section>
  );
}
