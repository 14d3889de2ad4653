import { notifications } from '@mantine/notifications';
import { errorMessage } from '../hooks/useAsync';

export function notifySuccess(message: string, title?: string) {
  notifications.show({ color: 'teal', title, message, autoClose: 3500 });
}

export function notifyError(e: unknown, title?: string) {
  notifications.show({ color: 'red', title, message: errorMessage(e), autoClose: 6000 });
}
