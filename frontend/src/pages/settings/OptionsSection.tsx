import { Button, Group, NumberInput, SimpleGrid, Stack, Switch, Textarea, TextInput } from '@mantine/core';
import { useState } from 'react';
import { optionApi } from '../../api';
import { useStatus } from '../../context/StatusContext';
import { useI18n } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { validateOption, type OptionDef } from './optionDefs';

export function OptionsSection({ defs, values, onSaved }: { defs: OptionDef[]; values: Record<string, string>; onSaved: (changed: Record<string, string>) => void }) {
  const { t, lang } = useI18n();
  const { reload: reloadStatus } = useStatus();
  const initial = Object.fromEntries(defs.map((d) => [d.key, values[d.key] ?? (d.kind === 'bool' ? 'false' : '')]));
  const [draft, setDraft] = useState<Record<string, string>>(initial);
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const set = (k: string, v: string) => setDraft((d) => ({ ...d, [k]: v }));

  const save = async () => {
    const errs: Record<string, string> = {};
    for (const d of defs) {
      const e = validateOption(d, draft[d.key] ?? '');
      if (e && draft[d.key] !== initial[d.key]) errs[d.key] = e;
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;
    const changed = Object.fromEntries(Object.entries(draft).filter(([k, v]) => v !== initial[k]));
    if (Object.keys(changed).length === 0) {
      notifySuccess(t('settings.nothingChanged'));
      return;
    }
    setBusy(true);
    const saved: Record<string, string> = {};
    try {
      for (const [k, v] of Object.entries(changed)) {
        await optionApi.update(k, v);
        saved[k] = v;
      }
      notifySuccess(t('settings.savedCount', { count: Object.keys(saved).length }));
    } catch (e) {
      notifyError(e);
    } finally {
      setBusy(false);
      if (Object.keys(saved).length) {
        onSaved(saved);
        reloadStatus();
      }
    }
  };

  const label = (d: OptionDef) => (lang === 'zh' ? d.zh : d.en);
  const hint = (d: OptionDef) => (lang === 'zh' ? d.hintZh : d.hintEn);
  const bools = defs.filter((d) => d.kind === 'bool');
  const fields = defs.filter((d) => d.kind !== 'bool' && d.kind !== 'textarea');
  const areas = defs.filter((d) => d.kind === 'textarea');

  return (
    <Stack gap="md">
      {fields.length > 0 && (
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
          {fields.map((d) =>
            d.kind === 'text' ? (
              <TextInput key={d.key} label={label(d)} description={hint(d)} value={draft[d.key]} onChange={(e) => set(d.key, e.currentTarget.value)} data-testid={`opt-${d.key}`} />
            ) : (
              <NumberInput
                key={d.key}
                label={label(d)}
                description={hint(d)}
                value={draft[d.key]}
                onChange={(v) => set(d.key, String(v))}
                allowDecimal={d.kind === 'float'}
                error={errors[d.key]}
                data-testid={`opt-${d.key}`}
              />
            ),
          )}
        </SimpleGrid>
      )}
      {areas.map((d) => (
        <Textarea key={d.key} label={label(d)} description={hint(d)} value={draft[d.key]} onChange={(e) => set(d.key, e.currentTarget.value)} autosize minRows={2} maxRows={10} data-testid={`opt-${d.key}`} />
      ))}
      {bools.length > 0 && (
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
          {bools.map((d) => (
            <Switch key={d.key} label={label(d)} checked={draft[d.key] === 'true'} onChange={(e) => set(d.key, e.currentTarget.checked ? 'true' : 'false')} data-testid={`opt-${d.key}`} />
          ))}
        </SimpleGrid>
      )}
      <Group justify="flex-end">
        <Button onClick={save} loading={busy} data-testid="settings-save">
          {t('settings.saveSection')}
        </Button>
      </Group>
    </Stack>
  );
}
