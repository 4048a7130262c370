import { useState } from 'preact/hooks';
import { type AppConfig, fhirRequest } from '../lib/api';
import { nextLink } from '../lib/audit';
import { type AuditFilters, auditBundle, type DayCount, NO_FILTERS, perDay, searchPath, selectEvents, toCsv } from '../lib/auditor';
import { PURPOSES } from '../lib/consent-form';
import type { PatientKey } from '../lib/keys';
import { ledgerEventId, outcomeLabel, reviewOf } from '../lib/review';
import { ReceiptCheck } from './receipt-check';
import { ReviewQueue } from './review-queue';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
}

/** Pages fetched per search (100 entries each) before the auditor is offered more. */
const PAGES_PER_FETCH = 10;

const PURPOSE_CHOICES: ReadonlyArray<{ code: string; label: string }> = [
  ...PURPOSES,
  { code: 'ETREAT', label: 'emergency treatment (break-glass)' },
  { code: 'HCOMPL', label: 'compliance' },
  { code: 'HOPERAT', label: 'operations' },
  { code: 'HLEGAL', label: 'legal' },
  { code: 'PUBHLTH', label: 'public health' },
].filter((p, i, all) => all.findIndex((x) => x.code === p.code) === i);

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function when(instant: string): string {
  const d = new Date(instant);
  return Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

/** Accesses per day as a table a screen reader reads, with bars for the eye (hidden from assistive technology). */
function PerDayChart({ days }: { days: DayCount[] }) {
  const max = Math.max(1, ...days.map((d) => d.total));
  const pct = (n: number): string => `${(100 * n) / max}%`;
  return (
    <div class="table-wrap">
      <table id="audit-per-day" class="per-day">
        <caption>Accesses per day (UTC): all, denied, break-glass</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            <th scope="col">Accesses</th>
            <th scope="col">Denied</th>
            <th scope="col">Break-glass</th>
            <th scope="col">
              <span class="visually-hidden">Chart</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {days.map((d) => (
            <tr key={d.day}>
              <th scope="row">{d.day}</th>
              <td>{d.total}</td>
              <td>{d.denied}</td>
              <td>{d.breakGlass}</td>
              <td class="bars" aria-hidden="true">
                <span class="day-bar all" style={{ width: pct(d.total) }} />
                <span class="day-bar denied" style={{ width: pct(d.denied) }} />
                <span class="day-bar glass" style={{ width: pct(d.breakGlass) }} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function AuditorPage({ config, patientKey }: Props) {
  const [filters, setFilters] = useState<AuditFilters>(NO_FILTERS);
  const [events, setEvents] = useState<Array<Record<string, unknown>>>([]);
  const [next, setNext] = useState<string | undefined>();
  const [searched, setSearched] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState('');

  const fetchPages = async (first: string, append: boolean): Promise<void> => {
    setLoading(true);
    setError('');
    try {
      const got: Array<Record<string, unknown>> = [];
      let url: string | undefined = first;
      for (let i = 0; url !== undefined && i < PAGES_PER_FETCH; i += 1) {
        const bundle = (await fhirRequest(config, patientKey, 'user/AuditEvent.read', 'GET', url)) as { entry?: Array<{ resource?: Record<string, unknown> }> };
        for (const e of bundle.entry ?? []) if (e.resource?.resourceType === 'AuditEvent') got.push(e.resource);
        url = nextLink(bundle);
      }
      setEvents((old) => (append ? [...old, ...got] : got));
      setNext(url);
      setSearched(true);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setLoading(false);
    }
  };

  const onSearch = (e: Event): void => {
    e.preventDefault();
    let path: string;
    try {
      path = searchPath(filters);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      return;
    }
    void fetchPages(path, false);
  };

  const selected = selectEvents(events, filters);
  const glass = selected.filter((s) => s.row.breakGlass).length;
  const denied = selected.filter((s) => !s.row.permitted).length;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const set = (patch: Partial<AuditFilters>): void => setFilters({ ...filters, ...patch });

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Access history review</h1>
      <p>
        For auditors: search every access recorded on the ledger, through any member. Sign in with an auditor key registered by the regulator, on the regulator's gateway. Patient,
        actor, dates and decision are searched on the ledger; organization, purpose and break-glass are filtered here, over what was fetched.
      </p>
      <ReviewQueue
        config={config}
        patientKey={patientKey}
        onReviewed={(updated) => setEvents((old) => old.map((e) => (ledgerEventId(e) !== undefined && ledgerEventId(e) === ledgerEventId(updated) ? updated : e)))}
      />
      <h2 id="audit-search-title">Search</h2>
      <form id="audit-search" onSubmit={onSearch} aria-labelledby="audit-search-title">
        <div class="filters">
          <label for="f-patient">
            Patient DID
            <input id="f-patient" class="mono" value={filters.patient} onInput={(e) => set({ patient: e.currentTarget.value })} placeholder="did:hdx:…" autoComplete="off" />
          </label>
          <label for="f-actor">
            Actor DID
            <input id="f-actor" class="mono" value={filters.actor} onInput={(e) => set({ actor: e.currentTarget.value })} placeholder="did:hdx:…" autoComplete="off" />
          </label>
          <label for="f-org">
            Actor's organization
            <input id="f-org" value={filters.organization} onInput={(e) => set({ organization: e.currentTarget.value })} placeholder="Hospital2MSP" autoComplete="off" />
          </label>
          <label for="f-purpose">
            Purpose
            <select id="f-purpose" value={filters.purpose} onChange={(e) => set({ purpose: e.currentTarget.value })}>
              <option value="">any</option>
              {PURPOSE_CHOICES.map((p) => (
                <option key={p.code} value={p.code}>
                  {p.label} ({p.code})
                </option>
              ))}
            </select>
          </label>
          <label for="f-decision">
            Decision
            <select id="f-decision" value={filters.decision} onChange={(e) => set({ decision: e.currentTarget.value as AuditFilters['decision'] })}>
              <option value="">permit or deny</option>
              <option value="permit">permitted</option>
              <option value="deny">denied</option>
            </select>
          </label>
          <label for="f-from">
            From (date)
            <input id="f-from" type="date" value={filters.from} onInput={(e) => set({ from: e.currentTarget.value })} />
          </label>
          <label for="f-to">
            To (date)
            <input id="f-to" type="date" value={filters.to} onInput={(e) => set({ to: e.currentTarget.value })} />
          </label>
        </div>
        <label class="check" for="f-glass">
          <input id="f-glass" type="checkbox" checked={filters.breakGlassOnly} onChange={(e) => set({ breakGlassOnly: e.currentTarget.checked })} />
          Break-glass accesses only
        </label>
        <p class="actions">
          <button type="submit" id="audit-search-button" disabled={loading}>
            Search
          </button>{' '}
          <button type="button" class="secondary" disabled={loading} onClick={() => setFilters(NO_FILTERS)}>
            Clear filters
          </button>
        </p>
      </form>
      <p role="status" class="status" id="audit-status">
        {loading
          ? 'Searching…'
          : searched
            ? `${selected.length} access${selected.length === 1 ? '' : 'es'} match (${denied} denied, ${glass} break-glass), of ${events.length} fetched${next ? '; more on the ledger' : ''}.`
            : ''}
      </p>
      {error && (
        <p class="error" role="alert" id="audit-error">
          {error}
        </p>
      )}
      {searched && (
        <p class="actions">
          <button
            type="button"
            class="secondary"
            id="export-csv"
            disabled={selected.length === 0}
            onClick={() => download(`hdx-access-${stamp}.csv`, toCsv(selected.map((s) => s.row)), 'text/csv')}
          >
            Export CSV
          </button>{' '}
          <button
            type="button"
            class="secondary"
            id="export-bundle"
            disabled={selected.length === 0}
            onClick={() =>
              download(
                `hdx-access-${stamp}.json`,
                `${JSON.stringify(
                  auditBundle(
                    selected.map((s) => s.event),
                    new Date().toISOString(),
                  ),
                  null,
                  2,
                )}\n`,
                'application/fhir+json',
              )
            }
          >
            Export FHIR Bundle
          </button>{' '}
          {next && (
            <button type="button" class="secondary" disabled={loading} onClick={() => void fetchPages(next, true)}>
              Fetch more
            </button>
          )}
        </p>
      )}
      {selected.length > 0 && <PerDayChart days={perDay(selected.map((s) => s.row))} />}
      <div class="table-wrap">
        <table id="audit-results" aria-describedby="audit-status">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Decision</th>
              <th scope="col">Actor</th>
              <th scope="col">Organization</th>
              <th scope="col">Purpose</th>
              <th scope="col">Patient</th>
              <th scope="col">What</th>
              <th scope="col">Through</th>
              <th scope="col">Ledger receipt</th>
            </tr>
          </thead>
          <tbody>
            {selected.map(({ row, event }) => {
              const review = reviewOf(event);
              const eventId = ledgerEventId(event);
              return (
                <tr key={row.id} class={`${row.permitted ? 'permit' : 'deny'}${row.breakGlass ? ' break-glass' : ''}`} data-event={row.id} data-event-id={eventId}>
                  <td>
                    <time dateTime={row.when}>{when(row.when)}</time>
                  </td>
                  <td>
                    {row.breakGlass && <strong class="badge glass">Break-glass</strong>}
                    {review && (
                      <strong class={`badge review ${review.state}`} data-review={review.state === 'reviewed' ? (review.outcome ?? '') : 'open'}>
                        {review.state === 'reviewed' ? `Reviewed: ${outcomeLabel(review.outcome)}` : 'Review open'}
                      </strong>
                    )}
                    <strong class={`badge ${row.permitted ? 'ok' : 'no'}`}>{row.permitted ? 'Permitted' : 'Denied'}</strong>
                    <span class="muted">{row.outcome}</span>
                  </td>
                  <td class="mono">{row.who}</td>
                  <td>{row.organization}</td>
                  <td>{row.why}</td>
                  <td class="mono">{row.patient}</td>
                  <td class="mono">{row.what.length > 0 ? row.what.join(', ') : row.interaction}</td>
                  <td>{row.where}</td>
                  <td>{eventId ? <ReceiptCheck config={config} patientKey={patientKey} eventId={eventId} event={event} /> : <span class="muted">no ledger event id</span>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}
