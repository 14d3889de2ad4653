import { Alert, Button, Card, Code, Group, Modal, PasswordInput, SimpleGrid, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconKey } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { userApi } from '../../api';
import { CopyIcon } from '../../components/CopyButton';
import { PageHeader } from '../../components/PageHeader';
import { useConfirm } from '../../components/useConfirm';
import { useAuth } from '../../context/AuthContext';
import { errorMessage } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';

function AccountCard() {
  const t = useT();
  const { user, refresh, usedDefaultPassword, clearDefaultPasswordFlag } = useAuth();
  const [username, setUsername] = useState(user?.username ?? '');
  const [displayName, setDisplayName] = useState(user?.display_name ?? '');
  const [password, setPassword] = useState('');
  const [password2, setPassword2] = useState('');
  const [errors, setErrors] = useState<{ username?: string; password?: string; password2?: string }>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: typeof errors = {};
    if (!username.trim()) errs.username = t('auth.usernameRequired');
    else if (username.trim().length > 12) errs.username = t('auth.usernameLength');
    if (password && (password.length < 8 || password.length > 20)) errs.password = t('auth.passwordLength');
    if (password !== password2) errs.password2 = t('auth.passwordsDiffer');
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setError(null);
    try {
      await userApi.updateSelf({ username: username.trim(), display_name: displayName.trim(), password });
      if (password && password !== '123456') clearDefaultPasswordFlag();
      setPassword('');
      setPassword2('');
      notifySuccess(t('profile.updated'));
      await refresh();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card>
      <Title order={4} mb="sm">
        {t('profile.account')}
      </Title>
      {usedDefaultPassword && (
        <Alert color="red" variant="light" mb="sm">
          {t('auth.defaultPassword')}
        </Alert>
      )}
      <form onSubmit={submit} noValidate data-testid="profile-form">
        <Stack gap="sm">
          <TextInput label={t('auth.username')} value={username} onChange={(e) => setUsername(e.currentTarget.value)} error={errors.username} data-testid="profile-username" />
          <TextInput label={t('user.displayName')} value={displayName} onChange={(e) => setDisplayName(e.currentTarget.value)} data-testid="profile-display-name" />
          <PasswordInput label={t('auth.password')} description={t('user.passwordHintEdit')} value={password} onChange={(e) => setPassword(e.currentTarget.value)} error={errors.password} autoComplete="new-password" data-testid="profile-password" />
          <PasswordInput label={t('auth.confirmPassword')} value={password2} onChange={(e) => setPassword2(e.currentTarget.value)} error={errors.password2} autoComplete="new-password" data-testid="profile-password2" />
          {error && <Alert color="red" variant="light">{error}</Alert>}
          <Group justify="flex-end">
            <Button type="submit" loading={busy} data-testid="profile-save">
              {t('app.save')}
            </Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

function AccessTokenCard() {
  const t = useT();
  const confirm = useConfirm();
  const [token, setToken] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const generate = async () => {
    if (!(await confirm(t('profile.regenConfirm'), { danger: false }))) return;
    setBusy(true);
    try {
      setToken(await userApi.generateAccessToken());
    } catch (e) {
      notifyError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card>
      <Title order={4} mb="sm">
        {t('profile.accessToken')}
      </Title>
      <Text size="sm" c="dimmed" mb="md">
        {t('profile.accessTokenText')}
      </Text>
      <Group justify="flex-end">
        <Button leftSection={<IconKey size={16} />} variant="light" onClick={generate} loading={busy} data-testid="access-token-generate">
          {t('profile.generate')}
        </Button>
      </Group>
      <Modal opened={token !== null} onClose={() => setToken(null)} title={t('profile.generatedTitle')}>
        <Stack gap="sm">
          <Text size="sm">{t('profile.generatedText')}</Text>
          <Group gap="xs" wrap="nowrap">
            <Code style={{ wordBreak: 'break-all' }} data-testid="access-token-value">
              {token}
            </Code>
            {token && <CopyIcon value={token} />}
          </Group>
        </Stack>
      </Modal>
    </Card>
  );
}

export default function ProfilePage() {
  const t = useT();
  return (
    <>
      <PageHeader title={t('profile.title')} />
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <AccountCard />
        <AccessTokenCard />
      </SimpleGrid>
    </>
  );
}
