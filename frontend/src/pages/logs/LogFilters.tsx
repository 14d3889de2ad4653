import { Button, Group, Select, SimpleGrid, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { useT, type MessageKey } from '../../i18n';

export interface LogFilterValues {
  type: string;
  from: string;
  to: string;
  token_name: string;
  model_name: string;
  username: string;
  channel: string;
}

export const emptyLogFilters: LogFilterValues = { type: '0', from: '', to: '', token_name: '', model_name: '', username: '', channel: '' };

export function LogFilters({ admin, initial, onApply }: { admin: boolean; initial: LogFilterValues; onApply: (f: LogFilterValues) => void }) {
  const t = useT();
  const [f, setF] = useState(initial);
  const set = (k: keyof LogFilterValues) => (e: { currentTarget: { value: string } }) => {
    const value = e.currentTarget.value;
    setF((x) => ({ ...x, [k]: value }));
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply(f);
  };
  return (
    <form onSubmit={submit} data-testid="log-filters">
      <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
        <Select
          label={t('log.type')}
          value={f.type}
          onChange={(v) => setF((x) => ({ ...x, type: v ?? '0' }))}
          data={[0, 1, 2, 3, 4, 5].map((n) => ({ value: String(n), label: t(`log.type.${n}` as MessageKey) }))}
          allowDeselect={false}
          data-testid="log-type"
        />
        <TextInput type="datetime-local" label={t('log.from')} value={f.from} onChange={set('from')} />
        <TextInput type="datetime-local" label={t('log.to')} value={f.to} onChange={set('to')} />
        <TextInput label={t('log.token')} value={f.token_name} onChange={set('token_name')} data-testid="log-token" />
        <TextInput label={t('log.model')} value={f.model_name} onChange={set('model_name')} data-testid="log-model" />
        {admin && <TextInput label={t('log.user')} value={f.username} onChange={set('username')} data-testid="log-username" />}
        {admin && <TextInput label={t('log.channel')} value={f.channel} onChange={set('channel')} inputMode="numeric" />}
      </SimpleGrid>
      <Group justify="flex-end" mt="sm" gap="xs">
        <Button
          variant="default"
          onClick={() => {
            setF(emptyLogFilters);
            onApply(emptyLogFilters);
          }}
        >
          {t('log.reset')}
        </Button>
        <Button type="submit" data-testid="log-apply">
          {t('log.filter')}
        </Button>
      </Group>
    </form>
  );
}
