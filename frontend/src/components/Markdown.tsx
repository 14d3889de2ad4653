import { Typography } from '@mantine/core';
import DOMPurify from 'dompurify';
import { marked } from 'marked';
import { useMemo } from 'react';

/** Renders operator-provided markdown or HTML, sanitised. */
export function renderMarkdown(src: string): string {
  const html = marked.parse(src, { async: false, gfm: true, breaks: true }) as string;
  return DOMPurify.sanitize(html, { ADD_ATTR: ['target'] });
}

export function Markdown({ content, testId }: { content: string; testId?: string }) {
  const html = useMemo(() => renderMarkdown(content), [content]);
  return (
    <Typography>
      <div data-testid={testId} dangerouslySetInnerHTML={{ __html: html }} />
    </Typography>
  );
}

export function isUrl(s: string): boolean {
  return /^https?:\/\/\S+$/.test(s.trim());
}
