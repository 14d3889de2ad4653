import { Alert, Anchor, Button, Group, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useAuth } from '../../context/AuthContext';
import { useStatus, useSystemName } from '../../context/StatusContext';
import { errorMessage } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { notifySuccess } from '../../lib/notify';
import { AuthCard } from './AuthCard';

export function LoginPage() {
  const t = useT();
  const { login } = useAuth();
  const { status } = useStatus();
  const name = useSystemName();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<{ username?: string; password?: string }>({});
  const [submitError, setSubmitError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const passwordLoginDisabled = status?.password_login_enabled === false;
  const registerDisabled = status?.register_enabled === false || status?.password_register_enabled === false;

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: typeof errors = {};
    if (!username.trim()) errs.username = t('auth.usernameRequired');
    if (!password) errs.password = t('auth.passwordRequired');
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    setSubmitError(null);
    try {
      const user = await login(username.trim(), password);
      notifySuccess(t('auth.welcome', { name: user.display_name || user.username }));
      const redirect = params.get('redirect');
      navigate(redirect && redirect.startsWith('/') ? redirect : '/dashboard', { replace: true });
    } catch (err) {
      setSubmitError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={t('auth.signInTitle', { name })}>
      {passwordLoginDisabled && <Alert color="yellow">{t('auth.passwordLoginDisabled')}</Alert>}
      <form onSubmit={onSubmit} noValidate data-testid="login-form">
        <Stack gap="sm">
          <TextInput
            label={t('auth.usernameOrEmail')}
            value={username}
            onChange={(e) => setUsername(e.currentTarget.value)}
            error={errors.username}
            autoComplete="username"
            data-testid="login-username"
            autoFocus
          />
          <PasswordInput
            label={t('auth.password')}
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            error={errors.password}
            autoComplete="current-password"
            data-testid="login-password"
          />
          {submitError && (
            <Alert color="red" variant="light" data-testid="login-error">
              {submitError}
            </Alert>
          )}
          <Button type="submit" loading={busy} disabled={passwordLoginDisabled} fullWidth data-testid="login-submit">
            {t('auth.signIn')}
          </Button>
        </Stack>
      </form>
      <Group justify="space-between">
        <Anchor component={Link} to="/reset" size="sm">
          {t('auth.forgot')}
        </Anchor>
        {!registerDisabled && (
          <Text size="sm">
            {t('auth.noAccount')}{' '}
            <Anchor component={Link} to="/register" data-testid="goto-register">
              {t('auth.signUp')}
            </Anchor>
          </Text>
        )}
      </Group>
    </AuthCard>
  );
}
