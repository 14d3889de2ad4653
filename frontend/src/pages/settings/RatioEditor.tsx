import { Button, Card, Group, JsonInput, SegmentedControl, Table, Text, TextInput, Title, UnstyledButton } from '@mantine/core';
import { IconSearch, IconSelector, IconSortAscending, IconSortDescending } from '@tabler/icons-react';
import { useMemo, useState } from 'react';
import { optionApi } from '../../api';
import { useT } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { validateRatio } from '../../lib/validate';

type SortKey = 'name' | 'value';

export function sortRatioEntries(obj: Record<string, number>, query: string, sort: SortKey, desc: boolean): [string, number][] {
  const q = query.trim().toLowerCase();
  const rows = Object.entries(obj).filter(([k]) => !q || k.toLowerCase().includes(q));
  rows.sort((a, b) => (sort === 'name' ? a[0].localeCompare(b[0]) : a[1] - b[1] || a[0].localeCompare(b[0])));
  if (desc) rows.reverse();
  return rows;
}

function pretty(s: string): string {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}

export function RatioEditor({ optionKey, title, value, showPrice, onSaved }: { optionKey: string; title: string; value: string; showPrice?: boolean; onSaved: (v: string) => void }) {
  const t = useT();
  const [text, setText] = useState(() => pretty(value || '{}'));
  const [view, setView] = useState<'table' | 'json'>('table');
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState<SortKey>('name');
  const [desc, setDesc] = useState(false);
  const [busy, setBusy] = useState(false);
  const check = useMemo(() => validateRatio(text, { allowNegative: optionKey === 'ModelRatio' }), [text, optionKey]);
  const rows = useMemo(() => (check.ok ? sortRatioEntries(check.value, query, sort, desc) : []), [check, query, sort, desc]);
  const dirty = pretty(value || '{}') !== text;

  const save = async () => {
    if (!check.ok) {
      notifyError(new Error(t('settings.invalidJson')));
      return;
    }
    setBusy(true);
    try {
      const compact = JSON.stringify(check.value);
      await optionApi.update(optionKey, compact);
      onSaved(compact);
      notifySuccess(t('app.saved'));
    } catch (e) {
      notifyError(e);
    } finally {
      setBusy(false);
    }
  };

  const header = (key: SortKey, label: string) => (
    <UnstyledButton
      onClick={() => {
        if (sort === key) setDesc((d) => !d);
        else {
          setSort(key);
          setDesc(false);
        }
      }}
    >
      <Group gap={4} wrap="nowrap">
        <Text size="sm" fw={600}>
          {label}
        </Text>
        {sort !== key ? <IconSelector size={14} /> : desc ? <IconSortDescending size={14} /> : <IconSortAscending size={14} />}
      </Group>
    </UnstyledButton>
  );

  return (
    <Card data-testid={`ratio-${optionKey}`}>
      <Group justify="space-between" mb="sm" wrap="wrap">
        <Group gap="xs">
          <Title order={5}>{title}</Title>
          {check.ok && (
            <Text size="xs" c="dimmed">
              {t('settings.ratioEntries', { count: Object.keys(check.value).length })}
            </Text>
          )}
        </Group>
        <SegmentedControl
          size="xs"
          value={view}
          onChange={(v) => setView(v as 'table' | 'json')}
          data={[
            { value: 'table', label: t('settings.table') },
            { value: 'json', label: t('settings.json') },
          ]}
        />
      </Group>
      {view === 'json' || !check.ok ? (
        <JsonInput
          value={text}
          onChange={setText}
          autosize
          minRows={6}
          maxRows={20}
          error={check.ok ? undefined : check.error}
          styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)', fontSize: 12 } }}
          data-testid={`ratio-json-${optionKey}`}
        />
      ) : (
        <>
          <TextInput placeholder={t('app.searchPlaceholder')} leftSection={<IconSearch size={14} />} value={query} onChange={(e) => setQuery(e.currentTarget.value)} mb="xs" />
          <Table.ScrollContainer minWidth={360} mah={360} type="native">
            <Table striped stickyHeader verticalSpacing={4}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{header('name', t('settings.ratioKey'))}</Table.Th>
                  <Table.Th ta="right">{header('value', t('settings.ratioValue'))}</Table.Th>
                  {showPrice && <Table.Th ta="right">{t('settings.ratioPrice')}</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map(([k, v]) => (
                  <Table.Tr key={k}>
                    <Table.Td>
                      <Text size="sm" ff="monospace">
                        {k}
                      </Text>
                    </Table.Td>
                    <Table.Td ta="right">{v}</Table.Td>
                    {showPrice && <Table.Td ta="right">${(v * 2).toFixed(4).replace(/\.?0+$/, '')}</Table.Td>}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </>
      )}
      <Group justify="flex-end" mt="sm" gap="xs">
        {view === 'json' && (
          <Button variant="default" size="xs" disabled={!check.ok} onClick={() => check.ok && setText(JSON.stringify(check.value, null, 2))}>
            {t('settings.format')}
          </Button>
        )}
        <Button size="xs" onClick={save} loading={busy} disabled={!dirty || !check.ok} data-testid={`ratio-save-${optionKey}`}>
          {t('app.save')}
        </Button>
      </Group>
    </Card>
  );
}
