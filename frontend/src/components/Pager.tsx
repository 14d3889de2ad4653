import { Button, Group, Text } from '@mantine/core';
import { IconChevronLeft, IconChevronRight } from '@tabler/icons-react';
import { useT } from '../i18n';

/** Prev/next pager: the API returns pages of 10 without a total count. */
export function Pager({ page, hasMore, onChange, loading }: { page: number; hasMore: boolean; onChange: (p: number) => void; loading?: boolean }) {
  const t = useT();
  if (page === 0 && !hasMore) return null;
  return (
    <Group justify="flex-end" mt="md" gap="xs" data-testid="pager">
      <Button variant="default" size="xs" leftSection={<IconChevronLeft size={14} />} disabled={page === 0 || loading} onClick={() => onChange(page - 1)}>
        {t('app.prev')}
      </Button>
      <Text size="sm" c="dimmed">
        {t('app.page', { page: page + 1 })}
      </Text>
      <Button variant="default" size="xs" rightSection={<IconChevronRight size={14} />} disabled={!hasMore || loading} onClick={() => onChange(page + 1)}>
        {t('app.next')}
      </Button>
    </Group>
  );
}
