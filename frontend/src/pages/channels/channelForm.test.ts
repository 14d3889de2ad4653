import { describe, expect, it } from 'vitest';
import type { Channel } from '../../api';
import { translate } from '../../i18n';
import { channelToForm, emptyChannelForm, formToChannelInput } from './channelForm';

const t = (k: Parameters<typeof translate>[1], v?: Record<string, string | number>) => translate('en', k, v);

describe('channel form', () => {
  it('builds a create body with comma lists and compact mapping', () => {
    const r = formToChannelInput(
      { ...emptyChannelForm, type: 8, name: ' mock ', key: 'k1\n\n k2 \n', base_url: 'http://up/', models: ['gpt-3.5-turbo', 'gpt-4'], groups: ['default', 'vip'], model_mapping: '{\n "a": "b"\n}' },
      false,
      t,
    );
    expect(r).toEqual({
      ok: true,
      body: { type: 8, name: 'mock', key: 'k1\nk2', base_url: 'http://up', other: '', models: 'gpt-3.5-turbo,gpt-4', group: 'default,vip', model_mapping: '{"a":"b"}', priority: 0, weight: 0, config: '', system_prompt: '' },
    });
  });
  it('requires a key on create only, a base URL for Custom, and models', () => {
    const r = formToChannelInput({ ...emptyChannelForm, type: 8, name: 'x' }, false, t);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(Object.keys(r.errors).sort()).toEqual(['base_url', 'key', 'models']);
    const edit = formToChannelInput({ ...emptyChannelForm, type: 1, name: 'x', models: ['m'] }, true, t);
    expect(edit.ok).toBe(true);
  });
  it('rejects a bad model mapping', () => {
    const r = formToChannelInput({ ...emptyChannelForm, name: 'x', key: 'k', models: ['m'], model_mapping: '{"a": 1}' }, false, t);
    expect(r.ok).toBe(false);
  });
  it('keeps only the config fields of the type', () => {
    const r = formToChannelInput({ ...emptyChannelForm, type: 3, name: 'az', key: 'k', base_url: 'https://x.openai.azure.com', models: ['gpt-4'], config: { api_version: '2024-02-01', region: 'nope' } }, false, t);
    expect(r.ok && r.body.config).toBe('{"api_version":"2024-02-01"}');
  });
  it('reads a channel back into the form (legacy other → api_version)', () => {
    const c = { id: 1, type: 3, key: '', status: 1, name: 'az', weight: 0, created_time: 0, test_time: 0, response_time: 0, base_url: 'https://x', other: '2023-05-15', balance: 0, balance_updated_time: 0, models: 'gpt-4,gpt-35-turbo', group: 'default', used_quota: 0, model_mapping: '{}', priority: 5, config: '', system_prompt: null } satisfies Channel;
    const f = channelToForm(c);
    expect(f.config.api_version).toBe('2023-05-15');
    expect(f.models).toEqual(['gpt-4', 'gpt-35-turbo']);
    expect(f.model_mapping).toBe('');
    expect(f.priority).toBe(5);
  });
});
