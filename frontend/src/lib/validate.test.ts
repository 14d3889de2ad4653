import { describe, expect, it } from 'vitest';
import { joinList, splitList, validateModelMapping, validateRatio } from './validate';

describe('validateModelMapping', () => {
  it('accepts empty text as no mapping', () => {
    expect(validateModelMapping('')).toEqual({ ok: true, value: {} });
    expect(validateModelMapping('   ')).toEqual({ ok: true, value: {} });
  });
  it('accepts an object of strings', () => {
    const r = validateModelMapping('{"gpt-3.5-turbo": "gpt-35-turbo", "a": "b"}');
    expect(r).toEqual({ ok: true, value: { 'gpt-3.5-turbo': 'gpt-35-turbo', a: 'b' } });
  });
  it('rejects invalid JSON', () => {
    const r = validateModelMapping('{"a": ');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/Invalid JSON/);
  });
  it('rejects arrays, null and scalars', () => {
    for (const s of ['[]', 'null', '1', '"x"']) expect(validateModelMapping(s).ok).toBe(false);
  });
  it('rejects non-string and empty values', () => {
    expect(validateModelMapping('{"a": 1}').ok).toBe(false);
    expect(validateModelMapping('{"a": {"b": "c"}}').ok).toBe(false);
    expect(validateModelMapping('{"a": ""}').ok).toBe(false);
    expect(validateModelMapping('{"": "b"}').ok).toBe(false);
  });
});

describe('validateRatio', () => {
  it('accepts an object of numbers', () => {
    expect(validateRatio('{"gpt-4": 15, "gpt-4o-mini": 0.075, "glm-4-flash": 0}')).toEqual({
      ok: true,
      value: { 'gpt-4': 15, 'gpt-4o-mini': 0.075, 'glm-4-flash': 0 },
    });
    expect(validateRatio('{}')).toEqual({ ok: true, value: {} });
  });
  it('rejects strings, negative numbers and bad JSON', () => {
    expect(validateRatio('{"a": "1"}').ok).toBe(false);
    expect(validateRatio('{"a": -1}').ok).toBe(false);
    expect(validateRatio('{"a": null}').ok).toBe(false);
    expect(validateRatio('[1,2]').ok).toBe(false);
    expect(validateRatio('').ok).toBe(false);
    expect(validateRatio('{a: 1}').ok).toBe(false);
  });
  it('allows negative values when asked (openrouter/auto)', () => {
    expect(validateRatio('{"openrouter/auto": -500000}', { allowNegative: true }).ok).toBe(true);
  });
});

describe('comma lists', () => {
  it('splits, trims and dedupes', () => {
    expect(splitList(' a, b,,a ,c ')).toEqual(['a', 'b', 'c']);
    expect(splitList(null)).toEqual([]);
    expect(joinList(['x', ' y ', 'x', ''])).toBe('x,y');
  });
});
