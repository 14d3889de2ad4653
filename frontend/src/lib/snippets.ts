/** Ready-to-paste snippets for calling the relay with a token. */

export function apiBase(serverAddress: string | undefined, origin: string): string {
  const base = (serverAddress && serverAddress.trim()) || origin;
  return base.replace(/\/+$/, '') + '/v1';
}

export function tokenKey(key: string): string {
  return key.startsWith('sk-') ? key : `sk-${key}`;
}

export function curlSnippet(base: string, key: string, model = 'gpt-3.5-turbo'): string {
  return [
    `curl ${base}/chat/completions \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -H "Authorization: Bearer ${tokenKey(key)}" \\`,
    `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
  ].join('\n');
}

export function pythonSnippet(base: string, key: string, model = 'gpt-3.5-turbo'): string {
  return [
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url="${base}", api_key="${tokenKey(key)}")`,
    'resp = client.chat.completions.create(',
    `    model="${model}",`,
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ')',
    'print(resp.choices[0].message.content)',
  ].join('\n');
}
