import { describe, expect, it } from 'vitest';
import { formatNumber, formatQuota } from './quota';

describe('formatQuota', () => {
  const usd = { displayInCurrency: true, quotaPerUnit: 500000 };
  it('shows dollars with two decimals', () => {
    expect(formatQuota(500000, usd)).toBe('$1.00');
    expect(formatQuota(1250000, usd)).toBe('$2.50');
    expect(formatQuota(0, usd)).toBe('$0.00');
    expect(formatQuota(500000 * 1234.5, usd)).toBe('$1,234.50');
  });
  it('shows more decimals for tiny amounts', () => {
    expect(formatQuota(75, usd)).toBe('$0.00015');
    expect(formatQuota(1, usd)).toBe('$0.000002');
    expect(formatQuota(4999, usd)).toBe('$0.009998');
  });
  it('handles negative amounts', () => {
    expect(formatQuota(-500000, usd)).toBe('-$1.00');
  });
  it('honours QuotaPerUnit', () => {
    expect(formatQuota(1000, { displayInCurrency: true, quotaPerUnit: 1000 })).toBe('$1.00');
    expect(formatQuota(7000, { displayInCurrency: true, quotaPerUnit: 1000 })).toBe('$7.00');
  });
  it('falls back to the default rate when QuotaPerUnit is 0', () => {
    expect(formatQuota(500000, { displayInCurrency: true, quotaPerUnit: 0 })).toBe('$1.00');
  });
  it('shows raw numbers with separators when currency display is off', () => {
    const raw = { displayInCurrency: false, quotaPerUnit: 500000 };
    expect(formatQuota(500000, raw)).toBe('500,000');
    expect(formatQuota(500000000000000, raw)).toBe('500,000,000,000,000');
    expect(formatQuota(0, raw)).toBe('0');
    expect(formatNumber(1234567)).toBe('1,234,567');
  });
});
