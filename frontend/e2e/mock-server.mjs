// A small in-memory stand-in for Tollgate's /api and /v1 routes, serving ../dist.
// Only for screenshots and for exercising e2e/run.mjs before the Rust server is ready:
//   npm run build && node e2e/mock-server.mjs  (PORT env, default 3999)
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const PORT = Number(process.env.PORT ?? 3999);
const now = () => Math.floor(Date.now() / 1000);
const hex = (n) => randomBytes(n).toString('hex');

const db = {
  users: [{ id: 1, username: 'root', password: '123456', display_name: 'Root User', role: 100, status: 1, email: '', quota: 500000000000000, used_quota: 1234567, request_count: 42, group: 'default', aff_code: 'R00t', inviter_id: 0, access_token: '' }],
  tokens: [],
  channels: [],
  redemptions: [],
  logs: [],
  options: {
    SystemName: 'Tollgate', Logo: '', Notice: 'Welcome to **Tollgate** (mock server).', About: '', HomePageContent: '', Footer: '', TopUpLink: 'https://shop.example.com/buy', ChatLink: '', ServerAddress: '',
    RegisterEnabled: 'true', PasswordLoginEnabled: 'true', PasswordRegisterEnabled: 'true', EmailVerificationEnabled: 'false',
    QuotaForNewUser: '0', QuotaForInviter: '0', QuotaForInvitee: '0', PreConsumedQuota: '500', RetryTimes: '0',
    AutomaticDisableChannelEnabled: 'false', AutomaticEnableChannelEnabled: 'false', ChannelDisableThreshold: '5', QuotaPerUnit: '500000',
    DisplayInCurrencyEnabled: 'true', DisplayTokenStatEnabled: 'true', LogConsumeEnabled: 'true',
    ModelRatio: JSON.stringify({ 'gpt-3.5-turbo': 0.25, 'gpt-4': 15, 'gpt-4o': 2.5, 'gpt-4o-mini': 0.075, 'claude-3-5-sonnet-20240620': 1.5 }),
    CompletionRatio: JSON.stringify({ 'gpt-4o': 4, 'gpt-3.5-turbo': 3 }),
    GroupRatio: JSON.stringify({ default: 1, vip: 1, svip: 1 }),
  },
  seq: { user: 2, token: 1, channel: 1, redemption: 1, log: 1 },
};
const sessions = new Map();

// Seed some usage for root so the dashboard has charts.
for (let d = 6; d >= 0; d--) {
  for (const [m, q] of [['gpt-4o', 40000], ['gpt-3.5-turbo', 9000], ['claude-3-5-sonnet-20240620', 15000]]) {
    if ((d + m.length) % 3 === 0) continue;
    db.logs.push({ id: db.seq.log++, user_id: 1, created_at: now() - d * 86400 - 3600, type: 2, content: '倍率：0.25 × 1.00 × 3.00', username: 'root', token_name: 'default', model_name: m, quota: q * (1 + (d % 3)), prompt_tokens: 900 + d * 10, completion_tokens: 300 + d * 5, channel: 1, request_id: hex(8), elapsed_time: 800 + d * 120, is_stream: d % 2 === 0 });
  }
}

const ok = (data, message = '') => ({ success: true, message, data });
const fail = (message) => ({ success: false, message });
const page = (arr, p) => arr.slice(Number(p || 0) * 10, Number(p || 0) * 10 + 10);
const publicUser = (u) => ({ ...u, password: '', access_token: '' });

function me(req) {
  const m = /session=([a-f0-9]+)/.exec(req.headers.cookie ?? '');
  const id = m && sessions.get(m[1]);
  return db.users.find((u) => u.id === id && u.status === 1);
}

function addLog(u, type, content, extra = {}) {
  db.logs.push({ id: db.seq.log++, user_id: u.id, created_at: now(), type, content, username: u.username, token_name: '', model_name: '', quota: 0, prompt_tokens: 0, completion_tokens: 0, channel: 0, request_id: '', elapsed_time: 0, is_stream: false, ...extra });
}

