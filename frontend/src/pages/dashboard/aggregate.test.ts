import { describe, expect, it } from 'vitest';
import { aggregateByDay, aggregateByModel, dayRange, stackedSeries } from './aggregate';

const rows = [
  { Day: '2030-01-02', ModelName: 'a', RequestCount: 2, Quota: 100, PromptTokens: 10, CompletionTokens: 5 },
  { Day: '2030-01-02', ModelName: 'b', RequestCount: 1, Quota: 300, PromptTokens: 1, CompletionTokens: 1 },
  { Day: '2030-01-03', ModelName: 'a', RequestCount: 1, Quota: 50, PromptTokens: 2, CompletionTokens: 2 },
];

describe('dashboard aggregation', () => {
  it('fills every day of the range', () => {
    const days = dayRange(3, new Date(2030, 0, 3));
    expect(days).toEqual(['2030-01-01', '2030-01-02', '2030-01-03']);
    const per = aggregateByDay(rows, days);
    expect(per.map((p) => p.quota)).toEqual([0, 400, 50]);
    expect(per[1].requests).toBe(3);
    expect(per[1].tokens).toBe(17);
  });
  it('totals per model, biggest first', () => {
    expect(aggregateByModel(rows)).toEqual([
      { model: 'b', quota: 300, requests: 1, tokens: 2 },
      { model: 'a', quota: 150, requests: 3, tokens: 19 },
    ]);
  });
  it('groups the tail into "other"', () => {
    const s = stackedSeries(aggregateByDay(rows, ['2030-01-02']), ['b', 'a'], 1);
    expect(s.keys).toEqual(['b', 'other']);
    expect(s.data[0]).toEqual({ day: '01-02', b: 300, other: 100 });
  });
});
