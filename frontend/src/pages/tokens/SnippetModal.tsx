import { Code, Group, Modal, Stack, Tabs, Text } from '@mantine/core';
import type { Token } from '../../api';
import { CopyIcon, CopyTextButton } from '../../components/CopyButton';
import { useStatus } from '../../context/StatusContext';
import { useT } from '../../i18n';
import { apiBase, curlSnippet, pythonSnippet, tokenKey } from '../../lib/snippets';
import { splitList } from '../../lib/validate';

export function SnippetModal({ token, onClose }: { token: Token | null; onClose: () => void }) {
  const t = useT();
  const { status } = useStatus();
  if (!token) return null;
  const base = apiBase(status?.server_address, window.location.origin);
  const model = splitList(token.models)[0] ?? 'gpt-3.5-turbo';
  const curl = curlSnippet(base, token.key, model);
  const py = pythonSnippet(base, token.key, model);
  return (
    <Modal opened onClose={onClose} title={t('token.snippetTitle')} size="lg">
      <Stack gap="sm">
        <Group gap="xs" wrap="nowrap">
          <Text size="sm" fw={500}>
            {t('token.baseUrl')}:
          </Text>
          <Code data-testid="snippet-base">{base}</Code>
          <CopyIcon value={base} />
        </Group>
        <Group gap="xs" wrap="nowrap">
          <Text size="sm" fw={500}>
            {t('token.key')}:
          </Text>
          <Code style={{ wordBreak: 'break-all' }}>{tokenKey(token.key)}</Code>
          <CopyIcon value={tokenKey(token.key)} />
        </Group>
        <Tabs defaultValue="curl">
          <Tabs.List>
            <Tabs.Tab value="curl">curl</Tabs.Tab>
            <Tabs.Tab value="python">Python (openai)</Tabs.Tab>
          </Tabs.List>
          <Tabs.Panel value="curl" pt="sm">
            <Code block data-testid="snippet-curl">{curl}</Code>
            <Group justify="flex-end" mt="xs">
              <CopyTextButton value={curl} testId="copy-curl" />
            </Group>
          </Tabs.Panel>
          <Tabs.Panel value="python" pt="sm">
            <Code block>{py}</Code>
            <Group justify="flex-end" mt="xs">
              <CopyTextButton value={py} />
            </Group>
          </Tabs.Panel>
        </Tabs>
      </Stack>
    </Modal>
  );
}
