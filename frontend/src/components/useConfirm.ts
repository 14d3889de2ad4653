import { useCallback } from 'react';
import { useI18n } from '../i18n';
import { confirmAction } from './confirm';

export function useConfirm() {
  const { lang } = useI18n();
  return useCallback(
    (message: string, opts: { title?: string; confirmLabel?: string; danger?: boolean } = {}) => confirmAction({ ...opts, message, lang }),
    [lang],
  );
}
