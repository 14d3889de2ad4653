import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import { Role } from '../api';
import { useAuth } from '../context/AuthContext';
import { useT } from '../i18n';
import { ErrorState, LoadingState } from './States';

/** Gates a page on being signed in, and optionally on a minimum role. */
export function RequireAuth({ children, minRole = Role.Common }: { children: ReactNode; minRole?: number }) {
  const { user, checking } = useAuth();
  const location = useLocation();
  const t = useT();
  if (checking) return <LoadingState />;
  if (!user) {
    const redirect = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?redirect=${redirect}`} replace />;
  }
  if (user.role < minRole) return <ErrorState error={t('app.forbidden')} />;
  return <>{children}</>;
}
