import { Text } from '@mantine/core';
import { modals } from '@mantine/modals';
import { translate, type Lang } from '../i18n';

/** Opens a confirmation dialog; resolves to true when confirmed. */
export function confirmAction(opts: { title?: string; message: string; confirmLabel?: string; danger?: boolean; lang?: Lang }): Promise<boolean> {
  const lang = opts.lang ?? 'en';
  return new Promise((resolve) => {
    modals.openConfirmModal({
      title: opts.title ?? translate(lang, 'app.areYouSure'),
      centered: true,
      children: <Text size="sm">{opts.message}</Text>,
      labels: { confirm: opts.confirmLabel ?? translate(lang, 'app.confirm'), cancel: translate(lang, 'app.cancel') },
      confirmProps: { color: opts.danger === false ? 'blue' : 'red', 'data-testid': 'confirm-ok' } as Record<string, unknown>,
      cancelProps: { 'data-testid': 'confirm-cancel' } as Record<string, unknown>,
      onConfirm: () => resolve(true),
      onCancel: () => resolve(false),
      onClose: () => resolve(false),
    });
  });
}
