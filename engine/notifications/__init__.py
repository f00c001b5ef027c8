"""In-app notifications (消息通知): kinds, recipients, read and acknowledgement state, delivery beyond the app."""
