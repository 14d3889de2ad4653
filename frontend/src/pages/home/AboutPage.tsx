import { Box, Card } from '@mantine/core';
import { miscApi } from '../../api';
import { isUrl, Markdown } from '../../components/Markdown';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, ErrorState, LoadingState } from '../../components/States';
import { useAsync } from '../../hooks/useAsync';
import { useT } from '../../i18n';

export function AboutPage() {
  const t = useT();
  const about = useAsync(() => miscApi.about(), []);
  return (
    <>
      <PageHeader title={t('nav.about')} />
      {about.loading ? (
        <LoadingState />
      ) : about.error ? (
        <ErrorState error={about.error} onRetry={about.reload} />
      ) : !about.data ? (
        <EmptyState message={t('about.empty')} />
      ) : isUrl(about.data) ? (
        <Box component="iframe" src={about.data.trim()} title="about" w="100%" h="80vh" style={{ border: 0 }} />
      ) : (
        <Card>
          <Markdown content={about.data} testId="about-content" />
        </Card>
      )}
    </>
  );
}
