import { useEffect, useRef, useState } from 'preact/hooks';
import { accessHistory, type AppConfig } from '../lib/api';
import { accessRows, type AccessRow, nextLink } from '../lib/audit';
import { PURPOSES } from '../lib/consent-form';
import type { PatientKey } from '../lib/keys';
import { outcomeLabel } from '../lib/review';
import type { Live } from '../lib/live';
import { rowIsAbout, type Subject } from '../lib/wards';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  /** Whose history: the key holder's, or a ward's. */
  subject: Subject;
  /** The key holder's wards (the live stream carries their entries too). */
  wards: string[];
  live: Live;
}

const PURPOSE_WORDS: Record<string, string> = { ...Object.fromEntries(PURPOSES.map((p) => [p.code, p.label])), ETREAT: 'an emergency (break-glass)' };

function when(instant: string): string {
  const d = new Date(instant);
  return Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

const ACTIONS: Record<string, string> = {
  read: 'read',
  vread: 'read',
  'search-type': 'searched',
  'history-instance': 'read the history of',
  update: 'changed',
  create: 'added to',
};

/** One access in a sentence, for a notification: who, from where, what, why. */
export function sentenceOf(row: AccessRow, self: string): string {
  const who = row.who === self ? 'You' : `${row.who || 'Someone'}${row.organization ? ` of ${row.organization}` : ''}`;
  const whose = row.patient === '' || row.patient === self ? 'your data' : `the data of ${row.patient}`;
  const act = ACTIONS[row.interaction] ?? row.interaction;
  const what = row.permitted ? `${act} ${whose}` : `asked to ${act === 'read' ? 'read' : act} ${whose} and was refused`;
  return ` ${who} ${what}${row.where ? ` at ${row.where}` : ''}, for ${PURPOSE_WORDS[row.why] ?? row.why}, ${when(row.when)}.`;
}

function Entry({ row, self }: { row: AccessRow; self: string }) {
  return (
    <li class={`card access ${row.permitted ? 'permit' : 'deny'}${row.breakGlass ? ' break-glass' : ''}`} data-outcome={row.permitted ? 'permit' : 'deny'} data-event={row.id}>
      <p class="verdict">
        {row.breakGlass && <strong class="badge glass">Break-glass</strong>}
        {row.review && (
          <strong class={`badge review ${row.review.state}`} data-review={row.review.state === 'reviewed' ? (row.review.outcome ?? '') : 'open'}>
            {row.review.state === 'reviewed' ? `Auditor's review: ${outcomeLabel(row.review.outcome)}` : 'Not reviewed by an auditor yet'}
          </strong>
        )}
        <strong class={`badge ${row.permitted ? 'ok' : 'no'}`}>{row.permitted ? 'Permitted' : 'Denied'}</strong> <time dateTime={row.when}>{when(row.when)}</time>
      </p>
      <dl>
        <dt>Who</dt>
        <dd class="mono">{row.who || 'unknown'}</dd>
        <dt>From</dt>
        <dd>{row.organization || 'unknown'}</dd>
        <dt>Where</dt>
        <dd>{row.where || 'unknown'}</dd>
        {row.patient !== '' && row.patient !== self && (
          <>
            <dt>Whose</dt>
            <dd class="mono">{row.patient}</dd>
          </>
        )}
        <dt>Why</dt>
        <dd>{PURPOSE_WORDS[row.why] ?? row.why}</dd>
        <dt>What</dt>
        <dd class="mono">{row.what.length > 0 ? row.what.join(', ') : row.interaction}</dd>
        <dt>Decision</dt>
        <dd>
          {row.outcome}
          {row.consents.length > 0 ? `, by ${row.consents.join(', ')}` : ''}
        </dd>
      </dl>
    </li>
  );
}

/** Loaded pages and live entries together, each once, newest first. */
function merged(live: AccessRow[], loaded: AccessRow[]): AccessRow[] {
  const seen = new Set<string>();
  const out: AccessRow[] = [];
  // The search's row wins over the live one of the same entry: it carries what the stream does not (the
  // review state of a break-glass access).
  for (const r of [...loaded, ...live]) {
    if (seen.has(r.id)) continue;
    seen.add(r.id);
    out.push(r);
  }
  return out.sort((a, b) => (a.when < b.when ? 1 : a.when > b.when ? -1 : 0));
}

export function HistoryPage({ config, patientKey, subject, wards, live }: Props) {
  const [rows, setRows] = useState<AccessRow[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);

  const load = async (pageUrl?: string, isCurrent: () => boolean = () => true): Promise<void> => {
    setLoading(true);
    setError('');
    try {
      const bundle = await accessHistory(config, patientKey, pageUrl, subject.did);
      if (!isCurrent()) return;
      const page = accessRows(bundle);
      setRows(pageUrl ? (old) => [...old, ...page] : page);
      setNext(nextLink(bundle));
    } catch (err) {
      if (isCurrent()) setError(err instanceof Error ? err.message : String(err));
    } finally {
      setLoading(false);
    }
  };
  // Loaded again after each fresh connection of the live stream: what committed before it started is in the search.
  const shownFor = useRef(subject.did);
  useEffect(() => {
    let current = true;
    // Another person's history: nothing of the previous one's stays shown (a reconnection keeps the rows until reloaded).
    if (shownFor.current !== subject.did) {
      shownFor.current = subject.did;
      setRows([]);
      setNext(undefined);
    }
    void load(undefined, () => current);
    return () => {
      current = false;
    };
  }, [patientKey.did, subject.did, live.epoch]);

  const all = merged(
    live.rows.filter((r) => rowIsAbout(r.patient, subject, wards)),
    rows,
  );
  const glass = all.filter((r) => r.breakGlass).length;
  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">{subject.self ? 'Access history' : 'Access history of your ward'}</h1>
      <p>
        Every time someone asked for your data, through any member's gateway, the ledger recorded who, from where, when, why, and whether it was allowed. New accesses appear here
        as the ledger records them, without reloading.
      </p>
      <p role="status" class="status" id="history-status">
        {loading ? 'Loading…' : `${all.length} access${all.length === 1 ? '' : 'es'} shown${glass > 0 ? `, ${glass} break-glass` : ''}.`}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="button" class="secondary" id="refresh-history" disabled={loading} onClick={() => void load()}>
        Refresh
      </button>
      <ul class="cards" id="history-list">
        {all.map((r) => (
          <Entry key={r.id} row={r} self={patientKey.did} />
        ))}
      </ul>
      {next && (
        <button type="button" class="secondary" disabled={loading} onClick={() => void load(next)}>
          Show older accesses
        </button>
      )}
    </section>
  );
}
