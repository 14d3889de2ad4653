/** Conversions between the server's unix-second timestamps and the UI. */

/** Token expiry: `-1` means "never". */
export const NEVER_EXPIRES = -1;

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DDTHH:mm` (value of an `<input type="datetime-local">`) → unix seconds, or null if invalid. */
export function datetimeLocalToUnix(value: string): number | null {
  if (!value) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  const t = d.getTime();
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
}

/** Unix seconds → `YYYY-MM-DDTHH:mm` in local time ('' for -1/0). */
export function unixToDatetimeLocal(ts: number): string {
  if (!ts || ts < 0) return '';
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Expiry form state → the `expired_time` the API expects. */
export function expiryToUnix(neverExpires: boolean, value: string): number | null {
  if (neverExpires) return NEVER_EXPIRES;
  return datetimeLocalToUnix(value);
}

/** Adds a duration to now and returns a datetime-local string (quick expiry buttons). */
export function datetimeLocalFromNow(seconds: number, now: Date = new Date()): string {
  return unixToDatetimeLocal(Math.floor(now.getTime() / 1000) + seconds);
}

/** Formats unix seconds as `YYYY-MM-DD HH:mm:ss` local time. */
export function formatTimestamp(ts: number | null | undefined): string {
  if (!ts || ts <= 0) return '-';
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Start of the local day `daysAgo` days before today, in unix seconds. */
export function startOfDayUnix(daysAgo: number, now: Date = new Date()): number {
  const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - daysAgo);
  return Math.floor(d.getTime() / 1000);
}

export function nowUnix(): number {
  return Math.floor(Date.now() / 1000);
}
