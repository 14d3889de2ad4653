import type { Channel, ChannelInput } from '../../api';
import { channelType, parseChannelConfig, serializeChannelConfig } from '../../constants/channelTypes';
import type { TFunction } from '../../i18n';
import { joinList, splitList, validateModelMapping } from '../../lib/validate';

export interface ChannelFormValues {
  type: number;
  name: string;
  key: string;
  base_url: string;
  other: string;
  models: string[];
  groups: string[];
  model_mapping: string;
  priority: number | string;
  weight: number | string;
  config: Record<string, string>;
  system_prompt: string;
}

export const emptyChannelForm: ChannelFormValues = {
  type: 1,
  name: '',
  key: '',
  base_url: '',
  other: '',
  models: [],
  groups: ['default'],
  model_mapping: '',
  priority: 0,
  weight: 0,
  config: {},
  system_prompt: '',
};

export function channelToForm(c: Channel): ChannelFormValues {
  const config = parseChannelConfig(c.config);
  // Legacy `other` held the api version for Azure / Xunfei / Gemini.
  if ([3, 18, 24].includes(c.type) && c.other && !config.api_version) config.api_version = c.other;
  let mapping = c.model_mapping ?? '';
  if (mapping.trim() === '{}') mapping = '';
  else if (mapping.trim()) {
    try {
      mapping = JSON.stringify(JSON.parse(mapping), null, 2);
    } catch {
      // keep as is so the validator shows the problem
    }
  }
  return {
    type: c.type,
    name: c.name,
    key: '',
    base_url: c.base_url ?? '',
    other: c.other ?? '',
    models: splitList(c.models),
    groups: splitList(c.group).length ? splitList(c.group) : ['default'],
    model_mapping: mapping,
    priority: c.priority ?? 0,
    weight: c.weight ?? 0,
    config,
    system_prompt: c.system_prompt ?? '',
  };
}

export type ChannelFormErrors = Partial<Record<keyof ChannelFormValues, string>>;

export function formToChannelInput(v: ChannelFormValues, isEdit: boolean, t: TFunction): { ok: true; body: ChannelInput } | { ok: false; errors: ChannelFormErrors } {
  const errors: ChannelFormErrors = {};
  const ct = channelType(v.type);
  if (!v.name.trim()) errors.name = t('token.nameRequired');
  if (!isEdit && !v.key.trim()) errors.key = t('channel.keyRequired');
  if (ct.needsBaseUrl && !v.base_url.trim()) errors.base_url = t('channel.baseUrlRequired');
  if (v.models.length === 0) errors.models = t('channel.modelsRequired');
  const mapping = validateModelMapping(v.model_mapping);
  if (!mapping.ok) errors.model_mapping = mapping.error;
  if (Object.keys(errors).length) return { ok: false, errors };
  const config: Record<string, string> = {};
  for (const f of ct.config ?? []) if (v.config[f]) config[f] = v.config[f];
  return {
    ok: true,
    body: {
      type: v.type,
      name: v.name.trim(),
      key: v.key
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean)
        .join('\n'),
      base_url: v.base_url.trim().replace(/\/+$/, ''),
      other: v.other,
      models: joinList(v.models),
      group: joinList(v.groups) || 'default',
      model_mapping: mapping.ok && Object.keys(mapping.value).length ? JSON.stringify(mapping.value) : '',
      priority: Number(v.priority) || 0,
      weight: Number(v.weight) || 0,
      config: serializeChannelConfig(config),
      system_prompt: v.system_prompt,
    },
  };
}
