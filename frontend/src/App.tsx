import { Button, Center, Stack, Text, Title } from '@mantine/core';
import { lazy, Suspense, type ReactNode } from 'react';
import { Link, Route, Routes } from 'react-router';
import { Role } from './api';
import { Layout } from './components/Layout';
import { RequireAuth } from './components/RequireAuth';
import { LoadingState } from './components/States';
import { useT } from './i18n';
import { LoginPage } from './pages/auth/LoginPage';
import { RegisterPage } from './pages/auth/RegisterPage';
import { ResetPage, ResetConfirmPage } from './pages/auth/ResetPage';
import { AboutPage } from './pages/home/AboutPage';
import { HomePage } from './pages/home/HomePage';

const DashboardPage = lazy(() => import('./pages/dashboard/DashboardPage'));
const TokensPage = lazy(() => import('./pages/tokens/TokensPage'));
const TopUpPage = lazy(() => import('./pages/topup/TopUpPage'));
const LogsPage = lazy(() => import('./pages/logs/LogsPage'));
const ChannelsPage = lazy(() => import('./pages/channels/ChannelsPage'));
const UsersPage = lazy(() => import('./pages/users/UsersPage'));
const RedemptionsPage = lazy(() => import('./pages/redemptions/RedemptionsPage'));
const SettingsPage = lazy(() => import('./pages/settings/SettingsPage'));
const ProfilePage = lazy(() => import('./pages/profile/ProfilePage'));

function NotFound() {
  const t = useT();
  return (
    <Center py={80}>
      <Stack align="center">
        <Title order={1}>404</Title>
        <Text c="dimmed">{t('app.notFound')}</Text>
        <Button component={Link} to="/">
          {t('app.backHome')}
        </Button>
      </Stack>
    </Center>
  );
}

function guard(node: ReactNode, minRole: number = Role.Common) {
  return (
    <RequireAuth minRole={minRole}>
      <Suspense fallback={<LoadingState />}>{node}</Suspense>
    </RequireAuth>
  );
}

export function App() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<HomePage />} />
        <Route path="login" element={<LoginPage />} />
        <Route path="register" element={<RegisterPage />} />
        <Route path="reset" element={<ResetPage />} />
        <Route path="user/reset" element={<ResetConfirmPage />} />
        <Route path="about" element={<AboutPage />} />
        <Route path="dashboard" element={guard(<DashboardPage />)} />
        <Route path="token" element={guard(<TokensPage />)} />
        <Route path="topup" element={guard(<TopUpPage />)} />
        <Route path="log" element={guard(<LogsPage />)} />
        <Route path="profile" element={guard(<ProfilePage />)} />
        <Route path="channel" element={guard(<ChannelsPage />, Role.Admin)} />
        <Route path="user" element={guard(<UsersPage />, Role.Admin)} />
        <Route path="redemption" element={guard(<RedemptionsPage />, Role.Admin)} />
        <Route path="setting" element={guard(<SettingsPage />, Role.Root)} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}
