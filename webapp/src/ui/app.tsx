import { useEffect, useState } from 'preact/hooks';
import { type AppConfig, loadConfig } from '../lib/api';
import { loadKey } from '../lib/key-store';
import type { PatientKey } from '../lib/keys';
import { ConsentPage } from './consent-page';
import { HistoryPage } from './history-page';
import { KeyPage } from './key-page';

type Page = 'key' | 'consents' | 'history';

const PAGES: ReadonlyArray<{ id: Page; label: string }> = [
  { id: 'key', label: 'My key' },
  { id: 'consents', label: 'Consents' },
  { id: 'history', label: 'Access history' },
];

function pageOfHash(): Page {
  const id = location.hash.replace(/^#\/?/, '');
  return PAGES.some((p) => p.id === id) ? (id as Page) : 'key';
}

export function App() {
  const [config, setConfig] = useState<AppConfig | undefined>();
  const [key, setKey] = useState<PatientKey | undefined>();
  const [ready, setReady] = useState(false);
  const [error, setError] = useState('');
  const [page, setPage] = useState<Page>(pageOfHash());

  useEffect(() => {
    const onHash = (): void => setPage(pageOfHash());
    addEventListener('hashchange', onHash);
    // WebCrypto (the key, every signature) exists only in a secure context: HTTPS, or localhost.
    if (!isSecureContext || globalThis.crypto?.subtle === undefined) {
      setError('This page must be opened over HTTPS (or on this machine, at localhost or 127.0.0.1): the browser offers its key functions only there.');
      setReady(true);
      return () => removeEventListener('hashchange', onHash);
    }
    Promise.all([loadConfig(), loadKey()])
      .then(([c, k]) => {
        setConfig(c);
        setKey(k);
      })
      .catch((err: unknown) => setError(err instanceof Error ? err.message : String(err)))
      .finally(() => setReady(true));
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    const title = PAGES.find((p) => p.id === page)?.label ?? '';
    document.title = `${title} · HDX`;
    document.getElementById('main')?.focus();
  }, [page]);

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <p class="brand">
          HDX <span>my health data{config ? ` at ${config.mspId}` : ''}</span>
        </p>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} id={`nav-${p.id}`} aria-current={p.id === page ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {!ready && <p>Loading…</p>}
        {ready && config && page === 'key' && <KeyPage config={config} current={key} onKey={setKey} />}
        {ready && config && page !== 'key' && !key && (
          <p class="notice">
            You have no key on this device yet. <a href="#/key">Create or import your key</a> first.
          </p>
        )}
        {ready && config && key && page === 'consents' && <ConsentPage config={config} patientKey={key} />}
        {ready && config && key && page === 'history' && <HistoryPage config={config} patientKey={key} />}
      </main>
    </>
  );
}
