import { Alert, Anchor, Button, Code, Group, Stack, Text, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { miscApi } from '../../api';
import { CopyIcon } from '../../components/CopyButton';
import { errorMessage } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { AuthCard } from './AuthCard';

export function ResetPage() {
  const t = useT();
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!email.trim()) {
      setError(t('auth.emailRequired'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await miscApi.sendResetEmail(email.trim());
      setDone(true);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={t('auth.resetTitle')}>
      {done ? (
        <Alert color="teal">{t('auth.resetSent')}</Alert>
      ) : (
        <form onSubmit={onSubmit} noValidate>
          <Stack gap="sm">
            <TextInput label={t('auth.email')} type="email" value={email} onChange={(e) => setEmail(e.currentTarget.value)} data-testid="reset-email" />
            {error && <Alert color="red" variant="light">{error}</Alert>}
            <Button type="submit" loading={busy} fullWidth>
              {t('auth.resetSend')}
            </Button>
          </Stack>
        </form>
      )}
      <Anchor component={Link} to="/login" size="sm" ta="center">
        {t('auth.signIn')}
      </Anchor>
    </AuthCard>
  );
}

/** Landing page of the emailed link `/user/reset?email=&token=`. */
export function ResetConfirmPage() {
  const t = useT();
  const [params] = useSearchParams();
  const email = params.get('email') ?? '';
  const token = params.get('token') ?? '';
  const [busy, setBusy] = useState(false);
  const [password, setPassword] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      setPassword(await miscApi.resetPassword(email, token));
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={t('auth.resetConfirm')}>
      <Text size="sm">{email}</Text>
      {password ? (
        <Stack gap="xs">
          <Text size="sm">{t('auth.newPasswordIs')}</Text>
          <Group gap="xs">
            <Code fz="md">{password}</Code>
            <CopyIcon value={password} />
          </Group>
        </Stack>
      ) : (
        <Button onClick={confirm} loading={busy} disabled={!email || !token}>
          {t('auth.resetConfirm')}
        </Button>
      )}
      {error && <Alert color="red" variant="light">{error}</Alert>}
      <Anchor component={Link} to="/login" size="sm" ta="center">
        {t('auth.signIn')}
      </Anchor>
    </AuthCard>
  );
}
