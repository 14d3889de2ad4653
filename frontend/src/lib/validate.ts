/** Validators for the JSON strings the API stores (model mapping, ratios). */

export type Validation<T> = { ok: true; value: T } | { ok: false; error: string };

function parseObject(text: string): Validation<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `Invalid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, error: 'Must be a JSON object' };
  }
  return { ok: true, value: parsed as Record<string, unknown> };
}

/**
 * A channel's `model_mapping`: empty, or a JSON object mapping requested model → upstream model,
 * every key and value a non-empty string.
 */
export function validateModelMapping(text: string): Validation<Record<string, string>> {
  if (text.trim() === '') return { ok: true, value: {} };
  const obj = parseObject(text);
  if (!obj.ok) return obj;
  for (const [k, v] of Object.entries(obj.value)) {
    if (k.trim() === '') return { ok: false, error: 'Model names must not be empty' };
    if (typeof v !== 'string') return { ok: false, error: `Value of "${k}" must be a string` };
    if (v.trim() === '') return { ok: false, error: `Value of "${k}" must not be empty` };
  }
  return { ok: true, value: obj.value as Record<string, string> };
}

/** ModelRatio / CompletionRatio / GroupRatio: a JSON object of name → finite number ≥ 0. */
export function validateRatio(text: string, opts: { allowNegative?: boolean } = {}): Validation<Record<string, number>> {
  const obj = parseObject(text);
  if (!obj.ok) return obj;
  for (const [k, v] of Object.entries(obj.value)) {
    if (k.trim() === '') return { ok: false, error: 'Names must not be empty' };
    if (typeof v !== 'number' || !Number.isFinite(v)) return { ok: false, error: `Value of "${k}" must be a number` };
    if (!opts.allowNegative && v < 0) return { ok: false, error: `Value of "${k}" must not be negative` };
  }
  return { ok: true, value: obj.value as Record<string, number> };
}

/** Splits a comma list, trims, drops empties and duplicates. */
export function splitList(s: string | null | undefined): string[] {
  if (!s) return [];
  const out: string[] = [];
  for (const part of s.split(',')) {
    const v = part.trim();
    if (v && !out.includes(v)) out.push(v);
  }
  return out;
}

export function joinList(items: string[]): string {
  return splitList(items.join(',')).join(',');
}
