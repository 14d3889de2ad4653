import { ActionIcon, Badge, Button, Card, Group, Menu, Modal, Select, Stack, Table, Text, Tooltip } from '@mantine/core';
import { IconArrowDown, IconArrowUp, IconDots, IconPencil, IconPlayerPause, IconPlayerPlay, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { miscApi, Role, userApi, type User } from '../../api';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { SearchBox } from '../../components/SearchBox';
import { DataState, ErrorState, LoadingState } from '../../components/States';
import { StatusBadge } from '../../components/StatusBadge';
import { useConfirm } from '../../components/useConfirm';
import { useAuth } from '../../context/AuthContext';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { usePaged } from '../../hooks/usePaged';
import { useT, type MessageKey } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { formatNumber } from '../../lib/quota';
import { UserForm, type UserFormValues } from './UserForm';

const ROLE_COLORS: Record<number, string> = { 1: 'gray', 10: 'blue', 100: 'grape' };

function roleKey(role: number): MessageKey {
  return role >= 100 ? 'user.role.100' : role >= 10 ? 'user.role.10' : 'user.role.1';
}

function EditUserModal({ id, onClose, onSaved }: { id: number | 'new'; onClose: () => void; onSaved: () => void }) {
  const t = useT();
  const user = useAsync(() => (id === 'new' ? Promise.resolve(null) : userApi.get(id)), [id]);
  const groups = useAsync(() => miscApi.groups().catch(() => ['default']), []);
  const save = async (v: UserFormValues) => {
    try {
      if (id === 'new') {
        await userApi.create({ username: v.username, password: v.password, display_name: v.display_name || v.username });
        notifySuccess(t('user.created'));
      } else {
        await userApi.update({ id, username: v.username, display_name: v.display_name, password: v.password, quota: Number(v.quota) || 0, group: v.group || 'default' });
        notifySuccess(t('user.updated'));
      }
      onSaved();
    } catch (e) {
      notifyError(e);
    }
  };
  return (
    <Modal opened onClose={onClose} title={id === 'new' ? t('user.add') : t('user.edit')}>
      {user.error ? (
        <ErrorState error={user.error} onRetry={user.reload} />
      ) : user.loading ? (
        <LoadingState />
      ) : (
        <UserForm user={user.data ?? undefined} groups={groups.data ?? []} onSubmit={save} onCancel={onClose} />
      )}
    </Modal>
  );
}

export default function UsersPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const confirm = useConfirm();
  const { user: me, isRoot } = useAuth();
  const [order, setOrder] = useState('');
  const list = usePaged<User>((p) => userApi.list(p, order || undefined), userApi.search, [order]);
  const [editing, setEditing] = useState<number | 'new' | null>(null);

  const manage = async (u: User, action: 'enable' | 'disable' | 'delete' | 'promote' | 'demote') => {
    if (action === 'delete' && !(await confirm(t('user.deleteConfirm', { name: u.username }), { confirmLabel: t('app.delete') }))) return;
    try {
      const r = await userApi.manage(u.username, action);
      notifySuccess(t('app.success'));
      if (action === 'delete') list.reload();
      else list.patch((x) => x.id === u.id, { role: r?.role ?? u.role, status: r?.status ?? u.status });
    } catch (e) {
      notifyError(e);
    }
  };

  const canManage = (u: User) => isRoot || (me !== null && u.role < me.role);

  return (
    <>
      <PageHeader
        title={t('user.title')}
        actions={
          <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')} data-testid="user-add">
            {t('user.add')}
          </Button>
        }
      />
      <Card p={0}>
        <Group p="sm" gap="sm" justify="space-between">
          <SearchBox onSearch={list.search} />
          <Select
            w={180}
            value={order}
            onChange={(v) => setOrder(v ?? '')}
            aria-label={t('user.order')}
            allowDeselect={false}
            data={[
              { value: '', label: t('user.order.default') },
              { value: 'quota', label: t('user.order.quota') },
              { value: 'used_quota', label: t('user.order.used_quota') },
              { value: 'request_count', label: t('user.order.request_count') },
            ]}
          />
        </Group>
        <DataState loading={list.loading} error={list.error} empty={list.items.length === 0} emptyMessage={t('user.empty')} onRetry={list.reload}>
          <Table.ScrollContainer minWidth={900}>
            <Table highlightOnHover verticalSpacing="sm" data-testid="user-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('app.id')}</Table.Th>
                  <Table.Th>{t('auth.username')}</Table.Th>
                  <Table.Th>{t('user.group')}</Table.Th>
                  <Table.Th>{t('user.role')}</Table.Th>
                  <Table.Th>{t('app.status')}</Table.Th>
                  <Table.Th ta="right">{t('user.quota')}</Table.Th>
                  <Table.Th ta="right">{t('user.usedQuota')}</Table.Th>
                  <Table.Th ta="right">{t('user.requests')}</Table.Th>
                  <Table.Th ta="right">{t('app.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.items.map((u) => (
                  <Table.Tr key={u.id} data-testid="user-row" data-username={u.username}>
                    <Table.Td>{u.id}</Table.Td>
                    <Table.Td>
                      <Stack gap={0}>
                        <Text size="sm" fw={500}>
                          {u.username}
                        </Text>
                        {u.display_name && u.display_name !== u.username && (
                          <Text size="xs" c="dimmed">
                            {u.display_name}
                          </Text>
                        )}
                      </Stack>
                    </Table.Td>
                    <Table.Td>
                      <Badge variant="outline" color="gray" tt="none">
                        {u.group || 'default'}
                      </Badge>
                    </Table.Td>
                    <Table.Td>
                      <Badge variant="light" color={ROLE_COLORS[u.role] ?? 'gray'}>
                        {t(roleKey(u.role))}
                      </Badge>
                    </Table.Td>
                    <Table.Td>
                      <StatusBadge kind="user" status={u.status} label={t(`user.status.${u.status}` as MessageKey)} />
                    </Table.Td>
                    <Table.Td ta="right">{fmt(u.quota)}</Table.Td>
                    <Table.Td ta="right">{fmt(u.used_quota)}</Table.Td>
                    <Table.Td ta="right">{formatNumber(u.request_count)}</Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label={t('app.edit')}>
                          <ActionIcon variant="subtle" onClick={() => setEditing(u.id)} disabled={!canManage(u)} data-testid="user-edit" aria-label={t('app.edit')}>
                            <IconPencil size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label={u.status === 1 ? t('app.disable') : t('app.enable')}>
                          <ActionIcon
                            variant="subtle"
                            color={u.status === 1 ? 'orange' : 'teal'}
                            disabled={!canManage(u) || u.role >= Role.Root}
                            onClick={() => manage(u, u.status === 1 ? 'disable' : 'enable')}
                            data-testid="user-toggle"
                            aria-label={t('app.disable')}
                          >
                            {u.status === 1 ? <IconPlayerPause size={16} /> : <IconPlayerPlay size={16} />}
                          </ActionIcon>
                        </Tooltip>
                        <Menu position="bottom-end" withinPortal>
                          <Menu.Target>
                            <ActionIcon variant="subtle" color="gray" disabled={!canManage(u) || u.role >= Role.Root} aria-label={t('app.actions')}>
                              <IconDots size={16} />
                            </ActionIcon>
                          </Menu.Target>
                          <Menu.Dropdown>
                            {isRoot && u.role < Role.Admin && (
                              <Menu.Item leftSection={<IconArrowUp size={14} />} onClick={() => manage(u, 'promote')}>
                                {t('user.promote')}
                              </Menu.Item>
                            )}
                            {u.role >= Role.Admin && (
                              <Menu.Item leftSection={<IconArrowDown size={14} />} onClick={() => manage(u, 'demote')}>
                                {t('user.demote')}
                              </Menu.Item>
                            )}
                            <Menu.Item color="red" leftSection={<IconTrash size={14} />} onClick={() => manage(u, 'delete')} data-testid="user-delete">
                              {t('app.delete')}
                            </Menu.Item>
                          </Menu.Dropdown>
                        </Menu>
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        </DataState>
      </Card>
      <Pager page={list.page} hasMore={list.hasMore} onChange={list.setPage} loading={list.loading} />
      {editing !== null && (
        <EditUserModal
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
