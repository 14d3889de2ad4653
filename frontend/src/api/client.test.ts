import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, http, UNAUTHORIZED_EVENT, buildQuery } from './client';

function mockFetch(status: number, body: unknown) {
  const fn = vi.fn(async () => new Response(typeof body === 'string' ? body : JSON.stringify(body), { status }));
  vi.stubGlobal('fetch', fn);
  return fn;
}

afterEach(() => vi.unstubAllGlobals());

describe('api client', () => {
  it('unwraps data', async () => {
    mockFetch(200, { success: true, message: '', data: { a: 1 } });
    await expect(http.get('/api/x')).resolves.toEqual({ a: 1 });
  });
  it('throws the server message on success:false', async () => {
    mockFetch(200, { success: false, message: 'boom' });
    await expect(http.get('/api/x')).rejects.toThrow('boom');
  });
  it('signals unauthorized on 401 and on the not-logged-in message', async () => {
    const handler = vi.fn();
    window.addEventListener(UNAUTHORIZED_EVENT, handler);
    mockFetch(401, { success: false, message: '无权进行此操作，未登录且未提供 access token' });
    const err = await http.get('/api/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).unauthorized).toBe(true);
    mockFetch(200, { success: false, message: '无权进行此操作，未登录且未提供 access token' });
    await http.get('/api/x').catch(() => undefined);
    expect(handler).toHaveBeenCalledTimes(2);
    window.removeEventListener(UNAUTHORIZED_EVENT, handler);
  });
  it('treats an empty 200 body as success', async () => {
    mockFetch(200, '');
    await expect(http.del('/api/user/1')).resolves.toBeUndefined();
  });
  it('sends JSON bodies and query strings', async () => {
    const fn = mockFetch(200, { success: true, message: '', data: null });
    await http.put('/api/token/', { id: 1, status: 2 }, { status_only: 1 });
    const [url, init] = fn.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/api/token/?status_only=1');
    expect(init.method).toBe('PUT');
    expect(JSON.parse(init.body as string)).toEqual({ id: 1, status: 2 });
    expect(buildQuery({ p: 0, keyword: '', x: undefined })).toBe('?p=0');
  });
});