function filterLogs(q, userId) {
  return db.logs
    .filter((l) => (userId ? l.user_id === userId : true))
    .filter((l) => !Number(q.type) || l.type === Number(q.type))
    .filter((l) => !q.start_timestamp || l.created_at >= Number(q.start_timestamp))
    .filter((l) => !q.end_timestamp || l.created_at <= Number(q.end_timestamp))
    .filter((l) => !q.token_name || l.token_name === q.token_name)
    .filter((l) => !q.model_name || l.model_name === q.model_name)
    .filter((l) => !q.username || l.username === q.username)
    .filter((l) => !q.channel || l.channel === Number(q.channel))
    .sort((a, b) => b.id - a.id);
}

async function api(req, url, body) {
  const q = Object.fromEntries(url.searchParams);
  const path = url.pathname;
  const M = `${req.method} ${path}`;
  if (M === 'GET /api/status') {
    const o = db.options;
    return ok({ version: 'mock', start_time: now(), email_verification: o.EmailVerificationEnabled === 'true', github_oauth: false, github_client_id: '', system_name: o.SystemName, logo: o.Logo, footer_html: o.Footer, server_address: o.ServerAddress, turnstile_check: false, top_up_link: o.TopUpLink, chat_link: o.ChatLink, quota_per_unit: Number(o.QuotaPerUnit), display_in_currency: o.DisplayInCurrencyEnabled === 'true' });
  }
  if (M === 'GET /api/notice') return ok(db.options.Notice);
  if (M === 'GET /api/about') return ok(db.options.About);
  if (M === 'GET /api/home_page_content') return ok(db.options.HomePageContent);
  if (M === 'POST /api/user/login') {
    const u = db.users.find((x) => x.username === body.username && x.password === body.password && x.status === 1);
    if (!u) return fail('用户名或密码错误，或用户已被封禁');
    const sid = hex(16);
    sessions.set(sid, u.id);
    return { cookie: `session=${sid}; Path=/; HttpOnly`, body: ok({ id: u.id, username: u.username, display_name: u.display_name, role: u.role, status: u.status }) };
  }
  if (M === 'GET /api/user/logout') return { cookie: 'session=; Path=/; Max-Age=0', body: ok(null) };
  if (M === 'POST /api/user/register') {
    if (!body.username || body.username.length > 12) return fail('用户名无效');
    if (!body.password || body.password.length < 8) return fail('密码长度至少 8');
    if (db.users.some((u) => u.username === body.username)) return fail('用户名已被占用');
    const u = { id: db.seq.user++, username: body.username, password: body.password, display_name: body.username, role: 1, status: 1, email: body.email ?? '', quota: Number(db.options.QuotaForNewUser), used_quota: 0, request_count: 0, group: 'default', aff_code: hex(2), inviter_id: 0, access_token: '' };
    db.users.push(u);
    db.tokens.push({ id: db.seq.token++, user_id: u.id, key: hex(24), status: 1, name: 'default', created_time: now(), accessed_time: now(), expired_time: -1, remain_quota: -1, unlimited_quota: true, used_quota: 0, models: '', subnet: '' });
    return ok(null);
  }
  if (M === 'GET /api/reset_password') return ok(null);

  const u = me(req);
  if (!u) return { status: 401, body: fail('无权进行此操作，未登录且未提供 access token') };
  const admin = u.role >= 10;
  const root = u.role >= 100;

  if (M === 'GET /api/user/self') return ok(publicUser(u));
  if (M === 'PUT /api/user/self') {
    u.username = body.username || u.username;
    u.display_name = body.display_name ?? u.display_name;
    if (body.password) u.password = body.password;
    return ok(null);
  }
  if (M === 'GET /api/user/token') return ok((u.access_token = hex(16)));
  if (M === 'GET /api/user/aff') return ok(u.aff_code);
  if (M === 'GET /api/user/available_models') return ok([...new Set(db.channels.flatMap((c) => c.models.split(',')))].filter(Boolean));
  if (M === 'GET /api/models') return ok({ 1: ['gpt-3.5-turbo', 'gpt-4', 'gpt-4o', 'gpt-4o-mini'], 8: [], 14: ['claude-3-5-sonnet-20240620', 'claude-3-haiku-20240307'], 24: ['gemini-1.5-pro', 'gemini-1.5-flash'] });
  if (M === 'GET /api/user/dashboard') {
    const start = Number(q.start_timestamp || now() - 6 * 86400);
    const end = Number(q.end_timestamp || now());
    const map = new Map();
    for (const l of db.logs.filter((l) => l.user_id === u.id && l.type === 2 && l.created_at >= start && l.created_at <= end)) {
      const d = new Date(l.created_at * 1000);
      const day = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
      const k = `${day}|${l.model_name}`;
      const r = map.get(k) ?? { Day: day, ModelName: l.model_name, RequestCount: 0, Quota: 0, PromptTokens: 0, CompletionTokens: 0 };
      r.RequestCount++;
      r.Quota += l.quota;
      r.PromptTokens += l.prompt_tokens;
      r.CompletionTokens += l.completion_tokens;
      map.set(k, r);
    }
    return ok([...map.values()]);
  }
  if (M === 'POST /api/user/topup') {
    const r = db.redemptions.find((x) => x.key === body.key);
    if (!r) return fail('兑换失败，无效的兑换码');
    if (r.status !== 1) return fail('兑换失败，该兑换码已被使用');
    r.status = 3;
    r.redeemed_time = now();
    u.quota += r.quota;
    addLog(u, 1, `通过兑换码充值 ＄${(r.quota / 500000).toFixed(6)} 额度`);
    return ok(r.quota);
  }
  // tokens
  const mine = () => db.tokens.filter((x) => x.user_id === u.id).sort((a, b) => b.id - a.id);
  if (M === 'GET /api/token/') return ok(page(mine(), q.p));
  if (M === 'GET /api/token/search') return ok(mine().filter((x) => x.name.startsWith(q.keyword ?? '')));
  if (M === 'POST /api/token/') {
    if (!body.name || body.name.length > 30) return fail('令牌名称过长');
    const tok = { id: db.seq.token++, user_id: u.id, key: hex(24), status: 1, created_time: now(), accessed_time: now(), used_quota: 0, ...body };
    db.tokens.push(tok);
    return ok(tok);
  }
  if (M === 'PUT /api/token/') {
    const tok = mine().find((x) => x.id === body.id);
    if (!tok) return fail('record not found');
    if (q.status_only) tok.status = body.status;
    else Object.assign(tok, { name: body.name, expired_time: body.expired_time, remain_quota: body.remain_quota, unlimited_quota: body.unlimited_quota, models: body.models, subnet: body.subnet });
    return ok(tok);
  }
  let m;
  if ((m = /^\/api\/token\/(\d+)$/.exec(path)) && req.method === 'DELETE') {
    db.tokens = db.tokens.filter((x) => !(x.id === Number(m[1]) && x.user_id === u.id));
    return ok(null);
  }
  // logs
  if (M === 'GET /api/log/self') return ok(page(filterLogs(q, u.id), q.p).map((l) => ({ ...l, id: 0 })));
  if (M === 'GET /api/log/self/stat') return ok({ quota: filterLogs({ ...q, type: 2 }, u.id).reduce((a, l) => a + l.quota, 0) });
  if (!admin) return fail('无权进行此操作，权限不足');
  if (M === 'GET /api/log/') return ok(page(filterLogs(q), q.p));
  if (M === 'GET /api/log/stat') return ok({ quota: filterLogs({ ...q, type: 2 }).reduce((a, l) => a + l.quota, 0) });
  if (M === 'GET /api/group/') return ok(Object.keys(JSON.parse(db.options.GroupRatio)));
  // channels
  const chans = () => [...db.channels].sort((a, b) => b.id - a.id).map((c) => ({ ...c, key: '' }));
  if (M === 'GET /api/channel/') return ok(page(chans(), q.p));
  if (M === 'GET /api/channel/search') return ok(chans().filter((c) => String(c.id) === q.keyword || c.name.startsWith(q.keyword ?? '')));
  if (M === 'POST /api/channel/') {
    const keys = String(body.key ?? '').split('\n').filter((s) => s.trim());
    for (const key of keys) db.channels.push({ balance: 0, balance_updated_time: 0, used_quota: 0, response_time: 0, test_time: 0, created_time: now(), status: 1, ...body, key, id: db.seq.channel++ });
    return ok(null);
  }
  if (M === 'PUT /api/channel/') {
    const c = db.channels.find((x) => x.id === body.id);
    if (!c) return fail('record not found');
    for (const [k, v] of Object.entries(body)) if (v !== '' && v !== 0 && v !== null) c[k] = v;
    return ok(c);
  }
  if (M === 'DELETE /api/channel/disabled') {
    const before = db.channels.length;
    db.channels = db.channels.filter((c) => c.status === 1);
    return ok(before - db.channels.length);
  }
  if (M === 'GET /api/channel/test') return ok(null);
  if ((m = /^\/api\/channel\/test\/(\d+)$/.exec(path))) {
    const c = db.channels.find((x) => x.id === Number(m[1]));
    if (!c) return fail('record not found');
    c.response_time = 420;
    c.test_time = now();
    return { success: true, message: 'mock reply', time: 0.42, modelName: q.model ?? '' };
  }
  if ((m = /^\/api\/channel\/update_balance\/(\d+)$/.exec(path))) return { success: true, message: '', balance: 12.34 };
  if ((m = /^\/api\/channel\/fetch_models\/(\d+)$/.exec(path))) return ok(['gpt-3.5-turbo', 'gpt-4o-mini']);
  if ((m = /^\/api\/channel\/(\d+)$/.exec(path))) {
    const c = db.channels.find((x) => x.id === Number(m[1]));
    if (req.method === 'DELETE') {
      db.channels = db.channels.filter((x) => x !== c);
      return ok(null);
    }
    return c ? ok({ ...c, key: '' }) : fail('record not found');
  }
  // users
  const users = () => db.users.filter((x) => x.status !== 3).map(publicUser);
  if (M === 'GET /api/user/') {
    const list = users().sort((a, b) => (q.order ? b[q.order] - a[q.order] : b.id - a.id));
    return ok(page(list, q.p));
  }
  if (M === 'GET /api/user/search') return ok(users().filter((x) => x.username.startsWith(q.keyword ?? '') || String(x.id) === q.keyword));
  if (M === 'POST /api/user/') {
    if (db.users.some((x) => x.username === body.username)) return fail('用户名已被占用');
    db.users.push({ id: db.seq.user++, username: body.username, password: body.password, display_name: body.display_name || body.username, role: 1, status: 1, email: '', quota: 0, used_quota: 0, request_count: 0, group: 'default', aff_code: hex(2), inviter_id: 0, access_token: '' });
    return ok(null);
  }
  if (M === 'PUT /api/user/') {
    const t = db.users.find((x) => x.id === body.id);
    if (!t) return fail('record not found');
    Object.assign(t, { username: body.username, display_name: body.display_name, quota: body.quota, group: body.group });
    if (body.password) t.password = body.password;
    return ok(null);
  }
  if (M === 'POST /api/user/manage') {
    const t = db.users.find((x) => x.username === body.username);
    if (!t) return fail('用户不存在');
    if (body.action === 'disable') t.status = 2;
    if (body.action === 'enable') t.status = 1;
    if (body.action === 'delete') t.status = 3;
    if (body.action === 'promote') t.role = 10;
    if (body.action === 'demote') t.role = 1;
    return ok({ role: t.role, status: t.status });
  }
  if ((m = /^\/api\/user\/(\d+)$/.exec(path))) {
    const t = db.users.find((x) => x.id === Number(m[1]));
    return t ? ok(publicUser(t)) : fail('record not found');
  }
  // redemptions
  const reds = () => [...db.redemptions].sort((a, b) => b.id - a.id);
  if (M === 'GET /api/redemption/') return ok(page(reds(), q.p));
  if (M === 'GET /api/redemption/search') return ok(reds().filter((r) => r.name.startsWith(q.keyword ?? '') || String(r.id) === q.keyword));
  if (M === 'POST /api/redemption/') {
    const keys = [];
    for (let i = 0; i < Number(body.count); i++) {
      const key = randomUUID().replace(/-/g, '');
      keys.push(key);
      db.redemptions.push({ id: db.seq.redemption++, user_id: u.id, key, status: 1, name: body.name, quota: Number(body.quota), created_time: now(), redeemed_time: 0 });
    }
    return ok(keys);
  }
  if (M === 'PUT /api/redemption/') {
    const r = db.redemptions.find((x) => x.id === body.id);
    if (!r) return fail('record not found');
    r.status = body.status;
    return ok(r);
  }
  if ((m = /^\/api\/redemption\/(\d+)$/.exec(path)) && req.method === 'DELETE') {
    db.redemptions = db.redemptions.filter((x) => x.id !== Number(m[1]));
    return ok(null);
  }
  // options
  if (!root) return fail('无权进行此操作，权限不足');
  if (M === 'GET /api/option/') return ok(Object.entries(db.options).map(([key, value]) => ({ key, value })));
  if (M === 'PUT /api/option/') {
    db.options[body.key] = String(body.value);
    return ok(null);
  }
  return { status: 404, body: { error: { message: `Invalid URL (${req.method} ${path})`, type: 'invalid_request_error' } } };
}

