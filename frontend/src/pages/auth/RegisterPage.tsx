import { Alert, Anchor, Button, Group, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { miscApi, userApi, type RegisterInput } from '../../api';
import { useStatus } from '../../context/StatusContext';
import { errorMessage } from '../../hooks/useAsync';
import { useT, type TFunction } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { AuthCard } from './AuthCard';

interface Form {
  username: string;
  password: string;
  password2: string;
  email: string;
  verification_code: string;
  aff_code: string;
}

export function validateRegister(f: Form, needEmail: boolean, t: TFunction): Partial<Record<keyof Form, string>> {
  const e: Partial<Record<keyof Form, string>> = {};
  if (!f.username.trim()) e.username = t('auth.usernameRequired');
  else if (f.username.trim().length > 12) e.username = t('auth.usernameLength');
  if (f.password.length < 8 || f.password.length > 20) e.password = t('auth.passwordLength');
  if (f.password !== f.password2) e.password2 = t('auth.passwordsDiffer');
  if (needEmail && !f.email.trim()) e.email = t('auth.emailRequired');
  return e;
}

export function RegisterPage() {
  const t = useT();
  const { status } = useStatus();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [form, setForm] = useState<Form>({
    username: '',
    password: '',
    password2: '',
    email: '',
    verification_code: '',
    aff_code: params.get('aff') ?? '',
  });
  const [errors, setErrors] = useState<Partial<Record<keyof Form, string>>>({});
  const [busy, setBusy] = useState(false);
  const [sending, setSending] = useState(false);
  const [submitError, setSubmitError] = useState<string | null>(null);
  const needEmail = !!status?.email_verification;
  const disabled = status?.register_enabled === false || status?.password_register_enabled === false;
  const set = (k: keyof Form) => (e: { currentTarget: { value: string } }) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [k]: value }));
  };

  const sendCode = async () => {
    if (!form.email.trim()) {
      setErrors((x) => ({ ...x, email: t('auth.emailRequired') }));
      return;
    }
    setSending(true);
    try {
      await miscApi.sendVerification(form.email.trim());
      notifySuccess(t('auth.codeSent'));
    } catch (e) {
      notifyError(e);
    } finally {
      setSending(false);
    }
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const errs = validateRegister(form, needEmail, t);
    setErrors(errs);
    if (Object.keys(errs).length) return;
    const body: RegisterInput = { username: form.username.trim(), password: form.password };
    if (form.email.trim()) body.email = form.email.trim();
    if (form.verification_code.trim()) body.verification_code = form.verification_code.trim();
    if (form.aff_code.trim()) body.aff_code = form.aff_code.trim();
    setBusy(true);
    setSubmitError(null);
    try {
      await userApi.register(body);
      notifySuccess(t('auth.registered'));
      navigate('/login');
    } catch (err) {
      setSubmitError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={t('auth.signUpTitle')}>
      {disabled && <Alert color="yellow">{t('auth.registerDisabled')}</Alert>}
      <form onSubmit={onSubmit} noValidate data-testid="register-form">
        <Stack gap="sm">
          <TextInput label={t('auth.username')} value={form.username} onChange={set('username')} error={errors.username} autoComplete="username" data-testid="register-username" />
          <PasswordInput label={t('auth.password')} value={form.password} onChange={set('password')} error={errors.password} autoComplete="new-password" data-testid="register-password" />
          <PasswordInput label={t('auth.confirmPassword')} value={form.password2} onChange={set('password2')} error={errors.password2} autoComplete="new-password" data-testid="register-password2" />
          {needEmail && (
            <>
              <Group align="flex-end" gap="xs" wrap="nowrap">
                <TextInput style={{ flex: 1 }} label={t('auth.email')} type="email" value={form.email} onChange={set('email')} error={errors.email} data-testid="register-email" />
                <Button variant="default" onClick={sendCode} loading={sending}>
                  {t('auth.sendCode')}
                </Button>
              </Group>
              <TextInput label={t('auth.verificationCode')} value={form.verification_code} onChange={set('verification_code')} data-testid="register-code" />
            </>
          )}
          <TextInput label={t('auth.affCode')} value={form.aff_code} onChange={set('aff_code')} data-testid="register-aff" />
          {submitError && (
            <Alert color="red" variant="light" data-testid="register-error">
              {submitError}
            </Alert>
          )}
          <Button type="submit" loading={busy} disabled={disabled} fullWidth data-testid="register-submit">
            {t('auth.signUp')}
          </Button>
        </Stack>
      </form>
      <Text size="sm" ta="center">
        {t('auth.haveAccount')}{' '}
        <Anchor component={Link} to="/login">
          {t('auth.signIn')}
        </Anchor>
      </Text>
    </AuthCard>
  );
}
