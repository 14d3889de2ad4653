import { describe, expect, it } from 'vitest';
import { csvEscape, redemptionCsv, toCsv } from './csv';

describe('CSV', () => {
  it('escapes commas, quotes and newlines', () => {
    expect(csvEscape('plain')).toBe('plain');
    expect(csvEscape('a,b')).toBe('"a,b"');
    expect(csvEscape('say "hi"')).toBe('"say ""hi"""');
    expect(csvEscape('x\ny')).toBe('"x\ny"');
    expect(csvEscape(42)).toBe('42');
  });
  it('joins rows with CRLF', () => {
    expect(toCsv([['a', 'b'], [1, 2]])).toBe('a,b\r\n1,2\r\n');
  });
  it('builds the redemption code export', () => {
    const csv = redemptionCsv('promo, june', 500000, ['k1', 'k2']);
    expect(csv).toBe('name,key,quota\r\n"promo, june",k1,500000\r\n"promo, june",k2,500000\r\n');
  });
});
