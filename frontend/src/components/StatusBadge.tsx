import { Badge } from '@mantine/core';

const colors: Record<string, Record<number, string>> = {
  token: { 1: 'teal', 2: 'gray', 3: 'orange', 4: 'red' },
  channel: { 0: 'gray', 1: 'teal', 2: 'gray', 3: 'red' },
  user: { 1: 'teal', 2: 'red', 3: 'gray' },
  redemption: { 1: 'teal', 2: 'gray', 3: 'blue' },
};

export function StatusBadge({ kind, status, label }: { kind: keyof typeof colors; status: number; label: string }) {
  return (
    <Badge variant="light" color={colors[kind]?.[status] ?? 'gray'} data-testid={`status-${kind}`}>
      {label}
    </Badge>
  );
}
