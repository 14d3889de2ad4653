import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Route } from 'react-router';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi, renderApp, testUser } from '../../test/render';
import { LoginPage } from './LoginPage';

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

const dashboardRoute = <Route key="d" path="/dashboard" element={<div>dashboard page</div>} />;

describe('LoginPage', () => {
  it('validates empty fields without calling the API', async () => {
    const { fn } = mockApi({});
    renderApp(<LoginPage />, { path: '/login', route: '/login', user: null });
    await userEvent.click(screen.getByTestId('login-submit'));
    expect(await screen.findByText('Username is required')).toBeInTheDocument();
    expect(screen.getByText('Password is required')).toBeInTheDocument();
    expect(fn).not.toHaveBeenCalled();
  });

  it('posts credentials, loads the user and goes to the dashboard', async () => {
    const { calls } = mockApi({
      'POST /api/user/login': { ...testUser, quota: 0 },
      'GET /api/user/self': testUser,
    });
    renderApp(<LoginPage />, { path: '/login', route: '/login', user: null, extraRoutes: [dashboardRoute] });
    await userEvent.type(screen.getByTestId('login-username'), 'alice');
    await userEvent.type(screen.getByTestId('login-password'), 'secret123');
    await userEvent.click(screen.getByTestId('login-submit'));
    expect(await screen.findByText('dashboard page')).toBeInTheDocument();
    expect(calls[0]).toMatchObject({ method: 'POST', url: '/api/user/login', body: { username: 'alice', password: 'secret123' } });
    expect(sessionStorage.getItem('tollgate.defaultPassword')).toBeNull();
  });

  it('shows the server error message', async () => {
    mockApi({ 'POST /api/user/login': { success: false, message: '用户名或密码错误，或用户已被封禁' } });
    renderApp(<LoginPage />, { path: '/login', route: '/login', user: null });
    await userEvent.type(screen.getByTestId('login-username'), 'alice');
    await userEvent.type(screen.getByTestId('login-password'), 'wrong');
    await userEvent.click(screen.getByTestId('login-submit'));
    expect(await screen.findByTestId('login-error')).toHaveTextContent('用户名或密码错误');
  });

  it('remembers that root used the default password', async () => {
    const root = { ...testUser, id: 1, username: 'root', role: 100 };
    mockApi({ 'POST /api/user/login': root, 'GET /api/user/self': root });
    renderApp(<LoginPage />, { path: '/login', route: '/login', user: null, extraRoutes: [dashboardRoute] });
    await userEvent.type(screen.getByTestId('login-username'), 'root');
    await userEvent.type(screen.getByTestId('login-password'), '123456');
    await userEvent.click(screen.getByTestId('login-submit'));
    await waitFor(() => expect(sessionStorage.getItem('tollgate.defaultPassword')).toBe('1'));
  });
});
