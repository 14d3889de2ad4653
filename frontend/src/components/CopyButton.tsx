import { ActionIcon, Button, Tooltip } from '@mantine/core';
import { IconCheck, IconCopy } from '@tabler/icons-react';
import { useState, type ReactNode } from 'react';
import { copyText } from '../lib/clipboard';
import { notifyError, notifySuccess } from '../lib/notify';
import { useT } from '../i18n';

export function useCopy() {
  const t = useT();
  return async (text: string) => {
    const ok = await copyText(text);
    if (ok) notifySuccess(t('app.copied'));
    else notifyError(new Error(t('app.copyFailed')));
    return ok;
  };
}

export function CopyIcon({ value, label, testId }: { value: string; label?: string; testId?: string }) {
  const t = useT();
  const copy = useCopy();
  const [done, setDone] = useState(false);
  return (
    <Tooltip label={label ?? t('app.copy')} withArrow>
      <ActionIcon
        variant="subtle"
        data-testid={testId}
        aria-label={label ?? t('app.copy')}
        onClick={async () => {
          if (await copy(value)) {
            setDone(true);
            setTimeout(() => setDone(false), 1500);
          }
        }}
      >
        {done ? <IconCheck size={16} /> : <IconCopy size={16} />}
      </ActionIcon>
    </Tooltip>
  );
}

export function CopyTextButton({ value, children, testId, size = 'xs' }: { value: string; children?: ReactNode; testId?: string; size?: string }) {
  const t = useT();
  const copy = useCopy();
  return (
    <Button size={size} variant="light" leftSection={<IconCopy size={14} />} data-testid={testId} onClick={() => void copy(value)}>
      {children ?? t('app.copy')}
    </Button>
  );
}
