import { describe, expect, it } from 'vitest';
import { datetimeLocalFromNow, datetimeLocalToUnix, expiryToUnix, formatTimestamp, NEVER_EXPIRES, unixToDatetimeLocal } from './time';

describe('token expiry conversion', () => {
  it('never expires maps to -1', () => {
    expect(expiryToUnix(true, '')).toBe(NEVER_EXPIRES);
    expect(expiryToUnix(true, '2030-01-01T00:00')).toBe(-1);
  });
  it('converts a local datetime to unix seconds', () => {
    const local = new Date(2030, 0, 2, 3, 4, 0).getTime() / 1000;
    expect(datetimeLocalToUnix('2030-01-02T03:04')).toBe(local);
    expect(expiryToUnix(false, '2030-01-02T03:04')).toBe(local);
  });
  it('returns null for an empty or malformed date', () => {
    expect(expiryToUnix(false, '')).toBeNull();
    expect(datetimeLocalToUnix('tomorrow')).toBeNull();
  });
  it('round-trips unix seconds to the input format', () => {
    const ts = new Date(2031, 5, 7, 8, 9).getTime() / 1000;
    expect(unixToDatetimeLocal(ts)).toBe('2031-06-07T08:09');
    expect(datetimeLocalToUnix(unixToDatetimeLocal(ts))).toBe(ts);
    expect(unixToDatetimeLocal(-1)).toBe('');
  });
  it('builds quick expiry values relative to now', () => {
    const now = new Date(2030, 0, 1, 12, 0);
    expect(datetimeLocalFromNow(86400, now)).toBe('2030-01-02T12:00');
  });
  it('formats timestamps', () => {
    expect(formatTimestamp(0)).toBe('-');
    expect(formatTimestamp(new Date(2030, 0, 1, 1, 2, 3).getTime() / 1000)).toBe('2030-01-01 01:02:03');
  });
});
