import { useEffect, useState } from 'preact/hooks';
import { ApiError, type AppConfig, patientRead } from '../lib/api';
import type { PatientKey } from '../lib/keys';
import { groupByType, patientDid, type RecordRow, resourcesOf, toRecordRow, toVerification, type Verification } from '../lib/records';
import type { Subject } from '../lib/wards';

interface Props {
  config: AppConfig;
  patientKey: PatientKey;
  /** Whose records: the key holder's, or a ward's. */
  subject: Subject;
}

interface Holder {
  /** The Patient at this member. */
  patientId: string;
  did: string;
  rows: RecordRow[];
}

type Check = { state: 'checking' } | { state: 'done'; result: Verification } | { state: 'failed'; message: string };

function when(instant: string): string {
  const d = new Date(instant);
  return instant === '' || Number.isNaN(d.getTime()) ? instant : d.toLocaleString();
}

function CheckResult({ check }: { check: Check | undefined }) {
  if (!check) return <span class="muted">Not checked yet</span>;
  if (check.state === 'checking') return <span>Checking against the ledger…</span>;
  if (check.state === 'failed') return <span class="no-text">Could not check: {check.message}</span>;
  const r = check.result;
  return r.verified ? (
    <span class="ok-text">
      <strong class="badge ok">Verified</strong>matches its ledger anchor, written by {r.custodian || 'its custodian'} on {when(r.anchoredAt)} (transaction{' '}
      <span class="mono">{r.transaction.slice(0, 12)}…</span>)
    </span>
  ) : (
    <span class="no-text">
      <strong class="badge no">Not verified</strong>
      {r.reason}
    </span>
  );
}

export function RecordsPage({ config, patientKey, subject }: Props) {
  const [holders, setHolders] = useState<Holder[]>([]);
  const [checks, setChecks] = useState<Record<string, Check>>({});
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(false);
  const [checking, setChecking] = useState(false);

  const load = async (isCurrent: () => boolean = () => true): Promise<void> => {
    setLoading(true);
    setError('');
    try {
      // The key holder's own Patient here, or the ward's (named by DID: the gateway's compartment rule lets a guardian see it).
      const query = subject.self ? '/Patient?_count=50' : `/Patient?patient=${encodeURIComponent(subject.did)}&_count=50`;
      const patients = resourcesOf(await patientRead(config, patientKey, query)).filter((r) => r.resourceType === 'Patient');
      const out: Holder[] = [];
      for (const p of patients) {
        const id = String(p.id);
        let rows: RecordRow[] = [];
        try {
          rows = resourcesOf(await patientRead(config, patientKey, `/Patient/${encodeURIComponent(id)}/$everything`)).map(toRecordRow);
        } catch (err) {
          // $everything of a patient with nothing the caller may see is a 404: the Patient alone is listed.
          if (!(err instanceof ApiError && err.status === 404)) throw err;
          rows = [toRecordRow(p)];
        }
        out.push({ patientId: id, did: patientDid(p), rows });
      }
      if (isCurrent()) setHolders(out);
    } catch (err) {
      if (!isCurrent()) return;
      setError(err instanceof ApiError && err.status === 404 ? '' : err instanceof Error ? err.message : String(err));
      setHolders([]);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    let current = true;
    setHolders([]);
    setChecks({});
    void load(() => current);
    return () => {
      current = false;
    };
  }, [patientKey.did, subject.did]);

  const verify = async (row: RecordRow): Promise<void> => {
    setChecks((c) => ({ ...c, [row.ref]: { state: 'checking' } }));
    try {
      const result = toVerification(await patientRead(config, patientKey, `/${row.type}/${encodeURIComponent(row.id)}/$verify`));
      setChecks((c) => ({ ...c, [row.ref]: { state: 'done', result } }));
    } catch (err) {
      setChecks((c) => ({ ...c, [row.ref]: { state: 'failed', message: err instanceof Error ? err.message : String(err) } }));
    }
  };
  const verifyAll = async (): Promise<void> => {
    setChecking(true);
    for (const h of holders) for (const r of h.rows) await verify(r);
    setChecking(false);
  };

  const total = holders.reduce((n, h) => n + h.rows.length, 0);
  const done = Object.values(checks).filter((c) => c.state === 'done');
  const verified = done.filter((c) => c.state === 'done' && c.result.verified).length;
  return (
    <section aria-labelledby="records-title">
      <h1 id="records-title">{subject.self ? `My records at ${config.mspId}` : `Your ward's records at ${config.mspId}`}</h1>
      <p>
        What this member holds about you (and your wards), of which kind, from whom. <em>Check against the ledger</em> asks the ledger whether each record is exactly the version
        its custodian anchored there. Each check is a read, and is listed in your access history.
      </p>
      <p role="status" class="status" id="records-status">
        {loading ? 'Loading…' : `${total} record${total === 1 ? '' : 's'} here${done.length > 0 ? `; ${verified} of ${done.length} checked verified against the ledger` : ''}.`}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!loading && holders.length === 0 && !error && (
        <p class="notice" id="no-records">
          {subject.self ? 'This member holds no record linked to your DID.' : 'This member holds no record linked to your ward’s DID.'}
        </p>
      )}
      <p class="actions">
        <button type="button" id="verify-all" disabled={loading || checking || total === 0} onClick={() => void verifyAll()}>
          Check all against the ledger
        </button>{' '}
        <button type="button" class="secondary" disabled={loading} onClick={() => void load()}>
          Refresh
        </button>
      </p>
      {holders.map((h) => (
        <section key={h.patientId} aria-label={h.did === patientKey.did ? 'Your records' : `Records of your ward ${h.did}`}>
          <h2>{h.did === patientKey.did ? 'Your records' : `Your ward ${h.did}`}</h2>
          {groupByType(h.rows).map((g) => (
            <section key={g.type} class="record-group">
              <h3>
                {g.type} <span class="muted">({g.rows.length})</span>
              </h3>
              <ul class="cards records" id={`records-${g.type}`}>
                {g.rows.map((r) => (
                  <li
                    key={r.ref}
                    class="card record"
                    data-ref={r.ref}
                    data-verified={checks[r.ref]?.state === 'done' ? String((checks[r.ref] as { result: Verification }).result.verified) : undefined}
                  >
                    <p>
                      <strong>{r.what}</strong>
                      {r.value ? `: ${r.value}` : ''}
                    </p>
                    <dl>
                      <dt>When</dt>
                      <dd>{when(r.when) || 'unknown'}</dd>
                      <dt>From</dt>
                      <dd>{r.from || config.mspId}</dd>
                      <dt>Record</dt>
                      <dd class="mono">
                        {r.ref}
                        {r.version ? `, version ${r.version}` : ''}
                      </dd>
                      <dt>Ledger</dt>
                      <dd>
                        <CheckResult check={checks[r.ref]} />
                      </dd>
                    </dl>
                    <button
                      type="button"
                      class="secondary"
                      disabled={checks[r.ref]?.state === 'checking'}
                      onClick={() => void verify(r)}
                      aria-label={`Check ${r.ref} against the ledger`}
                    >
                      Check
                    </button>
                  </li>
                ))}
              </ul>
            </section>
          ))}
        </section>
      ))}
    </section>
  );
}
