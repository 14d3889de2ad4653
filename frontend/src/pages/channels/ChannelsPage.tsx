import { ActionIcon, Badge, Button, Card, Group, Menu, Modal, Table, Text, Tooltip } from '@mantine/core';
import {
  IconBolt,
  IconCash,
  IconChevronDown,
  IconPencil,
  IconPlayerPause,
  IconPlayerPlay,
  IconPlus,
  IconTrash,
  IconTrashX,
} from '@tabler/icons-react';
import { useState } from 'react';
import { channelApi, miscApi, type Channel, type ChannelInput } from '../../api';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { SearchBox } from '../../components/SearchBox';
import { DataState, ErrorState, LoadingState } from '../../components/States';
import { StatusBadge } from '../../components/StatusBadge';
import { useConfirm } from '../../components/useConfirm';
import { channelType } from '../../constants/channelTypes';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { usePaged } from '../../hooks/usePaged';
import { useT, type MessageKey } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { formatTimestamp } from '../../lib/time';
import { splitList } from '../../lib/validate';
import { ChannelForm } from './ChannelForm';
import { channelToForm } from './channelForm';

function ResponseTime({ ms, testTime }: { ms: number; testTime: number }) {
  const t = useT();
  if (!testTime && !ms) return <Text size="sm" c="dimmed">{t('channel.notTested')}</Text>;
  const color = ms <= 1000 ? 'teal' : ms <= 3000 ? 'yellow' : ms <= 5000 ? 'orange' : 'red';
  return (
    <Tooltip label={formatTimestamp(testTime)} disabled={!testTime}>
      <Badge variant="light" color={color}>
        {(ms / 1000).toFixed(2)}s
      </Badge>
    </Tooltip>
  );
}

function EditChannelModal({ id, onClose, onSaved }: { id: number | 'new'; onClose: () => void; onSaved: () => void }) {
  const t = useT();
  const models = useAsync(() => miscApi.models().catch(() => ({}) as Record<string, string[]>), []);
  const groups = useAsync(() => miscApi.groups().catch(() => ['default']), []);
  const channel = useAsync(() => (id === 'new' ? Promise.resolve(null) : channelApi.get(id)), [id]);

  const save = async (body: ChannelInput) => {
    try {
      if (id === 'new') {
        await channelApi.create(body);
        notifySuccess(t('channel.created'));
      } else {
        await channelApi.update({ ...body, id });
        notifySuccess(t('channel.updated'));
      }
      onSaved();
    } catch (e) {
      notifyError(e);
    }
  };

  const ready = !models.loading && !groups.loading && !channel.loading;
  return (
    <Modal opened onClose={onClose} title={id === 'new' ? t('channel.add') : t('channel.edit')} size="xl">
      {channel.error ? (
        <ErrorState error={channel.error} onRetry={channel.reload} />
      ) : !ready ? (
        <LoadingState />
      ) : (
        <ChannelForm
          initial={channel.data ? channelToForm(channel.data) : undefined}
          channelId={id === 'new' ? undefined : id}
          modelsByType={models.data ?? {}}
          groups={groups.data ?? ['default']}
          onSubmit={save}
          onCancel={onClose}
        />
      )}
    </Modal>
  );
}

