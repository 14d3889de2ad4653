import type { DashboardRow } from '../../api';

export interface DayPoint {
  day: string;
  quota: number;
  requests: number;
  tokens: number;
  /** quota per model, keyed by model name */
  models: Record<string, number>;
}

export interface ModelTotal {
  model: string;
  quota: number;
  requests: number;
  tokens: number;
}

function pad(n: number) {
  return String(n).padStart(2, '0');
}

export function dayKey(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Every day from `days-1` days ago to today, oldest first. */
export function dayRange(days: number, now: Date = new Date()): string[] {
  const out: string[] = [];
  for (let i = days - 1; i >= 0; i--) out.push(dayKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - i)));
  return out;
}

export function aggregateByDay(rows: DashboardRow[], days: string[]): DayPoint[] {
  const map = new Map<string, DayPoint>(days.map((d) => [d, { day: d, quota: 0, requests: 0, tokens: 0, models: {} }]));
  for (const r of rows) {
    let p = map.get(r.Day);
    if (!p) {
      p = { day: r.Day, quota: 0, requests: 0, tokens: 0, models: {} };
      map.set(r.Day, p);
    }
    p.quota += r.Quota;
    p.requests += r.RequestCount;
    p.tokens += r.PromptTokens + r.CompletionTokens;
    p.models[r.ModelName] = (p.models[r.ModelName] ?? 0) + r.Quota;
  }
  return [...map.values()].sort((a, b) => a.day.localeCompare(b.day));
}

export function aggregateByModel(rows: DashboardRow[]): ModelTotal[] {
  const map = new Map<string, ModelTotal>();
  for (const r of rows) {
    const m = map.get(r.ModelName) ?? { model: r.ModelName, quota: 0, requests: 0, tokens: 0 };
    m.quota += r.Quota;
    m.requests += r.RequestCount;
    m.tokens += r.PromptTokens + r.CompletionTokens;
    map.set(r.ModelName, m);
  }
  return [...map.values()].sort((a, b) => b.quota - a.quota || b.requests - a.requests);
}

/** Flattens day points for a stacked bar chart (top N models, the rest as "other"). */
export function stackedSeries(points: DayPoint[], models: string[], top = 6): { data: Record<string, number | string>[]; keys: string[] } {
  const keys = models.slice(0, top);
  const hasOther = models.length > top;
  const data = points.map((p) => {
    const row: Record<string, number | string> = { day: p.day.slice(5) };
    let other = 0;
    for (const [m, q] of Object.entries(p.models)) {
      if (keys.includes(m)) row[m] = q;
      else other += q;
    }
    for (const k of keys) if (!(k in row)) row[k] = 0;
    if (hasOther) row.other = other;
    return row;
  });
  return { data, keys: hasOther ? [...keys, 'other'] : keys };
}
