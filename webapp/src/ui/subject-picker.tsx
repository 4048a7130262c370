import { useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import type { PatientKey } from '../lib/keys';
import { confirmWard, parseWardDid, type Subject, subjects } from '../lib/wards';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  wards: string[];
  subject: Subject;
  onSubject: (s: Subject) => void;
  /** A ward the gateway accepted: kept on this device and chosen. */
  onWard: (did: string) => void;
  /** Forgets a ward on this device (nothing changes on the ledger). */
  onForget: (did: string) => void;
}

/**
 * Whose data the patient pages show and manage: the key holder's own, or a ward's. A ward is added by
 * DID and kept only once the gateway has accepted the key holder as that DID's guardian; a refusal is
 * shown as the gateway said it.
 */
export function SubjectPicker({ config, patientKey, wards, subject, onSubject, onWard, onForget }: Props) {
  const [adding, setAdding] = useState('');
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const [busy, setBusy] = useState(false);
  const choices = subjects(patientKey.did, wards);

  const add = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError('');
    setStatus('');
    let did: string;
    try {
      did = parseWardDid(adding, patientKey.did, wards);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      return;
    }
    setBusy(true);
    try {
      await confirmWard(config, patientKey, did);
      onWard(did);
      setAdding('');
      setStatus(`You now act for your ward ${did}.`);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="subject" aria-label="Whose data">
      <div class="subject-row">
        <label for="subject-select">
          Whose data
          <select
            id="subject-select"
            value={subject.did}
            onChange={(e) => {
              const did = e.currentTarget.value;
              setStatus('');
              onSubject(choices.find((c) => c.did === did) ?? { did: patientKey.did, self: true });
            }}
          >
            {choices.map((c) => (
              <option key={c.did} value={c.did}>
                {c.self ? 'Me' : `My ward ${c.did}`}
              </option>
            ))}
          </select>
        </label>
        {!subject.self && (
          <button type="button" class="secondary" id="forget-ward" onClick={() => onForget(subject.did)}>
            Forget this ward here
          </button>
        )}
      </div>
      {!subject.self && (
        <p class="notice acting" id="acting-for">
          You are acting for your ward <span class="mono">{subject.did}</span>: consents you sign are theirs (signed with your own key, as their guardian), and the records and
          history shown are theirs.
        </p>
      )}
      <details>
        <summary>Add a ward</summary>
        <form id="ward-form" onSubmit={(e) => void add(e)}>
          <label for="ward-did">The DID of a person whose guardian you are on the ledger</label>
          <input
            id="ward-did"
            class="mono"
            type="text"
            autoComplete="off"
            spellcheck={false}
            placeholder="did:hdx:…"
            value={adding}
            onInput={(e) => setAdding(e.currentTarget.value)}
          />
          <button type="submit" id="ward-add" disabled={busy}>
            Add ward
          </button>
        </form>
      </details>
      <p role="status" class="status" id="ward-status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert" id="ward-error">
          {error}
        </p>
      )}
    </section>
  );
}
