import { MantineProvider } from '@mantine/core';
import { ModalsProvider } from '@mantine/modals';
import { Notifications } from '@mantine/notifications';
import type { ReactNode } from 'react';
import type { Status, User } from './api';
import { AuthProvider } from './context/AuthContext';
import { StatusProvider } from './context/StatusContext';
import { I18nProvider, type Lang } from './i18n';
import { theme } from './theme';

/** Every context the app needs; tests pass fixed status/user/lang. */
export function Providers({ children, status, user, lang }: { children: ReactNode; status?: Status; user?: User | null; lang?: Lang }) {
  return (
    <MantineProvider theme={theme} defaultColorScheme="auto">
      <I18nProvider lang={lang}>
        <ModalsProvider>
          <Notifications position="top-right" />
          <StatusProvider initial={status}>
            <AuthProvider initialUser={user}>{children}</AuthProvider>
          </StatusProvider>
        </ModalsProvider>
      </I18nProvider>
    </MantineProvider>
  );
}
