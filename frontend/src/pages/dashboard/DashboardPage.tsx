import { Card, Group, SegmentedControl, SimpleGrid, Skeleton, Table, Text, Title, useComputedColorScheme } from '@mantine/core';
import { IconActivity, IconCoin, IconReceipt, IconUsersGroup } from '@tabler/icons-react';
import { useMemo, useState } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { userApi } from '../../api';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, ErrorState } from '../../components/States';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { formatNumber } from '../../lib/quota';
import { nowUnix, startOfDayUnix } from '../../lib/time';
import { aggregateByDay, aggregateByModel, dayRange, stackedSeries } from './aggregate';
import { StatCard } from './StatCard';

const PALETTE = ['#228be6', '#12b886', '#fab005', '#fa5252', '#7950f2', '#15aabf', '#868e96'];

export default function DashboardPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const dark = useComputedColorScheme('light') === 'dark';
  const [days, setDays] = useState('7');
  const self = useAsync(() => userApi.self(), []);
  const usage = useAsync(
    () => userApi.dashboard({ start_timestamp: startOfDayUnix(Number(days) - 1), end_timestamp: nowUnix() }).then((r) => r ?? []),
    [days],
  );

  const { perDay, perModel, stacked, totals } = useMemo(() => {
    const rows = usage.data ?? [];
    const perDay = aggregateByDay(rows, dayRange(Number(days)));
    const perModel = aggregateByModel(rows);
    const stacked = stackedSeries(perDay, perModel.map((m) => m.model));
    const totals = perModel.reduce((a, m) => ({ quota: a.quota + m.quota, requests: a.requests + m.requests, tokens: a.tokens + m.tokens }), { quota: 0, requests: 0, tokens: 0 });
    return { perDay, perModel, stacked, totals };
  }, [usage.data, days]);

  const axisColor = dark ? '#909296' : '#868e96';
  const gridColor = dark ? '#373A40' : '#e9ecef';
  const tooltipStyle = { backgroundColor: dark ? '#25262b' : '#fff', border: `1px solid ${gridColor}`, borderRadius: 8 };
  const u = self.data;

  return (
    <>
      <PageHeader title={t('nav.dashboard')} />
      {self.error ? (
        <ErrorState error={self.error} onRetry={self.reload} />
      ) : (
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} mb="md">
          {u ? (
            <>
              <StatCard label={t('dash.quotaLeft')} value={fmt(u.quota)} raw={u.quota} icon={<IconCoin size={22} />} color="teal" testId="stat-quota" />
              <StatCard label={t('dash.quotaUsed')} value={fmt(u.used_quota)} raw={u.used_quota} icon={<IconReceipt size={22} />} color="orange" testId="stat-used" />
              <StatCard label={t('dash.requests')} value={formatNumber(u.request_count)} raw={u.request_count} icon={<IconActivity size={22} />} testId="stat-requests" />
              <StatCard label={t('dash.group')} value={u.group || 'default'} icon={<IconUsersGroup size={22} />} color="grape" />
            </>
          ) : (
            [0, 1, 2, 3].map((i) => <Skeleton key={i} h={92} radius="md" />)
          )}
        </SimpleGrid>
      )}

      <Group justify="space-between" mb="sm" wrap="wrap">
        <Text size="sm" c="dimmed">
          {t('dash.periodQuota')}: <b>{fmt(totals.quota)}</b> · {t('dash.periodRequests')}: <b>{formatNumber(totals.requests)}</b> · {t('dash.periodTokens')}:{' '}
          <b>{formatNumber(totals.tokens)}</b>
        </Text>
        <SegmentedControl
          value={days}
          onChange={setDays}
          data-testid="dash-range"
          data={[
            { value: '7', label: t('dash.last7') },
            { value: '14', label: t('dash.last14') },
            { value: '30', label: t('dash.last30') },
          ]}
        />
      </Group>

      {usage.error ? (
        <ErrorState error={usage.error} onRetry={usage.reload} />
      ) : usage.loading && !usage.data ? (
        <Skeleton h={320} radius="md" />
      ) : perModel.length === 0 ? (
        <Card>
          <EmptyState message={t('dash.noUsage')} />
        </Card>
      ) : (
        <SimpleGrid cols={{ base: 1, lg: 2 }}>
          <Card>
            <Title order={5} mb="sm">
              {t('dash.perDay')}
            </Title>
            <ResponsiveContainer width="100%" height={280}>
              <BarChart data={stacked.data}>
                <CartesianGrid strokeDasharray="3 3" stroke={gridColor} />
                <XAxis dataKey="day" stroke={axisColor} fontSize={12} />
                <YAxis stroke={axisColor} fontSize={12} tickFormatter={(v: number) => fmt(v)} width={70} />
                <Tooltip formatter={(v) => fmt(Number(v))} contentStyle={tooltipStyle} />
                <Legend wrapperStyle={{ fontSize: 12 }} />
                {stacked.keys.map((k, i) => (
                  <Bar key={k} dataKey={k} stackId="q" fill={PALETTE[i % PALETTE.length]} radius={i === stacked.keys.length - 1 ? [4, 4, 0, 0] : 0} />
                ))}
              </BarChart>
            </ResponsiveContainer>
          </Card>
          <Card>
            <Title order={5} mb="sm">
              {t('dash.requestsPerDay')}
            </Title>
            <ResponsiveContainer width="100%" height={280}>
              <LineChart data={perDay.map((p) => ({ day: p.day.slice(5), requests: p.requests, tokens: p.tokens }))}>
                <CartesianGrid strokeDasharray="3 3" stroke={gridColor} />
                <XAxis dataKey="day" stroke={axisColor} fontSize={12} />
                <YAxis yAxisId="r" stroke={axisColor} fontSize={12} allowDecimals={false} />
                <YAxis yAxisId="t" orientation="right" stroke={axisColor} fontSize={12} />
                <Tooltip contentStyle={tooltipStyle} />
                <Legend wrapperStyle={{ fontSize: 12 }} />
                <Line yAxisId="r" type="monotone" dataKey="requests" name={t('dash.requests')} stroke="#228be6" strokeWidth={2} dot={false} />
                <Line yAxisId="t" type="monotone" dataKey="tokens" name={t('dash.tokens')} stroke="#12b886" strokeWidth={2} dot={false} />
              </LineChart>
            </ResponsiveContainer>
          </Card>
          <Card style={{ gridColumn: '1 / -1' }}>
            <Title order={5} mb="sm">
              {t('dash.perModel')}
            </Title>
            <ResponsiveContainer width="100%" height={Math.max(160, perModel.length * 36)}>
              <BarChart data={perModel} layout="vertical" margin={{ left: 20 }}>
                <CartesianGrid strokeDasharray="3 3" stroke={gridColor} />
                <XAxis type="number" stroke={axisColor} fontSize={12} tickFormatter={(v: number) => fmt(v)} />
                <YAxis type="category" dataKey="model" stroke={axisColor} fontSize={12} width={160} />
                <Tooltip formatter={(v) => fmt(Number(v))} contentStyle={tooltipStyle} />
                <Bar dataKey="quota" name={t('log.quota')} fill="#228be6" radius={[0, 4, 4, 0]} />
              </BarChart>
            </ResponsiveContainer>
            <Table.ScrollContainer minWidth={480}>
              <Table mt="sm" data-testid="model-table">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>{t('log.model')}</Table.Th>
                    <Table.Th ta="right">{t('dash.requests')}</Table.Th>
                    <Table.Th ta="right">{t('dash.tokens')}</Table.Th>
                    <Table.Th ta="right">{t('log.quota')}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {perModel.map((m) => (
                    <Table.Tr key={m.model}>
                      <Table.Td>{m.model}</Table.Td>
                      <Table.Td ta="right">{formatNumber(m.requests)}</Table.Td>
                      <Table.Td ta="right">{formatNumber(m.tokens)}</Table.Td>
                      <Table.Td ta="right">{fmt(m.quota)}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          </Card>
        </SimpleGrid>
      )}
    </>
  );
}
