import { useEffect, useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import { forgetKey, saveKey } from '../lib/key-store';
import { generatePatientKey, importPrivateJwk, type P256PrivateJwk, type PatientKey, registrationRequest } from '../lib/keys';

interface Props {
  config: AppConfig;
  current: PatientKey | undefined;
  onKey: (key: PatientKey | undefined) => void;
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function KeyPage({ config, current, onKey }: Props) {
  const [backup, setBackup] = useState<P256PrivateJwk | undefined>();
  const [registration, setRegistration] = useState('');
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    setRegistration('');
    if (current) {
      registrationRequest(current)
        .then((r) => setRegistration(JSON.stringify(r)))
        .catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)));
    }
  }, [current]);

  const adopt = async (made: Promise<{ key: PatientKey; backup: P256PrivateJwk }>, done: string): Promise<void> => {
    setBusy(true);
    setError('');
    setStatus('');
    try {
      const { key, backup: b } = await made;
      await saveKey(key);
      setBackup(b);
      onKey(key);
      setStatus(done);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const onFile = async (event: Event): Promise<void> => {
    const input = event.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    input.value = '';
    if (!file) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await file.text());
    } catch {
      setError('The file is not a key backup: it is not JSON.');
      return;
    }
    await adopt(importPrivateJwk(parsed), 'Key imported. It is kept on this device and cannot be read back by the page.');
  };

  const forget = async (): Promise<void> => {
    if (!confirm('Forget the key on this device? Without a backup file you cannot sign in or change your consents again.')) return;
    await forgetKey();
    setBackup(undefined);
    onKey(undefined);
    setStatus('The key is no longer on this device.');
  };

  return (
    <section aria-labelledby="key-title">
      <h1 id="key-title">My key</h1>
      <p>Your key proves it is you: it signs you in to {config.mspId}'s gateway and signs your consents. It stays in this browser; the gateway never sees its private part.</p>
      <p role="status" class="status" id="key-status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert" id="key-error">
          {error}
        </p>
      )}
      {current ? (
        <>
          <h2>Your DID</h2>
          <p class="did" id="did">
            {current.did}
          </p>
          {backup && (
            <div class="callout">
              <h2>Save a backup now</h2>
              <p>This is the only moment the key can be saved: afterwards this device keeps it locked. Keep the file somewhere safe and private.</p>
              <button type="button" id="download-backup" onClick={() => download(`hdx-key-${current.did.slice(8, 16)}.json`, `${JSON.stringify(backup, null, 2)}\n`)}>
                Download backup file
              </button>{' '}
              <button type="button" class="secondary" onClick={() => setBackup(undefined)}>
                I have saved it
              </button>
            </div>
          )}
          <h2>Register with your hospital</h2>
          <p>Give this registration request to your hospital. An administrator there registers your DID on the ledger; it holds only your public key and a proof.</p>
          <label for="registration">Registration request</label>
          <textarea id="registration" readOnly rows={5} value={registration} />
          <h2>Other devices</h2>
          <p>To use your key on another device, import your backup file there.</p>
          <button type="button" class="danger" id="forget-key" onClick={() => void forget()}>
            Forget the key on this device
          </button>
        </>
      ) : (
        <>
          <h2>Create a key</h2>
          <p>A new key gives you a new DID. You will be asked to save a backup file.</p>
          <button type="button" id="create-key" disabled={busy} onClick={() => void adopt(generatePatientKey(), 'Your key is ready. Save a backup now.')}>
            Create my key
          </button>
          <h2>Import a backup</h2>
          <label for="import-key">Key backup file (from this app or hdx keygen)</label>
          <input id="import-key" type="file" accept="application/json,.json" disabled={busy} onChange={(e) => void onFile(e)} />
        </>
      )}
    </section>
  );
}
