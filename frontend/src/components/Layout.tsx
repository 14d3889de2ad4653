import {
  ActionIcon,
  Alert,
  AppShell,
  Avatar,
  Burger,
  Button,
  Group,
  Image,
  Menu,
  NavLink,
  ScrollArea,
  Text,
  Tooltip,
  UnstyledButton,
  useComputedColorScheme,
  useMantineColorScheme,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import {
  IconBuildingBridge,
  IconChartBar,
  IconCoin,
  IconHome,
  IconInfoCircle,
  IconKey,
  IconLanguage,
  IconListDetails,
  IconLogout,
  IconMessageChatbot,
  IconMoon,
  IconSettings,
  IconShieldLock,
  IconSun,
  IconTicket,
  IconUser,
  IconUsers,
} from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { Link, Outlet, useLocation, useNavigate } from 'react-router';
import { useAuth } from '../context/AuthContext';
import { useStatus, useSystemName } from '../context/StatusContext';
import { useI18n, type MessageKey } from '../i18n';
import { notifySuccess } from '../lib/notify';
import { Markdown } from './Markdown';

interface NavItem {
  to: string;
  label: MessageKey;
  icon: ReactNode;
  level: 'public' | 'user' | 'admin' | 'root';
}

const NAV: NavItem[] = [
  { to: '/', label: 'nav.home', icon: <IconHome size={18} />, level: 'public' },
  { to: '/dashboard', label: 'nav.dashboard', icon: <IconChartBar size={18} />, level: 'user' },
  { to: '/token', label: 'nav.tokens', icon: <IconKey size={18} />, level: 'user' },
  { to: '/topup', label: 'nav.topup', icon: <IconCoin size={18} />, level: 'user' },
  { to: '/log', label: 'nav.logs', icon: <IconListDetails size={18} />, level: 'user' },
  { to: '/channel', label: 'nav.channels', icon: <IconBuildingBridge size={18} />, level: 'admin' },
  { to: '/user', label: 'nav.users', icon: <IconUsers size={18} />, level: 'admin' },
  { to: '/redemption', label: 'nav.redemptions', icon: <IconTicket size={18} />, level: 'admin' },
  { to: '/setting', label: 'nav.settings', icon: <IconSettings size={18} />, level: 'root' },
  { to: '/profile', label: 'nav.profile', icon: <IconUser size={18} />, level: 'user' },
  { to: '/about', label: 'nav.about', icon: <IconInfoCircle size={18} />, level: 'public' },
];

export function ThemeToggle() {
  const { t } = useI18n();
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('light');
  return (
    <Tooltip label={t('app.toggleTheme')}>
      <ActionIcon
        variant="default"
        size="lg"
        aria-label={t('app.toggleTheme')}
        data-testid="theme-toggle"
        onClick={() => setColorScheme(scheme === 'dark' ? 'light' : 'dark')}
      >
        {scheme === 'dark' ? <IconSun size={18} /> : <IconMoon size={18} />}
      </ActionIcon>
    </Tooltip>
  );
}

export function LangToggle() {
  const { lang, setLang, t } = useI18n();
  return (
    <Menu shadow="md" width={140} position="bottom-end">
      <Menu.Target>
        <ActionIcon variant="default" size="lg" aria-label={t('app.language')} data-testid="lang-toggle">
          <IconLanguage size={18} />
        </ActionIcon>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Item onClick={() => setLang('en')} fw={lang === 'en' ? 700 : undefined}>
          English
        </Menu.Item>
        <Menu.Item onClick={() => setLang('zh')} fw={lang === 'zh' ? 700 : undefined}>
          简体中文
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

function Brand() {
  const { status } = useStatus();
  const name = useSystemName();
  return (
    <UnstyledButton component={Link} to="/">
      <Group gap="xs" wrap="nowrap">
        {status?.logo ? <Image src={status.logo} h={28} w={28} radius="sm" alt="" /> : <Image src="/favicon.svg" h={28} w={28} alt="" />}
        <Text fw={700} size="lg" truncate>
          {name}
        </Text>
      </Group>
    </UnstyledButton>
  );
}

function UserMenu() {
  const { user, logout } = useAuth();
  const { t } = useI18n();
  const navigate = useNavigate();
  if (!user) {
    return (
      <Button component={Link} to="/login" size="sm" data-testid="nav-login">
        {t('nav.login')}
      </Button>
    );
  }
  return (
    <Menu shadow="md" width={200} position="bottom-end">
      <Menu.Target>
        <UnstyledButton data-testid="user-menu">
          <Group gap={6} wrap="nowrap">
            <Avatar size={30} radius="xl" color="blue">
              {(user.display_name || user.username).slice(0, 1).toUpperCase()}
            </Avatar>
            <Text size="sm" fw={500} visibleFrom="sm">
              {user.display_name || user.username}
            </Text>
          </Group>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>{user.username}</Menu.Label>
        <Menu.Item leftSection={<IconUser size={14} />} component={Link} to="/profile">
          {t('nav.profile')}
        </Menu.Item>
        <Menu.Item
          color="red"
          leftSection={<IconLogout size={14} />}
          data-testid="logout"
          onClick={async () => {
            navigate('/login', { replace: true });
            await logout();
            notifySuccess(t('auth.loggedOut'));
          }}
        >
          {t('nav.logout')}
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

function DefaultPasswordBanner() {
  const { usedDefaultPassword } = useAuth();
  const { t } = useI18n();
  if (!usedDefaultPassword) return null;
  return (
    <Alert color="red" variant="filled" icon={<IconShieldLock size={18} />} mb="md" data-testid="default-password-banner">
      <Group justify="space-between" gap="xs">
        <Text size="sm">{t('auth.defaultPassword')}</Text>
        <Button size="xs" variant="white" color="red" component={Link} to="/profile">
          {t('auth.changePassword')}
        </Button>
      </Group>
    </Alert>
  );
}

export function Layout() {
  const [opened, { toggle, close }] = useDisclosure();
  const { user, isAdmin, isRoot } = useAuth();
  const { status } = useStatus();
  const { t } = useI18n();
  const location = useLocation();

  const visible = NAV.filter((n) => {
    if (n.level === 'public') return true;
    if (n.level === 'user') return !!user;
    if (n.level === 'admin') return isAdmin;
    return isRoot;
  });
  const isActive = (to: string) => (to === '/' ? location.pathname === '/' : location.pathname.startsWith(to));

  return (
    <AppShell header={{ height: 60 }} navbar={{ width: 240, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="menu" data-testid="burger" />
            <Brand />
          </Group>
          <Group gap="xs" wrap="nowrap">
            <LangToggle />
            <ThemeToggle />
            <UserMenu />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <AppShell.Section grow component={ScrollArea}>
          {visible.map((n, i) => {
            const prev = visible[i - 1];
            const firstAdmin = (n.level === 'admin' || n.level === 'root') && prev && prev.level !== 'admin' && prev.level !== 'root';
            return (
              <div key={n.to}>
                {firstAdmin && (
                  <Text size="xs" c="dimmed" tt="uppercase" fw={600} px="sm" pt="md" pb={4}>
                    {t('nav.admin')}
                  </Text>
                )}
                <NavLink
                  component={Link}
                  to={n.to}
                  label={t(n.label)}
                  leftSection={n.icon}
                  active={isActive(n.to)}
                  onClick={close}
                  data-testid={`nav-${n.to.slice(1) || 'home'}`}
                  style={{ borderRadius: 'var(--mantine-radius-sm)' }}
                />
              </div>
            );
          })}
          {status?.chat_link && user && (
            <NavLink
              component="a"
              href={status.chat_link}
              target="_blank"
              rel="noreferrer"
              label={t('nav.chat')}
              leftSection={<IconMessageChatbot size={18} />}
              style={{ borderRadius: 'var(--mantine-radius-sm)' }}
            />
          )}
        </AppShell.Section>
        {status?.footer_html && (
          <AppShell.Section p="xs">
            <Text size="xs" c="dimmed" component="div">
              <Markdown content={status.footer_html} />
            </Text>
          </AppShell.Section>
        )}
      </AppShell.Navbar>
      <AppShell.Main>
        <DefaultPasswordBanner />
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