export default function ChannelsPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const confirm = useConfirm();
  const list = usePaged<Channel>(channelApi.list, channelApi.search);
  const [editing, setEditing] = useState<number | 'new' | null>(null);
  const [busyId, setBusyId] = useState<number | null>(null);

  const test = async (c: Channel, model?: string) => {
    setBusyId(c.id);
    try {
      const r = await channelApi.test(c.id, model);
      notifySuccess(t('channel.testOk', { name: c.name, time: (r.time ?? 0).toFixed(2) }) + (r.message ? `\n${r.message}` : ''));
      list.patch((x) => x.id === c.id, { response_time: Math.round((r.time ?? 0) * 1000), test_time: Math.floor(Date.now() / 1000) });
    } catch (e) {
      notifyError(e, c.name);
    } finally {
      setBusyId(null);
    }
  };

  const testAll = async () => {
    try {
      await channelApi.testAll();
      notifySuccess(t('channel.testAllStarted'));
    } catch (e) {
      notifyError(e);
    }
  };

  const updateBalance = async (c: Channel) => {
    setBusyId(c.id);
    try {
      const r = await channelApi.updateBalance(c.id);
      notifySuccess(t('channel.balanceUpdated', { balance: `$${(r.balance ?? 0).toFixed(2)}` }));
      list.patch((x) => x.id === c.id, { balance: r.balance ?? 0 });
    } catch (e) {
      notifyError(e, c.name);
    } finally {
      setBusyId(null);
    }
  };

  const toggle = async (c: Channel) => {
    const next = c.status === 1 ? 2 : 1;
    try {
      await channelApi.setStatus(c.id, next);
      list.patch((x) => x.id === c.id, { status: next });
      notifySuccess(t('app.success'));
    } catch (e) {
      notifyError(e);
    }
  };

  const remove = async (c: Channel) => {
    if (!(await confirm(t('channel.deleteConfirm', { name: c.name }), { confirmLabel: t('app.delete') }))) return;
    try {
      await channelApi.remove(c.id);
      notifySuccess(t('app.success'));
      list.reload();
    } catch (e) {
      notifyError(e);
    }
  };

  const removeDisabled = async () => {
    if (!(await confirm(t('channel.deleteDisabledConfirm'), { confirmLabel: t('app.delete') }))) return;
    try {
      const n = await channelApi.removeDisabled();
      notifySuccess(t('channel.deletedCount', { count: n ?? 0 }));
      list.reload();
    } catch (e) {
      notifyError(e);
    }
  };

  return (
    <>
      <PageHeader
        title={t('channel.title')}
        actions={
          <>
            <Button variant="default" leftSection={<IconBolt size={16} />} onClick={testAll} data-testid="channel-test-all">
              {t('channel.testAll')}
            </Button>
            <Button variant="default" color="red" leftSection={<IconTrashX size={16} />} onClick={removeDisabled} data-testid="channel-delete-disabled">
              {t('channel.deleteDisabled')}
            </Button>
            <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')} data-testid="channel-add">
              {t('channel.add')}
            </Button>
          </>
        }
      />
      <Card p={0}>
        <Group p="sm">
          <SearchBox onSearch={list.search} />
        </Group>
        <DataState loading={list.loading} error={list.error} empty={list.items.length === 0} emptyMessage={t('channel.empty')} onRetry={list.reload}>
          <Table.ScrollContainer minWidth={1100}>
            <Table highlightOnHover verticalSpacing="sm" data-testid="channel-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('app.id')}</Table.Th>
                  <Table.Th>{t('channel.name')}</Table.Th>
                  <Table.Th>{t('channel.type')}</Table.Th>
                  <Table.Th>{t('app.status')}</Table.Th>
                  <Table.Th>{t('channel.models')}</Table.Th>
                  <Table.Th>{t('channel.groups')}</Table.Th>
                  <Table.Th ta="right">{t('channel.priority')}</Table.Th>
                  <Table.Th>{t('channel.responseTime')}</Table.Th>
                  <Table.Th ta="right">{t('channel.balance')}</Table.Th>
                  <Table.Th ta="right">{t('channel.usedQuota')}</Table.Th>
                  <Table.Th ta="right">{t('app.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.items.map((c) => {
                  const ct = channelType(c.type);
                  const models = splitList(c.models);
                  return (
                    <Table.Tr key={c.id} data-testid="channel-row" data-name={c.name}>
                      <Table.Td>{c.id}</Table.Td>
                      <Table.Td fw={500}>{c.name}</Table.Td>
                      <Table.Td>
                        <Badge variant="dot" color={ct.color ?? 'gray'} tt="none">
                          {ct.label}
                        </Badge>
                      </Table.Td>
                      <Table.Td>
                        <StatusBadge kind="channel" status={c.status} label={t(`channel.status.${c.status}` as MessageKey)} />
                      </Table.Td>
                      <Table.Td maw={240}>
                        <Tooltip label={models.join(', ')} multiline w={320} disabled={models.length <= 2}>
                          <Text size="sm" lineClamp={1}>
                            {models.slice(0, 2).join(', ')}
                            {models.length > 2 ? ` +${models.length - 2}` : ''}
                          </Text>
                        </Tooltip>
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{splitList(c.group).join(', ')}</Text>
                      </Table.Td>
                      <Table.Td ta="right">{c.priority ?? 0}</Table.Td>
                      <Table.Td>
                        <ResponseTime ms={c.response_time} testTime={c.test_time} />
                      </Table.Td>
                      <Table.Td ta="right">
                        <Tooltip label={t('channel.updateBalance')}>
                          <Button size="compact-xs" variant="subtle" onClick={() => updateBalance(c)} loading={busyId === c.id} leftSection={<IconCash size={12} />}>
                            ${(c.balance ?? 0).toFixed(2)}
                          </Button>
                        </Tooltip>
                      </Table.Td>
                      <Table.Td ta="right">{fmt(c.used_quota)}</Table.Td>
                      <Table.Td>
                        <Group gap={4} justify="flex-end" wrap="nowrap">
                          <Button.Group>
                            <Button size="compact-xs" variant="light" onClick={() => test(c)} loading={busyId === c.id} data-testid="channel-test">
                              {t('channel.test')}
                            </Button>
                            <Menu position="bottom-end" withinPortal>
                              <Menu.Target>
                                <Button size="compact-xs" variant="light" px={4} aria-label={t('channel.testModel')}>
                                  <IconChevronDown size={12} />
                                </Button>
                              </Menu.Target>
                              <Menu.Dropdown mah={300} style={{ overflowY: 'auto' }}>
                                <Menu.Label>{t('channel.testModel')}</Menu.Label>
                                {models.map((m) => (
                                  <Menu.Item key={m} onClick={() => test(c, m)}>
                                    {m}
                                  </Menu.Item>
                                ))}
                              </Menu.Dropdown>
                            </Menu>
                          </Button.Group>
                          <Tooltip label={t('app.edit')}>
                            <ActionIcon variant="subtle" onClick={() => setEditing(c.id)} data-testid="channel-edit" aria-label={t('app.edit')}>
                              <IconPencil size={16} />
                            </ActionIcon>
                          </Tooltip>
                          <Tooltip label={c.status === 1 ? t('app.disable') : t('app.enable')}>
                            <ActionIcon variant="subtle" color={c.status === 1 ? 'orange' : 'teal'} onClick={() => toggle(c)} data-testid="channel-toggle" aria-label={t('app.disable')}>
                              {c.status === 1 ? <IconPlayerPause size={16} /> : <IconPlayerPlay size={16} />}
                            </ActionIcon>
                          </Tooltip>
                          <Tooltip label={t('app.delete')}>
                            <ActionIcon variant="subtle" color="red" onClick={() => remove(c)} data-testid="channel-delete" aria-label={t('app.delete')}>
                              <IconTrash size={16} />
                            </ActionIcon>
                          </Tooltip>
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </DataState>
      </Card>
      <Pager page={list.page} hasMore={list.hasMore} onChange={list.setPage} loading={list.loading} />
      {editing !== null && (
        <EditChannelModal
          id={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            list.reload();
          }}
        />
      )}
    </>
  );
}
