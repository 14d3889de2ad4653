import type { Envelope } from './types';

/** Error thrown when the server answers `success:false` or a non-2xx status. */
export class ApiError extends Error {
  readonly status: number;
  readonly unauthorized: boolean;
  constructor(message: string, status: number, unauthorized = false) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.unauthorized = unauthorized;
  }
}

/** Event fired on `window` when a call reveals that the session is gone. */
export const UNAUTHORIZED_EVENT = 'tollgate:unauthorized';

const NOT_LOGGED_IN = [/未登录/, /not logged in/i, /access token 无效/, /invalid access token/i, /unauthori[sz]ed/i];

export function isNotLoggedInMessage(message: string): boolean {
  return NOT_LOGGED_IN.some((re) => re.test(message));
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function buildQuery(query?: Query): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    params.append(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

interface RequestOptions {
  query?: Query;
  body?: unknown;
}

/** Performs a request and returns the whole JSON body (for the few routes without `data`). */
export async function requestRaw<R extends { success: boolean; message: string }>(
  method: string,
  path: string,
  opts: RequestOptions = {},
): Promise<R> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path + buildQuery(opts.query), init);
  } catch (e) {
    throw new ApiError(e instanceof Error ? e.message : 'Network error', 0);
  }
  const text = await res.text();
  let json: R | undefined;
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text) as R;
    } catch {
      throw new ApiError(`Unexpected response (HTTP ${res.status})`, res.status);
    }
  }
  if (res.status === 401 || (json && !json.success && isNotLoggedInMessage(json.message ?? ''))) {
    window.dispatchEvent(new Event(UNAUTHORIZED_EVENT));
    throw new ApiError(json?.message || 'Not logged in', res.status, true);
  }
  if (!res.ok) {
    throw new ApiError(json?.message || `HTTP ${res.status}`, res.status);
  }
  if (json === undefined) {
    // One API's DELETE /api/user/:id answers 200 with an empty body on success.
    return { success: true, message: '' } as R;
  }
  if (!json.success) throw new ApiError(json.message || 'Request failed', res.status);
  return json;
}

/** Performs a request and unwraps the `{success, message, data}` envelope. */
export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const env = await requestRaw<Envelope<T>>(method, path, opts);
  return env.data as T;
}

export const http = {
  get: <T>(path: string, query?: Query) => request<T>('GET', path, { query }),
  post: <T>(path: string, body?: unknown, query?: Query) => request<T>('POST', path, { body, query }),
  put: <T>(path: string, body?: unknown, query?: Query) => request<T>('PUT', path, { body, query }),
  del: <T>(path: string, query?: Query) => request<T>('DELETE', path, { query }),
};
