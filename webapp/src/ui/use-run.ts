import { useState } from 'preact/hooks';

/**
 * A page's one-action-at-a-time state: `run(work)` marks it busy, clears the last status and error, and
 * shows the error `work` throws (its message) instead of letting it escape.
 */
export function useRun(): {
  busy: boolean;
  status: string;
  error: string;
  setStatus: (status: string) => void;
  setError: (error: string) => void;
  run: (work: () => Promise<void>) => Promise<void>;
} {
  const [status, setStatus] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const run = async (work: () => Promise<void>): Promise<void> => {
    setBusy(true);
    setError('');
    setStatus('');
    try {
      await work();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, status, error, setStatus, setError, run };
}
