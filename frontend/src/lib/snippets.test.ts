import { describe, expect, it } from 'vitest';
import { apiBase, curlSnippet, pythonSnippet, tokenKey } from './snippets';

describe('snippets', () => {
  it('prefers the configured server address', () => {
    expect(apiBase('https://api.example.com/', 'http://localhost:5173')).toBe('https://api.example.com/v1');
    expect(apiBase('', 'http://localhost:5173')).toBe('http://localhost:5173/v1');
  });
  it('adds sk- once', () => {
    expect(tokenKey('abc')).toBe('sk-abc');
    expect(tokenKey('sk-abc')).toBe('sk-abc');
  });
  it('renders curl and python', () => {
    expect(curlSnippet('http://h/v1', 'abc')).toContain('Authorization: Bearer sk-abc');
    expect(curlSnippet('http://h/v1', 'abc')).toContain('http://h/v1/chat/completions');
    expect(pythonSnippet('http://h/v1', 'abc')).toContain('base_url="http://h/v1", api_key="sk-abc"');
  });
});
