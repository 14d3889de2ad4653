import type { Token, TokenInput } from '../../api';
import type { TFunction } from '../../i18n';
import { expiryToUnix, unixToDatetimeLocal } from '../../lib/time';
import { joinList, splitList } from '../../lib/validate';

export interface TokenFormValues {
  name: string;
  unlimited: boolean;
  remainQuota: number | string;
  neverExpires: boolean;
  expiresAt: string; // datetime-local
  models: string[];
  subnet: string;
}

export const emptyTokenForm: TokenFormValues = {
  name: '',
  unlimited: true,
  remainQuota: 500000,
  neverExpires: true,
  expiresAt: '',
  models: [],
  subnet: '',
};

export function tokenToForm(t: Token): TokenFormValues {
  return {
    name: t.name,
    unlimited: t.unlimited_quota,
    remainQuota: t.remain_quota,
    neverExpires: t.expired_time === -1,
    expiresAt: unixToDatetimeLocal(t.expired_time),
    models: splitList(t.models),
    subnet: t.subnet ?? '',
  };
}

export type TokenFormErrors = Partial<Record<keyof TokenFormValues, string>>;

/** Validates the form and builds the API body, or returns field errors. */
export function formToTokenInput(v: TokenFormValues, t: TFunction): { ok: true; body: TokenInput } | { ok: false; errors: TokenFormErrors } {
  const errors: TokenFormErrors = {};
  const name = v.name.trim();
  if (!name) errors.name = t('token.nameRequired');
  else if ([...name].length > 30) errors.name = t('token.nameLength');
  const quota = typeof v.remainQuota === 'number' ? v.remainQuota : Number(v.remainQuota);
  if (!v.unlimited && (!Number.isInteger(quota) || quota < 0)) errors.remainQuota = t('token.quotaInvalid');
  const expired = expiryToUnix(v.neverExpires, v.expiresAt);
  if (expired === null) errors.expiresAt = t('token.expiryInvalid');
  if (Object.keys(errors).length) return { ok: false, errors };
  return {
    ok: true,
    body: {
      name,
      unlimited_quota: v.unlimited,
      remain_quota: v.unlimited ? (Number.isInteger(quota) && quota >= 0 ? quota : 0) : quota,
      expired_time: expired as number,
      models: joinList(v.models),
      subnet: v.subnet.split(',').map((s) => s.trim()).filter(Boolean).join(','),
    },
  };
}
