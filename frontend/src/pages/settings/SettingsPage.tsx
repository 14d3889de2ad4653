import { Card, Stack, Tabs } from '@mantine/core';
import { IconAdjustments, IconPercentage, IconSettings } from '@tabler/icons-react';
import { useMemo } from 'react';
import { optionApi } from '../../api';
import { PageHeader } from '../../components/PageHeader';
import { ErrorState, LoadingState } from '../../components/States';
import { useAsync } from '../../hooks/useAsync';
import { useT } from '../../i18n';
import { OptionsSection } from './OptionsSection';
import { OPERATION_OPTIONS, SYSTEM_OPTIONS } from './optionDefs';
import { RatioEditor } from './RatioEditor';

export default function SettingsPage() {
  const t = useT();
  const options = useAsync(() => optionApi.list(), []);
  const values = useMemo(() => Object.fromEntries((options.data ?? []).map((o) => [o.key, o.value])), [options.data]);
  const merge = (changed: Record<string, string>) => options.setData((options.data ?? []).filter((o) => !(o.key in changed)).concat(Object.entries(changed).map(([key, value]) => ({ key, value }))));

  return (
    <>
      <PageHeader title={t('settings.title')} />
      {options.error ? (
        <ErrorState error={options.error} onRetry={options.reload} />
      ) : options.loading && !options.data ? (
        <LoadingState />
      ) : (
        <Tabs defaultValue="system" keepMounted={false}>
          <Tabs.List mb="md">
            <Tabs.Tab value="system" leftSection={<IconSettings size={16} />}>
              {t('settings.system')}
            </Tabs.Tab>
            <Tabs.Tab value="operation" leftSection={<IconAdjustments size={16} />}>
              {t('settings.operation')}
            </Tabs.Tab>
            <Tabs.Tab value="ratios" leftSection={<IconPercentage size={16} />} data-testid="settings-tab-ratios">
              {t('settings.ratios')}
            </Tabs.Tab>
          </Tabs.List>
          <Tabs.Panel value="system">
            <Card>
              <OptionsSection defs={SYSTEM_OPTIONS} values={values} onSaved={merge} />
            </Card>
          </Tabs.Panel>
          <Tabs.Panel value="operation">
            <Card>
              <OptionsSection defs={OPERATION_OPTIONS} values={values} onSaved={merge} />
            </Card>
          </Tabs.Panel>
          <Tabs.Panel value="ratios">
            <Stack>
              <RatioEditor optionKey="ModelRatio" title={t('settings.ratioModel')} value={values.ModelRatio ?? '{}'} showPrice onSaved={(v) => merge({ ModelRatio: v })} />
              <RatioEditor optionKey="CompletionRatio" title={t('settings.ratioCompletion')} value={values.CompletionRatio ?? '{}'} onSaved={(v) => merge({ CompletionRatio: v })} />
              <RatioEditor optionKey="GroupRatio" title={t('settings.ratioGroup')} value={values.GroupRatio ?? '{}'} onSaved={(v) => merge({ GroupRatio: v })} />
            </Stack>
          </Tabs.Panel>
        </Tabs>
      )}
    </>
  );
}
