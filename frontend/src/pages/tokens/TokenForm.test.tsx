import { fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TokenInput } from '../../api';
import { mockApi, renderApp } from '../../test/render';
import { TokenForm } from './TokenForm';
import TokensPage from './TokensPage';

afterEach(() => vi.unstubAllGlobals());

describe('TokenForm', () => {
  it('requires a name', async () => {
    const onSubmit = vi.fn(async () => undefined);
    renderApp(<TokenForm onSubmit={onSubmit} />);
    await userEvent.click(screen.getByTestId('token-submit'));
    expect(await screen.findAllByText('Name is required')).not.toHaveLength(0);
    expect(onSubmit).not.toHaveBeenCalled();
  });

  it('builds an unlimited, never-expiring token by default', async () => {
    const onSubmit = vi.fn(async (_b: TokenInput) => undefined);
    renderApp(<TokenForm onSubmit={onSubmit} />);
    await userEvent.type(screen.getByTestId('token-name'), 'ci');
    await userEvent.click(screen.getByTestId('token-submit'));
    await waitFor(() => expect(onSubmit).toHaveBeenCalled());
    expect(onSubmit.mock.calls[0][0]).toEqual({ name: 'ci', unlimited_quota: true, remain_quota: 500000, expired_time: -1, models: '', subnet: '' });
  });

  it('sends quota, expiry, models and subnet', async () => {
    const onSubmit = vi.fn(async (_b: TokenInput) => undefined);
    renderApp(<TokenForm onSubmit={onSubmit} />);
    await userEvent.type(screen.getByTestId('token-name'), 'limited');
    await userEvent.click(screen.getByTestId('token-unlimited'));
    const quota = screen.getByTestId('token-quota');
    await userEvent.clear(quota);
    await userEvent.type(quota, '1000');
    await userEvent.click(screen.getByTestId('token-never-expires'));
    fireEvent.change(screen.getByTestId('token-expires-at'), { target: { value: '2031-02-03T04:05' } });
    await userEvent.type(screen.getByTestId('token-models'), 'gpt-4o,gpt-3.5-turbo,');
    await userEvent.type(screen.getByTestId('token-subnet'), '10.0.0.0/8, 192.168.1.0/24');
    await userEvent.click(screen.getByTestId('token-submit'));
    await waitFor(() => expect(onSubmit).toHaveBeenCalled());
    expect(onSubmit.mock.calls[0][0]).toEqual({
      name: 'limited',
      unlimited_quota: false,
      remain_quota: 1000,
      expired_time: new Date(2031, 1, 3, 4, 5).getTime() / 1000,
      models: 'gpt-4o,gpt-3.5-turbo',
      subnet: '10.0.0.0/8,192.168.1.0/24',
    });
  });

  it('rejects a missing expiry date', async () => {
    const onSubmit = vi.fn(async () => undefined);
    renderApp(<TokenForm onSubmit={onSubmit} />);
    await userEvent.type(screen.getByTestId('token-name'), 'x');
    await userEvent.click(screen.getByTestId('token-never-expires'));
    await userEvent.click(screen.getByTestId('token-submit'));
    expect(await screen.findAllByText('Choose a valid expiry date')).not.toHaveLength(0);
    expect(onSubmit).not.toHaveBeenCalled();
  });
});

describe('TokensPage', () => {
  it('shows the empty state, creates a token and reloads the list', async () => {
    let created = false;
    const token = { id: 7, user_id: 2, key: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL', status: 1, name: 'mine', created_time: 1, accessed_time: 1, expired_time: -1, remain_quota: 0, unlimited_quota: true, used_quota: 0, models: '', subnet: '' };
    const { calls } = mockApi({
      'GET /api/token/': () => (created ? [token] : []),
      'GET /api/user/available_models': ['gpt-3.5-turbo'],
      'POST /api/token/': () => {
        created = true;
        return token;
      },
    });
    renderApp(<TokensPage />);
    expect(await screen.findByText('No tokens yet. Create one to call the API.')).toBeInTheDocument();
    await userEvent.click(screen.getByTestId('token-add'));
    const form = await screen.findByTestId('token-form');
    await userEvent.type(within(form).getByTestId('token-name'), 'mine');
    await userEvent.click(within(form).getByTestId('token-submit'));
    const row = await screen.findByTestId('token-row');
    expect(within(row).getByTestId('token-key').getAttribute('data-key')).toBe(`sk-${token.key}`);
    const post = calls.find((c) => c.method === 'POST');
    expect(post?.body).toMatchObject({ name: 'mine', unlimited_quota: true, expired_time: -1 });
  });
});