function relay(req, body) {
  const auth = (req.headers.authorization ?? '').replace(/^Bearer /, '').replace(/^sk-/, '');
  const tok = db.tokens.find((t) => t.key === auth.split('-')[0]);
  if (!tok || tok.status !== 1) return { status: 401, body: { error: { message: '无效的令牌', type: 'one_api_error' } } };
  const u = db.users.find((x) => x.id === tok.user_id);
  const ch = db.channels.find((c) => c.status === 1 && c.models.split(',').includes(body.model));
  if (!ch) return { status: 503, body: { error: { message: `当前分组 default 下对于模型 ${body.model} 无可用渠道`, type: 'one_api_error' } } };
  const quota = 75;
  u.quota -= quota;
  u.used_quota += quota;
  u.request_count++;
  tok.used_quota += quota;
  ch.used_quota += quota;
  db.logs.push({ id: db.seq.log++, user_id: u.id, created_at: now(), type: 2, content: '倍率：0.25 × 1.00 × 3.00', username: u.username, token_name: tok.name, model_name: body.model, quota, prompt_tokens: 12, completion_tokens: 21, channel: ch.id, request_id: hex(8), elapsed_time: 321, is_stream: false });
  return { status: 200, body: { id: 'chatcmpl-mock', object: 'chat.completion', created: now(), model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the mock.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 12, completion_tokens: 21, total_tokens: 33 } } };
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json' };

createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  let raw = '';
  for await (const chunk of req) raw += chunk;
  let body = {};
  try {
    body = raw ? JSON.parse(raw) : {};
  } catch {
    body = {};
  }
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/v1/')) {
    const r = url.pathname.startsWith('/v1/') ? relay(req, body) : await api(req, url, body);
    const isWrapped = r && typeof r === 'object' && 'body' in r && !('success' in r);
    const status = isWrapped ? r.status ?? 200 : 200;
    const headers = { 'Content-Type': 'application/json' };
    if (isWrapped && r.cookie) headers['Set-Cookie'] = r.cookie;
    res.writeHead(status, headers);
    res.end(JSON.stringify(isWrapped ? r.body : r));
    return;
  }
  let file = normalize(join(DIST, url.pathname));
  if (!file.startsWith(DIST)) file = join(DIST, 'index.html');
  try {
    if (!(await stat(file)).isFile()) throw new Error('dir');
  } catch {
    file = join(DIST, 'index.html');
  }
  res.writeHead(200, { 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream' });
  res.end(await readFile(file));
}).listen(PORT, () => console.log(`mock Tollgate on http://localhost:${PORT}`));
