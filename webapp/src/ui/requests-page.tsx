import { useEffect, useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import type { PatientKey } from '../lib/keys';
import { listRequests, purposeLabel, type RequestRow } from '../lib/staff';
import type { Subject } from '../lib/wards';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  /** Whose requests: the key holder's, or a ward's. */
  subject: Subject;
  /** Opens the consent form prefilled for this request (the patient still reviews and signs). */
  onGrant: (row: RequestRow) => void;
}

function when(instant: string): string {
  const d = new Date(instant);
  return Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

/** The practitioners who asked the patient (or their ward) for access, from the ledger, at any member. */
export function RequestsPage({ config, patientKey, subject, onGrant }: Props) {
  const [rows, setRows] = useState<RequestRow[] | undefined>();
  const [error, setError] = useState('');
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let current = true;
    setRows(undefined);
    setError('');
    listRequests(config, patientKey, subject.did)
      .then((r) => {
        if (current) setRows(r);
      })
      .catch((err: unknown) => {
        if (current) setError(err instanceof Error ? err.message : String(err));
      });
    return () => {
      current = false;
    };
  }, [patientKey.did, subject.did, attempt]);

  return (
    <section aria-labelledby="requests-title">
      <h1 id="requests-title">{subject.self ? 'Access requests' : 'Access requests for your ward'}</h1>
      <p>
        Practitioners who asked {subject.self ? 'you' : 'your ward'} for access. A request opens nothing: only a consent {subject.self ? 'you sign' : 'you sign for your ward'}{' '}
        does.
      </p>
      {error && (
        <p class="error" role="alert" id="requests-error">
          {error}
        </p>
      )}
      <p>
        <button type="button" class="secondary" id="requests-refresh" onClick={() => setAttempt((a) => a + 1)}>
          Refresh the list
        </button>
      </p>
      {rows === undefined && !error && <p role="status">Loading…</p>}
      {rows?.length === 0 && <p id="no-requests">No one has asked for access.</p>}
      <ul class="cards" id="request-list">
        {(rows ?? []).map((r) => (
          <li key={`${r.requester} ${r.purpose}`} class="card" data-requester={r.requester} data-permitted={String(r.permitted)}>
            <dl>
              <dt>Who</dt>
              <dd class="mono">{r.requester}</dd>
              <dt>Organization</dt>
              <dd>{r.requesterOrganization}</dd>
              <dt>Why</dt>
              <dd>
                {purposeLabel(r.purpose)} ({r.purpose})
              </dd>
              <dt>What</dt>
              <dd>{r.resourceTypes.join(', ')} records</dd>
              <dt>When</dt>
              <dd>
                <time dateTime={r.requestedAt}>{when(r.requestedAt)}</time>
              </dd>
            </dl>
            {r.permitted ? (
              <p class="ok-text">
                <strong class="badge ok">Permitted</strong> a consent {subject.self ? 'of yours' : 'of your ward'} now permits this.
              </p>
            ) : (
              <p>
                <span class="muted">No consent permits this yet.</span>{' '}
                <button type="button" class="grant-request" onClick={() => onGrant(r)} aria-label={`Grant the request of ${r.requester} for ${r.purpose}`}>
                  Grant…
                </button>
              </p>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
