import { Button, Group, NumberInput, PasswordInput, Stack, Text, TextInput, Autocomplete } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import type { User } from '../../api';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useT } from '../../i18n';

export interface UserFormValues {
  username: string;
  display_name: string;
  password: string;
  quota: number | string;
  group: string;
}

export function UserForm({
  user,
  groups,
  onSubmit,
  onCancel,
}: {
  user?: User;
  groups: string[];
  onSubmit: (v: UserFormValues) => Promise<void>;
  onCancel: () => void;
}) {
  const t = useT();
  const fmt = useQuotaFormatter();
  const isEdit = !!user;
  const [v, setV] = useState<UserFormValues>({
    username: user?.username ?? '',
    display_name: user?.display_name ?? '',
    password: '',
    quota: user?.quota ?? 0,
    group: user?.group ?? 'default',
  });
  const [errors, setErrors] = useState<Partial<Record<keyof UserFormValues, string>>>({});
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof UserFormValues>(k: K, val: UserFormValues[K]) => setV((x) => ({ ...x, [k]: val }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: typeof errors = {};
    if (!v.username.trim()) errs.username = t('auth.usernameRequired');
    else if (v.username.trim().length > 12) errs.username = t('auth.usernameLength');
    if ((!isEdit || v.password) && (v.password.length < 8 || v.password.length > 20)) errs.password = t('auth.passwordLength');
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    try {
      await onSubmit({ ...v, username: v.username.trim(), display_name: v.display_name.trim() });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} noValidate data-testid="user-form">
      <Stack gap="sm">
        <TextInput label={t('auth.username')} value={v.username} onChange={(e) => set('username', e.currentTarget.value)} error={errors.username} required data-testid="user-username" />
        <TextInput label={t('user.displayName')} value={v.display_name} onChange={(e) => set('display_name', e.currentTarget.value)} data-testid="user-display-name" />
        <PasswordInput
          label={t('auth.password')}
          description={isEdit ? t('user.passwordHintEdit') : undefined}
          value={v.password}
          onChange={(e) => set('password', e.currentTarget.value)}
          error={errors.password}
          required={!isEdit}
          autoComplete="new-password"
          data-testid="user-password"
        />
        {isEdit && (
          <>
            <Autocomplete label={t('user.group')} data={groups} value={v.group} onChange={(val) => set('group', val)} data-testid="user-group" />
            <NumberInput
              label={t('user.quota')}
              value={v.quota}
              onChange={(val) => set('quota', val)}
              allowDecimal={false}
              thousandSeparator=","
              description={fmt(Number(v.quota) || 0)}
              data-testid="user-quota"
            />
          </>
        )}
        {Object.keys(errors).length > 0 && (
          <Text c="red" size="xs">
            {Object.values(errors)[0]}
          </Text>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            {t('app.cancel')}
          </Button>
          <Button type="submit" loading={busy} data-testid="user-submit">
            {isEdit ? t('app.save') : t('app.create')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
