/** JSON shapes of One API's management API (see one-api-reference.md §1.3, §2). */

export interface Envelope<T> {
  success: boolean;
  message: string;
  data?: T;
}

export interface Status {
  version: string;
  start_time: number;
  email_verification: boolean;
  github_oauth: boolean;
  github_client_id: string;
  lark_client_id?: string;
  system_name: string;
  logo: string;
  footer_html: string;
  wechat_qrcode?: string;
  wechat_login?: boolean;
  server_address: string;
  turnstile_check: boolean;
  turnstile_site_key?: string;
  top_up_link: string;
  chat_link: string;
  quota_per_unit: number;
  display_in_currency: boolean;
  oidc?: boolean;
  /** Not in One API's payload; honoured when a server sends them. */
  register_enabled?: boolean;
  password_login_enabled?: boolean;
  password_register_enabled?: boolean;
}

export const Role = { Guest: 0, Common: 1, Admin: 10, Root: 100 } as const;

export interface User {
  id: number;
  username: string;
  display_name: string;
  role: number;
  status: number; // 1 enabled, 2 disabled, 3 deleted
  email: string;
  quota: number;
  used_quota: number;
  request_count: number;
  group: string;
  aff_code: string;
  inviter_id: number;
  access_token?: string;
}

export interface Token {
  id: number;
  user_id: number;
  key: string;
  status: number; // 1 enabled, 2 disabled, 3 expired, 4 exhausted
  name: string;
  created_time: number;
  accessed_time: number;
  expired_time: number; // -1 never
  remain_quota: number;
  unlimited_quota: boolean;
  used_quota: number;
  models: string | null;
  subnet: string;
}

export interface TokenInput {
  id?: number;
  name: string;
  expired_time: number;
  remain_quota: number;
  unlimited_quota: boolean;
  models: string;
  subnet: string;
}

export interface Channel {
  id: number;
  type: number;
  key: string;
  status: number; // 1 enabled, 2 manually disabled, 3 auto disabled
  name: string;
  weight: number | null;
  created_time: number;
  test_time: number;
  response_time: number;
  base_url: string | null;
  other: string | null;
  balance: number;
  balance_updated_time: number;
  models: string;
  group: string;
  used_quota: number;
  model_mapping: string | null;
  priority: number | null;
  config: string;
  system_prompt: string | null;
}

export interface ChannelInput {
  id?: number;
  type: number;
  key: string;
  name: string;
  base_url: string;
  other: string;
  models: string;
  group: string;
  model_mapping: string;
  priority: number;
  weight: number;
  config: string;
  system_prompt: string;
}

export interface Redemption {
  id: number;
  user_id: number;
  key: string;
  status: number; // 1 unused, 2 disabled, 3 used
  name: string;
  quota: number;
  created_time: number;
  redeemed_time: number;
}

export interface LogEntry {
  id: number;
  user_id: number;
  created_at: number;
  type: number;
  content: string;
  username: string;
  token_name: string;
  model_name: string;
  quota: number;
  prompt_tokens: number;
  completion_tokens: number;
  channel: number;
  request_id?: string;
  elapsed_time?: number;
  is_stream?: boolean;
}

export interface LogQuery {
  type?: number;
  start_timestamp?: number;
  end_timestamp?: number;
  token_name?: string;
  model_name?: string;
  username?: string;
  channel?: string;
}

export interface DashboardRow {
  Day: string;
  ModelName: string;
  RequestCount: number;
  Quota: number;
  PromptTokens: number;
  CompletionTokens: number;
}

export interface OptionItem {
  key: string;
  value: string;
}

export interface ChannelTestResult {
  success: boolean;
  message: string;
  time?: number;
  modelName?: string;
}

export interface BalanceResult {
  success: boolean;
  message: string;
  balance?: number;
}
