import { Alert, Box, Button, Card, Group, Stack, Text, Title } from '@mantine/core';
import { IconSpeakerphone } from '@tabler/icons-react';
import { Link } from 'react-router';
import { miscApi } from '../../api';
import { isUrl, Markdown } from '../../components/Markdown';
import { ErrorState, LoadingState } from '../../components/States';
import { useAuth } from '../../context/AuthContext';
import { useSystemName } from '../../context/StatusContext';
import { useAsync } from '../../hooks/useAsync';
import { useT } from '../../i18n';

export function HomePage() {
  const t = useT();
  const name = useSystemName();
  const { user } = useAuth();
  const notice = useAsync(() => miscApi.notice().catch(() => ''), []);
  const content = useAsync(() => miscApi.homePageContent(), []);

  return (
    <Stack gap="md" data-testid="home-page">
      {notice.data && (
        <Alert icon={<IconSpeakerphone size={18} />} title={t('home.notice')} variant="light" data-testid="notice">
          <Markdown content={notice.data} />
        </Alert>
      )}
      {content.loading ? (
        <LoadingState />
      ) : content.error ? (
        <ErrorState error={content.error} onRetry={content.reload} />
      ) : content.data && isUrl(content.data) ? (
        <Box component="iframe" src={content.data.trim()} title="home" w="100%" h="80vh" style={{ border: 0 }} />
      ) : content.data ? (
        <Card>
          <Markdown content={content.data} testId="home-content" />
        </Card>
      ) : (
        <Card py={48}>
          <Stack align="center" gap="md" ta="center">
            <Title order={1}>{t('home.welcomeTitle', { name })}</Title>
            <Text c="dimmed" maw={560}>
              {t('home.welcomeText')}
            </Text>
            <Group>
              {user ? (
                <Button component={Link} to="/dashboard" size="md">
                  {t('home.openDashboard')}
                </Button>
              ) : (
                <>
                  <Button component={Link} to="/login" size="md">
                    {t('auth.signIn')}
                  </Button>
                  <Button component={Link} to="/register" size="md" variant="default">
                    {t('auth.signUp')}
                  </Button>
                </>
              )}
            </Group>
          </Stack>
        </Card>
      )}
    </Stack>
  );
}
