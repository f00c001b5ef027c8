"""/api/notifications: the bell (消息通知)."""
