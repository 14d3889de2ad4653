// The official `openai` Node SDK against a running Tollgate, unchanged (see scripts/sdk-test).
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const REPLY = 'Hello from the mock upstream.';
const client = new OpenAI({ baseURL: `${process.env.TOLLGATE_URL}/v1`, apiKey: process.env.TOLLGATE_KEY });

const r = await client.chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] });
assert.equal(r.choices[0].message.content, REPLY);
assert.equal(r.usage.total_tokens, 18);

const stream = await client.chat.completions.create({
  model: 'gpt-3.5-turbo',
  messages: [{ role: 'user', content: 'hi' }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? '';
  if (chunk.usage) usage = chunk.usage;
}
assert.equal(text.trim(), REPLY);
assert.equal(usage.total_tokens, 18);

const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.ok(models.includes('gpt-3.5-turbo'), models.join(','));

const bad = new OpenAI({ baseURL: `${process.env.TOLLGATE_URL}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
await assert.rejects(
  bad.chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hi' }] }),
  (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
);
console.log('node openai SDK: 4 checks passed');
