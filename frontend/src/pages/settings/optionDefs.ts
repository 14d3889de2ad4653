/** The option keys the settings page edits (one-api-reference §9). */

export type OptionKind = 'text' | 'textarea' | 'bool' | 'int' | 'float';

export interface OptionDef {
  key: string;
  kind: OptionKind;
  en: string;
  zh: string;
  hintEn?: string;
  hintZh?: string;
}

export const SYSTEM_OPTIONS: OptionDef[] = [
  { key: 'SystemName', kind: 'text', en: 'System name', zh: '系统名称' },
  { key: 'Logo', kind: 'text', en: 'Logo URL', zh: 'Logo 图片地址' },
  { key: 'ServerAddress', kind: 'text', en: 'Server address', zh: '服务器地址', hintEn: 'Public URL, e.g. https://api.example.com (used in snippets and emails)', hintZh: '对外地址，例如 https://api.example.com（用于示例代码和邮件）' },
  { key: 'TopUpLink', kind: 'text', en: 'Top-up link', zh: '充值链接' },
  { key: 'ChatLink', kind: 'text', en: 'Chat link', zh: '聊天页面链接' },
  { key: 'Notice', kind: 'textarea', en: 'Notice (markdown)', zh: '公告（Markdown）' },
  { key: 'HomePageContent', kind: 'textarea', en: 'Home page content (markdown, HTML or a URL)', zh: '首页内容（Markdown、HTML 或 URL）' },
  { key: 'About', kind: 'textarea', en: 'About (markdown, HTML or a URL)', zh: '关于（Markdown、HTML 或 URL）' },
  { key: 'Footer', kind: 'textarea', en: 'Footer (HTML)', zh: '页脚（HTML）' },
  { key: 'RegisterEnabled', kind: 'bool', en: 'Allow new registrations', zh: '允许新用户注册' },
  { key: 'PasswordLoginEnabled', kind: 'bool', en: 'Allow password sign-in', zh: '允许密码登录' },
  { key: 'PasswordRegisterEnabled', kind: 'bool', en: 'Allow password registration', zh: '允许密码注册' },
  { key: 'EmailVerificationEnabled', kind: 'bool', en: 'Require email verification on sign-up', zh: '注册时需要邮箱验证' },
];

export const OPERATION_OPTIONS: OptionDef[] = [
  { key: 'QuotaForNewUser', kind: 'int', en: 'Quota for new users', zh: '新用户初始额度' },
  { key: 'QuotaForInviter', kind: 'int', en: 'Reward for the inviter', zh: '邀请人奖励额度' },
  { key: 'QuotaForInvitee', kind: 'int', en: 'Reward for the invitee', zh: '被邀请人奖励额度' },
  { key: 'PreConsumedQuota', kind: 'int', en: 'Pre-consumed quota per request', zh: '请求预扣额度' },
  { key: 'QuotaPerUnit', kind: 'float', en: 'Quota per dollar', zh: '每美元对应额度', hintEn: 'Default 500000', hintZh: '默认 500000' },
  { key: 'RetryTimes', kind: 'int', en: 'Retry times on upstream failure', zh: '上游失败重试次数' },
  { key: 'ChannelDisableThreshold', kind: 'float', en: 'Channel disable threshold (seconds)', zh: '渠道自动禁用阈值（秒）' },
  { key: 'AutomaticDisableChannelEnabled', kind: 'bool', en: 'Disable failing channels automatically', zh: '失败时自动禁用渠道' },
  { key: 'AutomaticEnableChannelEnabled', kind: 'bool', en: 'Re-enable channels that pass a test', zh: '测试成功后自动启用渠道' },
  { key: 'DisplayInCurrencyEnabled', kind: 'bool', en: 'Show quota as dollars', zh: '以美元显示额度' },
  { key: 'DisplayTokenStatEnabled', kind: 'bool', en: 'Billing endpoints report per-token figures', zh: '账单接口显示令牌统计' },
  { key: 'LogConsumeEnabled', kind: 'bool', en: 'Record consumption logs', zh: '记录消费日志' },
];

export const RATIO_OPTIONS = ['ModelRatio', 'CompletionRatio', 'GroupRatio'] as const;
export type RatioKey = (typeof RATIO_OPTIONS)[number];

/** Validates one option value for its kind; returns an error message or null. */
export function validateOption(def: OptionDef, value: string): string | null {
  if (def.kind === 'int' && !/^-?\d+$/.test(value.trim())) return 'Must be an integer';
  if (def.kind === 'float' && (value.trim() === '' || !Number.isFinite(Number(value)))) return 'Must be a number';
  return null;
}
