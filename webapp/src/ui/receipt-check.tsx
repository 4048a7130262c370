import { useState } from 'preact/hooks';
import type { AppConfig } from '../lib/api';
import type { PatientKey } from '../lib/keys';
import type { BrowserReceiptReport } from '../lib/receipt';

type State =
  | { state: 'idle' }
  | { state: 'checking' }
  | { state: 'verified'; report: BrowserReceiptReport; receipt: unknown }
  | { state: 'failed'; message: string; receipt?: unknown }
  | { state: 'unavailable'; message: string };

function saveReceipt(eventId: string, receipt: unknown): void {
  const url = URL.createObjectURL(new Blob([`${JSON.stringify(receipt)}\n`], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `receipt-${eventId}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * One access row's ledger receipt: fetched from the gateway, then checked here (WebCrypto), with no
 * further trust in the gateway; the result is shown as verified (who endorsed it, in which block) or
 * failed (which check).
 */
export function ReceiptCheck({ config, patientKey, eventId, event }: { config: AppConfig; patientKey: PatientKey; eventId: string; event: unknown }) {
  const [check, setCheck] = useState<State>({ state: 'idle' });

  const run = async (): Promise<void> => {
    setCheck({ state: 'checking' });
    let receipt: unknown;
    // The verifier (protobuf, X.509) is loaded only when an auditor checks a receipt.
    let verifier: typeof import('../lib/receipt');
    try {
      verifier = await import('../lib/receipt');
      receipt = await verifier.fetchReceipt(config, patientKey, eventId);
    } catch (err) {
      setCheck({ state: 'unavailable', message: err instanceof Error ? err.message : String(err) });
      return;
    }
    try {
      const report = await verifier.verifyReceiptInBrowser(receipt);
      const mismatch = verifier.entryMatchesEvent(report.entry, event);
      if (mismatch) setCheck({ state: 'failed', message: mismatch, receipt });
      else setCheck({ state: 'verified', report, receipt });
    } catch (err) {
      setCheck({ state: 'failed', message: err instanceof Error ? err.message : String(err), receipt });
    }
  };

  return (
    <div class="receipt" data-receipt={check.state} aria-live="polite">
      {check.state === 'idle' && (
        <button type="button" class="secondary receipt-check" onClick={() => void run()} aria-label={`Check the ledger receipt of entry ${eventId}`}>
          Check receipt
        </button>
      )}
      {check.state === 'checking' && <span>Checking the receipt…</span>}
      {check.state === 'verified' && (
        <span class="ok-text">
          <strong class="badge ok">Receipt verified</strong> endorsed by {check.report.endorsedBy.join(', ')}, block {check.report.blockNumber} (ordered by{' '}
          {check.report.orderedBy.join(', ')}), submitted by {check.report.submittedBy}; the entry is exactly the one written.
          <details>
            <summary>Root certificates to compare with the consortium’s</summary>
            <ul class="mono">
              {Object.entries(check.report.rootCertificates).map(([msp, prints]) => (
                <li key={msp}>
                  {msp}: {prints.join(', ')}
                </li>
              ))}
              <li>
                config block {check.report.configBlockNumber}: {check.report.configBlockHash}
              </li>
            </ul>
          </details>
        </span>
      )}
      {check.state === 'failed' && (
        <span class="no-text" role="alert">
          <strong class="badge no">Receipt check failed</strong> {check.message}
        </span>
      )}
      {check.state === 'unavailable' && (
        <span class="no-text" role="alert">
          <strong class="badge no">No receipt</strong> {check.message}
        </span>
      )}
      {(check.state === 'verified' || check.state === 'failed') && check.receipt !== undefined && (
        <button type="button" class="secondary" onClick={() => saveReceipt(eventId, check.receipt)} aria-label={`Save the receipt of entry ${eventId} (for hdx receipt verify)`}>
          Save receipt
        </button>
      )}
      {check.state !== 'idle' && check.state !== 'checking' && (
        <button type="button" class="secondary" onClick={() => void run()} aria-label={`Check the receipt of entry ${eventId} again`}>
          Check again
        </button>
      )}
    </div>
  );
}
