import { useEffect, useRef, useState } from 'preact/hooks';
import { type AppConfig, loadConfig } from '../lib/api';
import { type AccessRow, toAccessRow } from '../lib/audit';
import { loadKey } from '../lib/key-store';
import type { PatientKey } from '../lib/keys';
import { followAccesses, type Live, type LiveState } from '../lib/live';
import { AuditorPage } from './auditor-page';
import { ConsentPage } from './consent-page';
import { HistoryPage, sentenceOf } from './history-page';
import { KeyPage } from './key-page';
import { RecordsPage } from './records-page';
import { RequestsPage } from './requests-page';
import { StaffPage } from './staff-page';
import type { ConsentForm } from '../lib/consent-form';
import { formFromRequest } from '../lib/staff';
import { SubjectPicker } from './subject-picker';
import { loadWards, saveWards, type Subject } from '../lib/wards';

type Page = 'key' | 'records' | 'consents' | 'requests' | 'history' | 'audit' | 'staff';

const PAGES: ReadonlyArray<{ id: Page; label: string }> = [
  { id: 'key', label: 'My key' },
  { id: 'records', label: 'My records' },
  { id: 'consents', label: 'Consents' },
  { id: 'requests', label: 'Requests' },
  { id: 'history', label: 'Access history' },
  { id: 'audit', label: 'Auditor' },
  { id: 'staff', label: 'Staff' },
];

function pageOfHash(): Page {
  const id = location.hash.replace(/^#\/?/, '');
  return PAGES.some((p) => p.id === id) ? (id as Page) : 'key';
}

interface Notice {
  id: string;
  row: AccessRow;
}

const LIVE_WORDS: Record<LiveState, string> = {
  connecting: 'Connecting to live notifications…',
  live: 'Live: new accesses appear here as the ledger records them.',
  reconnecting: 'Reconnecting to live notifications…',
  stopped: 'Live notifications are off.',
};

export function App() {
  const [config, setConfig] = useState<AppConfig | undefined>();
  const [key, setKey] = useState<PatientKey | undefined>();
  const [ready, setReady] = useState(false);
  const [error, setError] = useState('');
  const [page, setPage] = useState<Page>(pageOfHash());
  const [live, setLive] = useState<Live>({ state: 'stopped', detail: '', rows: [], epoch: 0 });
  const [notices, setNotices] = useState<Notice[]>([]);
  // Whose data the patient pages manage: the key holder's own, or a ward's (a guardian acting for them).
  const [wards, setWards] = useState<string[]>([]);
  const [chosen, setSubject] = useState<Subject | undefined>();
  // The consent form prefilled from an access request (Requests → Grant), until the patient leaves Consents.
  const [prefill, setPrefill] = useState<ConsentForm | undefined>();
  useEffect(() => {
    if (page !== 'consents') setPrefill(undefined);
  }, [page]);
  // Only the key holder or one of their wards, also in the render right after the key changed.
  const subject: Subject | undefined =
    key && chosen && (chosen.self ? chosen.did === key.did : wards.includes(chosen.did)) ? chosen : key ? { did: key.did, self: true } : undefined;
  useEffect(() => {
    setSubject(key ? { did: key.did, self: true } : undefined);
    setWards([]);
    if (!key) return;
    loadWards(key.did)
      .then(setWards)
      .catch(() => setWards([]));
  }, [key?.did]);
  const changeWards = (next: string[]): void => {
    setWards(next);
    if (key) void saveWards(key.did, next);
  };
  // A stream the gateway refused (a DID not registered yet, a key that is not a patient's) is tried again at the next page change.
  const refused = useRef(false);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!refused.current) return;
    refused.current = false;
    setAttempt((a) => a + 1);
  }, [page]);

  // Not on the key page until the stream has been live once: a key just made is not registered yet, and
  // asking with it would only be refused (and the gateway remembers an unknown DID for a few seconds).
  const everLive = useRef(false);
  const wantLive = page !== 'key' || everLive.current;

  // One live stream while the app is open with a key: notifications on every page, rows for the history.
  useEffect(() => {
    if (!config || !key || !wantLive) return undefined;
    setLive({ state: 'connecting', detail: '', rows: [], epoch: 0 });
    return followAccesses(config, key, {
      onAccess: (event) => {
        const row = toAccessRow(event);
        setLive((l) => (l.rows.some((r) => r.id === row.id) ? l : { ...l, rows: [row, ...l.rows] }));
        // The patient's own reads (through this app) are listed, not announced.
        if (row.who !== key.did) setNotices((n) => [{ id: row.id, row }, ...n.filter((x) => x.id !== row.id)].slice(0, 5));
      },
      onReady: (resumed) => {
        if (!resumed) setLive((l) => ({ ...l, epoch: l.epoch + 1 }));
      },
      onState: (state, detail) => {
        if (state === 'stopped') refused.current = true;
        if (state === 'live') everLive.current = true;
        setLive((l) => ({ ...l, state, detail: detail ?? '' }));
      },
    });
  }, [config, key?.did, attempt, wantLive]);

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
      {key && (
        <p class={`live-state ${live.state}`} id="live-state">
          {LIVE_WORDS[live.state]}
          {live.state !== 'live' && live.detail ? ` ${live.detail}` : ''}
        </p>
      )}
      <section class="live-notices" aria-label="New accesses" aria-live="polite" aria-relevant="additions" id="live-notices">
        {notices.map((n) => (
          <div key={n.id} class={`live-notice ${n.row.permitted ? 'permit' : 'deny'}${n.row.breakGlass ? ' break-glass' : ''}`} data-event={n.row.id}>
            <p>
              {n.row.breakGlass && <strong class="badge glass">Break-glass</strong>}
              <strong class={`badge ${n.row.permitted ? 'ok' : 'no'}`}>{n.row.permitted ? 'Permitted' : 'Denied'}</strong>
              {sentenceOf(n.row, key?.did ?? '')}
            </p>
            <button type="button" class="secondary" aria-label="Dismiss this notification" onClick={() => setNotices((all) => all.filter((x) => x.id !== n.id))}>
              Dismiss
            </button>
          </div>
        ))}
      </section>
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
        {ready && config && key && subject && (page === 'records' || page === 'consents' || page === 'requests' || page === 'history') && (
          <SubjectPicker
            config={config}
            patientKey={key}
            wards={wards}
            subject={subject}
            onSubject={setSubject}
            onWard={(did) => {
              changeWards([...wards.filter((w) => w !== did), did]);
              setSubject({ did, self: false });
            }}
            onForget={(did) => {
              changeWards(wards.filter((w) => w !== did));
              setSubject({ did: key.did, self: true });
            }}
          />
        )}
        {ready && config && key && subject && page === 'records' && <RecordsPage config={config} patientKey={key} subject={subject} />}
        {ready && config && key && subject && page === 'consents' && <ConsentPage config={config} patientKey={key} subject={subject} prefill={prefill} />}
        {ready && config && key && subject && page === 'requests' && (
          <RequestsPage
            config={config}
            patientKey={key}
            subject={subject}
            onGrant={(row) => {
              setPrefill(formFromRequest(row));
              location.hash = '#/consents';
            }}
          />
        )}
        {ready && config && key && page === 'staff' && <StaffPage config={config} patientKey={key} />}
        {ready && config && key && page === 'audit' && <AuditorPage config={config} patientKey={key} />}
        {ready && config && key && subject && page === 'history' && <HistoryPage config={config} patientKey={key} subject={subject} wards={wards} live={live} />}
      </main>
    </>
  );
}
