import { render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { MemoryRouter, Route, Routes } from 'react-router';
import { vi } from 'vitest';
import type { Status, User } from '../api';
import { Providers } from '../Providers';

export const testStatus: Status = {
  version: 'test',
  start_time: 0,
  email_verification: false,
  github_oauth: false,
  github_client_id: '',
  system_name: 'Tollgate',
  logo: '',
  footer_html: '',
  server_address: 'http://gw.test',
  turnstile_check: false,
  top_up_link: '',
  chat_link: '',
  quota_per_unit: 500000,
  display_in_currency: true,
};

export const testUser: User = {
  id: 2,
  username: 'alice',
  display_name: 'Alice',
  role: 1,
  status: 1,
  email: '',
  quota: 1000000,
  used_quota: 0,
  request_count: 0,
  group: 'default',
  aff_code: 'Ab12',
  inviter_id: 0,
};

type Handler = (url: string, init: RequestInit) => unknown;

/** Replaces fetch with a router of `METHOD path` → envelope data (or a function). */
export function mockApi(routes: Record<string, unknown | Handler>) {
  const calls: { method: string; url: string; body: unknown }[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input);
    const method = (init.method ?? 'GET').toUpperCase();
    const path = url.split('?')[0];
    const body = init.body ? JSON.parse(init.body as string) : undefined;
    calls.push({ method, url, body });
    const key = `${method} ${path}`;
    if (!(key in routes)) return new Response(JSON.stringify({ success: false, message: `unmocked ${key}` }), { status: 200 });
    const r = routes[key];
    const data = typeof r === 'function' ? (r as Handler)(url, init) : r;
    const env = data && typeof data === 'object' && 'success' in (data as object) ? data : { success: true, message: '', data };
    return new Response(JSON.stringify(env), { status: 200 });
  });
  vi.stubGlobal('fetch', fn);
  return { fn, calls };
}

export function renderApp(ui: ReactElement, opts: { path?: string; route?: string; user?: User | null; status?: Status; extraRoutes?: ReactElement[] } = {}) {
  return render(
    <Providers status={opts.status ?? testStatus} user={opts.user === undefined ? testUser : opts.user} lang="en">
      <MemoryRouter initialEntries={[opts.path ?? '/']}>
        <Routes>
          <Route path={opts.route ?? '/'} element={ui} />
          {opts.extraRoutes}
        </Routes>
      </MemoryRouter>
    </Providers>,
  );
}
