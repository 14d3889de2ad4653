import { Badge, Card, Group, SegmentedControl, Table, Text, Tooltip } from '@mantine/core';
import { useState } from 'react';
import { logApi, PAGE_SIZE, type LogEntry, type LogQuery } from '../../api';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { DataState } from '../../components/States';
import { useAuth } from '../../context/AuthContext';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { useT, type MessageKey } from '../../i18n';
import { datetimeLocalToUnix, formatTimestamp } from '../../lib/time';
import { emptyLogFilters, LogFilters, type LogFilterValues } from './LogFilters';

const TYPE_COLORS: Record<number, string> = { 1: 'teal', 2: 'blue', 3: 'orange', 4: 'grape', 5: 'gray' };

export function filtersToQuery(f: LogFilterValues, admin: boolean): LogQuery {
  const q: LogQuery = {
    type: Number(f.type) || 0,
    token_name: f.token_name.trim() || undefined,
    model_name: f.model_name.trim() || undefined,
    start_timestamp: datetimeLocalToUnix(f.from) ?? undefined,
    end_timestamp: datetimeLocalToUnix(f.to) ?? undefined,
  };
  if (admin) {
    q.username = f.username.trim() || undefined;
    q.channel = f.channel.trim() || undefined;
  }
  return q;
}

function LogRow({ log, all }: { log: LogEntry; all: boolean }) {
  const t = useT();
  const fmt = useQuotaFormatter();
  const consume = log.type === 2;
  return (
    <Table.Tr data-testid="log-row" data-model={log.model_name} data-type={log.type}>
      <Table.Td>
        <Text size="sm" style={{ whiteSpace: 'nowrap' }}>
          {formatTimestamp(log.created_at)}
        </Text>
      </Table.Td>
      {all && <Table.Td>{log.username}</Table.Td>}
      {all && <Table.Td>{log.channel || '-'}</Table.Td>}
      <Table.Td>
        <Badge variant="light" color={TYPE_COLORS[log.type] ?? 'gray'}>
          {t(`log.type.${log.type}` as MessageKey) ?? log.type}
        </Badge>
      </Table.Td>
      <Table.Td>{log.token_name || '-'}</Table.Td>
      <Table.Td>{log.model_name ? <Badge variant="outline" color="gray" tt="none">{log.model_name}</Badge> : '-'}</Table.Td>
      <Table.Td ta="right">{consume ? log.prompt_tokens : '-'}</Table.Td>
      <Table.Td ta="right">{consume ? log.completion_tokens : '-'}</Table.Td>
      <Table.Td ta="right">{log.quota ? fmt(log.quota) : '-'}</Table.Td>
      <Table.Td ta="right">
        {consume && log.elapsed_time !== undefined ? (
          <Text size="sm" style={{ whiteSpace: 'nowrap' }}>
            {(log.elapsed_time / 1000).toFixed(2)}s{log.is_stream ? ' ⚡' : ''}
          </Text>
        ) : (
          '-'
        )}
      </Table.Td>
      <Table.Td maw={320}>
        <Tooltip label={log.request_id ? `${log.content}\n${t('log.requestId')}: ${log.request_id}` : log.content} multiline w={360} withArrow disabled={!log.content}>
          <Text size="sm" lineClamp={2} style={{ whiteSpace: 'normal' }}>
            {log.content}
          </Text>
        </Tooltip>
      </Table.Td>
    </Table.Tr>
  );
}

export default function LogsPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const { isAdmin } = useAuth();
  const [scope, setScope] = useState<'self' | 'all'>('self');
  const [filters, setFilters] = useState<LogFilterValues>(emptyLogFilters);
  const [page, setPage] = useState(0);
  const all = isAdmin && scope === 'all';
  const query = filtersToQuery(filters, all);
  const key = JSON.stringify(query);

  const logs = useAsync(() => (all ? logApi.all({ ...query, p: page }) : logApi.self({ ...query, p: page })).then((r) => r ?? []), [key, page, all]);
  const stat = useAsync(() => (all ? logApi.allStat(query) : logApi.selfStat(query)), [key, all]);
  const items = logs.data ?? [];

  return (
    <>
      <PageHeader
        title={t('log.title')}
        actions={
          isAdmin && (
            <SegmentedControl
              value={scope}
              onChange={(v) => {
                setScope(v as 'self' | 'all');
                setPage(0);
              }}
              data={[
                { value: 'self', label: t('log.mine') },
                { value: 'all', label: t('log.allUsers') },
              ]}
              data-testid="log-scope"
            />
          )
        }
      />
      <Card mb="md">
        <LogFilters
          key={String(all)}
          admin={all}
          initial={filters}
          onApply={(f) => {
            setFilters(f);
            setPage(0);
          }}
        />
      </Card>
      <Group mb="xs">
        <Text size="sm" c="dimmed" data-testid="log-total">
          {stat.data ? t('log.total', { quota: fmt(stat.data.quota) }) : stat.error ? '' : '…'}
        </Text>
      </Group>
      <Card p={0}>
        <DataState loading={logs.loading} error={logs.error} empty={items.length === 0} emptyMessage={t('log.empty')} onRetry={logs.reload}>
          <Table.ScrollContainer minWidth={all ? 1200 : 1000}>
            <Table highlightOnHover verticalSpacing="xs" data-testid="log-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('log.time')}</Table.Th>
                  {all && <Table.Th>{t('log.user')}</Table.Th>}
                  {all && <Table.Th>{t('log.channel')}</Table.Th>}
                  <Table.Th>{t('log.type')}</Table.Th>
                  <Table.Th>{t('log.token')}</Table.Th>
                  <Table.Th>{t('log.model')}</Table.Th>
                  <Table.Th ta="right">{t('log.prompt')}</Table.Th>
                  <Table.Th ta="right">{t('log.completion')}</Table.Th>
                  <Table.Th ta="right">{t('log.quota')}</Table.Th>
                  <Table.Th ta="right">{t('log.elapsed')}</Table.Th>
                  <Table.Th>{t('log.content')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((l, i) => (
                  <LogRow key={`${l.id}-${l.created_at}-${i}`} log={l} all={all} />
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </DataState>
      </Card>
      <Pager page={page} hasMore={items.length >= PAGE_SIZE} onChange={setPage} loading={logs.loading} />
    </>
  );
}
