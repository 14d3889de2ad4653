import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { miscApi, type Status } from '../api';
import { DEFAULT_QUOTA_PER_UNIT, formatQuota } from '../lib/quota';

interface StatusValue {
  status: Status | null;
  loading: boolean;
  error: string | null;
  reload: () => void;
}

const StatusContext = createContext<StatusValue>({ status: null, loading: false, error: null, reload: () => undefined });

export function StatusProvider({ children, initial }: { children: ReactNode; initial?: Status }) {
  const [status, setStatus] = useState<Status | null>(initial ?? null);
  const [loading, setLoading] = useState(!initial);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(() => {
    setLoading(true);
    miscApi
      .status()
      .then((s) => {
        setStatus(s);
        setError(null);
        if (s.system_name) document.title = s.system_name;
      })
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)))
      .finally(() => setLoading(false));
  }, []);

  useEffect(() => {
    if (!initial) reload();
  }, [initial, reload]);

  const value = useMemo(() => ({ status, loading, error, reload }), [status, loading, error, reload]);
  return <StatusContext.Provider value={value}>{children}</StatusContext.Provider>;
}

export function useStatus(): StatusValue {
  return useContext(StatusContext);
}

/** Returns a function that formats quota according to the server's display settings. */
export function useQuotaFormatter(): (quota: number) => string {
  const { status } = useStatus();
  const displayInCurrency = status?.display_in_currency ?? true;
  const quotaPerUnit = status?.quota_per_unit || DEFAULT_QUOTA_PER_UNIT;
  return useCallback((q: number) => formatQuota(q, { displayInCurrency, quotaPerUnit }), [displayInCurrency, quotaPerUnit]);
}

export function useSystemName(): string {
  const { status } = useStatus();
  return status?.system_name || 'Tollgate';
}
