import { http, requestRaw } from './client';
import type {
  BalanceResult,
  Channel,
  ChannelInput,
  ChannelTestResult,
  DashboardRow,
  LogEntry,
  LogQuery,
  OptionItem,
  Redemption,
  Status,
  Token,
  TokenInput,
  User,
} from './types';

export * from './types';
export { ApiError, UNAUTHORIZED_EVENT } from './client';

/** Page size fixed by the server (`ItemsPerPage`). */
export const PAGE_SIZE = 10;

export const miscApi = {
  status: () => http.get<Status>('/api/status'),
  notice: () => http.get<string>('/api/notice'),
  about: () => http.get<string>('/api/about'),
  homePageContent: () => http.get<string>('/api/home_page_content'),
  models: () => http.get<Record<string, string[]>>('/api/models'),
  groups: () => http.get<string[]>('/api/group/'),
  sendResetEmail: (email: string) => http.get<unknown>('/api/reset_password', { email }),
  sendVerification: (email: string) => http.get<unknown>('/api/verification', { email }),
  resetPassword: (email: string, token: string) => http.post<string>('/api/user/reset', { email, token }),
};

export interface RegisterInput {
  username: string;
  password: string;
  email?: string;
  verification_code?: string;
  aff_code?: string;
}

export const userApi = {
  login: (username: string, password: string) => http.post<User>('/api/user/login', { username, password }),
  logout: () => http.get<unknown>('/api/user/logout'),
  register: (body: RegisterInput) => http.post<unknown>('/api/user/register', body),
  self: () => http.get<User>('/api/user/self'),
  updateSelf: (body: { username: string; display_name: string; password: string }) =>
    http.put<unknown>('/api/user/self', body),
  generateAccessToken: () => http.get<string>('/api/user/token'),
  affCode: () => http.get<string>('/api/user/aff'),
  redeem: (key: string) => http.post<number>('/api/user/topup', { key }),
  availableModels: () => http.get<string[]>('/api/user/available_models'),
  dashboard: (range?: { start_timestamp?: number; end_timestamp?: number }) =>
    http.get<DashboardRow[] | null>('/api/user/dashboard', range),
  // admin
  list: (p: number, order?: string) => http.get<User[] | null>('/api/user/', { p, order }),
  search: (keyword: string) => http.get<User[] | null>('/api/user/search', { keyword }),
  get: (id: number) => http.get<User>(`/api/user/${id}`),
  create: (body: { username: string; password: string; display_name: string }) => http.post<unknown>('/api/user/', body),
  update: (body: { id: number; username: string; display_name: string; password: string; quota: number; group: string }) =>
    http.put<unknown>('/api/user/', body),
  manage: (username: string, action: 'enable' | 'disable' | 'delete' | 'promote' | 'demote') =>
    http.post<Partial<User>>('/api/user/manage', { username, action }),
  remove: (id: number) => http.del<unknown>(`/api/user/${id}`),
};

export const tokenApi = {
  list: (p: number) => http.get<Token[] | null>('/api/token/', { p }),
  search: (keyword: string) => http.get<Token[] | null>('/api/token/search', { keyword }),
  get: (id: number) => http.get<Token>(`/api/token/${id}`),
  create: (body: TokenInput) => http.post<Token | null>('/api/token/', body),
  update: (body: TokenInput & { id: number }) => http.put<Token>('/api/token/', body),
  setStatus: (id: number, status: number) => http.put<Token>('/api/token/', { id, status }, { status_only: 1 }),
  remove: (id: number) => http.del<unknown>(`/api/token/${id}`),
};

export const channelApi = {
  list: (p: number) => http.get<Channel[] | null>('/api/channel/', { p }),
  search: (keyword: string) => http.get<Channel[] | null>('/api/channel/search', { keyword }),
  get: (id: number) => http.get<Channel>(`/api/channel/${id}`),
  create: (body: ChannelInput) => http.post<unknown>('/api/channel/', body),
  update: (body: ChannelInput & { id: number }) => http.put<Channel>('/api/channel/', body),
  setStatus: (id: number, status: number) => http.put<unknown>('/api/channel/', { id, status }),
  remove: (id: number) => http.del<unknown>(`/api/channel/${id}`),
  removeDisabled: () => http.del<number>('/api/channel/disabled'),
  test: (id: number, model?: string) =>
    requestRaw<ChannelTestResult>('GET', `/api/channel/test/${id}`, { query: { model } }),
  testAll: () => http.get<unknown>('/api/channel/test'),
  updateBalance: (id: number) => requestRaw<BalanceResult>('GET', `/api/channel/update_balance/${id}`),
  fetchModels: (id: number) => http.get<string[]>(`/api/channel/fetch_models/${id}`),
};

export const redemptionApi = {
  list: (p: number) => http.get<Redemption[] | null>('/api/redemption/', { p }),
  search: (keyword: string) => http.get<Redemption[] | null>('/api/redemption/search', { keyword }),
  create: (body: { name: string; count: number; quota: number }) => http.post<string[]>('/api/redemption/', body),
  setStatus: (id: number, status: number) => http.put<unknown>('/api/redemption/', { id, status }, { status_only: 1 }),
  remove: (id: number) => http.del<unknown>(`/api/redemption/${id}`),
};

type LogParams = LogQuery & { p?: number };

export const logApi = {
  self: (q: LogParams) => http.get<LogEntry[] | null>('/api/log/self', { ...q }),
  selfStat: (q: LogQuery) => http.get<{ quota: number }>('/api/log/self/stat', { ...q }),
  all: (q: LogParams) => http.get<LogEntry[] | null>('/api/log/', { ...q }),
  allStat: (q: LogQuery) => http.get<{ quota: number }>('/api/log/stat', { ...q }),
};

export const optionApi = {
  list: () => http.get<OptionItem[]>('/api/option/'),
  update: (key: string, value: string) => http.put<unknown>('/api/option/', { key, value }),
};
