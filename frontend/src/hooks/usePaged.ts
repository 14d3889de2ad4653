import { useCallback, useState } from 'react';
import { PAGE_SIZE } from '../api';
import { useAsync } from './useAsync';

export interface PagedState<T> {
  items: T[];
  loading: boolean;
  error: string | null;
  page: number;
  setPage: (p: number) => void;
  hasMore: boolean;
  /** Keyword currently applied (search results are not paged by the server). */
  keyword: string;
  search: (keyword: string) => void;
  reload: () => void;
  /** Replace one item locally after an update. */
  patch: (pred: (item: T) => boolean, change: Partial<T>) => void;
}

/**
 * List state for One API's list endpoints: `list(p)` pages of 10 (0-based), and optional
 * `search(keyword)` that returns every match at once.
 */
export function usePaged<T>(
  list: (page: number) => Promise<T[] | null>,
  searchFn?: (keyword: string) => Promise<T[] | null>,
  deps: unknown[] = [],
): PagedState<T> {
  const [page, setPageState] = useState(0);
  const [keyword, setKeyword] = useState('');
  const state = useAsync<T[]>(
    async () => {
      const rows = keyword && searchFn ? await searchFn(keyword) : await list(page);
      return rows ?? [];
    },
    [page, keyword, ...deps],
  );
  const items = state.data ?? [];
  const setPage = useCallback((p: number) => setPageState(Math.max(0, p)), []);
  const search = useCallback((kw: string) => {
    setKeyword(kw.trim());
    setPageState(0);
  }, []);
  const { setData } = state;
  const patch = useCallback(
    (pred: (item: T) => boolean, change: Partial<T>) => {
      setData(items.map((it) => (pred(it) ? { ...it, ...change } : it)));
    },
    [items, setData],
  );
  return {
    items,
    loading: state.loading,
    error: state.error,
    page,
    setPage,
    hasMore: !keyword && items.length >= PAGE_SIZE,
    keyword,
    search,
    reload: state.reload,
    patch,
  };
}
