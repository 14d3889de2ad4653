import { ActionIcon, Button, Card, Code, Group, Modal, Table, Text, Tooltip } from '@mantine/core';
import { IconCode, IconEye, IconEyeOff, IconPencil, IconPlayerPause, IconPlayerPlay, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { tokenApi, userApi, type Token, type TokenInput } from '../../api';
import { CopyIcon } from '../../components/CopyButton';
import { PageHeader } from '../../components/PageHeader';
import { Pager } from '../../components/Pager';
import { SearchBox } from '../../components/SearchBox';
import { DataState } from '../../components/States';
import { StatusBadge } from '../../components/StatusBadge';
import { useConfirm } from '../../components/useConfirm';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { usePaged } from '../../hooks/usePaged';
import { useT, type MessageKey } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { tokenKey } from '../../lib/snippets';
import { formatTimestamp } from '../../lib/time';
import { SnippetModal } from './SnippetModal';
import { TokenForm } from './TokenForm';
import { emptyTokenForm, tokenToForm } from './tokenForm';

function maskKey(key: string): string {
  const k = tokenKey(key);
  return k.length > 14 ? `${k.slice(0, 7)}…${k.slice(-4)}` : k;
}

function KeyCell({ token }: { token: Token }) {
  const t = useT();
  const [shown, setShown] = useState(false);
  return (
    <Group gap={4} wrap="nowrap">
      <Code data-testid="token-key" data-key={tokenKey(token.key)} style={{ whiteSpace: 'nowrap' }}>
        {shown ? tokenKey(token.key) : maskKey(token.key)}
      </Code>
      <Tooltip label={shown ? t('token.hideKey') : t('token.showKey')}>
        <ActionIcon variant="subtle" size="sm" onClick={() => setShown((s) => !s)} data-testid="token-show-key" aria-label={t('token.showKey')}>
          {shown ? <IconEyeOff size={14} /> : <IconEye size={14} />}
        </ActionIcon>
      </Tooltip>
      <CopyIcon value={tokenKey(token.key)} label={t('token.copyKey')} testId="token-copy-key" />
    </Group>
  );
}

export default function TokensPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const confirm = useConfirm();
  const list = usePaged<Token>(tokenApi.list, tokenApi.search);
  const models = useAsync(() => userApi.availableModels().catch(() => [] as string[]), []);
  const [editing, setEditing] = useState<Token | 'new' | null>(null);
  const [snippet, setSnippet] = useState<Token | null>(null);

  const save = async (body: TokenInput) => {
    try {
      if (editing === 'new') {
        await tokenApi.create(body);
        notifySuccess(t('token.created_ok'));
      } else if (editing) {
        await tokenApi.update({ ...body, id: editing.id });
        notifySuccess(t('token.updated'));
      }
      setEditing(null);
      list.reload();
    } catch (e) {
      notifyError(e);
    }
  };

  const toggle = async (tok: Token) => {
    const next = tok.status === 1 ? 2 : 1;
    try {
      await tokenApi.setStatus(tok.id, next);
      list.patch((x) => x.id === tok.id, { status: next });
      notifySuccess(t('app.success'));
    } catch (e) {
      notifyError(e);
    }
  };

  const remove = async (tok: Token) => {
    if (!(await confirm(t('token.deleteConfirm', { name: tok.name }), { confirmLabel: t('app.delete') }))) return;
    try {
      await tokenApi.remove(tok.id);
      notifySuccess(t('app.success'));
      list.reload();
    } catch (e) {
      notifyError(e);
    }
  };

  const addButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')} data-testid="token-add">
      {t('token.add')}
    </Button>
  );

  return (
    <>
      <PageHeader title={t('token.title')} actions={addButton} />
      <Card p={0}>
        <Group p="sm" gap="sm">
          <SearchBox onSearch={list.search} />
        </Group>
        <DataState loading={list.loading} error={list.error} empty={list.items.length === 0} emptyMessage={t('token.empty')} onRetry={list.reload}>
          <Table.ScrollContainer minWidth={900}>
            <Table highlightOnHover verticalSpacing="sm" data-testid="token-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{t('token.name')}</Table.Th>
                  <Table.Th>{t('app.status')}</Table.Th>
                  <Table.Th>{t('token.key')}</Table.Th>
                  <Table.Th>{t('token.used')}</Table.Th>
                  <Table.Th>{t('token.remain')}</Table.Th>
                  <Table.Th>{t('token.created')}</Table.Th>
                  <Table.Th>{t('token.expires')}</Table.Th>
                  <Table.Th ta="right">{t('app.actions')}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.items.map((tok) => (
                  <Table.Tr key={tok.id} data-testid="token-row" data-name={tok.name}>
                    <Table.Td fw={500}>{tok.name}</Table.Td>
                    <Table.Td>
                      <StatusBadge kind="token" status={tok.status} label={t(`token.status.${tok.status}` as MessageKey)} />
                    </Table.Td>
                    <Table.Td>
                      <KeyCell token={tok} />
                    </Table.Td>
                    <Table.Td>{fmt(tok.used_quota)}</Table.Td>
                    <Table.Td>{tok.unlimited_quota ? <Text c="dimmed" size="sm">{t('app.unlimited')}</Text> : fmt(tok.remain_quota)}</Table.Td>
                    <Table.Td>
                      <Text size="sm">{formatTimestamp(tok.created_time)}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{tok.expired_time === -1 ? t('app.never') : formatTimestamp(tok.expired_time)}</Text>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label={t('token.copySnippet')}>
                          <ActionIcon variant="subtle" onClick={() => setSnippet(tok)} data-testid="token-snippet" aria-label={t('token.copySnippet')}>
                            <IconCode size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label={t('app.edit')}>
                          <ActionIcon variant="subtle" onClick={() => setEditing(tok)} data-testid="token-edit" aria-label={t('app.edit')}>
                            <IconPencil size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label={tok.status === 1 ? t('app.disable') : t('app.enable')}>
                          <ActionIcon variant="subtle" color={tok.status === 1 ? 'orange' : 'teal'} onClick={() => toggle(tok)} data-testid="token-toggle" aria-label={t('app.disable')}>
                            {tok.status === 1 ? <IconPlayerPause size={16} /> : <IconPlayerPlay size={16} />}
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label={t('app.delete')}>
                          <ActionIcon variant="subtle" color="red" onClick={() => remove(tok)} data-testid="token-delete" aria-label={t('app.delete')}>
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

      <Modal opened={editing !== null} onClose={() => setEditing(null)} title={editing === 'new' ? t('token.add') : t('token.edit')} size="lg">
        {editing !== null && (
          <TokenForm
            key={editing === 'new' ? 'new' : editing.id}
            initial={editing === 'new' ? emptyTokenForm : tokenToForm(editing)}
            modelSuggestions={models.data ?? []}
            submitLabel={editing === 'new' ? t('app.create') : t('app.save')}
            onSubmit={save}
            onCancel={() => setEditing(null)}
          />
        )}
      </Modal>
      <SnippetModal token={snippet} onClose={() => setSnippet(null)} />
    </>
  );
}
