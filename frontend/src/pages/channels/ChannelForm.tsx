import { Button, Divider, Group, NumberInput, Select, SimpleGrid, Stack, TagsInput, Text, Textarea, TextInput, JsonInput } from '@mantine/core';
import { IconCloudDownload } from '@tabler/icons-react';
import { useMemo, useState, type FormEvent } from 'react';
import { channelApi, type ChannelInput } from '../../api';
import { CHANNEL_TYPES, CONFIG_FIELD_LABELS, channelType } from '../../constants/channelTypes';
import { useT } from '../../i18n';
import { notifyError, notifySuccess } from '../../lib/notify';
import { validateModelMapping } from '../../lib/validate';
import { emptyChannelForm, formToChannelInput, type ChannelFormErrors, type ChannelFormValues } from './channelForm';

interface Props {
  initial?: ChannelFormValues;
  channelId?: number;
  modelsByType: Record<string, string[]>;
  groups: string[];
  onSubmit: (body: ChannelInput) => Promise<void>;
  onCancel: () => void;
}

export function ChannelForm({ initial, channelId, modelsByType, groups, onSubmit, onCancel }: Props) {
  const t = useT();
  const [v, setV] = useState<ChannelFormValues>(initial ?? emptyChannelForm);
  const [errors, setErrors] = useState<ChannelFormErrors>({});
  const [busy, setBusy] = useState(false);
  const [fetching, setFetching] = useState(false);
  const [fetchUnavailable, setFetchUnavailable] = useState(false);
  const set = <K extends keyof ChannelFormValues>(k: K, val: ChannelFormValues[K]) => setV((x) => ({ ...x, [k]: val }));
  const ct = channelType(v.type);
  const isEdit = channelId !== undefined;

  const allModels = useMemo(() => [...new Set(Object.values(modelsByType).flat())].sort(), [modelsByType]);
  const typeModels = modelsByType[String(v.type)] ?? [];
  const mappingCheck = validateModelMapping(v.model_mapping);

  const fetchUpstream = async () => {
    if (channelId === undefined) return;
    setFetching(true);
    try {
      const list = await channelApi.fetchModels(channelId);
      set('models', [...new Set([...v.models, ...(list ?? [])])]);
      notifySuccess(t('channel.fetchedModels', { count: list?.length ?? 0 }));
    } catch (e) {
      setFetchUnavailable(true);
      notifyError(e);
    } finally {
      setFetching(false);
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = formToChannelInput(v, isEdit, t);
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

  return (
    <form onSubmit={submit} noValidate data-testid="channel-form">
      <Stack gap="sm">
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
          <Select
            label={t('channel.type')}
            data={CHANNEL_TYPES.map((c) => ({ value: String(c.id), label: `${c.label} (${c.id})` }))}
            value={String(v.type)}
            onChange={(val) => set('type', Number(val ?? 1))}
            searchable
            allowDeselect={false}
            data-testid="channel-type"
            comboboxProps={{ withinPortal: true }}
          />
          <TextInput label={t('channel.name')} value={v.name} onChange={(e) => set('name', e.currentTarget.value)} error={errors.name} data-testid="channel-name" required />
        </SimpleGrid>
        <TextInput
          label={t('channel.baseUrl')}
          placeholder={ct.baseUrl || 'https://'}
          description={ct.baseUrl ? t('channel.baseUrlDefault', { url: ct.baseUrl }) : undefined}
          value={v.base_url}
          onChange={(e) => set('base_url', e.currentTarget.value)}
          error={errors.base_url}
          required={ct.needsBaseUrl}
          data-testid="channel-base-url"
        />
        <Textarea
          label={t('channel.key')}
          placeholder={ct.keyHint}
          description={isEdit ? t('channel.keyHintEdit') : t('channel.keyHintCreate')}
          value={v.key}
          onChange={(e) => set('key', e.currentTarget.value)}
          error={errors.key}
          autosize
          minRows={2}
          maxRows={8}
          required={!isEdit}
          data-testid="channel-key"
          styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
        />
        {(ct.config?.length ?? 0) > 0 && (
          <>
            <Divider label={t('channel.config')} labelPosition="left" />
            <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
              {ct.config!.map((f) =>
                CONFIG_FIELD_LABELS[f].multiline ? (
                  <Textarea
                    key={f}
                    label={CONFIG_FIELD_LABELS[f].label}
                    value={v.config[f] ?? ''}
                    onChange={(e) => set('config', { ...v.config, [f]: e.currentTarget.value })}
                    autosize
                    minRows={3}
                    style={{ gridColumn: '1 / -1' }}
                  />
                ) : (
                  <TextInput
                    key={f}
                    label={CONFIG_FIELD_LABELS[f].label}
                    placeholder={CONFIG_FIELD_LABELS[f].placeholder}
                    value={v.config[f] ?? ''}
                    onChange={(e) => set('config', { ...v.config, [f]: e.currentTarget.value })}
                    data-testid={`channel-config-${f}`}
                  />
                ),
              )}
            </SimpleGrid>
          </>
        )}
        <TagsInput
          label={t('channel.models')}
          data={allModels}
          value={v.models}
          onChange={(val) => set('models', val)}
          error={errors.models}
          splitChars={[',', ' ', '\n']}
          limit={40}
          maxDropdownHeight={240}
          clearable
          data-testid="channel-models"
          comboboxProps={{ withinPortal: true }}
        />
        <Group gap="xs" mt={-4}>
          <Button size="compact-xs" variant="light" disabled={typeModels.length === 0} onClick={() => set('models', [...new Set([...v.models, ...typeModels])])}>
            {t('channel.fillModels')}
          </Button>
          <Button size="compact-xs" variant="light" color="gray" onClick={() => set('models', [])}>
            {t('channel.clearModels')}
          </Button>
          {isEdit && !fetchUnavailable && (
            <Button size="compact-xs" variant="light" color="grape" leftSection={<IconCloudDownload size={12} />} loading={fetching} onClick={fetchUpstream} data-testid="channel-fetch-models">
              {t('channel.fetchModels')}
            </Button>
          )}
        </Group>
        <TagsInput
          label={t('channel.groups')}
          data={groups}
          value={v.groups}
          onChange={(val) => set('groups', val)}
          splitChars={[',', ' ']}
          data-testid="channel-groups"
          comboboxProps={{ withinPortal: true }}
        />
        <JsonInput
          label={t('channel.modelMapping')}
          description={t('channel.modelMappingHint')}
          placeholder='{"gpt-3.5-turbo": "gpt-35-turbo"}'
          value={v.model_mapping}
          onChange={(val) => set('model_mapping', val)}
          error={errors.model_mapping ?? (!mappingCheck.ok ? mappingCheck.error : undefined)}
          autosize
          minRows={2}
          maxRows={10}
          formatOnBlur
          data-testid="channel-model-mapping"
        />
        <SimpleGrid cols={2} spacing="sm">
          <NumberInput label={t('channel.priority')} value={v.priority} onChange={(val) => set('priority', val)} allowDecimal={false} data-testid="channel-priority" />
          <NumberInput label={t('channel.weight')} value={v.weight} onChange={(val) => set('weight', val)} allowDecimal={false} min={0} />
        </SimpleGrid>
        <Textarea label={t('channel.systemPrompt')} description={t('channel.systemPromptHint')} value={v.system_prompt} onChange={(e) => set('system_prompt', e.currentTarget.value)} autosize minRows={1} maxRows={6} />
        {Object.keys(errors).length > 0 && (
          <Text c="red" size="xs">
            {Object.values(errors)[0]}
          </Text>
        )}
        <Group justify="flex-end" mt="xs">
          <Button variant="default" onClick={onCancel}>
            {t('app.cancel')}
          </Button>
          <Button type="submit" loading={busy} data-testid="channel-submit">
            {isEdit ? t('app.save') : t('app.create')}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
