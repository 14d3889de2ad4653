import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { Role, UNAUTHORIZED_EVENT, userApi, type User } from '../api';

const DEFAULT_PASSWORD_FLAG = 'tollgate.defaultPassword';

interface AuthValue {
  user: User | null;
  /** True until the first `/api/user/self` answer. */
  checking: boolean;
  isAdmin: boolean;
  isRoot: boolean;
  usedDefaultPassword: boolean;
  login: (username: string, password: string) => Promise<User>;
  logout: () => Promise<void>;
  refresh: () => Promise<void>;
  clearDefaultPasswordFlag: () => void;
}

const AuthContext = createContext<AuthValue | null>(null);

function readFlag(): boolean {
  try {
    return sessionStorage.getItem(DEFAULT_PASSWORD_FLAG) === '1';
  } catch {
    return false;
  }
}

function writeFlag(on: boolean) {
  try {
    if (on) sessionStorage.setItem(DEFAULT_PASSWORD_FLAG, '1');
    else sessionStorage.removeItem(DEFAULT_PASSWORD_FLAG);
  } catch {
    // ignore
  }
}

export function AuthProvider({ children, initialUser }: { children: ReactNode; initialUser?: User | null }) {
  const [user, setUser] = useState<User | null>(initialUser ?? null);
  const [checking, setChecking] = useState(initialUser === undefined);
  const [usedDefaultPassword, setUsedDefault] = useState(readFlag);

  const refresh = useCallback(async () => {
    try {
      setUser(await userApi.self());
    } catch {
      setUser(null);
    } finally {
      setChecking(false);
    }
  }, []);

  useEffect(() => {
    if (initialUser === undefined) void refresh();
  }, [initialUser, refresh]);

  useEffect(() => {
    const onUnauthorized = () => setUser(null);
    window.addEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
    return () => window.removeEventListener(UNAUTHORIZED_EVENT, onUnauthorized);
  }, []);

  const login = useCallback(async (username: string, password: string) => {
    const loggedIn = await userApi.login(username, password);
    const isDefault = loggedIn.role >= Role.Root && password === '123456';
    writeFlag(isDefault);
    setUsedDefault(isDefault);
    let full: User = loggedIn;
    try {
      full = await userApi.self();
    } catch {
      // keep the login payload
    }
    setUser(full);
    return full;
  }, []);

  const logout = useCallback(async () => {
    try {
      await userApi.logout();
    } finally {
      writeFlag(false);
      setUsedDefault(false);
      setUser(null);
    }
  }, []);

  const clearDefaultPasswordFlag = useCallback(() => {
    writeFlag(false);
    setUsedDefault(false);
  }, []);

  const value = useMemo<AuthValue>(
    () => ({
      user,
      checking,
      isAdmin: (user?.role ?? 0) >= Role.Admin,
      isRoot: (user?.role ?? 0) >= Role.Root,
      usedDefaultPassword: usedDefaultPassword && (user?.role ?? 0) >= Role.Root,
      login,
      logout,
      refresh,
      clearDefaultPasswordFlag,
    }),
    [user, checking, usedDefaultPassword, login, logout, refresh, clearDefaultPasswordFlag],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const v = useContext(AuthContext);
  if (!v) throw new Error('useAuth outside AuthProvider');
  return v;
}
