import { ActionIcon, Button, Card, Code, Group, Modal, Table, Tooltip } from '@mantine/core';
import { IconPlayerPause, IconPlayerPlay, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { redemptionApi, type Redemption } from '../../api';
import { CopyIcon } from '../../components/CopyButton';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { SearchBox } from '../../components/SearchBox';
import { DataState } from '../../components/States';
import { StatusBadge } from '../../components/StatusBadge';
import { useConfirm } from '../../components/useConfirm';
import { useQuotaFormatter } from '../../context/StatusContext';
import { usePaged } from '../../hooks/usePaged';
import { useT, type MessageKey } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { formatTimestamp } from '../../lib/time';
import { CreateRedemption } from './CreateRedemption';

export default function RedemptionsPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const confirm = useConfirm();
  const list = usePaged<Redemption>(redemptionApi.list, redemptionApi.search);
  const [creating, setCreating] = useState(false);

  const toggle = async (r: Redemption) => {
    const next = r.status === 1 ? 2 : 1;
    try {
      await redemptionApi.setStatus(r.id, next);
      list.patch((x) => x.id === r.id, { status: next });
      notifySuccess(t('app.success'));
    } catch (e) {
      notifyError(e);
    }
  };

  const remove = async (r: Redemption) => {
    if (!(await confirm(t('redemption.deleteConfirm', { name: r.name }), { confirmLabel: t('app.delete') }))) return;
    try {
      await redemptionApi.remove(r.id);
      notifySuccess(t('app.success'));
      list.reload();
    } catch (e) {
      notifyError(e);
    }
  };

  return (
    <>
      <PageHeader
        title={t('redemption.title')}
        actions={
          <Button leftSection={<IconPlus size={16} />} onClick={() => setCreating(true)} data-testid="redemption-add">
            {t('redemption.add')}
          </Button>
        }
      />
      <Card p={0}>
        <Group p="sm">
          <SearchBox onSearch={list.search} />
        </Group>
        <DataState loading={list.loading} error={list.error} empty={list.items.length === 0} emptyMessage={t('redemption.empty')} onRetry={list.reload}>
          <Table.ScrollContainer minWidth={900}>
            <Table highlightOnHover verticalSpacing="sm" data-testid="redemption-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('app.id')}</Table.Th>
                  <Table.Th>{t('redemption.name')}</Table.Th>
                  <Table.Th>{t('redemption.key')}</Table.Th>
                  <Table.Th>{t('app.status')}</Table.Th>
                  <Table.Th ta="right">{t('redemption.quota')}</Table.Th>
                  <Table.Th>{t('redemption.created')}</Table.Th>
                  <Table.Th>{t('redemption.redeemed')}</Table.Th>
                  <Table.Th ta="right">{t('app.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.items.map((r) => (
                  <Table.Tr key={r.id} data-testid="redemption-row">
                    <Table.Td>{r.id}</Table.Td>
                    <Table.Td fw={500}>{r.name}</Table.Td>
                    <Table.Td>
                      <Group gap={4} wrap="nowrap">
                        <Code data-testid="redemption-key">{r.key}</Code>
                        <CopyIcon value={r.key} />
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <StatusBadge kind="redemption" status={r.status} label={t(`redemption.status.${r.status}` as MessageKey)} />
                    </Table.Td>
                    <Table.Td ta="right">{fmt(r.quota)}</Table.Td>
                    <Table.Td>{formatTimestamp(r.created_time)}</Table.Td>
                    <Table.Td>{formatTimestamp(r.redeemed_time)}</Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label={r.status === 1 ? t('app.disable') : t('app.enable')}>
                          <ActionIcon
                            variant="subtle"
                            color={r.status === 1 ? 'orange' : 'teal'}
                            disabled={r.status === 3}
                            onClick={() => toggle(r)}
                            aria-label={t('app.disable')}
                            data-testid="redemption-toggle"
                          >
                            {r.status === 1 ? <IconPlayerPause size={16} /> : <IconPlayerPlay size={16} />}
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label={t('app.delete')}>
                          <ActionIcon variant="subtle" color="red" onClick={() => remove(r)} aria-label={t('app.delete')} data-testid="redemption-delete">
                            <IconTrash size={16} />
                          </ActionIcon>
                        </Tooltip>
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
      <Modal opened={creating} onClose={() => setCreating(false)} title={t('redemption.add')} size="lg">
        {creating && <CreateRedemption onDone={list.reload} onCancel={() => setCreating(false)} />}
      </Modal>
    </>
  );
}
