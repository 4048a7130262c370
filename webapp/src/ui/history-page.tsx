import { useEffect, useState } from 'preact/hooks';
import { accessHistory, type AppConfig } from '../lib/api';
import { accessRows, type AccessRow, nextLink } from '../lib/audit';
import { PURPOSES } from '../lib/consent-form';
import type { PatientKey } from '../lib/keys';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
}

const PURPOSE_WORDS: Record<string, string> = { ...Object.fromEntries(PURPOSES.map((p) => [p.code, p.label])), ETREAT: 'an emergency (break-glass)' };

function when(instant: string): string {
  const d = new Date(instant);
  return Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

function Entry({ row }: { row: AccessRow }) {
  return (
    <li class={`card access ${row.permitted ? 'permit' : 'deny'}${row.breakGlass ? ' break-glass' : ''}`} data-outcome={row.permitted ? 'permit' : 'deny'}>
      <p class="verdict">
        {row.breakGlass && <strong class="badge glass">Break-glass</strong>}
        <strong class={`badge ${row.permitted ? 'ok' : 'no'}`}>{row.permitted ? 'Permitted' : 'Denied'}</strong> <time dateTime={row.when}>{when(row.when)}</time>
      </p>
      <dl>
        <dt>Who</dt>
        <dd class="mono">{row.who || 'unknown'}</dd>
        <dt>From</dt>
        <dd>{row.organization || 'unknown'}</dd>
        <dt>Where</dt>
        <dd>{row.where || 'unknown'}</dd>
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

export function HistoryPage({ config, patientKey }: Props) {
  const [rows, setRows] = useState<AccessRow[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);

  const load = async (pageUrl?: string): Promise<void> => {
    setLoading(true);
    setError('');
    try {
      const bundle = await accessHistory(config, patientKey, pageUrl);
      const page = accessRows(bundle);
      setRows(pageUrl ? (old) => [...old, ...page] : page);
      setNext(nextLink(bundle));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load();
  }, [patientKey.did]);

  const glass = rows.filter((r) => r.breakGlass).length;
  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">Access history</h1>
      <p>Every time someone asked for your data, through any member's gateway, the ledger recorded who, from where, when, why, and whether it was allowed.</p>
      <p role="status" class="status" id="history-status">
        {loading ? 'Loading…' : `${rows.length} access${rows.length === 1 ? '' : 'es'} shown${glass > 0 ? `, ${glass} break-glass` : ''}.`}
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
        {rows.map((r) => (
          <Entry key={r.id} row={r} />
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
