import { Alert, Button, Center, Loader, Stack, Text, ThemeIcon } from '@mantine/core';
import { IconAlertTriangle, IconInbox } from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { useT } from '../i18n';

export function LoadingState({ label }: { label?: string }) {
  const t = useT();
  return (
    <Center py="xl" data-testid="loading">
      <Stack align="center" gap="xs">
        <Loader size="md" />
        <Text c="dimmed" size="sm">
          {label ?? t('app.loading')}
        </Text>
      </Stack>
    </Center>
  );
}

export function EmptyState({ message, action }: { message?: string; action?: ReactNode }) {
  const t = useT();
  return (
    <Center py={48} data-testid="empty">
      <Stack align="center" gap="sm" maw={420}>
        <ThemeIcon size={48} radius="xl" variant="light" color="gray">
          <IconInbox size={26} />
        </ThemeIcon>
        <Text c="dimmed" ta="center">
          {message ?? t('app.empty')}
        </Text>
        {action}
      </Stack>
    </Center>
  );
}

export function ErrorState({ error, onRetry }: { error: string; onRetry?: () => void }) {
  const t = useT();
  return (
    <Alert color="red" variant="light" icon={<IconAlertTriangle size={18} />} title={t('app.error')} data-testid="error">
      <Stack gap="xs" align="flex-start">
        <Text size="sm">{error}</Text>
        {onRetry && (
          <Button size="xs" variant="light" color="red" onClick={onRetry}>
            {t('app.retry')}
          </Button>
        )}
      </Stack>
    </Alert>
  );
}

/** Shows loading / error / empty, else the children. Keeps children visible while reloading. */
export function DataState({
  loading,
  error,
  empty,
  emptyMessage,
  emptyAction,
  onRetry,
  children,
}: {
  loading: boolean;
  error: string | null;
  empty: boolean;
  emptyMessage?: string;
  emptyAction?: ReactNode;
  onRetry?: () => void;
  children: ReactNode;
}) {
  if (error) return <ErrorState error={error} onRetry={onRetry} />;
  if (loading && empty) return <LoadingState />;
  if (empty) return <EmptyState message={emptyMessage} action={emptyAction} />;
  return <>{children}</>;
}
