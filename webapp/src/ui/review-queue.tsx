import { useEffect, useRef, useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import { toAccessRow } from '../lib/audit';
import type { PatientKey } from '../lib/keys';
import { followAccesses, type LiveState } from '../lib/live';
import { joinQueue, ledgerEventId, openQueue, outcomeLabel, recordReview, REVIEW_OUTCOMES, type ReviewOutcome, reviewOf } from '../lib/review';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  /** Told of every review recorded here (the updated AuditEvent), so the search results can show it. */
  onReviewed?: (event: Record<string, unknown>) => void;
}

interface Reviewed {
  eventId: string;
  event: Record<string, unknown>;
}

function when(instant: string): string {
  const d = new Date(instant);
  return Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

/**
 * The break-glass review queue: the break-glass accesses no auditor has reviewed yet, each with an
 * outcome to record. The outcome is signed with the auditor's key here and kept on the ledger; the
 * entry then leaves the queue and is listed with its outcome.
 */
export function ReviewQueue({ config, patientKey, onReviewed }: Props) {
  const [queue, setQueue] = useState<Array<Record<string, unknown>>>([]);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const [choices, setChoices] = useState<Record<string, ReviewOutcome>>({});
  const [reviewed, setReviewed] = useState<Reviewed[]>([]);
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const [live, setLive] = useState<{ state: LiveState; detail: string }>({ state: 'stopped', detail: '' });
  /** Entries that joined the queue from the live stream (marked until the queue is reloaded). */
  const [arrived, setArrived] = useState<string[]>([]);
  const reviewedIds = useRef(new Set<string>());

  const load = async (): Promise<void> => {
    setBusy(true);
    setError('');
    setStatus('Loading the review queue…');
    try {
      const open = await openQueue(config, patientKey);
      setQueue(open.filter((e) => !reviewedIds.current.has(ledgerEventId(e) ?? '')));
      setArrived([]);
      setLoaded(true);
      setStatus(`${open.length} break-glass access${open.length === 1 ? '' : 'es'} waiting for review.`);
    } catch (err) {
      setStatus('');
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  // Once loaded, the queue follows the gateway's live stream of break-glass accesses (an auditor's
  // $stream): a new one joins the queue as its block commits. Each fresh connection reloads the queue,
  // so nothing committed before the stream started is missed.
  const connections = useRef(0);
  useEffect(() => {
    if (!loaded) return undefined;
    return followAccesses(
      config,
      patientKey,
      {
        onAccess: (event) => {
          const id = ledgerEventId(event);
          if (id === undefined || reviewedIds.current.has(id) || !toAccessRow(event).breakGlass) return;
          const row = toAccessRow(event);
          setQueue((old) => joinQueue(old, event));
          setArrived((a) => (a.includes(id) ? a : [...a, id]));
          setStatus(`A new break-glass access joined the queue: ${row.who} (${row.organization}), through ${row.where}.`);
        },
        onReady: (resumed) => {
          connections.current += 1;
          if (!resumed && connections.current > 1) void load();
        },
        onState: (state, detail) => setLive({ state, detail: detail ?? '' }),
      },
      { scope: 'user/AuditEvent.read' },
    );
  }, [loaded, patientKey.did]);

  const record = async (e: Event, eventId: string): Promise<void> => {
    e.preventDefault();
    const outcome = choices[eventId];
    if (!outcome) {
      setError('Choose an outcome first.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      const updated = await recordReview(config, patientKey, eventId, outcome);
      reviewedIds.current.add(eventId);
      setQueue((old) => old.filter((x) => ledgerEventId(x) !== eventId));
      setReviewed((old) => [{ eventId, event: updated }, ...old.filter((r) => r.eventId !== eventId)]);
      setStatus(`Outcome recorded on the ledger: ${outcomeLabel(reviewOf(updated)?.outcome)}.`);
      onReviewed?.(updated);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="review-title" id="review-queue">
      <h2 id="review-title">Review queue</h2>
      <p>
        Break-glass accesses no auditor has reviewed yet, oldest first; once loaded, new ones join as the ledger records them. Record an outcome for each: it is signed with your
        key and kept on the ledger (no notes: the ledger keeps only the outcome). A review cannot be withdrawn (the chaincode keeps every review): a later one adds to the record
        and becomes the current outcome.
      </p>
      <p class="actions">
        <button type="button" id="review-load" disabled={busy} onClick={() => void load()}>
          {loaded ? 'Reload the review queue' : 'Load the review queue'}
        </button>
      </p>
      {loaded && (
        <p class={`live-state ${live.state}`} id="review-live">
          {live.state === 'live'
            ? 'Live: new break-glass accesses join the queue as the ledger records them.'
            : live.state === 'stopped'
              ? `Not live: reload the queue by hand.${live.detail ? ` ${live.detail}` : ''}`
              : 'Connecting to the live stream of break-glass accesses…'}
        </p>
      )}
      <p role="status" class="status" id="review-status">
        {status}
      </p>
      {error && (
        <p class="error" role="alert" id="review-error">
          {error}
        </p>
      )}
      {queue.length > 0 && (
        <ul class="review-list" id="review-open" aria-label="Open break-glass accesses">
          {queue.map((event) => {
            const eventId = ledgerEventId(event) ?? '';
            const row = toAccessRow(event);
            const selectId = `review-outcome-${eventId.replace(/[^A-Za-z0-9]/g, '-')}`;
            return (
              <li key={eventId} class="review-item break-glass" data-event-id={eventId} data-live={arrived.includes(eventId) ? 'new' : undefined}>
                <p>
                  {arrived.includes(eventId) && <strong class="badge new">New</strong>}
                  <strong class="badge glass">Break-glass</strong> <time dateTime={row.when}>{when(row.when)}</time>: <span class="mono">{row.who}</span> ({row.organization}) read{' '}
                  <span class="mono">{row.what.length > 0 ? row.what.join(', ') : row.interaction}</span> of patient <span class="mono">{row.patient}</span>, through {row.where};{' '}
                  {row.outcome}.
                </p>
                <form class="review-form" onSubmit={(e) => void record(e, eventId)}>
                  <label for={selectId}>
                    Outcome
                    <select
                      id={selectId}
                      class="review-outcome"
                      value={choices[eventId] ?? ''}
                      onChange={(e) => setChoices({ ...choices, [eventId]: e.currentTarget.value as ReviewOutcome })}
                      required
                    >
                      <option value="">choose…</option>
                      {REVIEW_OUTCOMES.map((o) => (
                        <option key={o.code} value={o.code}>
                          {o.label}
                        </option>
                      ))}
                    </select>
                  </label>{' '}
                  <button type="submit" class="review-record" disabled={busy || !choices[eventId]}>
                    Record outcome
                  </button>
                </form>
              </li>
            );
          })}
        </ul>
      )}
      {reviewed.length > 0 && (
        <>
          <h3 id="reviewed-title">Reviewed here</h3>
          <ul class="review-list" id="review-done" aria-labelledby="reviewed-title">
            {reviewed.map(({ eventId, event }) => {
              const review = reviewOf(event);
              const row = toAccessRow(event);
              return (
                <li key={eventId} class="review-item" data-event-id={eventId}>
                  <strong class={`badge ${review?.outcome === 'justified' ? 'ok' : 'no'}`} data-outcome={review?.outcome ?? ''}>
                    {outcomeLabel(review?.outcome)}
                  </strong>{' '}
                  <time dateTime={row.when}>{when(row.when)}</time>: <span class="mono">{row.who}</span> ({row.organization}); reviewed{' '}
                  {review?.reviewed ? when(review.reviewed) : ''}
                  {review && review.reviews > 1 ? ` (${review.reviews} reviews, latest shown)` : ''}.
                </li>
              );
            })}
          </ul>
        </>
      )}
    </section>
  );
}
