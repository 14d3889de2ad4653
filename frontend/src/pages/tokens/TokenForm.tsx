import { Button, Checkbox, Group, NumberInput, Stack, Switch, TagsInput, Text, TextInput } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import type { TokenInput } from '../../api';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useT } from '../../i18n';
import { datetimeLocalFromNow } from '../../lib/time';
import { emptyTokenForm, formToTokenInput, type TokenFormErrors, type TokenFormValues } from './tokenForm';

interface Props {
  initial?: TokenFormValues;
  modelSuggestions?: string[];
  submitLabel?: string;
  onSubmit: (body: TokenInput) => Promise<void>;
  onCancel?: () => void;
}

export function TokenForm({ initial, modelSuggestions = [], submitLabel, onSubmit, onCancel }: Props) {
  const t = useT();
  const fmt = useQuotaFormatter();
  const [v, setV] = useState<TokenFormValues>(initial ?? emptyTokenForm);
  const [errors, setErrors] = useState<TokenFormErrors>({});
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof TokenFormValues>(k: K, val: TokenFormValues[K]) => setV((x) => ({ ...x, [k]: val }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = formToTokenInput(v, t);
    if (!r.ok) {
      setErrors(r.errors);
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      await onSubmit(r.body);
    } finally {
      setBusy(false);
    }
  };

  const quotaNum = Number(v.remainQuota) || 0;

  return (
    <form onSubmit={submit} noValidate data-testid="token-form">
      <Stack gap="sm">
        <TextInput label={t('token.name')} value={v.name} onChange={(e) => set('name', e.currentTarget.value)} error={errors.name} data-testid="token-name" required />
        <Switch label={t('token.unlimited')} checked={v.unlimited} onChange={(e) => set('unlimited', e.currentTarget.checked)} data-testid="token-unlimited" />
        {!v.unlimited && (
          <NumberInput
            label={t('token.quota')}
            value={v.remainQuota}
            onChange={(val) => set('remainQuota', val)}
            min={0}
            step={500000}
            allowDecimal={false}
            thousandSeparator=","
            error={errors.remainQuota}
            description={t('token.quotaHint', { value: fmt(quotaNum) })}
            data-testid="token-quota"
          />
        )}
        <Checkbox label={t('token.neverExpires')} checked={v.neverExpires} onChange={(e) => set('neverExpires', e.currentTarget.checked)} data-testid="token-never-expires" />
        {!v.neverExpires && (
          <Stack gap={6}>
            <TextInput
              type="datetime-local"
              label={t('token.expiry')}
              value={v.expiresAt}
              onChange={(e) => set('expiresAt', e.currentTarget.value)}
              error={errors.expiresAt}
              data-testid="token-expires-at"
            />
            <Group gap="xs">
              {(
                [
                  ['token.hour', 3600],
                  ['token.day', 86400],
                  ['token.month', 30 * 86400],
                ] as const
              ).map(([label, secs]) => (
                <Button key={label} size="compact-xs" variant="light" onClick={() => set('expiresAt', datetimeLocalFromNow(secs))}>
                  +{t(label)}
                </Button>
              ))}
            </Group>
          </Stack>
        )}
        <TagsInput
          label={t('token.models')}
          description={t('token.modelsHint')}
          data={modelSuggestions}
          value={v.models}
          onChange={(val) => set('models', val)}
          clearable
          splitChars={[',', ' ']}
          data-testid="token-models"
          comboboxProps={{ withinPortal: true }}
        />
        <TextInput label={t('token.subnet')} description={t('token.subnetHint')} value={v.subnet} onChange={(e) => set('subnet', e.currentTarget.value)} data-testid="token-subnet" />
        {Object.keys(errors).length > 0 && (
          <Text c="red" size="xs">
            {Object.values(errors)[0]}
          </Text>
        )}
        <Group justify="flex-end" mt="xs">
          {onCancel && (
            <Button variant="default" onClick={onCancel}>
              {t('app.cancel')}
            </Button>
          )}
          <Button type="submit" loading={busy} data-testid="token-submit">
            {submitLabel ?? t('app.save')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
