import { Alert, Button, Card, Code, Group, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconExternalLink, IconGift, IconTicket, IconShoppingCart } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { userApi } from '../../api';
import { CopyIcon } from '../../components/CopyButton';
import { PageHeader } from '../../components/PageHeader';
import { ErrorState } from '../../components/States';
import { useAuth } from '../../context/AuthContext';
import { useQuotaFormatter, useStatus } from '../../context/StatusContext';
import { errorMessage, useAsync } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { uuid } from '../../lib/clipboard';
import { notifySuccess } from '../../lib/notify';

export function topUpUrl(link: string, username: string, userId: number, transactionId: string): string {
  const url = new URL(link, window.location.origin);
  url.searchParams.set('username', username);
  url.searchParams.set('user_id', String(userId));
  url.searchParams.set('transaction_id', transactionId);
  return url.toString();
}

function RedeemCard({ onRedeemed }: { onRedeemed: () => void }) {
  const t = useT();
  const fmt = useQuotaFormatter();
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<number | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!code.trim()) {
      setError(t('topup.codeRequired'));
      return;
    }
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      const quota = await userApi.redeem(code.trim());
      setAdded(quota);
      setCode('');
      notifySuccess(t('topup.redeemed', { quota: fmt(quota) }));
      onRedeemed();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card>
      <Group gap="xs" mb="sm">
        <IconTicket size={20} />
        <Title order={4}>{t('topup.redeem')}</Title>
      </Group>
      <form onSubmit={submit} noValidate>
        <Stack gap="sm">
          <TextInput label={t('topup.code')} value={code} onChange={(e) => setCode(e.currentTarget.value)} error={error} data-testid="redeem-code" autoComplete="off" />
          {added !== null && (
            <Alert color="teal" variant="light" data-testid="redeem-success">
              {t('topup.redeemed', { quota: fmt(added) })}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button type="submit" loading={busy} data-testid="redeem-submit">
              {t('topup.redeemBtn')}
            </Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

export default function TopUpPage() {
  const t = useT();
  const fmt = useQuotaFormatter();
  const { status } = useStatus();
  const { user } = useAuth();
  const self = useAsync(() => userApi.self(), []);
  const aff = useAsync(() => userApi.affCode(), []);
  const inviteLink = aff.data ? `${window.location.origin}/register?aff=${encodeURIComponent(aff.data)}` : '';
  const me = self.data ?? user;

  return (
    <>
      <PageHeader title={t('topup.title')} />
      <Card mb="md" padding="md">
        <Group justify="space-between">
          <Text c="dimmed" size="sm">
            {t('topup.balance')}
          </Text>
          <Text fw={700} fz="xl" data-testid="topup-balance">
            {me ? fmt(me.quota) : '…'}
          </Text>
        </Group>
      </Card>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <RedeemCard onRedeemed={self.reload} />
        <Card>
          <Group gap="xs" mb="sm">
            <IconShoppingCart size={20} />
            <Title order={4}>{t('topup.buy')}</Title>
          </Group>
          <Stack gap="sm">
            <Text size="sm" c="dimmed">
              {status?.top_up_link ? t('topup.buyText') : t('topup.noShop')}
            </Text>
            {status?.top_up_link && me && (
              <Group justify="flex-end">
                <Button
                  component="a"
                  href={topUpUrl(status.top_up_link, me.username, me.id, uuid())}
                  target="_blank"
                  rel="noreferrer"
                  rightSection={<IconExternalLink size={16} />}
                  data-testid="topup-link"
                >
                  {t('topup.buyBtn')}
                </Button>
              </Group>
            )}
          </Stack>
        </Card>
        <Card style={{ gridColumn: '1 / -1' }}>
          <Group gap="xs" mb="sm">
            <IconGift size={20} />
            <Title order={4}>{t('topup.invite')}</Title>
          </Group>
          <Text size="sm" c="dimmed" mb="sm">
            {t('topup.inviteText')}
          </Text>
          {aff.error ? (
            <ErrorState error={aff.error} onRetry={aff.reload} />
          ) : (
            <Group gap="xs" wrap="nowrap">
              <Code style={{ wordBreak: 'break-all' }} data-testid="invite-link">
                {inviteLink || '…'}
              </Code>
              {inviteLink && <CopyIcon value={inviteLink} />}
            </Group>
          )}
        </Card>
      </SimpleGrid>
    </>
  );
}
