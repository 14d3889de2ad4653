/** Quota display (one-api-reference §3.1): 500,000 quota = $1 by default. */

export interface QuotaDisplay {
  displayInCurrency: boolean;
  quotaPerUnit: number;
}

export const DEFAULT_QUOTA_PER_UNIT = 500000;

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Formats a raw quota number with thousands separators. */
export function formatNumber(n: number): string {
  return intFormat.format(n);
}

/** Converts raw quota to currency units (dollars). */
export function quotaToUnits(quota: number, quotaPerUnit: number): number {
  const per = quotaPerUnit > 0 ? quotaPerUnit : DEFAULT_QUOTA_PER_UNIT;
  return quota / per;
}

/**
 * Renders a quota either as dollars (`$1.25`, with more decimals for tiny non-zero
 * amounts such as `$0.000150`) or as a plain number with thousands separators.
 */
export function formatQuota(quota: number, display: QuotaDisplay): string {
  if (!Number.isFinite(quota)) return '-';
  if (!display.displayInCurrency) return formatNumber(quota);
  const units = quotaToUnits(quota, display.quotaPerUnit);
  const abs = Math.abs(units);
  const sign = units < 0 ? '-' : '';
  let body: string;
  if (abs === 0 || abs >= 0.01) {
    body = abs.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  } else {
    // Up to 6 decimals, trimming trailing zeros but keeping at least 2 significant digits.
    body = abs.toFixed(6).replace(/0+$/, '');
    if (/\.\d?$/.test(body)) body = abs.toFixed(Math.max(2, body.split('.')[1]?.length ?? 2));
    if (Number(body) === 0) body = abs.toPrecision(2);
  }
  return `${sign}$${body}`;
}
