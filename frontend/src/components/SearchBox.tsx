import { ActionIcon, TextInput } from '@mantine/core';
import { IconSearch, IconX } from '@tabler/icons-react';
import { useState } from 'react';
import { useT } from '../i18n';

/** Search box that submits on Enter; clearing it returns to the paged list. */
export function SearchBox({ onSearch, placeholder, testId }: { onSearch: (kw: string) => void; placeholder?: string; testId?: string }) {
  const t = useT();
  const [value, setValue] = useState('');
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        onSearch(value);
      }}
      style={{ flex: '1 1 220px', maxWidth: 360 }}
    >
      <TextInput
        data-testid={testId ?? 'search'}
        placeholder={placeholder ?? t('app.searchPlaceholder')}
        value={value}
        onChange={(e) => setValue(e.currentTarget.value)}
        leftSection={<IconSearch size={16} />}
        rightSection={
          value ? (
            <ActionIcon
              variant="subtle"
              color="gray"
              size="sm"
              aria-label="clear"
              onClick={() => {
                setValue('');
                onSearch('');
              }}
            >
              <IconX size={14} />
            </ActionIcon>
          ) : null
        }
      />
    </form>
  );
}
