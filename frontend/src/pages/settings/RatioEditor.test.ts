import { describe, expect, it } from 'vitest';
import { validateOption, OPERATION_OPTIONS } from './optionDefs';
import { sortRatioEntries } from './RatioEditor';

describe('ratio table', () => {
  const obj = { 'gpt-4': 15, 'gpt-4o-mini': 0.075, 'claude-3-haiku': 0.125 };
  it('sorts by name and value, both ways', () => {
    expect(sortRatioEntries(obj, '', 'name', false).map((r) => r[0])).toEqual(['claude-3-haiku', 'gpt-4', 'gpt-4o-mini']);
    expect(sortRatioEntries(obj, '', 'value', true).map((r) => r[0])).toEqual(['gpt-4', 'claude-3-haiku', 'gpt-4o-mini']);
  });
  it('filters by search text', () => {
    expect(sortRatioEntries(obj, 'GPT', 'name', false).map((r) => r[0])).toEqual(['gpt-4', 'gpt-4o-mini']);
  });
  it('validates numeric options', () => {
    const retry = OPERATION_OPTIONS.find((d) => d.key === 'RetryTimes')!;
    const qpu = OPERATION_OPTIONS.find((d) => d.key === 'QuotaPerUnit')!;
    expect(validateOption(retry, '3')).toBeNull();
    expect(validateOption(retry, '1.5')).not.toBeNull();
    expect(validateOption(qpu, '500000.5')).toBeNull();
    expect(validateOption(qpu, 'abc')).not.toBeNull();
  });
});
