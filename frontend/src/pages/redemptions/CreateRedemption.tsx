import { Button, Group, NumberInput, Stack, Text, TextInput, Textarea } from '@mantine/core';
import { IconDownload } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { redemptionApi } from '../../api';
import { CopyTextButton } from '../../components/CopyButton';
import { useQuotaFormatter } from '../../context/StatusContext';
import { useT } from '../../i18n';
import { downloadText, redemptionCsv } from '../../lib/csv';
import { notifyError } from '../../lib/notify';

export function CreateRedemption({ onDone, onCancel }: { onDone: () => void; onCancel: () => void }) {
  const t = useT();
  const fmt = useQuotaFormatter();
  const [name, setName] = useState('');
  const [count, setCount] = useState<number | string>(1);
  const [quota, setQuota] = useState<number | string>(500000);
  const [errors, setErrors] = useState<{ name?: string; count?: string; quota?: string }>({});
  const [busy, setBusy] = useState(false);
  const [keys, setKeys] = useState<string[] | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: typeof errors = {};
    const bytes = new TextEncoder().encode(name.trim()).length;
    if (bytes < 1 || bytes > 20) errs.name = t('redemption.nameRequired');
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 100) errs.count = t('redemption.countRange');
    const q = Number(quota);
    if (!Number.isInteger(q) || q < 0) errs.quota = t('token.quotaInvalid');
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setBusy(true);
    try {
      setKeys(await redemptionApi.create({ name: name.trim(), count: n, quota: q }));
      onDone();
    } catch (err) {
      notifyError(err);
    } finally {
      setBusy(false);
    }
  };

  if (keys) {
    const text = keys.join('\n');
    return (
      <Stack gap="sm" data-testid="redemption-created">
        <Text fw={500}>{t('redemption.createdTitle', { count: keys.length })}</Text>
        <Textarea value={text} readOnly autosize minRows={2} maxRows={12} styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }} data-testid="redemption-keys" />
        <Group justify="flex-end" gap="xs">
          <CopyTextButton value={text} size="sm" testId="redemption-copy-all">
            {t('redemption.copyAll')}
          </CopyTextButton>
          <Button
            size="sm"
            variant="light"
            leftSection={<IconDownload size={14} />}
            onClick={() => downloadText(`redemption-${name.trim() || 'codes'}.csv`, redemptionCsv(name.trim(), Number(quota), keys))}
            data-testid="redemption-csv"
          >
            {t('redemption.downloadCsv')}
          </Button>
          <Button size="sm" onClick={onCancel} data-testid="redemption-close">
            {t('app.close')}
          </Button>
        </Group>
      </Stack>
    );
  }

  return (
    <form onSubmit={submit} noValidate data-testid="redemption-form">
      <Stack gap="sm">
        <TextInput label={t('redemption.name')} value={name} onChange={(e) => setName(e.currentTarget.value)} error={errors.name} required data-testid="redemption-name" />
        <NumberInput label={t('redemption.count')} value={count} onChange={setCount} min={1} max={100} allowDecimal={false} error={errors.count} data-testid="redemption-count" />
        <NumberInput
          label={t('redemption.quota')}
          value={quota}
          onChange={setQuota}
          min={0}
          step={500000}
          allowDecimal={false}
          thousandSeparator=","
          error={errors.quota}
          description={fmt(Number(quota) || 0)}
          data-testid="redemption-quota"
        />
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            {t('app.cancel')}
          </Button>
          <Button type="submit" loading={busy} data-testid="redemption-submit">
            {t('app.create')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
